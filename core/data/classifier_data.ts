/**
 * Classification data as UER-py's `finetune/run_classifier.py` and `inference/run_classifier_infer.py`
 * read it (`read_dataset`, `count_labels_num`): a UTF-8 TSV whose first line names the columns
 * (`label`, `text_a`, optionally `text_b`, in any order), one example per line; each row becomes
 * `[CLS] text_a [SEP]` (segment 1) + `text_b [SEP]` (segment 2), cut to `seq_length`, padded with
 * `[PAD]` and segment 0. Lines are split as Python's text mode does (universal newlines) and stripped
 * of `\r\n` only. Where UER-py would crash (or train on a label it cannot predict), this module
 * throws one line naming the file and the line: no header, no `label`/`text_a` column, a row with too
 * few columns, a label that is not an integer, labels that are not 0…n−1, an empty file.
 * Browser compatible: no Deno APIs (the caller reads the file).
 * @module
 */
import type { BertTokenizer } from "../tokenizer/bert_tokenizer.ts";

/** One example as written in the file. */
export interface ClassifierRow {
  /** 1-based line number in the file. */
  line: number;
  /** The `label` column as an integer; undefined where the file has no label column. */
  label?: number;
  textA: string;
  /** The `text_b` column of a pair file. */
  textB?: string;
}

/** A parsed TSV. */
export interface ClassifierFile {
  source: string;
  rows: ClassifierRow[];
  /** True when the header has a `text_b` column (sentence pairs). */
  pairs: boolean;
  /** True when the header has a `label` column. */
  labelled: boolean;
}

/** Python text-mode lines (universal newlines), without their line ends. */
function pythonLines(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

const INT = /^\s*[+-]?\d+\s*$/;

/**
 * Parses a classification TSV (`requireLabel`: train/dev/test files; inference files may lack it).
 *
 * @example
 * ```ts
 * const f = parseClassifierTsv("label\ttext_a\n1\t很好\n0\t太差\n", "train.tsv");
 * f.rows[1]; // { line: 3, label: 0, textA: "太差" }
 * ```
 */
export function parseClassifierTsv(
  text: string,
  source: string,
  opts: { requireLabel?: boolean } = {},
): ClassifierFile {
  const requireLabel = opts.requireLabel ?? true;
  const lines = pythonLines(text.startsWith("\ufeff") ? text.slice(1) : text);
  const fail = (line: number, what: string, hint: string): never => {
    throw new SyntaxError(`Cannot read "${source}" line ${line}: ${what}\n  hint: ${hint}`);
  };
  const layout = requireLabel ? "label<TAB>text_a[<TAB>text_b]" : "text_a[<TAB>text_b]";
  if (lines.length === 0) {
    throw new SyntaxError(
      `Cannot read "${source}": the file is empty\n  hint: write a header line (${layout}), then one example per line`,
    );
  }
  const columns = new Map<string, number>();
  lines[0].split("\t").forEach((c, i) => columns.set(c, i)); // UER-py: later duplicates win
  const label = columns.get("label"), a = columns.get("text_a"), b = columns.get("text_b");
  if (a === undefined) {
    const looksLikeData = INT.test(lines[0].split("\t")[0]);
    fail(
      1,
      looksLikeData ? "no header line (the first line is an example)" : `the header has no "text_a" column`,
      `the first line names the columns, e.g. "${requireLabel ? "label\\ttext_a" : "text_a"}" (UER-py's format)`,
    );
  }
  if (requireLabel && label === undefined) {
    fail(1, `the header has no "label" column`, `name the label column "label" (header: ${layout})`);
  }
  const need = Math.max(a!, b ?? -1, requireLabel ? label! : -1) + 1;
  const rows: ClassifierRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const cols = lines[i].split("\t");
    if (cols.length < need) {
      fail(
        i + 1,
        lines[i] === ""
          ? "empty line"
          : `${cols.length} column${cols.length === 1 ? "" : "s"}, the header names ${need}`,
        `every line holds ${layout} separated by tabs; remove blank lines`,
      );
    }
    const row: ClassifierRow = { line: i + 1, textA: cols[a!] };
    if (b !== undefined) row.textB = cols[b];
    if (label !== undefined && cols.length > label) {
      const s = cols[label];
      if (!INT.test(s)) {
        if (requireLabel) fail(i + 1, `label "${s}" is not an integer`, "labels are integers 0, 1, …, n-1");
      } else row.label = Number(s);
    }
    rows.push(row);
  }
  if (rows.length === 0) {
    throw new SyntaxError(
      `Cannot read "${source}": no example after the header\n  hint: one example per line after the header`,
    );
  }
  return { source, rows, pairs: b !== undefined, labelled: label !== undefined };
}

/**
 * UER-py's `count_labels_num` (the number of distinct labels of the training file), checked: the
 * labels must be exactly 0…n−1, since they index the classifier's outputs.
 */
export function countLabels(f: ClassifierFile): number {
  const seen = new Set<number>();
  for (const r of f.rows) seen.add(r.label!);
  const n = seen.size;
  const bad = f.rows.find((r) => r.label! < 0 || r.label! >= n);
  if (bad) {
    const all = [...seen].sort((x, y) => x - y);
    throw new RangeError(
      `Cannot read "${f.source}" line ${bad.line}: label ${bad.label}, but the ${n} labels of the file must be 0…${
        n - 1
      }` +
        ` (found ${all.slice(0, 8).join(", ")}${all.length > 8 ? ", …" : ""})\n  hint: number the classes 0, 1, …, n-1`,
    );
  }
  return n;
}

/** Checks that every label of `f` (dev/test) is below `labelsNum` (the training file's count). */
export function checkLabels(f: ClassifierFile, labelsNum: number, trainSource: string): void {
  const bad = f.rows.find((r) => r.label === undefined || r.label < 0 || r.label >= labelsNum);
  if (bad) {
    throw new RangeError(
      `Cannot read "${f.source}" line ${bad.line}: label ${bad.label} does not occur in the training file "${trainSource}" ` +
        `(labels 0…${labelsNum - 1})\n  hint: every class needs training examples`,
    );
  }
}

/** Encoded rows: `[N * seqLength]` ids and segments, `[N]` labels (−1 where the file has none). */
export interface EncodedRows {
  src: Int32Array;
  seg: Int32Array;
  labels: Int32Array;
  count: number;
  seqLength: number;
}

/**
 * Tokenizes rows as UER-py's `read_dataset` does (`[CLS] a [SEP]` + `b [SEP]`, cut to `seqLength`,
 * padded with `[PAD]` / segment 0).
 */
export function encodeRows(rows: readonly ClassifierRow[], tok: BertTokenizer, seqLength: number): EncodedRows {
  const T = seqLength, n = rows.length;
  const src = new Int32Array(n * T).fill(tok.vocab.padId), seg = new Int32Array(n * T), labels = new Int32Array(n);
  const { clsId, sepId } = tok.vocab;
  rows.forEach((r, i) => {
    const ids = [clsId];
    tok.tokenizeToIds(r.textA, ids);
    ids.push(sepId);
    const lenA = ids.length;
    if (r.textB !== undefined) {
      tok.tokenizeToIds(r.textB, ids);
      ids.push(sepId);
    }
    const len = Math.min(ids.length, T);
    for (let t = 0; t < len; t++) {
      src[i * T + t] = ids[t];
      seg[i * T + t] = t < lenA ? 1 : 2;
    }
    labels[i] = r.label ?? -1;
  });
  return { src, seg, labels, count: n, seqLength: T };
}

/** Rows `[start, end)` of encoded data as a batch (views, no copy). */
export function sliceRows(e: EncodedRows, start: number, end: number) {
  const T = e.seqLength;
  return {
    src: e.src.subarray(start * T, end * T),
    seg: e.seg.subarray(start * T, end * T),
    labels: e.labels.subarray(start, end),
    batchSize: end - start,
    seqLength: T,
  };
}
