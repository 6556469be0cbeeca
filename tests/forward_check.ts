/**
 * Test helpers shared by the model, runtime and CLI tests: reading the albert-tiny reference
 * arrays (../shared/reference) and running an inference graph against them on a device.
 * Not browser compatible (reads files).
 * @module
 */
import assert from "node:assert/strict";
import { readSafetensors } from "../convert/safetensors.ts";
import { refPath } from "./reference.ts";
import { type AlbertConfig, validateConfig } from "../core/config.ts";
import { toOnnx } from "../core/graph/onnx_proto.ts";
import { createSession, type Session } from "../core/runtime/mod.ts";
import type { Tensor } from "../core/tensor.ts";
import { type AlbertOutput, inferenceGraph, type InferenceGraphOptions } from "../core/model/albert.ts";
import { deriveParams } from "../core/model/quantize.ts";

export const REF = "albert-tiny";

/** |a−b| ≤ 1e-5 + 1e-4·|b| for every element (float32 re-association over tiny sums). */
export function assertClose(name: string, got: Tensor, want: Tensor, atol = 1e-5, rtol = 1e-4) {
  assert.deepEqual(got.shape, want.shape, `${name}: shape`);
  const a = got.data as Float32Array, b = want.data as Float32Array;
  let worst = 0, at = -1;
  for (let i = 0; i < b.length; i++) {
    const excess = Math.abs(a[i] - b[i]) - (atol + rtol * Math.abs(b[i]));
    if (!(excess <= worst)) {
      worst = Number.isNaN(excess) ? Infinity : excess;
      at = i;
    }
  }
  assert.ok(at < 0, `${name}: element ${at}: ${a[at]} vs ${b[at]} (beyond tolerance by ${worst})`);
}

export async function refTensors(rel: string): Promise<Map<string, Tensor>> {
  return readSafetensors(await Deno.readFile(refPath(rel)), rel).tensors;
}

export async function tinyConfig(): Promise<AlbertConfig> {
  const raw = JSON.parse(await Deno.readTextFile(refPath(`${REF}/uer_config.json`)));
  return validateConfig({ ...raw, vocab_size: 21128 }, "uer_config.json");
}

function paramFeeds(sess: Session, params: Map<string, Tensor>): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const n of sess.inputNames) {
    const p = params.get(n);
    if (p) feeds[n] = p;
  }
  return feeds;
}

/** Rows of a [B,T,E] reference at flat positions → [K,E]. */
function pickRows(t: Tensor, positions: Tensor): Tensor {
  const E = t.shape[2];
  const pos = positions.data as BigInt64Array;
  const src = t.data as Float32Array;
  const out = new Float32Array(pos.length * E);
  pos.forEach((p, i) => out.set(src.subarray(Number(p) * E, (Number(p) + 1) * E), i * E));
  return { dtype: "F32", shape: [pos.length, E], data: out };
}

/** Builds the graph for one semantics, runs it on `device` and compares with the `sem.*` arrays. */
export async function checkForward(
  device: "cpu" | "wasm" | "webgpu",
  sem: "uer" | "hf",
  cfg: AlbertConfig,
  params: Map<string, Tensor>,
  ref: Map<string, Tensor>,
  outputs: AlbertOutput[],
  extra: Partial<InferenceGraphOptions> = {},
) {
  const g = inferenceGraph(cfg, { semantics: sem, eps: 1e-12, outputs, ...extra });
  const sess = await createSession(toOnnx(g).model, { device });
  try {
    const feeds: Record<string, Tensor> = paramFeeds(sess, deriveParams(g, params));
    if (sem === "uer") {
      feeds.src = ref.get("src")!;
      feeds.seg = ref.get("seg")!;
    } else {
      feeds.input_ids = ref.get("src")!;
      feeds.token_type_ids = ref.get("token_type_ids")!;
      feeds.attention_mask = ref.get("attention_mask")!;
    }
    const rows = ref.get(`${sem}.mlm_logits_rows`);
    if (extra.mlmPositions) {
      const pos = ref.get("mlm_logits_rows_positions")!.data as BigInt64Array;
      const T = BigInt(ref.get("src")!.shape[1]);
      const flat = new BigInt64Array(pos.length / 2);
      for (let i = 0; i < flat.length; i++) flat[i] = pos[2 * i] * T + pos[2 * i + 1];
      feeds.mlm_positions = { dtype: "I64", shape: [flat.length], data: flat };
    }
    const out = await sess.run(feeds);
    for (const o of outputs) {
      let want = o === "mlm_logits" && rows ? rows : ref.get(`${sem}.${o}`)!;
      if (o === "mlm_transform" && extra.mlmPositions) want = pickRows(want, feeds.mlm_positions);
      assertClose(`${device} ${sem}.${o}`, out[o], want);
    }
  } finally {
    await sess.release();
  }
}
