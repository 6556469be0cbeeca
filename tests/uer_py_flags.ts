/**
 * Reads UER-py's own flag declarations (`parser.add_argument(...)` in `preprocess.py`, `pretrain.py`,
 * `uer/opts.py`'s `*_opts(parser)` groups, …) from a UER-py checkout, so that the flag tables of
 * `core/flags/` can be checked against them: name, file:line, default, choices, type, nargs, action,
 * required. Python literals are parsed, not evaluated.
 *
 * `tests/uer_py_flags.json` holds what this extracted from dbiir/UER-py (commit in the file), so
 * `core/flags/flags_test.ts` can check the tables without a checkout; with `UER_DIR` set, the test
 * extracts again from that checkout and compares. Regenerate with
 * `UER_DIR=path/to/UER-py deno run -A tests/uer_py_flags.ts > tests/uer_py_flags.json`.
 * @module
 */

/** One `add_argument` as UER-py writes it. */
export interface UerFlag {
  /** Without dashes, e.g. `corpus_path`. */
  name: string;
  /** `file:line` of the `add_argument` call, e.g. `uer/opts.py:148`. */
  at: string;
  /** The default as Python would hold it (`None` → null; `store_true` → false). */
  default: unknown;
  choices?: unknown[];
  type?: string;
  nargs?: string;
  action?: string;
  required?: boolean;
}

/** The scripts whose flags the tables mirror (UER-py path → its flags in declaration order). */
export interface UerFlagList {
  uer_py_commit: string;
  scripts: Record<string, UerFlag[]>;
}

/** The UER-py scripts a uer-ts subcommand mirrors flag for flag. */
export const SCRIPTS = [
  "preprocess.py",
  "pretrain.py",
  "finetune/run_classifier.py",
  "inference/run_classifier_infer.py",
  "scripts/cloze_test.py",
  "scripts/extract_features.py",
] as const;

type Tok = { kind: "str" | "num" | "name" | "punct"; text: string; value?: unknown };

/** Tokens of a Python argument list (strings, numbers, names, punctuation; comments dropped). */
function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === '"' || c === "'") {
      let j = i + 1, s = "";
      while (j < src.length && src[j] !== c) {
        if (src[j] === "\\") {
          s += src[j + 1];
          j += 2;
        } else s += src[j++];
      }
      // Adjacent string literals concatenate, as in Python.
      const prev = out[out.length - 1];
      if (prev?.kind === "str") prev.value = (prev.value as string) + s;
      else out.push({ kind: "str", text: src.slice(i, j + 1), value: s });
      i = j + 1;
    } else if (/[0-9.]/.test(c) && /[0-9]/.test(src.slice(i, i + 2).replace(".", ""))) {
      const m = /^[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?/i.exec(src.slice(i))!;
      out.push({ kind: "num", text: m[0], value: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(src.slice(i))!;
      out.push({ kind: "name", text: m[0] });
      i += m[0].length;
    } else {
      out.push({ kind: "punct", text: c });
      i++;
    }
  }
  return out;
}

/** A Python literal starting at token `k`: its value and the index after it. */
function literal(toks: Tok[], k: number): [unknown, number] {
  const t = toks[k];
  if (t.kind === "str" || t.kind === "num") return [t.value, k + 1];
  if (t.kind === "punct" && t.text === "-" && toks[k + 1]?.kind === "num") {
    return [-(toks[k + 1].value as number), k + 2];
  }
  if (t.kind === "name") {
    const names: Record<string, unknown> = { None: null, True: true, False: false };
    return [t.text in names ? names[t.text] : t.text, k + 1];
  }
  if (t.text === "[" || t.text === "(") {
    const close = t.text === "[" ? "]" : ")";
    const list: unknown[] = [];
    k++;
    while (toks[k].text !== close) {
      const [v, next] = literal(toks, k);
      list.push(v);
      k = toks[next].text === "," ? next + 1 : next;
    }
    return [list, k + 1];
  }
  throw new SyntaxError(`unexpected token ${t.text}`);
}

/** The `add_argument` calls and `*_opts(parser)` calls of one Python file, in order. */
function scan(text: string, file: string): { fn: string | null; flag?: UerFlag; call?: string }[] {
  const lines = text.split("\n");
  const out: { fn: string | null; flag?: UerFlag; call?: string }[] = [];
  let fn: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const def = /^def (\w+)\(/.exec(lines[i]);
    if (def) fn = def[1];
    else if (/^\S/.test(lines[i])) fn = null;
    const call = /^\s+(\w+_opts)\(parser\)/.exec(lines[i]);
    if (call) out.push({ fn, call: call[1] });
    const at = lines[i].indexOf("add_argument(");
    if (at < 0) continue;
    // The call runs until its parenthesis closes (strings may hold parentheses).
    let src = lines[i].slice(at + "add_argument(".length);
    let j = i;
    let toks = tokenize(src);
    const depth = (ts: Tok[]) =>
      ts.reduce(
        (d, t) => d + (t.text === "(" || t.text === "[" ? 1 : 0) - (t.text === ")" || t.text === "]" ? 1 : 0),
        0,
      );
    while (depth(toks) >= 0) {
      src += "\n" + lines[++j];
      toks = tokenize(src);
    }
    const flag: UerFlag = { name: String(toks[0].value).replace(/^--/, ""), at: `${file}:${i + 1}`, default: null };
    let explicitDefault = false;
    for (let k = 1; k < toks.length - 1; k++) {
      if (toks[k].kind !== "name" || toks[k + 1].text !== "=") continue;
      const key = toks[k].text;
      const [v] = literal(toks, k + 2);
      if (key === "default") (flag.default = v), (explicitDefault = true);
      else if (key === "choices") flag.choices = v as unknown[];
      else if (key === "type") flag.type = String(v);
      else if (key === "nargs") flag.nargs = String(v);
      else if (key === "action") flag.action = String(v);
      else if (key === "required") flag.required = Boolean(v);
    }
    if (!explicitDefault && flag.action === "store_true") flag.default = false;
    out.push({ fn, flag });
  }
  return out;
}

/**
 * The flags of each script in `SCRIPTS`, read from the checkout at `uerDir`, `*_opts(parser)` groups
 * of `uer/opts.py` expanded in place.
 */
export async function extractUerFlags(uerDir: string): Promise<UerFlagList["scripts"]> {
  const opts = scan(await Deno.readTextFile(`${uerDir}/uer/opts.py`), "uer/opts.py");
  const groups = new Map<string, { flag?: UerFlag; call?: string }[]>();
  for (const e of opts) if (e.fn) groups.set(e.fn, [...(groups.get(e.fn) ?? []), e]);
  const expand = (items: { flag?: UerFlag; call?: string }[]): UerFlag[] =>
    items.flatMap((e) => e.flag ? [e.flag] : expand(groups.get(e.call!) ?? []));
  const scripts: UerFlagList["scripts"] = {};
  for (const s of SCRIPTS) scripts[s] = expand(scan(await Deno.readTextFile(`${uerDir}/${s}`), s));
  return scripts;
}

if (import.meta.main) {
  const dir = Deno.env.get("UER_DIR");
  if (!dir) {
    console.error("error: set UER_DIR to a UER-py checkout\n  hint: git clone https://github.com/dbiir/UER-py");
    Deno.exit(2);
  }
  const commit = Deno.args[0] ?? "unknown";
  const list: UerFlagList = { uer_py_commit: commit, scripts: await extractUerFlags(dir) };
  console.log(JSON.stringify(list, null, 1));
}
