/**
 * The one UER ↔ HF table: every parameter of an ALBERT state dict under its UER-py name and its
 * `transformers` name, read in both directions, with the two transforms (UER's 3-row segment table
 * loses / regains its padding row 0; `target.mlm.linear_2.bias` is both `predictions.bias` and
 * `predictions.decoder.bias`), plus the config mapping. Mirrors UER-py's
 * `scripts/convert_albert_from_uer_to_huggingface.py` and `..._from_huggingface_to_uer.py`, but every
 * source tensor must be used, every target produced and every shape match — leftovers are errors.
 *
 * The backbone (embeddings + encoder) is always there; the heads are groups of rows a model has or
 * lacks as a whole, one per HF class `save_pretrained` writes:
 * ```
 * head        UER (pretrain.py / run_classifier.py)      HF                         in HF classes
 * mlm         target.mlm.*                               predictions.*              ForMaskedLM, ForPreTraining
 * pooler      target.sp.linear_1                         albert.pooler              AlbertModel, ForPreTraining
 * sop         target.sp.linear_2                         sop_classifier.classifier  ForPreTraining
 * classifier  output_layer_1, output_layer_2             albert.pooler, classifier  ForSequenceClassification
 * ```
 * (`AlbertModel` saved on its own has no `albert.` prefix; `hfToUer` adds it.)
 * Browser compatible: no Deno APIs.
 * @module
 */
import type { AlbertConfig, HiddenAct } from "../core/config.ts";
import { validateConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import type { TorchTensor } from "./torch_bin.ts";

/** How one row turns a source tensor into its target. */
type Transform = "none" | "dropRow0" | "prependZeroRow" | "identityIfNonFactorized";

/** One row of the table: a UER name, its HF name(s) (the first is primary), transforms per direction. */
export interface NameRow {
  uer: string;
  hf: string[];
  toHf: Transform;
  toUer: Transform;
  /** Expected UER shape. */
  shape: number[];
  /** The head the row belongs to; null for the backbone (embeddings, encoder). */
  head: Head | null;
}

/** A group of head parameters a model has or lacks as a whole (see the module's table). */
export type Head = "mlm" | "pooler" | "sop" | "classifier";

/** What UER-py's `pretrain.py --target albert` model holds (and AlbertForPreTraining). */
export const PRETRAINING_HEADS: readonly Head[] = ["mlm", "pooler", "sop"];

/** Which heads a table covers (default: `PRETRAINING_HEADS`). */
export interface TableOptions {
  heads?: readonly Head[];
  /** Rows of the classifier's output layer (`output_layer_2` / `classifier`); default 2. */
  labelsNum?: number;
}

/** The heads in table order. */
const HEAD_ORDER: readonly Head[] = ["pooler", "sop", "classifier", "mlm"];

function checkHeads(heads: readonly Head[]): void {
  if (heads.includes("classifier") && (heads.includes("pooler") || heads.includes("sop"))) {
    throw new TypeError(
      `Cannot build the name table: heads "classifier" and "${
        heads.includes("sop") ? "sop" : "pooler"
      }" both use albert.pooler`,
    );
  }
  if (heads.includes("sop") && !heads.includes("pooler")) {
    throw new TypeError(`Cannot build the name table: head "sop" needs "pooler"`);
  }
}

const LAYER_ROWS: [string, string, "w" | "b" | "ln"][] = [
  ["layer_norm_2", "full_layer_layer_norm", "ln"],
  ["self_attn.linear_layers.0", "attention.query", "w"],
  ["self_attn.linear_layers.1", "attention.key", "w"],
  ["self_attn.linear_layers.2", "attention.value", "w"],
  ["self_attn.final_linear", "attention.dense", "w"],
  ["layer_norm_1", "attention.LayerNorm", "ln"],
  ["feed_forward.linear_1", "ffn", "w"],
  ["feed_forward.linear_2", "ffn_output", "w"],
];

/** UER-py's per-layer parameter order (its `state_dict()` order). */
const UER_LAYER_ORDER = [
  "self_attn.linear_layers.0",
  "self_attn.linear_layers.1",
  "self_attn.linear_layers.2",
  "self_attn.final_linear",
  "feed_forward.linear_1",
  "feed_forward.linear_2",
  "layer_norm_1",
  "layer_norm_2",
];

/** Number of encoder layer parameter sets: 1 with sharing, `layers_num` without. */
function layerPrefixes(cfg: AlbertConfig): [string, string][] {
  if (cfg.parameter_sharing) {
    return [["encoder.transformer.", "albert.encoder.albert_layer_groups.0.albert_layers.0."]];
  }
  return Array.from(
    { length: cfg.layers_num },
    (_, i) => [`encoder.transformer.${i}.`, `albert.encoder.albert_layer_groups.${i}.albert_layers.0.`],
  );
}

/**
 * The table for a config and a set of heads, in HF order (the order of UER-py's converter output).
 *
 * @example
 * ```ts
 * const rows = nameTable(cfg, 21128);
 * rows[0]; // { uer: "embedding.word.embedding.weight", hf: ["albert.embeddings.word_embeddings.weight"], ... }
 * nameTable(cfg, 21128, { heads: ["classifier"], labelsNum: 3 }).at(-1)!.hf; // ["classifier.bias"]
 * ```
 */
export function nameTable(cfg: AlbertConfig, vocabSize: number, opts: TableOptions = {}): NameRow[] {
  const E = cfg.emb_size, H = cfg.hidden_size, F = cfg.feedforward_size, V = vocabSize, L = cfg.max_seq_length;
  const heads = opts.heads ?? PRETRAINING_HEADS;
  checkHeads(heads);
  const rows: NameRow[] = [];
  let head: Head | null = null;
  const row = (uer: string, hf: string | string[], shape: number[], toHf: Transform = "none", toUer = toHf) =>
    rows.push({
      uer,
      hf: Array.isArray(hf) ? hf : [hf],
      shape,
      toHf,
      toUer: toHf === "dropRow0" ? "prependZeroRow" : toUer,
      head,
    });
  const linear = (uer: string, hf: string, out: number, inp: number) => {
    row(`${uer}.weight`, `${hf}.weight`, [out, inp]);
    row(`${uer}.bias`, `${hf}.bias`, [out]);
  };
  const norm = (uer: string, hf: string, n: number) => {
    row(`${uer}.gamma`, `${hf}.weight`, [n]);
    row(`${uer}.beta`, `${hf}.bias`, [n]);
  };
  row("embedding.word.embedding.weight", "albert.embeddings.word_embeddings.weight", [V, E]);
  row("embedding.pos.embedding.weight", "albert.embeddings.position_embeddings.weight", [L, E]);
  row("embedding.seg.embedding.weight", "albert.embeddings.token_type_embeddings.weight", [3, E], "dropRow0");
  norm("embedding.layer_norm", "albert.embeddings.LayerNorm", E);
  if (cfg.factorized_embedding_parameterization) {
    linear("encoder.linear", "albert.encoder.embedding_hidden_mapping_in", H, E);
  } else {
    // UER has no projection; HF always has one: identity (E = H) and zero bias.
    row("", "albert.encoder.embedding_hidden_mapping_in.weight", [H, E], "identityIfNonFactorized");
    row("", "albert.encoder.embedding_hidden_mapping_in.bias", [H], "identityIfNonFactorized");
  }
  for (const [u, h] of layerPrefixes(cfg)) {
    for (const [un, hn, kind] of LAYER_ROWS) {
      if (kind === "ln") norm(`${u}${un}`, `${h}${hn}`, H);
      else {
        const [out, inp] = un === "feed_forward.linear_1" ? [F, H] : un === "feed_forward.linear_2" ? [H, F] : [H, H];
        linear(`${u}${un}`, `${h}${hn}`, out, inp);
      }
    }
  }
  for (head of HEAD_ORDER.filter((h) => heads.includes(h))) {
    if (head === "pooler") linear("target.sp.linear_1", "albert.pooler", H, H);
    else if (head === "sop") linear("target.sp.linear_2", "sop_classifier.classifier", 2, H);
    else if (head === "classifier") {
      // UER-py run_classifier.py: output_layer_1 (tanh, pooling "first") is HF's pooler.
      linear("output_layer_1", "albert.pooler", H, H);
      linear("output_layer_2", "classifier", opts.labelsNum ?? 2, H);
    } else {
      linear("target.mlm.linear_1", "predictions.dense", E, H);
      norm("target.mlm.layer_norm", "predictions.LayerNorm", E);
      row("target.mlm.linear_2.weight", "predictions.decoder.weight", [V, E]);
      // NOTE: one UER tensor, two HF keys (tied in HF); HF order: decoder.bias then bias.
      row("target.mlm.linear_2.bias", ["predictions.decoder.bias", "predictions.bias"], [V]);
    }
  }
  return rows;
}

/**
 * The heads a state dict's names hold (UER or HF names), in table order. A head counts when any of
 * its names is present; a partly present head then fails the table check naming what is missing.
 *
 * @example
 * ```ts
 * headsOf(["albert.embeddings.word_embeddings.weight", "predictions.bias"]); // ["mlm"]
 * ```
 */
export function headsOf(names: Iterable<string>): Head[] {
  const found = new Set<Head>();
  for (const n of names) {
    if (n.startsWith("target.mlm.") || n.startsWith("predictions.")) found.add("mlm");
    else if (n.startsWith("target.sp.linear_1.")) found.add("pooler");
    else if (n.startsWith("target.sp.linear_2.") || n.startsWith("sop_classifier.")) found.add("sop");
    else if (n.startsWith("output_layer_") || n.startsWith("classifier.")) found.add("classifier");
    else if (n.startsWith("albert.pooler.") || n.startsWith("pooler.")) found.add("pooler");
  }
  if (found.has("classifier")) found.delete("pooler"); // HF: albert.pooler is the classifier's output_layer_1
  if (found.has("sop")) found.add("pooler"); // its input; missing if absent
  return HEAD_ORDER.filter((h) => found.has(h));
}

/** The classifier's label count from `output_layer_2.weight` / `classifier.weight` (rows), if present. */
export function labelsNumOf(params: Map<string, { shape: readonly number[] }>): number | undefined {
  return (params.get("output_layer_2.weight") ?? params.get("classifier.weight"))?.shape[0];
}

/**
 * UER-py's parameter names in its `state_dict()` order for a config and heads (default: the
 * pretraining model's).
 *
 * @example
 * ```ts
 * uerParamNames(cfg)[0]; // "embedding.layer_norm.gamma"
 * ```
 */
export function uerParamNames(cfg: AlbertConfig, heads: readonly Head[] = PRETRAINING_HEADS): string[] {
  checkHeads(heads);
  const names = [
    "embedding.layer_norm.gamma",
    "embedding.layer_norm.beta",
    "embedding.word.embedding.weight",
    "embedding.pos.embedding.weight",
    "embedding.seg.embedding.weight",
  ];
  if (cfg.factorized_embedding_parameterization) names.push("encoder.linear.weight", "encoder.linear.bias");
  for (const [u] of layerPrefixes(cfg)) {
    for (const m of UER_LAYER_ORDER) {
      const [a, b] = m.startsWith("layer_norm") ? ["gamma", "beta"] : ["weight", "bias"];
      names.push(`${u}${m}.${a}`, `${u}${m}.${b}`);
    }
  }
  const linears = (...ms: string[]) => {
    for (const m of ms) {
      const [a, b] = m.endsWith("layer_norm") ? ["gamma", "beta"] : ["weight", "bias"];
      names.push(`${m}.${a}`, `${m}.${b}`);
    }
  };
  if (heads.includes("mlm")) linears("target.mlm.linear_1", "target.mlm.layer_norm", "target.mlm.linear_2");
  if (heads.includes("pooler")) linears("target.sp.linear_1");
  if (heads.includes("sop")) linears("target.sp.linear_2");
  if (heads.includes("classifier")) linears("output_layer_1", "output_layer_2");
  return names;
}

/**
 * UER-py's `state_dict()._metadata` module list for a config (every module, version 1), so a UER
 * `.bin` we write matches UER-py's byte for byte: the pretraining model's (`target.*`), or with
 * `heads` holding "classifier" run_classifier.py's `Classifier` (`output_layer_1`, `output_layer_2`).
 */
export function uerModuleMetadata(cfg: AlbertConfig, heads: readonly Head[] = PRETRAINING_HEADS): [string, number][] {
  const m = [
    "",
    "embedding",
    "embedding.dropout",
    "embedding.layer_norm",
    "embedding.word",
    "embedding.word.embedding",
    "embedding.pos",
    "embedding.pos.embedding",
    "embedding.seg",
    "embedding.seg.embedding",
    "encoder",
  ];
  if (cfg.factorized_embedding_parameterization) m.push("encoder.linear");
  const layer = (p: string) => [
    p,
    `${p}.self_attn`,
    `${p}.self_attn.linear_layers`,
    `${p}.self_attn.linear_layers.0`,
    `${p}.self_attn.linear_layers.1`,
    `${p}.self_attn.linear_layers.2`,
    `${p}.self_attn.dropout`,
    `${p}.self_attn.final_linear`,
    `${p}.dropout_1`,
    `${p}.feed_forward`,
    `${p}.feed_forward.linear_1`,
    `${p}.feed_forward.linear_2`,
    `${p}.dropout_2`,
    `${p}.layer_norm_1`,
    `${p}.layer_norm_2`,
  ];
  if (cfg.parameter_sharing) m.push(...layer("encoder.transformer"));
  else {
    m.push("encoder.transformer");
    for (let i = 0; i < cfg.layers_num; i++) m.push(...layer(`encoder.transformer.${i}`));
  }
  if (heads.includes("classifier")) m.push("output_layer_1", "output_layer_2");
  else {
    m.push(
      "target",
      "target.mlm",
      "target.mlm.linear_1",
      "target.mlm.layer_norm",
      "target.mlm.linear_2",
      "target.mlm.softmax",
      "target.mlm.criterion",
      "target.sp",
      "target.sp.linear_1",
      "target.sp.linear_2",
      "target.sp.softmax",
      "target.sp.criterion",
    );
  }
  return m.map((x) => [x, 1]);
}

/** Older UER-py names (`--target albert` era) → current names (README §5; TencentPretrain's upgrade). */
const OLD_UER_PREFIXES: [string, string][] = [
  ["target.mlm_linear_1.", "target.mlm.linear_1."],
  ["target.mlm_linear_2.", "target.mlm.linear_2."],
  ["target.layer_norm.", "target.mlm.layer_norm."],
  ["target.sop_linear_1.", "target.sp.linear_1."],
  ["target.sop_linear_2.", "target.sp.linear_2."],
  ["embedding.word_embedding.", "embedding.word.embedding."],
  ["embedding.position_embedding.", "embedding.pos.embedding."],
  ["embedding.segment_embedding.", "embedding.seg.embedding."],
];

/**
 * Renames older UER-py parameter names to the current ones; a name present in both spellings is an
 * error naming both.
 */
export function upgradeUerNames<T>(params: Map<string, T>, source: string): Map<string, T> {
  const out = new Map<string, T>();
  const from = new Map<string, string>();
  for (const [name, t] of params) {
    let renamed = name;
    for (const [old, cur] of OLD_UER_PREFIXES) {
      if (name.startsWith(old)) renamed = cur + name.slice(old.length);
    }
    if (out.has(renamed)) {
      throw new TypeError(
        `Cannot read "${source}": parameters "${from.get(renamed)}" and "${name}" both map to "${renamed}"`,
      );
    }
    out.set(renamed, t);
    from.set(renamed, name);
  }
  return out;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function bitEqual(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || !sameShape(a.shape, b.shape) || a.data.byteLength !== b.data.byteLength) return false;
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function leftoverError(source: string, what: string, names: string[], hint: string): TypeError {
  const shown = names.slice(0, 5).map((n) => `"${n}"`).join(", ");
  const more = names.length > 5 ? ` and ${names.length - 5} more` : "";
  return new TypeError(`Cannot convert "${source}": ${what} ${shown}${more}\n  hint: ${hint}`);
}

/** Vocabulary size from the word embedding (the one tensor that carries it). */
function vocabOf(map: Map<string, Tensor>, name: string, source: string): number {
  const t = map.get(name);
  if (!t || t.shape.length !== 2) throw leftoverError(source, "missing parameter", [name], "is this an ALBERT model?");
  return t.shape[0];
}

/**
 * UER state dict → HF state dict (HF names, HF order; the heads are those the names hold unless
 * `opts.heads` says). The segment table loses
 * row 0 (as a view of the same storage, like UER-py's converter); the MLM bias appears under both
 * HF keys as one tensor (one shared storage when written to a `.bin`).
 *
 * @example
 * ```ts
 * const hf = uerToHf(uerParams, cfg, "uer_model.bin");
 * ```
 */
export function uerToHf(
  params: Map<string, Tensor>,
  cfg: AlbertConfig,
  source = "model",
  opts: TableOptions = {},
): Map<string, TorchTensor> {
  const src = upgradeUerNames(params, source);
  const rows = nameTable(cfg, vocabOf(src, "embedding.word.embedding.weight", source), {
    heads: opts.heads ?? headsOf(src.keys()),
    labelsNum: opts.labelsNum ?? labelsNumOf(src),
  });
  const used = new Set<string>();
  const missing: string[] = [];
  const out = new Map<string, TorchTensor>();
  for (const r of rows) {
    if (r.toHf === "identityIfNonFactorized") {
      const [h, e] = r.shape.length === 2 ? r.shape : [r.shape[0], 0];
      const data = new Float32Array(h * (e || 1));
      if (e) { for (let i = 0; i < h; i++) data[i * e + i] = 1; }
      out.set(r.hf[0], { dtype: "F32", shape: r.shape, data: e ? data : new Float32Array(h) });
      continue;
    }
    const t = src.get(r.uer);
    if (!t) {
      missing.push(r.uer);
      continue;
    }
    used.add(r.uer);
    if (!sameShape(t.shape, r.shape)) {
      throw new RangeError(
        `Cannot convert "${source}": "${r.uer}" has shape ${shapeStr(t.shape)}, the config needs ${
          shapeStr(r.shape)
        }\n  hint: check --config_path`,
      );
    }
    let v: TorchTensor = t;
    if (r.toHf === "dropRow0") {
      const cols = t.shape[1];
      const base = (t as TorchTensor).storage;
      v = {
        dtype: t.dtype,
        shape: [t.shape[0] - 1, cols],
        data: t.data.subarray(cols),
        storage: base ? { data: base.data, offset: base.offset + cols } : { data: t.data, offset: cols },
      };
    }
    for (const h of r.hf) out.set(h, v);
  }
  if (missing.length) throw leftoverError(source, "missing UER parameter", missing, "check --config_path");
  const extra = [...src.keys()].filter((k) => !used.has(k));
  if (extra.length) {
    throw leftoverError(source, "has parameters the ALBERT table does not know:", extra, "check --config_path");
  }
  return out;
}

/**
 * HF state dict → UER state dict (UER-py's `state_dict()` order) of the heads the names hold (an
 * `AlbertModel` file without the `albert.` prefix gets it). The segment table gains a zero row 0; `predictions.bias` and `predictions.decoder.bias` must agree bit for bit (either may be
 * absent, as HF's safetensors writer drops tied duplicates); `predictions.decoder.weight` may be
 * absent only when the config ties it to the word embeddings.
 *
 * @example
 * ```ts
 * const uer = hfToUer(hfParams, cfg, "pytorch_model.bin");
 * ```
 */
export function hfToUer(
  params: Map<string, Tensor>,
  cfg: AlbertConfig,
  source = "model",
  opts: { tieWordEmbeddings?: boolean } & TableOptions = {},
): Map<string, Tensor> {
  const src = withAlbertPrefix(params);
  // Some HF checkpoints carry buffers (position_ids) beside the parameters.
  for (const k of [...src.keys()]) {
    if (k.endsWith("embeddings.position_ids")) src.delete(k);
  }
  const heads = opts.heads ?? headsOf(src.keys());
  const rows = nameTable(cfg, vocabOf(src, "albert.embeddings.word_embeddings.weight", source), {
    heads,
    labelsNum: opts.labelsNum ?? labelsNumOf(src),
  });
  const used = new Set<string>();
  const missing: string[] = [];
  const byName = new Map<string, Tensor>();
  for (const r of rows) {
    if (r.toUer === "identityIfNonFactorized") {
      const t = src.get(r.hf[0]);
      if (!t) {
        missing.push(r.hf[0]);
        continue;
      }
      used.add(r.hf[0]);
      const [h, e] = r.shape.length === 2 ? r.shape : [r.shape[0], 0];
      const d = t.data as Float32Array;
      let ok = sameShape(t.shape, r.shape);
      for (let i = 0; ok && i < d.length; i++) ok = d[i] === (e && i % (e + 1) === 0 && i / (e + 1) < h ? 1 : 0);
      if (!ok) {
        throw new RangeError(
          `Cannot convert "${source}": "${
            r.hf[0]
          }" is not an identity projection, but the config has factorized_embedding_parameterization false\n  hint: set factorized_embedding_parameterization true`,
        );
      }
      continue;
    }
    const present = r.hf.filter((h) => src.has(h));
    let t: Tensor | undefined = present.length ? src.get(present[0]) : undefined;
    if (!t && r.uer === "target.mlm.linear_2.weight" && opts.tieWordEmbeddings) {
      t = src.get("albert.embeddings.word_embeddings.weight");
    }
    if (!t) {
      missing.push(r.hf[0]);
      continue;
    }
    for (const h of present) {
      used.add(h);
      if (!bitEqual(src.get(h)!, t)) {
        throw new RangeError(
          `Cannot convert "${source}": "${present[0]}" and "${h}" differ, but UER has one tensor for both`,
        );
      }
    }
    const expect = r.toUer === "prependZeroRow" ? [r.shape[0] - 1, ...r.shape.slice(1)] : r.shape;
    if (!sameShape(t.shape, expect)) {
      throw new RangeError(
        `Cannot convert "${source}": "${present[0]}" has shape ${shapeStr(t.shape)}, the config needs ${
          shapeStr(expect)
        }\n  hint: check config.json`,
      );
    }
    let v = t;
    if (r.toUer === "prependZeroRow") {
      const cols = t.shape[1];
      // deno-lint-ignore no-explicit-any
      const data = new (t.data.constructor as any)(t.data.length + cols);
      data.set(t.data, cols); // NOTE: UER row 0 = padding segment; HF has no such row, zeros stand in
      v = { dtype: t.dtype, shape: [t.shape[0] + 1, cols], data };
    }
    byName.set(r.uer, v);
  }
  if (missing.length) throw leftoverError(source, "missing HF parameter", missing, "check config.json");
  const extra = [...src.keys()].filter((k) => !used.has(k));
  if (extra.length) {
    throw leftoverError(source, "has parameters the ALBERT table does not know:", extra, "check config.json");
  }
  const out = new Map<string, Tensor>();
  for (const n of uerParamNames(cfg, heads)) out.set(n, byName.get(n)!);
  return out;
}

/** `AlbertModel.save_pretrained` names (`embeddings.*`, `encoder.*`, `pooler.*`) with the `albert.` prefix. */
function withAlbertPrefix<T>(params: Map<string, T>): Map<string, T> {
  const keys = [...params.keys()];
  if (keys.some((k) => k.startsWith("albert.")) || !keys.some((k) => k.startsWith("embeddings."))) {
    return new Map(params);
  }
  const base = ["embeddings.", "encoder.", "pooler."];
  return new Map([...params].map(([k, v]) => [base.some((b) => k.startsWith(b)) ? `albert.${k}` : k, v]));
}

const HF_ACT: Record<string, HiddenAct> = { gelu: "gelu", gelu_new: "gelu_fast", relu: "relu" };
const UER_ACT: Record<HiddenAct, string> = { gelu: "gelu", gelu_fast: "gelu_new", relu: "relu" };

/** transformers' AlbertConfig defaults (for keys a config.json leaves out). */
const HF_DEFAULTS: Record<string, unknown> = {
  vocab_size: 30000,
  embedding_size: 128,
  hidden_size: 4096,
  num_hidden_layers: 12,
  num_hidden_groups: 1,
  num_attention_heads: 64,
  intermediate_size: 16384,
  inner_group_num: 1,
  hidden_act: "gelu_new",
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  position_embedding_type: "absolute",
};

/**
 * HF `config.json` (AlbertConfig) → UER config. Layouts UER cannot express (inner groups,
 * several layer groups other than one per layer, relative positions) are errors naming the key.
 *
 * @example
 * ```ts
 * const cfg = hfConfigToUer(JSON.parse(await Deno.readTextFile("hf/config.json")), "hf/config.json");
 * ```
 */
export function hfConfigToUer(raw: Record<string, unknown>, source: string): AlbertConfig {
  const c = { ...HF_DEFAULTS, ...raw } as Record<string, unknown>;
  const err = (what: string) => new TypeError(`Cannot use HF config "${source}": ${what}`);
  if (c.model_type !== undefined && c.model_type !== "albert") {
    throw err(`model_type is ${JSON.stringify(c.model_type)}, not "albert"`);
  }
  const act = HF_ACT[String(c.hidden_act)];
  if (!act) throw err(`hidden_act ${JSON.stringify(c.hidden_act)} has no UER equivalent (relu, gelu, gelu_new)`);
  if (c.inner_group_num !== 1) throw err(`inner_group_num ${c.inner_group_num} is not supported (UER has 1)`);
  if (c.type_vocab_size !== 2) throw err(`type_vocab_size ${c.type_vocab_size} is not 2`);
  if (c.position_embedding_type !== "absolute") throw err(`position_embedding_type must be "absolute"`);
  const groups = c.num_hidden_groups;
  const layers = c.num_hidden_layers;
  if (groups !== 1 && groups !== layers) {
    throw err(`num_hidden_groups ${groups} must be 1 (parameter sharing) or num_hidden_layers ${layers}`);
  }
  return validateConfig({
    emb_size: c.embedding_size,
    hidden_size: c.hidden_size,
    feedforward_size: c.intermediate_size,
    heads_num: c.num_attention_heads,
    layers_num: layers,
    hidden_act: act,
    max_seq_length: c.max_position_embeddings,
    dropout: c.hidden_dropout_prob,
    vocab_size: c.vocab_size,
    layer_norm_eps: c.layer_norm_eps,
    factorized_embedding_parameterization: true,
    parameter_sharing: groups === 1,
  }, source);
}

/**
 * UER config → HF `config.json` object, key order and values as in the reference `hf/config.json`
 * (AlbertForMaskedLM, `tie_word_embeddings: false` because UER's decoder is not the embedding).
 */
/**
 * The HF config keys of a fine-tuned classifier (`AlbertForSequenceClassification`, UER-py
 * run_classifier.py's `output_layer_1/2`): its architecture and HF's default label names
 * (`LABEL_<i>`; UER-py's labels are the integers 0…n−1), from which transformers counts `num_labels`.
 *
 * @example
 * ```ts
 * hfClassifierConfig(2).id2label; // { "0": "LABEL_0", "1": "LABEL_1" }
 * ```
 */
export function hfClassifierConfig(labelsNum: number): Record<string, unknown> {
  const names = Array.from({ length: labelsNum }, (_, i) => `LABEL_${i}`);
  return {
    architectures: ["AlbertForSequenceClassification"],
    id2label: Object.fromEntries(names.map((n, i) => [String(i), n])),
    label2id: Object.fromEntries(names.map((n, i) => [n, i])),
  };
}

export function uerConfigToHf(cfg: AlbertConfig, vocabSize: number): Record<string, unknown> {
  return {
    architectures: ["AlbertForMaskedLM"],
    model_type: "albert",
    embedding_size: cfg.emb_size,
    hidden_size: cfg.hidden_size,
    num_attention_heads: cfg.heads_num,
    num_hidden_layers: cfg.layers_num,
    intermediate_size: cfg.feedforward_size,
    hidden_act: UER_ACT[cfg.hidden_act],
    max_position_embeddings: cfg.max_seq_length,
    type_vocab_size: 2,
    vocab_size: vocabSize,
    layer_norm_eps: cfg.layer_norm_eps ?? 1e-12,
    hidden_dropout_prob: cfg.dropout,
    attention_probs_dropout_prob: cfg.dropout,
    classifier_dropout_prob: 0.1,
    num_hidden_groups: cfg.parameter_sharing ? 1 : cfg.layers_num,
    inner_group_num: 1,
    initializer_range: 0.02,
    position_embedding_type: "absolute",
    tie_word_embeddings: false,
    pad_token_id: 0,
    bos_token_id: 2,
    eos_token_id: 3,
  };
}

const FLOAT_KEYS = new Set([
  "hidden_dropout_prob",
  "attention_probs_dropout_prob",
  "classifier_dropout_prob",
  "initializer_range",
  "layer_norm_eps",
]);

/**
 * JSON text as Python's `json.dumps(obj, indent=2)` writes it (floats keep ".0"), so our
 * config.json matches transformers' byte for byte.
 */
export function pythonJson(obj: Record<string, unknown>): string {
  return JSON.stringify(obj, (k, v) => (FLOAT_KEYS.has(k) && Number.isInteger(v) ? `__F${v}.0__` : v), 2)
    .replace(/"__F(-?\d+\.0)__"/g, "$1");
}
