/**
 * A restricted pickle virtual machine: it decodes the pickles inside torch checkpoints
 * (`torch.save` of a state dict, zip or legacy container) and never executes anything. Globals are
 * resolved only through the caller's allow-list (`findGlobal`); REDUCE and BUILD are only applied to
 * the objects that list returns; every other global, opcode or call is refused with a one-line error.
 * Mirrors what CPython's `pickle.Unpickler` does for protocols 0–5, minus everything a state dict
 * does not need (no `__setstate__`, no NEWOBJ, no out-of-band buffers).
 *
 * Time and memory are bounded by the input: each opcode consumes at least one byte, lengths are
 * checked against the bytes left, the stack and mark depth are capped.
 * Browser compatible: works on bytes, no Deno APIs.
 * @module
 */

/** A Python `tuple` decoded from a pickle (a frozen JS array). */
export type PyTuple = readonly unknown[];

/** A Python `dict` or `collections.OrderedDict`, in insertion order; `state` holds a BUILD's argument. */
export class PyDict extends Map<unknown, unknown> {
  /** The object given to BUILD (e.g. `{'_metadata': ...}` of a `state_dict()`), if any. */
  state: unknown = undefined;
}

/** Something an allow-listed global resolves to: it may be called by REDUCE. */
export interface PyCallable {
  readonly kind: "callable";
  readonly qualname: string;
  call(args: PyTuple): unknown;
}

/** Hooks that give a pickle its meaning; the VM alone builds only plain data. */
export interface UnpickleHooks {
  /** Resolves `module.name`; throw (or return undefined) to refuse it. */
  findGlobal(module: string, name: string): unknown;
  /** Resolves a persistent id (BINPERSID/PERSID); throw to refuse it. */
  persistentLoad?(pid: unknown): unknown;
}

/** Limits of the VM (defaults suit any state dict). */
export interface UnpickleLimits {
  /** Most values on the stack at once (plus those under marks). */
  maxStack?: number;
  /** Most nested MARKs. */
  maxMarks?: number;
  /** Largest memo index accepted. */
  maxMemoIndex?: number;
  /** Longest LONG1/LONG4 payload, bytes. */
  maxLongBytes?: number;
}

/** Error of a malformed or refused pickle; `message` is one line naming the source. */
function bad(source: string, what: string, pos: number): SyntaxError {
  return new SyntaxError(`Cannot read torch checkpoint "${source}": pickle ${what} (at byte ${pos})`);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/** Python's int to a JS number when safe, else a bigint. */
function intValue(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return intValue(v);
}

function isCallable(x: unknown): x is PyCallable {
  return typeof x === "object" && x !== null && (x as PyCallable).kind === "callable";
}

/** The result of one pickle: its value and the offset just past its STOP. */
export interface UnpickleResult {
  value: unknown;
  end: number;
}

/**
 * Runs one pickle starting at `start` of `bytes`, up to and including its STOP opcode.
 *
 * @example
 * ```ts
 * const { value } = unpickle(new Uint8Array([0x80, 2, 0x4b, 7, 0x2e]), "x.pkl", { findGlobal() {} });
 * // value === 7
 * ```
 */
export function unpickle(
  bytes: Uint8Array,
  source: string,
  hooks: UnpickleHooks,
  limits: UnpickleLimits = {},
  start = 0,
): UnpickleResult {
  const maxStack = limits.maxStack ?? 1 << 22;
  const maxMarks = limits.maxMarks ?? 4096;
  const maxMemo = limits.maxMemoIndex ?? 1 << 24;
  const maxLong = limits.maxLongBytes ?? 256;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  let pos = start;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let depth = 0; // values under marks + on the stack

  const need = (k: number, what: string): void => {
    if (k < 0 || pos + k > n) throw bad(source, `is truncated: ${what} needs ${k} bytes, ${n - pos} left`, pos);
  };
  const u8 = (): number => {
    need(1, "operand");
    return bytes[pos++];
  };
  const u16 = (): number => {
    need(2, "operand");
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4, "operand");
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4, "operand");
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8, "operand");
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(n)) throw bad(source, `length ${v} exceeds the ${n}-byte input`, pos - 8);
    return Number(v);
  };
  const take = (k: number, what: string): Uint8Array => {
    need(k, what);
    const out = bytes.subarray(pos, pos + k);
    pos += k;
    return out;
  };
  const line = (what: string): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw bad(source, `is truncated: ${what} has no newline`, pos);
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (b: Uint8Array, what: string): string => {
    try {
      return utf8.decode(b);
    } catch {
      throw bad(source, `${what} is not valid UTF-8`, pos);
    }
  };
  const push = (v: unknown): void => {
    if (++depth > maxStack) throw bad(source, `stack exceeds ${maxStack} values`, pos);
    stack.push(v);
  };
  const pop = (what: string): unknown => {
    if (stack.length === 0) throw bad(source, `${what} on an empty stack`, pos);
    depth--;
    return stack.pop();
  };
  const top = (what: string): unknown => {
    if (stack.length === 0) throw bad(source, `${what} on an empty stack`, pos);
    return stack[stack.length - 1];
  };
  const popMark = (what: string): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (prev === undefined) throw bad(source, `${what} without a MARK`, pos);
    stack = prev;
    depth -= items.length;
    return items;
  };
  const memoPut = (idx: number): void => {
    if (idx > maxMemo) throw bad(source, `memo index ${idx} exceeds the limit ${maxMemo}`, pos);
    memo.set(idx, top("PUT"));
  };
  const memoGet = (idx: number): void => {
    if (!memo.has(idx)) throw bad(source, `refers to memo index ${idx}, which was never stored`, pos);
    push(memo.get(idx));
  };
  const tuple = (items: unknown[]): PyTuple => Object.freeze(items);
  const asDict = (d: unknown, what: string): PyDict => {
    if (!(d instanceof PyDict)) throw bad(source, `${what} on a ${typeName(d)}, not a dict`, pos);
    return d;
  };
  const asList = (l: unknown, what: string): unknown[] => {
    if (!Array.isArray(l) || Object.isFrozen(l)) throw bad(source, `${what} on a ${typeName(l)}, not a list`, pos);
    return l;
  };
  const setItems = (d: PyDict, items: unknown[]): void => {
    if (items.length % 2 !== 0) throw bad(source, "SETITEMS has an odd number of values", pos);
    for (let i = 0; i < items.length; i += 2) {
      const k = items[i];
      if (typeof k === "object" && k !== null) throw bad(source, `uses a ${typeName(k)} as a dict key`, pos);
      d.set(k, items[i + 1]);
    }
  };
  const global = (module: string, name: string): void => {
    let g: unknown;
    try {
      g = hooks.findGlobal(module, name);
    } catch (e) {
      throw bad(source, (e as Error).message, pos);
    }
    if (g === undefined) throw bad(source, `refers to global "${module}.${name}", which is not allowed`, pos);
    push(g);
  };

  while (true) {
    const opPos = pos;
    if (pos >= n) throw bad(source, "ends without a STOP opcode", pos);
    const op = bytes[pos++];
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) throw bad(source, `protocol ${v} is not supported`, opPos);
        break;
      }
      case 0x95: // FRAME: the length is only a hint
        need(8, "FRAME");
        pos += 8;
        break;
      case 0x2e: // STOP
        if (marks.length !== 0) throw bad(source, "stops with an open MARK", opPos);
        if (stack.length !== 1) throw bad(source, `stops with ${stack.length} values on the stack, not 1`, opPos);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        if (marks.length >= maxMarks) throw bad(source, `nests deeper than ${maxMarks} MARKs`, opPos);
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && marks.length > 0) popMark("POP");
        else pop("POP");
        break;
      case 0x31: // POP_MARK
        popMark("POP_MARK");
        break;
      case 0x32: // DUP
        push(top("DUP"));
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x8a: { // LONG1
        const k = u8();
        if (k > maxLong) throw bad(source, `LONG1 of ${k} bytes exceeds ${maxLong}`, opPos);
        push(decodeLong(take(k, "LONG1")));
        break;
      }
      case 0x8b: { // LONG4
        const k = i32();
        if (k < 0 || k > maxLong) throw bad(source, `LONG4 of ${k} bytes exceeds ${maxLong}`, opPos);
        push(decodeLong(take(k, "LONG4")));
        break;
      }
      case 0x49: { // INT (text; "01"/"00" are True/False)
        const s = line("INT");
        if (s === "01" || s === "00") push(s === "01");
        else if (/^[-+]?\d{1,18}$/.test(s)) push(Number(s));
        else throw bad(source, `INT ${JSON.stringify(s.slice(0, 40))} is not a small integer`, opPos);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line("LONG").replace(/L$/, "");
        if (!/^[-+]?\d{1,600}$/.test(s)) throw bad(source, "LONG is not an integer", opPos);
        push(intValue(BigInt(s)));
        break;
      }
      case 0x47: { // BINFLOAT (big-endian double)
        need(8, "BINFLOAT");
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: { // FLOAT (text)
        const v = Number(line("FLOAT"));
        if (Number.isNaN(v)) throw bad(source, "FLOAT is not a number", opPos);
        push(v);
        break;
      }
      case 0x58: // BINUNICODE
        push(text(take(u32(), "BINUNICODE"), "BINUNICODE"));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(text(take(u8(), "SHORT_BINUNICODE"), "SHORT_BINUNICODE"));
        break;
      case 0x8d: // BINUNICODE8
        push(text(take(u64(), "BINUNICODE8"), "BINUNICODE8"));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text; we accept plain ASCII/latin-1)
        push(line("UNICODE"));
        break;
      case 0x54: { // BINSTRING (Python 2 str)
        const k = i32();
        push(latin1.decode(take(k, "BINSTRING")));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(take(u8(), "SHORT_BINSTRING")));
        break;
      case 0x53: { // STRING (quoted text)
        const s = line("STRING");
        const m = /^(['"])(.*)\1$/.exec(s);
        if (!m || m[2].includes("\\")) throw bad(source, "STRING is not a plain quoted string", opPos);
        push(m[2]);
        break;
      }
      case 0x42: // BINBYTES
        push(take(u32(), "BINBYTES").slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8(), "SHORT_BINBYTES").slice());
        break;
      case 0x8e: // BINBYTES8
        push(take(u64(), "BINBYTES8").slice());
        break;
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x85: // TUPLE1
        push(tuple([pop("TUPLE1")]));
        break;
      case 0x86: { // TUPLE2
        const b = pop("TUPLE2");
        const a = pop("TUPLE2");
        push(tuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop("TUPLE3");
        const b = pop("TUPLE3");
        const a = pop("TUPLE3");
        push(tuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(tuple(popMark("TUPLE")));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark("LIST"));
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: { // DICT
        const d = new PyDict();
        setItems(d, popMark("DICT"));
        push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop("APPEND");
        asList(top("APPEND"), "APPEND").push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark("APPENDS");
        const l = asList(top("APPENDS"), "APPENDS");
        for (const v of items) l.push(v);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop("SETITEM");
        const k = pop("SETITEM");
        setItems(asDict(top("SETITEM"), "SETITEM"), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark("SETITEMS");
        setItems(asDict(top("SETITEMS"), "SETITEMS"), items);
        break;
      }
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x70: { // PUT (text)
        const s = line("PUT");
        if (!/^\d{1,10}$/.test(s)) throw bad(source, "PUT index is not a number", opPos);
        memoPut(Number(s));
        break;
      }
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x67: { // GET (text)
        const s = line("GET");
        if (!/^\d{1,10}$/.test(s)) throw bad(source, "GET index is not a number", opPos);
        memoGet(Number(s));
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line("GLOBAL");
        const name = line("GLOBAL");
        global(module, name);
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop("STACK_GLOBAL");
        const module = pop("STACK_GLOBAL");
        if (typeof module !== "string" || typeof name !== "string") {
          throw bad(source, "STACK_GLOBAL needs two strings", opPos);
        }
        global(module, name);
        break;
      }
      case 0x52: { // REDUCE
        const args = pop("REDUCE");
        const f = pop("REDUCE");
        if (!isCallable(f)) throw bad(source, `REDUCE calls a ${typeName(f)}, which is not an allowed callable`, opPos);
        if (!Array.isArray(args) || !Object.isFrozen(args)) {
          throw bad(source, `REDUCE passes a ${typeName(args)} to ${f.qualname}, not a tuple`, opPos);
        }
        let r: unknown;
        try {
          r = f.call(args);
        } catch (e) {
          throw bad(source, `REDUCE of ${f.qualname} failed: ${(e as Error).message}`, opPos);
        }
        push(r);
        break;
      }
      case 0x62: { // BUILD
        const state = pop("BUILD");
        const obj = top("BUILD");
        if (!(obj instanceof PyDict)) throw bad(source, `BUILD on a ${typeName(obj)} is not allowed`, opPos);
        obj.state = state;
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop("BINPERSID");
        push(persistent(pid, opPos));
        break;
      }
      case 0x50: // PERSID (text)
        push(persistent(line("PERSID"), opPos));
        break;
      default:
        throw bad(source, `opcode 0x${op.toString(16).padStart(2, "0")} is not allowed in a state dict`, opPos);
    }
  }

  function persistent(pid: unknown, at: number): unknown {
    if (!hooks.persistentLoad) throw bad(source, "uses a persistent id, which this file may not contain", at);
    try {
      return hooks.persistentLoad(pid);
    } catch (e) {
      throw bad(source, `persistent id refused: ${(e as Error).message}`, at);
    }
  }
}

/** A short Python-ish type name for error messages. */
export function typeName(x: unknown): string {
  if (x === null) return "None";
  if (Array.isArray(x)) return Object.isFrozen(x) ? "tuple" : "list";
  if (x instanceof PyDict) return "dict";
  if (x instanceof Uint8Array) return "bytes";
  if (isCallable(x)) return `global ${x.qualname}`;
  if (typeof x === "object") return (x as { constructor?: { name?: string } }).constructor?.name ?? "object";
  return typeof x === "number" ? (Number.isInteger(x) ? "int" : "float") : typeof x;
}
