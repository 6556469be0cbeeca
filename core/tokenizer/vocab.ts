/**
 * The WordPiece vocabulary: one token per line, id = line index. Two ways of reading a vocab file,
 * because they differ on real files: UER-py `uer/utils/vocab.py` `Vocab.load` keeps
 * `line.strip("\r\n").split()[0]` for lines with non-space content (so `##\u2028` becomes `##`), HF
 * keeps each `\n`-terminated line as it is. Both map a duplicated token to its LAST line (dict
 * assignment). Browser compatible (text in, no file access; see core/io/vocab_file.ts).
 * @module
 */

/** How a vocab (and the tokenizer) behaves: UER-py's or HuggingFace's BertTokenizer. */
export type TokenizerMode = "uer" | "hf";

/** The special tokens every BERT vocab must hold. */
export const SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] as const;

/**
 * Whether `code` (one UTF-16 unit; all Python spaces are in the BMP) is Python whitespace
 * (`str.isspace()`, what `str.strip()` / `str.split()` without arguments remove).
 */
export function isPythonSpace(code: number): boolean {
  if (code > 0x20 && code < 0x85) return false; // printable ASCII: the common case
  return (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x20) || code === 0x85 || code === 0xa0 ||
    code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 ||
    code === 0x202f || code === 0x205f || code === 0x3000;
}

// Python whitespace other than \n and \r (pythonLines splits on those); \x1c-\x1f are Python spaces.
// deno-lint-ignore no-control-regex
const PY_SPACE_BUT_NEWLINE = /[\t\v\f\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** Python's `line.split()[0]`: the first run of non-whitespace characters, or "" if none. */
function firstPythonWord(line: string): string {
  const n = line.length;
  let i = 0;
  while (i < n && isPythonSpace(line.charCodeAt(i))) i++;
  let j = i;
  while (j < n && !isPythonSpace(line.charCodeAt(j))) j++;
  return i === 0 && j === n ? line : line.slice(i, j);
}

/** Python's universal-newline line iteration (`for line in open(...)`): `\n`, `\r\n` and `\r` end lines. */
function pythonLines(text: string): string[] {
  const lines = text.indexOf("\r") < 0 ? text.split("\n") : text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * A token list with its token → id map and the special-token ids.
 *
 * @example
 * ```ts
 * const v = Vocab.parse("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n北\n", "inline", "uer");
 * v.id("北"); // 5
 * ```
 */
export class Vocab {
  /** Tokens by id. */
  readonly tokens: string[];
  /** Where the vocab came from (for messages). */
  readonly source: string;
  /** Which reading rules built it. */
  readonly mode: TokenizerMode;
  readonly clsId: number;
  readonly sepId: number;
  readonly maskId: number;
  readonly padId: number;
  readonly unkId: number;
  #ids: Map<string, number>;

  private constructor(tokens: string[], source: string, mode: TokenizerMode) {
    this.tokens = tokens;
    this.source = source;
    this.mode = mode;
    this.#ids = new Map();
    for (let i = 0; i < tokens.length; i++) this.#ids.set(tokens[i], i);
    const missing = SPECIAL_TOKENS.filter((t) => !this.#ids.has(t));
    if (missing.length > 0) {
      throw new TypeError(
        `Cannot load vocab "${source}": special token${missing.length > 1 ? "s" : ""} ${
          missing.map((t) => `"${t}"`).join(", ")
        } missing\n  hint: use a BERT vocab (google_zh_vocab.txt) with [PAD] [UNK] [CLS] [SEP] [MASK] lines`,
      );
    }
    this.padId = this.#ids.get("[PAD]")!;
    this.unkId = this.#ids.get("[UNK]")!;
    this.clsId = this.#ids.get("[CLS]")!;
    this.sepId = this.#ids.get("[SEP]")!;
    this.maskId = this.#ids.get("[MASK]")!;
  }

  /**
   * Reads a vocab from its text. `uer`: UER-py's `Vocab.load` (universal newlines; first
   * whitespace-separated word of lines with non-space content, other lines kept minus `\r\n`).
   * `hf`: one token per `\n`-terminated line, nothing stripped but a `\r` before the `\n`.
   * Throws a `TypeError` naming `source` if the text is empty or a special token is missing.
   */
  static parse(text: string, source: string, mode: TokenizerMode = "uer"): Vocab {
    if (text.length === 0) {
      throw new TypeError(
        `Cannot load vocab "${source}": file is empty\n  hint: pass --vocab_path with google_zh_vocab.txt`,
      );
    }
    let tokens: string[];
    if (mode === "uer") {
      tokens = pythonLines(text);
      // Without whitespace other than line ends (the usual vocab) every line is its own first word.
      if (PY_SPACE_BUT_NEWLINE.test(text)) {
        for (let i = 0; i < tokens.length; i++) {
          const w = firstPythonWord(tokens[i]);
          if (w !== "") tokens[i] = w;
        }
      }
    } else {
      tokens = text.split("\n");
      if (tokens[tokens.length - 1] === "") tokens.pop();
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (t.endsWith("\r")) tokens[i] = t.slice(0, -1);
      }
    }
    return new Vocab(tokens, source, mode);
  }

  /** Builds a vocab from a token list (ids = positions). */
  static fromTokens(tokens: string[], source = "tokens", mode: TokenizerMode = "uer"): Vocab {
    return new Vocab(tokens.slice(), source, mode);
  }

  /** Number of ids (lines), duplicates included, like `len(vocab)` in UER-py. */
  get size(): number {
    return this.tokens.length;
  }

  /** The id of `token`, or undefined if it is not in the vocab. */
  id(token: string): number | undefined {
    return this.#ids.get(token);
  }

  /** The token of `id`; throws a RangeError outside [0, size). */
  token(id: number): string {
    const t = this.tokens[id];
    if (t === undefined) {
      throw new RangeError(`Cannot look up id ${id} in vocab "${this.source}": ids are 0..${this.tokens.length - 1}`);
    }
    return t;
  }

  /** The token → id map (last line wins for duplicates). */
  get map(): ReadonlyMap<string, number> {
    return this.#ids;
  }
}

/**
 * SHA-256 (hex) of the token list joined by "\n": recorded by datasets and checkpoints so that a
 * mismatched `--vocab_path` is caught.
 *
 * @example
 * ```ts
 * const h = await vocabHash(vocab); // "3f5a..."
 * ```
 */
export async function vocabHash(vocab: Vocab): Promise<string> {
  const bytes = new TextEncoder().encode(vocab.tokens.join("\n"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}
