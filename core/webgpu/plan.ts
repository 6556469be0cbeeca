/**
 * The static memory plan of a lowered program: every activation buffer lives from the kernel that
 * writes it to the last kernel that reads it (host outputs to the end), and buffers whose lifetimes do
 * not overlap share memory. Placement is a linear scan with best-fit reuse of freed intervals, in
 * arenas of at most the device's largest storage binding (`A0`, `A1`, …); constants get their own
 * arenas (`CF` float, `CI` int). Browser compatible: no Deno APIs.
 * @module
 */
import type { Buf } from "./expr.ts";
import { walk } from "./expr.ts";
import { kernelExprs, kernelOuts } from "./kernels.ts";
import type { Program } from "./lower.ts";

/** An arena the plan asks for: name, element type and size in elements. */
export interface ArenaSize {
  name: string;
  dt: "f32" | "i32";
  size: number;
}

/** Elements per placement unit (256 bytes). */
const ALIGN = 64;
const up = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Places the program's activations and constants (sets `arena`/`offset` on each) and returns the
 * arenas needed, with the peak activation bytes.
 *
 * @example
 * ```ts
 * const { arenas, activationBytes } = planMemory(prog, device.limits.maxStorageBufferBindingSize);
 * ```
 */
export function planMemory(prog: Program, maxBindingBytes: number): { arenas: ArenaSize[]; activationBytes: number } {
  const cap = Math.floor(maxBindingBytes / 4 / ALIGN) * ALIGN;
  const first = new Map<Buf, number>(), last = new Map<Buf, number>();
  prog.kernels.forEach((k, i) => {
    for (const o of kernelOuts(k)) {
      if (!first.has(o.buf)) first.set(o.buf, i);
      last.set(o.buf, Math.max(last.get(o.buf) ?? i, i));
    }
    for (const e of kernelExprs(k)) {
      walk(e, (x) => {
        if (x.k === "load") last.set(x.buf, Math.max(last.get(x.buf) ?? i, i));
      });
    }
  });
  const end = prog.kernels.length;
  for (const b of prog.hostOutputs.values()) last.set(b, end);

  interface Arena {
    name: string;
    top: number;
    free: [number, number][];
  }
  const arenas: Arena[] = [];
  const acts = prog.acts.filter((b) => first.has(b) && b.dt === "f32").sort((a, b) =>
    first.get(a)! - first.get(b)! || a.id - b.id
  );
  const live: Buf[] = [];
  let peak = 0, cur = 0;
  for (const b of acts) {
    const t = first.get(b)!;
    // Release everything whose last use is before this buffer's first write.
    for (let i = live.length - 1; i >= 0; i--) {
      const x = live[i];
      if (last.get(x)! < t) {
        const a = arenas.find((a) => a.name === x.arena)!;
        release(a.free, x.offset, up(x.size));
        cur -= up(x.size);
        live.splice(i, 1);
      }
    }
    const n = up(b.size);
    if (n > cap) {
      throw new RangeError(
        `Cannot run this step on the GPU: tensor "${b.name}" needs ${
          (b.size * 4 / 2 ** 20).toFixed(1)
        } MiB, over the ` +
          `${(maxBindingBytes / 2 ** 20).toFixed(0)} MiB the device binds at most (maxStorageBufferBindingSize)` +
          `\n  hint: use a smaller --batch_size (with --accumulation_steps for the same update), or --device cpu`,
      );
    }
    let best: { a: Arena; i: number } | undefined;
    for (const a of arenas) {
      a.free.forEach(([, s], i) => {
        if (s >= n && (!best || s < best.a.free[best.i][1])) best = { a, i };
      });
    }
    if (best) {
      const [o, s] = best.a.free[best.i];
      b.arena = best.a.name;
      b.offset = o;
      if (s === n) best.a.free.splice(best.i, 1);
      else best.a.free[best.i] = [o + n, s - n];
    } else {
      let a = arenas.find((a) => a.top + n <= cap);
      if (!a) arenas.push(a = { name: `A${arenas.length}`, top: 0, free: [] });
      b.arena = a.name;
      b.offset = a.top;
      a.top += n;
    }
    live.push(b);
    cur += n;
    peak = Math.max(peak, cur);
  }
  const out: ArenaSize[] = arenas.map((a) => ({ name: a.name, dt: "f32", size: Math.max(a.top, ALIGN) }));
  // Integer activations (rare: a materialized index computation) get their own arena, without reuse.
  const ints = prog.acts.filter((b) => first.has(b) && b.dt === "i32");
  for (
    const [name, dt, list] of [["CF", "f32", prog.consts], ["CI", "i32", prog.consts], ["AI", "i32", ints]] as const
  ) {
    let top = 0;
    for (const b of list) {
      if (b.dt !== dt) continue;
      b.arena = name;
      b.offset = top;
      top += up(b.size);
    }
    if (top > cap) throw new RangeError(`Cannot place the constants: ${top * 4} bytes exceed one binding`);
    if (top > 0) out.push({ name, dt, size: top });
  }
  return { arenas: out, activationBytes: peak * 4 };
}

function release(free: [number, number][], o: number, s: number): void {
  free.push([o, s]);
  free.sort((a, b) => a[0] - b[0]);
  for (let i = free.length - 2; i >= 0; i--) {
    if (free[i][0] + free[i][1] === free[i + 1][0]) {
      free[i][1] += free[i + 1][1];
      free.splice(i + 1, 1);
    }
  }
}
