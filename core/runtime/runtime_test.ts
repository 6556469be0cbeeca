import assert from "node:assert/strict";
import { checkForward, REF, refTensors, tinyConfig } from "../../tests/forward_check.ts";
import { Graph } from "../graph/builder.ts";
import { toOnnx } from "../graph/onnx_proto.ts";
import { createSession, pickBackend, probeWebGpu } from "./mod.ts";

Deno.test("pickBackend('auto') picks native CPU on a software adapter and says so", async () => {
  const probe = await probeWebGpu();
  const lines: string[] = [];
  const b = await pickBackend("auto", (l) => lines.push(l));
  assert.equal(b, probe.available && !probe.fallback ? "webgpu" : "cpu");
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^device: (cpu|webgpu)/);
});

Deno.test("pickBackend('webgpu') without an adapter is a one-line error, never a fallback", async () => {
  const desc = Object.getOwnPropertyDescriptor(navigator, "gpu");
  Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
  try {
    await assert.rejects(() => pickBackend("webgpu"), (e: Error) => {
      assert.match(e.message, /^Cannot start --device webgpu: navigator.gpu is missing\n {2}hint: use --device cpu/);
      return true;
    });
    assert.equal(await pickBackend("auto", () => {}), "cpu");
  } finally {
    if (desc) Object.defineProperty(navigator, "gpu", desc);
    else delete (navigator as unknown as Record<string, unknown>).gpu;
  }
});

Deno.test("wasm (UER semantics) and webgpu (HF semantics) sessions match forward_trained; gpu-buffer outputs feed back", async () => {
  const cfg = await tinyConfig();
  const params = await refTensors(`${REF}/train_trace/final_params.safetensors`);
  const ref = await refTensors(`${REF}/forward_trained.safetensors`);
  const outs = ["embedding_output", "layer_outputs", "mlm_logits", "pooled_output", "sop_logits"] as const;
  await checkForward("wasm", "uer", cfg, params, ref, [...outs], { mlmPositions: true });
  await checkForward("webgpu", "hf", cfg, params, ref, [...outs], { mlmPositions: true, idsDtype: "I64" });

  // A tiny "update" graph y = x * 2 run twice with its output kept on the GPU and fed back.
  const g = new Graph();
  const x = g.input("x", "F32", [4]);
  g.output(g.mul(x, 2), "y");
  const s = await createSession(toOnnx(g).model, { device: "webgpu", gpuOutputs: true });
  try {
    const first = await s.runDevice({ x: { dtype: "F32", shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    assert.equal(first.y.location, "gpu-buffer");
    const second = await s.runDevice({ x: first.y });
    const y = await second.y.download();
    assert.deepEqual(Array.from(y.data as Float32Array), [4, 8, 12, 16]);
    first.y.dispose();
    second.y.dispose();
  } finally {
    await s.release();
  }
});

Deno.test("cpu runInto: a host tensor fed or filled again is read anew when its buffer or shape changes", async () => {
  const g = new Graph();
  const x = g.input("x", "F32", ["N"]);
  g.output(g.mul(x, 2), "y");
  const s = await createSession(toOnnx(g).model, { device: "cpu", threads: 1 });
  try {
    const feed = { dtype: "F32" as const, shape: [2], data: Float32Array.of(1, 2) };
    const out = { dtype: "F32" as const, shape: [2], data: new Float32Array(2) };
    await s.runInto!({ x: feed }, { y: out }, []);
    assert.deepEqual([...out.data], [2, 4]);
    // Same objects, new contents in place: the kept wrappers see them (zero-copy views).
    feed.data.set([3, 4]);
    await s.runInto!({ x: feed }, { y: out }, []);
    assert.deepEqual([...out.data], [6, 8]);
    // Same objects, new buffers and a new shape: new wrappers, the old buffer is left alone.
    const old = out.data;
    feed.data = Float32Array.of(5, 6, 7);
    feed.shape = [3];
    out.data = new Float32Array(3);
    out.shape = [3];
    await s.runInto!({ x: feed }, { y: out }, []);
    assert.deepEqual([...out.data], [10, 12, 14]);
    assert.deepEqual([...old], [6, 8]);
  } finally {
    await s.release();
  }
});
