import assert from "node:assert/strict";
import { AlbertLoader, type InstanceSource, type LoaderInstance } from "./loader.ts";
import { Masker } from "../data/masking.ts";
import { PyRandom } from "../data/py_random.ts";
import { refJson, refJsonl } from "../../tests/reference.ts";

interface RefInstance {
  index: number;
  src: number[];
  pad_num: number;
  tgt_mlm: [number, number][];
  is_wrong_order: number;
  seg_pos: [number, number];
}
interface Trace {
  resolved_args: { batch_size: number; instances_buffer_size: number; seed: number; total_steps: number };
  buffer_fills: { before_step: number; size: number; order: number[] }[];
  steps: {
    step: number;
    instance_indices: number[];
    src: number[][];
    tgt_mlm: number[][];
    seg: number[][];
    tgt_sop: number[];
    batch_size: number;
    seq_length: number;
    n_masked: number;
  }[];
}

/** The reference instances as an in-memory dataset (what preprocess writes, read back). */
function memorySource(instances: RefInstance[]): InstanceSource {
  const seqLength = instances[0].src.length + instances[0].pad_num;
  return {
    count: instances.length,
    seqLength,
    instance: (i): LoaderInstance => ({
      src: instances[i].src,
      tgtMlm: instances[i].tgt_mlm,
      isWrongOrder: instances[i].is_wrong_order,
      segPos: instances[i].seg_pos,
    }),
  };
}

for (const name of ["train_trace", "train_trace_docs"]) {
  Deno.test(`AlbertLoader.next() yields UER-py's buffer fills and batches of ${name}`, async () => {
    const trace = await refJson<Trace>(`albert-tiny/${name}/trace.json`);
    const instances = await refJsonl<RefInstance>(`albert-tiny/${name}/instances.jsonl`);
    const a = trace.resolved_args;
    const fills: { beforeStep: number; order: number[] }[] = [];
    let step = 1;
    const loader = new AlbertLoader(memorySource(instances), {
      batchSize: a.batch_size,
      instancesBufferSize: a.instances_buffer_size,
      seed: a.seed,
      onFill: (order) => fills.push({ beforeStep: step, order: [...order] }),
    });
    for (const ref of trace.steps) {
      step = ref.step;
      const { batch, instanceIndices, nMasked } = await loader.next();
      assert.deepEqual(instanceIndices, ref.instance_indices, `step ${ref.step}`);
      assert.equal(batch.batchSize, ref.batch_size);
      assert.equal(batch.seqLength, ref.seq_length);
      assert.equal(nMasked, ref.n_masked);
      assert.deepEqual(Array.from(batch.src), ref.src.flat(), `src of step ${ref.step}`);
      assert.deepEqual(Array.from(batch.tgtMlm), ref.tgt_mlm.flat(), `tgt_mlm of step ${ref.step}`);
      assert.deepEqual(Array.from(batch.seg), ref.seg.flat(), `seg of step ${ref.step}`);
      assert.deepEqual(Array.from(batch.tgtSop), ref.tgt_sop, `tgt_sop of step ${ref.step}`);
    }
    assert.deepEqual(
      fills,
      trace.buffer_fills.map((f) => ({ beforeStep: f.before_step, order: f.order })),
    );
  });
}

/** A small synthetic dataset: 23 instances of varying length, some padded. */
function synthetic(dynamic: boolean): InstanceSource {
  const seqLength = 16;
  const list: LoaderInstance[] = [];
  for (let i = 0; i < 23; i++) {
    const len = 6 + (i % 10); // 6..15 ids, padded to 16
    const src = [101, ...Array.from({ length: len - 2 }, (_, k) => 1000 + i * 10 + k), 102];
    list.push({ src, tgtMlm: dynamic ? null : [[1, 1000 + i * 10]], isWrongOrder: i % 2, segPos: [2, len] });
  }
  return { count: list.length, seqLength, instance: (i) => list[i] };
}

Deno.test("AlbertLoader.state()/restore() resumes with the same batches (static and dynamic masks)", async () => {
  for (const dynamic of [false, true]) {
    const vocab = { size: 21128, clsId: 101, sepId: 102, maskId: 103, padId: 0 };
    const make = () =>
      new AlbertLoader(synthetic(dynamic), {
        batchSize: 4,
        instancesBufferSize: 10, // several fills per pass, the last one partial
        seed: 11,
        masker: new Masker(vocab, {}),
      });
    const a = make();
    const straight: number[][] = [];
    const srcs: number[][] = [];
    for (let k = 0; k < 20; k++) {
      const b = await a.next();
      straight.push(b.instanceIndices);
      srcs.push(Array.from(b.batch.src));
    }
    const b = make();
    for (let k = 0; k < 7; k++) await b.next();
    const saved = JSON.parse(JSON.stringify(b.state()));
    const c = make();
    c.restore(saved);
    for (let k = 7; k < 20; k++) {
      const r = await c.next();
      assert.deepEqual(r.instanceIndices, straight[k], `dynamic=${dynamic} batch ${k}`);
      assert.deepEqual(Array.from(r.batch.src), srcs[k], `dynamic=${dynamic} src of batch ${k}`);
    }
  }
});

Deno.test("AlbertLoader splits instances by read count mod world_size, continuing across passes", async () => {
  const src = synthetic(false); // 23 instances: an odd count, so pass 2 swaps the parity
  const seen: number[][] = [[], []];
  for (const rank of [0, 1]) {
    const fills: number[][] = [];
    const loader = new AlbertLoader(src, {
      batchSize: 100,
      instancesBufferSize: 1000,
      seed: 7,
      rank,
      worldSize: 2,
      onFill: (o) => fills.push([...o].sort((x, y) => x - y)),
    });
    await loader.next();
    await loader.next();
    seen[rank] = fills.flat();
    const odd = (i: number) => i % 2 === 1;
    assert.ok(fills[0].every((i) => odd(i) === (rank === 1)), `rank ${rank} pass 1`);
    assert.ok(fills[1].every((i) => odd(i) === (rank === 0)), `rank ${rank} pass 2`);
  }
  assert.equal(seen[0].length + seen[1].length, 46);
});

Deno.test("AlbertLoader masks dynamic instances in the loader with the shared generator, in row order", async () => {
  const vocab = { size: 21128, clsId: 101, sepId: 102, maskId: 103, padId: 0 };
  const masker = new Masker(vocab, {});
  const source = synthetic(true);
  const loader = new AlbertLoader(source, { batchSize: 5, instancesBufferSize: 100, seed: 3, masker });
  const { batch, instanceIndices } = await loader.next();
  // Replay: the same generator shuffles the buffer, then masks each row of the batch in order.
  const rng = new PyRandom(3);
  const order = Array.from({ length: source.count }, (_, i) => i);
  rng.shuffle(order);
  assert.deepEqual(instanceIndices, order.slice(0, 5));
  for (let r = 0; r < 5; r++) {
    const ins = await source.instance(order[r]);
    const padded = [...Array.from(ins.src), ...new Array(16 - ins.src.length).fill(0)];
    const m = masker.mask(padded, rng);
    assert.deepEqual(Array.from(batch.src.subarray(r * 16, r * 16 + 16)), m.src);
    const tgt = new Array(16).fill(0);
    for (const [p, id] of m.tgtMlm) tgt[p] = id;
    assert.deepEqual(Array.from(batch.tgtMlm.subarray(r * 16, r * 16 + 16)), tgt);
    for (const [p] of m.tgtMlm) assert.ok(p > 0 && p < ins.src.length - 0 && ins.src[p] !== 102);
  }
});

Deno.test("AlbertLoader skips batches without a masked token and fails when none has one", async () => {
  const list: LoaderInstance[] = Array.from({ length: 6 }, (_, i) => ({
    src: [101, 2000 + i, 102],
    tgtMlm: i === 4 ? [[1, 2000 + i]] : [],
    isWrongOrder: 0,
    segPos: [3, 3],
  }));
  const loader = new AlbertLoader({ count: 6, seqLength: 4, instance: (i) => list[i] }, {
    batchSize: 1,
    instancesBufferSize: 100,
    seed: 1,
  });
  for (let k = 0; k < 3; k++) assert.deepEqual((await loader.next()).instanceIndices, [4]);
  list[4].tgtMlm = [];
  await assert.rejects(() => loader.next(), /no instance of the dataset has a masked token/);
});
