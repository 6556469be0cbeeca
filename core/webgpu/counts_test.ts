/**
 * The hardware-independent counts for one optimizer step of the reference tiny config
 * (2 layer applications, batch 4, seq 64) on the executor, counted from outside by wrapping the WebGPU
 * prototypes (`WebGpuRecorder`): one submit and no readback on a step that does not report, one more
 * submit and one readback on a step that does; at most 150 dispatches; the host writes only the batch
 * (two writes, into alternating slots) while parameters, moments and gradients stay on the device.
 */
import assert from "node:assert/strict";
import { pretrainStep, syntheticBatch, tinyConfigLayers } from "../../tests/webgpu_steps.ts";
import { probeWebGpu } from "../runtime/mod.ts";
import { pretrainTask } from "../train/pretrain_task.ts";
import { initParams, Trainer } from "../train/trainer.ts";
import { WebGpuRecorder } from "./instrument.ts";
import { WebGpuStateStore } from "./state_store.ts";

const gpu = await probeWebGpu();

Deno.test({
  name:
    "an optimizer step of the 2-layer tiny config: 1 submit, no readback, ≤ 150 dispatches, 2 batch writes in alternating slots",
  ignore: !gpu.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rec = WebGpuRecorder.install();
    const cfg = await tinyConfigLayers(2);
    const B = 4, T = 64;
    const step = pretrainStep(cfg, B, T);
    const store = await WebGpuStateStore.create();
    try {
      step.init(store);
      const stateBytes = 3 * step.task.params.reduce((a, p) => a + 4 * p.shape.reduce((x, y) => x * y, 1), 0);
      const prog = await store.compile(step.graph);
      await store.sync();
      const steps = [0, 1, 2].map((s) => step.feeds(syntheticBatch(B, T, cfg.vocab_size!, s), 1e-3));
      const batchBytes = Object.values(steps[0]).reduce((a, t) => a + t.data.byteLength, 0);
      assert.equal(prog.outputNames.filter((n) => !n.startsWith("updated.")).length, 0, "every output is state");
      const offsets: number[] = [];
      for (const feeds of steps) {
        rec.reset();
        await store.run(prog, feeds);
        const c = rec.counts();
        assert.equal(c.submits, 1, "one submit per step");
        assert.equal(c.mapAsyncs, 0, "no readback on a step that does not report");
        assert.ok(c.dispatches <= 150, `${c.dispatches} dispatches`);
        assert.equal(c.dispatches, prog.dispatches);
        assert.equal(c.writeBuffers, 2, "the batch's int and float inputs, nothing else");
        // The batch (+ the ids sorted for the embedding gradients, its padding): far below the state.
        assert.ok(c.writeBytes >= batchBytes && c.writeBytes < 4 * batchBytes + 4096, `${c.writeBytes} bytes written`);
        assert.ok(c.writeBytes * 50 < stateBytes);
        offsets.push(...c.writes.map((w) => w.offset));
      }
      // Double-buffered inputs: consecutive steps write different slots, every other step the same.
      assert.notDeepEqual(offsets.slice(0, 2), offsets.slice(2, 4));
      assert.deepEqual(offsets.slice(0, 2), offsets.slice(4, 6));
      // A report: one more submit and one readback of the statistics (20 bytes), not of the state.
      rec.reset();
      const stats = (await store.read(["stats"])).get("stats")!.data as Float32Array;
      const c = rec.counts();
      assert.equal(c.submits, 1);
      assert.equal(c.mapAsyncs, 1);
      assert.equal(c.mapBytes, 20);
      assert.ok(stats[0] > 3 * 9 && stats[0] < 3 * 12, `summed loss ${stats[0]} over 3 steps`);
      assert.ok(Math.abs(stats[0] - stats[1] - stats[2]) < 1e-3, "loss = loss_mlm + loss_sp summed");
      console.log(`${prog.dispatches} dispatches, ${prog.pipelines} pipelines, ${c.mapBytes} bytes read at a report`);
    } finally {
      await store.dispose();
      rec.uninstall();
    }
  },
});

Deno.test({
  name:
    "a data-parallel step on the executor: gradients read back as one flat buffer, returned in one write, same update",
  ignore: !gpu.available,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cfg = { ...(await tinyConfigLayers(1)), vocab_size: 200 };
    const task = pretrainTask(cfg);
    const B = 2, T = 16;
    const batch = syntheticBatch(B, T, 200, 3);
    const params = initParams(task.params, 7);
    const plain = await Trainer.create({ task, params, device: "webgpu", log: () => {} });
    let seen = 0;
    const hook = Object.assign((g: Float32Array) => {
      seen = g.length;
      return g; // one rank: the average is the gradient itself
    }, {});
    const split = await Trainer.create({ task, params, device: "webgpu", averageGradients: hook, log: () => {} });
    try {
      await plain.step(batch, 1e-3);
      await split.step(batch, 1e-3); // compiles the gradients and apply programs
      const rec = WebGpuRecorder.install();
      rec.reset();
      await split.step(batch, 1e-3);
      const c = rec.counts();
      rec.uninstall();
      const n = task.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
      assert.equal(seen, n);
      assert.equal(c.mapAsyncs, 1, "the gradients come back in one readback");
      assert.equal(c.mapBytes, 4 * n, "of the flat gradient buffer only");
      assert.equal(c.submits, 2, "gradients, then apply");
      assert.ok(c.writes.some((w) => w.bytes >= 4 * n), "the averaged buffer goes back in one write");
      await plain.step(batch, 1e-3);
      const a = await plain.params(), b = await split.params();
      let worst = 0;
      for (const [name, t] of a) {
        const x = t.data as Float32Array, y = b.get(name)!.data as Float32Array;
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
      }
      assert.ok(worst < 1e-6, `parameters differ by ${worst}`);
    } finally {
      await plain.dispose();
      await split.dispose();
    }
  },
});
