import assert from "node:assert/strict";
import { ALBERT_BASE, type AlbertConfig, validateConfig } from "../core/config.ts";
import type { Tensor } from "../core/tensor.ts";
import { refJson, refPath } from "../tests/reference.ts";
import {
  headsOf,
  hfConfigToUer,
  hfToUer,
  nameTable,
  pythonJson,
  uerConfigToHf,
  uerParamNames,
  uerToHf,
  upgradeUerNames,
} from "./names.ts";
import { randomUerParams } from "./random_model.ts";
import { readTorchBin } from "./torch_bin.ts";

const tiny: AlbertConfig = {
  ...ALBERT_BASE,
  emb_size: 4,
  hidden_size: 6,
  feedforward_size: 10,
  heads_num: 2,
  layers_num: 3,
  max_seq_length: 8,
};

function sameBits(a: Tensor, b: Tensor): boolean {
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
function assertSame(a: Map<string, Tensor>, b: Map<string, Tensor>): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) {
    assert.deepEqual(v.shape, b.get(k)!.shape, k);
    assert.ok(sameBits(v, b.get(k)!), `${k} differs`);
  }
}

Deno.test("nameTable() has no duplicate in either column, for every layout", () => {
  for (
    const cfg of [tiny, { ...tiny, parameter_sharing: false }, {
      ...tiny,
      emb_size: 6,
      factorized_embedding_parameterization: false,
    }]
  ) {
    const rows = nameTable(cfg, 11);
    const uer = rows.map((r) => r.uer).filter((u) => u !== "");
    const hf = rows.flatMap((r) => r.hf);
    assert.equal(new Set(uer).size, uer.length, "UER column has duplicates");
    assert.equal(new Set(hf).size, hf.length, "HF column has duplicates");
    assert.deepEqual(new Set(uer), new Set(uerParamNames(cfg)));
  }
});

Deno.test("uerToHf() and hfToUer() are exact inverses apart from the segment padding row", () => {
  for (
    const cfg of [tiny, { ...tiny, parameter_sharing: false }, {
      ...tiny,
      emb_size: 6,
      factorized_embedding_parameterization: false,
    }]
  ) {
    const uer = randomUerParams(cfg, 11, 5);
    (uer.get("embedding.seg.embedding.weight")!.data as Float32Array).fill(0, 0, cfg.emb_size); // row 0 := 0
    const hf = uerToHf(uer, cfg);
    assert.equal(hf.get("predictions.bias"), hf.get("predictions.decoder.bias"));
    assert.deepEqual(hf.get("albert.embeddings.token_type_embeddings.weight")!.shape, [2, cfg.emb_size]);
    const back = hfToUer(hf, cfg);
    assertSame(back, uer);
    assertSame(uerToHf(back, cfg), hf);
    if (!cfg.parameter_sharing) assert.ok(hf.has("albert.encoder.albert_layer_groups.2.albert_layers.0.ffn.weight"));
  }
});

Deno.test("HF→UER→HF of hf/pytorch_model.bin is bit-exact and the segment row 0 is zeros", async () => {
  const cfg = validateConfig(await refJson("albert-tiny/uer_config.json"), "uer_config.json");
  const hf = readTorchBin(await Deno.readFile(refPath("albert-tiny/hf/pytorch_model.bin")), "pytorch_model.bin");
  const uer = hfToUer(hf, cfg, "pytorch_model.bin");
  assert.deepEqual([...uer.keys()], uerParamNames(cfg));
  assert.ok((uer.get("embedding.seg.embedding.weight")!.data as Float32Array).subarray(0, 32).every((x) => x === 0));
  assertSame(uerToHf(uer, cfg), hf);
});

Deno.test("uerToHf() names every leftover, missing and misshapen tensor", () => {
  const uer = randomUerParams(tiny, 11, 1);
  const extra = new Map(uer).set("encoder.transformer.extra.weight", uer.get("encoder.linear.bias")!);
  assert.throws(() => uerToHf(extra, tiny, "m.bin"), /"m.bin".*does not know.*"encoder.transformer.extra.weight"/);
  const missing = new Map(uer);
  missing.delete("target.sp.linear_2.bias");
  assert.throws(() => uerToHf(missing, tiny, "m.bin"), /missing UER parameter "target.sp.linear_2.bias"/);
  assert.throws(
    () => uerToHf(uer, { ...tiny, feedforward_size: 12 }, "m.bin"),
    /"encoder.transformer.feed_forward.linear_1.weight" has shape \[10, 6\], the config needs \[12, 6\]/,
  );
  const hf = uerToHf(uer, tiny);
  const diff = new Map(hf).set("predictions.bias", { ...hf.get("predictions.bias")!, data: new Float32Array(11) });
  assert.throws(() => hfToUer(diff, tiny, "h.bin"), /"predictions.decoder.bias" and "predictions.bias" differ/);
  const noDup = new Map(hf);
  noDup.delete("predictions.decoder.bias"); // HF's safetensors writer drops tied duplicates
  assertSame(hfToUer(noDup, tiny), hfToUer(hf, tiny));
  const noDecoder = new Map(hf);
  noDecoder.delete("predictions.decoder.weight");
  assert.throws(() => hfToUer(noDecoder, tiny, "h.bin"), /missing HF parameter "predictions.decoder.weight"/);
  assert.ok(hfToUer(noDecoder, tiny, "h.bin", { tieWordEmbeddings: true }).has("target.mlm.linear_2.weight"));
});

Deno.test("upgradeUerNames() renames every older UER-py name and refuses two spellings of one", () => {
  const uer = randomUerParams(tiny, 11, 2);
  const old = new Map<string, Tensor>();
  const olds: Record<string, string> = {
    "target.mlm.linear_1.": "target.mlm_linear_1.",
    "target.mlm.linear_2.": "target.mlm_linear_2.",
    "target.mlm.layer_norm.": "target.layer_norm.",
    "target.sp.linear_1.": "target.sop_linear_1.",
    "target.sp.linear_2.": "target.sop_linear_2.",
    "embedding.word.embedding.": "embedding.word_embedding.",
    "embedding.pos.embedding.": "embedding.position_embedding.",
    "embedding.seg.embedding.": "embedding.segment_embedding.",
  };
  let renamed = 0;
  for (const [k, v] of uer) {
    const hit = Object.keys(olds).find((p) => k.startsWith(p));
    if (hit) renamed++;
    old.set(hit ? olds[hit] + k.slice(hit.length) : k, v);
  }
  assert.equal(renamed, 13);
  assertSame(upgradeUerNames(old, "old.bin"), uer);
  assertSame(uerToHf(old, tiny), uerToHf(uer, tiny));
  const both = new Map(uer).set("target.layer_norm.gamma", uer.get("target.mlm.layer_norm.gamma")!);
  assert.throws(
    () => upgradeUerNames(both, "x.bin"),
    /"target.layer_norm.gamma" both map to "target.mlm.layer_norm.gamma"/,
  );
});

Deno.test("hfConfigToUer() and uerConfigToHf() map sizes, eps and activations both ways", async () => {
  const hf = await refJson<Record<string, unknown>>("albert-tiny/hf/config.json");
  const uer = validateConfig(await refJson("albert-tiny/uer_config.json"), "uer_config.json");
  const got = hfConfigToUer(hf, "config.json");
  for (
    const k of [
      "emb_size",
      "hidden_size",
      "feedforward_size",
      "heads_num",
      "layers_num",
      "hidden_act",
      "max_seq_length",
    ] as const
  ) {
    assert.equal(got[k], uer[k], k);
  }
  assert.equal(got.layer_norm_eps, 1e-12);
  assert.equal(
    pythonJson(uerConfigToHf(uer, 21128)) + "\n",
    await Deno.readTextFile(refPath("albert-tiny/hf/config.json")),
  );
  assert.equal(hfConfigToUer({ ...hf, hidden_act: "gelu_new" }, "c").hidden_act, "gelu_fast");
  assert.equal(hfConfigToUer({ ...hf, hidden_act: "gelu" }, "c").hidden_act, "gelu");
  assert.equal(uerConfigToHf({ ...uer, hidden_act: "gelu_fast" }, 5).hidden_act, "gelu_new");
  assert.equal(hfConfigToUer({ ...hf, num_hidden_groups: 3 }, "c").parameter_sharing, false);
  assert.throws(() => hfConfigToUer({ ...hf, hidden_act: "silu" }, "c.json"), /"c.json": hidden_act "silu"/);
  assert.throws(() => hfConfigToUer({ ...hf, inner_group_num: 2 }, "c.json"), /inner_group_num 2/);
  assert.throws(() => hfConfigToUer({ ...hf, model_type: "bert" }, "c.json"), /model_type is "bert"/);
});

/** The HF state dict `save_pretrained` writes for each ALBERT class (names as transformers' modules). */
function hfClassDict(cls: string, cfg: AlbertConfig, vocab: number): Map<string, Tensor> {
  const full = uerToHf(randomUerParams(cfg, vocab, 3), cfg);
  const out = new Map<string, Tensor>();
  for (const [k, v] of full) {
    if (k.startsWith("albert.pooler.") && cls === "AlbertForMaskedLM") continue;
    if (k.startsWith("predictions.") && (cls === "AlbertModel" || cls === "AlbertForSequenceClassification")) continue;
    if (k.startsWith("sop_classifier.") && cls !== "AlbertForPreTraining") continue;
    out.set(cls === "AlbertModel" ? k.replace(/^albert\./, "") : k, v);
  }
  if (cls === "AlbertForSequenceClassification") {
    out.set("classifier.weight", {
      dtype: "F32",
      shape: [3, cfg.hidden_size],
      data: new Float32Array(3 * cfg.hidden_size),
    });
    out.set("classifier.bias", { dtype: "F32", shape: [3], data: Float32Array.of(1, 2, 3) });
  }
  return out;
}

Deno.test("headsOf() tells each HF class and UER model by its names", () => {
  const want: Record<string, string[]> = {
    AlbertModel: ["pooler"],
    AlbertForMaskedLM: ["mlm"],
    AlbertForPreTraining: ["pooler", "sop", "mlm"],
    AlbertForSequenceClassification: ["classifier"],
  };
  for (const [cls, heads] of Object.entries(want)) {
    assert.deepEqual(headsOf(hfClassDict(cls, tiny, 11).keys()), heads, cls);
  }
  assert.deepEqual(headsOf(uerParamNames(tiny)), ["pooler", "sop", "mlm"]);
  assert.deepEqual(headsOf(uerParamNames(tiny, ["classifier"])), ["classifier"]);
  assert.deepEqual(headsOf(["embedding.word.embedding.weight"]), []);
});

Deno.test("hfToUer() reads every HF class's heads and uerToHf() writes the same keys back", () => {
  for (const cls of ["AlbertModel", "AlbertForMaskedLM", "AlbertForPreTraining", "AlbertForSequenceClassification"]) {
    const hf = hfClassDict(cls, tiny, 11);
    const uer = hfToUer(hf, tiny, cls);
    assert.deepEqual([...uer.keys()], uerParamNames(tiny, headsOf(hf.keys())), cls);
    const back = uerToHf(uer, tiny, cls);
    const want = new Map([...hf].map(([k, v]) => [cls === "AlbertModel" ? `albert.${k}` : k, v]));
    assertSame(new Map([...back].filter(([k]) => want.has(k))), want);
    assert.equal(back.size, want.size, cls);
  }
  const cls = hfToUer(hfClassDict("AlbertForSequenceClassification", tiny, 11), tiny, "c");
  assert.deepEqual(cls.get("output_layer_2.weight")!.shape, [3, 6]); // labels from the weights
  assert.ok(cls.has("output_layer_1.weight") && !cls.has("target.sp.linear_1.weight"));
});

Deno.test("uerToHf() maps UER-py's run_classifier model to AlbertForSequenceClassification names", async () => {
  const cfg = validateConfig(await refJson("albert-tiny/uer_config.json"), "uer_config.json");
  const uer = readTorchBin(
    await Deno.readFile(refPath("albert-tiny/finetune_trace/classifier_init.bin")),
    "classifier_init.bin",
  );
  const hf = uerToHf(uer, cfg, "classifier_init.bin");
  assert.ok(sameBits(hf.get("albert.pooler.weight")!, uer.get("output_layer_1.weight")!));
  assert.ok(sameBits(hf.get("classifier.bias")!, uer.get("output_layer_2.bias")!));
  assert.ok(![...hf.keys()].some((k) => k.startsWith("predictions.") || k.startsWith("sop_")));
  const seg = uer.get("embedding.seg.embedding.weight")!;
  const zeroRow0 = (seg.data as Float32Array).slice();
  zeroRow0.fill(0, 0, cfg.emb_size); // HF has no padding segment row
  assertSame(hfToUer(hf, cfg), new Map(uer).set("embedding.seg.embedding.weight", { ...seg, data: zeroRow0 }));
});

Deno.test("nameTable() refuses heads that share albert.pooler, and a head missing a tensor is named", () => {
  assert.throws(() => nameTable(tiny, 11, { heads: ["pooler", "classifier"] }), /"classifier" and "pooler"/);
  assert.throws(() => nameTable(tiny, 11, { heads: ["sop"] }), /"sop" needs "pooler"/);
  const hf = hfClassDict("AlbertForSequenceClassification", tiny, 11);
  hf.delete("classifier.bias");
  assert.throws(() => hfToUer(hf, tiny, "h.bin"), /missing HF parameter "classifier.bias"/);
});
