/**
 * The pickle writer: for the value kinds of the model it produces exactly the bytes of
 * CPython 3's C pickler (`pickle.dumps(obj, protocol)`, which zodbpickle uses too) at protocols
 * 0-3, with the memo (default) or without it (`memo: false`, Python's `pickler.fast = 1`, as
 * ZEO's Z5 encoder uses).
 *
 * Identity: Python memoises by object identity. Here objects (arrays, PyTuples, Maps, Sets,
 * Buffers, PyObjects, PersistentRefs) are memoised by JS identity, globals by module+name (a
 * class is one object in Python), and strings are NOT memoised by value (each occurrence is
 * written anew, as for distinct equal Python str objects).
 */
import { encodeRawUnicodeEscape, encodeUtf8 } from './text.ts';
import {
  PersistentRef,
  PickleError,
  PyByteArray,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
} from './values.ts';

export interface DumpOptions {
  /** Pickle protocol 0-3 (default 3, as ZODB and ZEO use). */
  protocol?: number;
  /** Use the memo (BINPUT/BINGET). Default true; false = Python's fast mode (ZEO Z5 messages). */
  memo?: boolean;
  /**
   * Called for every value before it is written (except a persistent id itself). Return
   * undefined to write the value normally, or a persistent id to write that id followed by
   * BINPERSID (PERSID at protocol 0, where the id must be an ASCII string).
   * Without this hook a PersistentRef value is written as its id + BINPERSID.
   */
  persistentId?: (value: unknown) => unknown;
  /** Deepest nesting of containers allowed (default 1000, like Python's recursion limit). */
  maxDepth?: number;
}

const BATCHSIZE = 1000;

/** Python 3 → 2 module names, applied to globals at protocols < 3 (CPython's fix_imports). */
const REVERSE_IMPORT: Record<string, string> = {
  builtins: '__builtin__',
  copyreg: 'copy_reg',
  queue: 'Queue',
  socketserver: 'SocketServer',
  _markupbase: 'markupbase',
  reprlib: 'repr',
  pickle: 'pickle',
};

class ByteSink {
  buf: Buffer = Buffer.allocUnsafe(256);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    // grow to at least twice the size, and straight to 1.5x the need for a large append (one
    // reallocation for a message carrying a big bytes value instead of a doubling series)
    let size = this.buf.length * 2;
    const need = this.len + n;
    if (size < need) size = need + (need >>> 1);
    const nb = Buffer.allocUnsafe(size);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes2(a: number, b: number): void {
    this.ensure(2);
    this.buf[this.len++] = a;
    this.buf[this.len++] = b;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
  }
  append(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
  /** Latin-1/ASCII text whose characters are all < 0x80 (checked by the caller). */
  asciiChars(s: string): void {
    this.ensure(s.length);
    const b = this.buf;
    let p = this.len;
    for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
    this.len = p;
  }
  /**
   * The bytes so far. When they fill at least half of the buffer they are returned as a view
   * (no copy; later writes only append beyond them, so the view never changes); otherwise as a
   * right-sized copy, so a small result does not keep a large buffer alive.
   */
  result(): Buffer {
    if (this.len >= this.buf.length >>> 1) return this.buf.subarray(0, this.len);
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

export class Pickler {
  private readonly out = new ByteSink();
  private readonly proto: number;
  private readonly useMemo: boolean;
  private readonly memo = new Map<unknown, number>();
  private readonly persistentId: ((v: unknown) => unknown) | undefined;
  private readonly maxDepth: number;
  private depth = 0;

  constructor(options: DumpOptions = {}) {
    const p = options.protocol ?? 3;
    if (!Number.isInteger(p) || p < 0 || p > 3) throw new RangeError(`pickle protocol ${p} not supported by this writer (0-3)`);
    this.proto = p;
    this.useMemo = options.memo ?? true;
    this.persistentId = options.persistentId;
    this.maxDepth = options.maxDepth ?? 1000;
  }

  /** Write one complete pickle (PROTO ... STOP) of `value`; the memo is kept for later dumps. */
  dump(value: unknown): this {
    if (this.proto >= 2) this.out.bytes2(0x80, this.proto);
    this.save(value, false);
    this.out.byte(0x2e);
    return this;
  }

  /** All bytes written so far. */
  result(): Buffer {
    return this.out.result();
  }

  private memoize(obj: unknown): void {
    if (!this.useMemo) return;
    if (this.memo.has(obj)) throw new Error('pickler: value memoised twice');
    const idx = this.memo.size;
    this.memo.set(obj, idx);
    this.put(idx);
  }

  private put(idx: number): void {
    if (this.proto === 0) {
      this.out.ascii(`p${idx}\n`);
    } else if (idx < 256) {
      this.out.bytes2(0x71, idx);
    } else {
      this.out.byte(0x72);
      this.out.u32(idx);
    }
  }

  private get(idx: number): void {
    if (this.proto === 0) {
      this.out.ascii(`g${idx}\n`);
    } else if (idx < 256) {
      this.out.bytes2(0x68, idx);
    } else {
      this.out.byte(0x6a);
      this.out.u32(idx);
    }
  }

  /** If `key` is memoised, write a GET for it and return true. */
  private fromMemo(key: unknown): boolean {
    if (!this.useMemo) return false;
    const idx = this.memo.get(key);
    if (idx === undefined) return false;
    this.get(idx);
    return true;
  }

  private save(obj: unknown, isPid: boolean): void {
    if (!isPid && this.persistentId) {
      const pid = this.persistentId(obj);
      if (pid !== undefined) {
        this.savePers(pid);
        return;
      }
    }
    if (obj === null) {
      this.out.byte(0x4e);
      return;
    }
    switch (typeof obj) {
      case 'boolean':
        if (this.proto >= 2) this.out.byte(obj ? 0x88 : 0x89);
        else this.out.ascii(obj ? 'I01\n' : 'I00\n');
        return;
      case 'number':
        if (Number.isInteger(obj)) {
          if (obj >= 0 && obj <= 0xff && this.proto >= 1) this.out.bytes2(0x4b, obj);
          else if (Number.isSafeInteger(obj) && this.proto >= 1) this.saveSafeInt(obj);
          else this.saveInt(BigInt(obj));
        } else this.saveFloat(obj);
        return;
      case 'bigint':
        this.saveInt(obj);
        return;
      case 'string':
        this.saveStr(obj);
        return;
      case 'undefined':
        throw new PickleError('cannot pickle undefined', -1, 'pickle.PicklingError');
      case 'object':
        break;
      default:
        throw new PickleError(`cannot pickle a ${typeof obj}`, -1, 'pickle.PicklingError');
    }
    if (obj instanceof PyFloat) {
      this.saveFloat(obj.value);
      return;
    }
    if (obj instanceof PyGlobal) {
      this.saveGlobal(obj.module, obj.name);
      return;
    }
    if (this.fromMemo(obj)) return;
    if (++this.depth > this.maxDepth) {
      throw new PickleError(`values nested deeper than ${this.maxDepth} levels (or cyclic without memo)`, -1, 'pickle.PicklingError');
    }
    try {
      if (obj instanceof PyTuple) this.saveTuple(obj);
      else if (Array.isArray(obj)) this.saveList(obj);
      else if (obj instanceof Map) this.saveDict(obj, obj.size, obj.entries());
      else if (Buffer.isBuffer(obj) || obj instanceof Uint8Array) this.saveBytes(obj);
      else if (obj instanceof PyFrozenSet) this.saveSet(obj, 'frozenset');
      else if (obj instanceof Set) this.saveSet(obj, 'set');
      else if (obj instanceof PyObject) this.saveObject(obj);
      else if (obj instanceof PersistentRef) this.savePers(obj.id);
      else if (obj instanceof PyByteArray) throw new PickleError('bytearray is not supported by this writer', -1, 'pickle.PicklingError');
      else {
        const proto = Object.getPrototypeOf(obj);
        if (proto !== Object.prototype && proto !== null) {
          throw new PickleError(`cannot pickle object of class ${proto?.constructor?.name ?? '?'}`, -1, 'pickle.PicklingError');
        }
        const entries = Object.entries(obj as Record<string, unknown>);
        this.saveDict(obj, entries.length, entries[Symbol.iterator]());
      }
    } finally {
      this.depth--;
    }
  }

  private savePers(pid: unknown): void {
    if (this.proto === 0) {
      if (typeof pid !== 'string' || !/^[\x00-\x09\x0b-\x7f]*$/.test(pid)) {
        throw new PickleError('persistent IDs in protocol 0 must be ASCII strings', -1, 'pickle.PicklingError');
      }
      this.out.ascii(`P${pid}\n`);
    } else {
      this.save(pid, true);
      this.out.byte(0x51);
    }
  }

  private saveInt(v: bigint): void {
    const o = this.out;
    if (v >= -0x80000000n && v <= 0x7fffffffn) {
      const n = Number(v);
      if (this.proto === 0) o.ascii(`I${n}\n`);
      else if (n >= 0 && n <= 0xff) o.bytes2(0x4b, n);
      else if (n >= 0 && n <= 0xffff) {
        o.ensure(3);
        o.buf[o.len++] = 0x4d;
        o.buf[o.len++] = n & 0xff;
        o.buf[o.len++] = n >> 8;
      } else {
        o.byte(0x4a);
        o.u32(n);
      }
      return;
    }
    if (this.proto >= 2) {
      const b = longBytes(v);
      if (b.length < 256) o.bytes2(0x8a, b.length);
      else {
        o.byte(0x8b);
        o.u32(b.length);
      }
      o.append(b);
      return;
    }
    o.ascii(`L${v}L\n`);
  }

  /**
   * A safe integer (|v| < 2^53) at protocol >= 1: the same bytes as saveInt(BigInt(v)) without
   * BigInt arithmetic (BININT1/BININT2/BININT, or LONG1 at protocol >= 2).
   */
  private saveSafeInt(n: number): void {
    const o = this.out;
    if (n >= -0x80000000 && n <= 0x7fffffff) {
      if (n >= 0 && n <= 0xff) o.bytes2(0x4b, n);
      else if (n >= 0 && n <= 0xffff) {
        o.ensure(3);
        o.buf[o.len++] = 0x4d;
        o.buf[o.len++] = n & 0xff;
        o.buf[o.len++] = n >> 8;
      } else {
        o.byte(0x4a);
        o.u32(n);
      }
      return;
    }
    if (this.proto < 2) {
      this.saveInt(BigInt(n));
      return;
    }
    // LONG1: minimal little-endian two's complement (at most 8 bytes for |n| < 2^53)
    o.ensure(10);
    const b = o.buf;
    const start = o.len + 2;
    let p = start;
    let x = n;
    for (let i = 0; i < 8; i++) {
      const byte = ((x % 256) + 256) % 256;
      b[p++] = byte;
      x = (x - byte) / 256; // exact: floor division for either sign
      if ((x === 0 && (byte & 0x80) === 0) || (x === -1 && (byte & 0x80) !== 0)) break;
    }
    b[o.len] = 0x8a;
    b[o.len + 1] = p - start;
    o.len = p;
  }

  private saveFloat(v: number): void {
    if (this.proto >= 1) {
      this.out.ensure(9);
      this.out.buf[this.out.len++] = 0x47;
      this.out.buf.writeDoubleBE(v, this.out.len);
      this.out.len += 8;
    } else {
      this.out.ascii(`F${pyFloatRepr(v)}\n`);
    }
  }

  private saveStr(s: string): void {
    // CPython keeps one shared object for '' and each 1-character latin-1 string: they are
    // memoised by value (a repeat is a GET); any other string is a new object each time.
    const shared = this.useMemo && (s.length === 0 || (s.length === 1 && s.charCodeAt(0) < 256)) ? `s:${s}` : undefined;
    if (shared !== undefined && this.fromMemo(shared)) return;
    if (this.proto === 0) {
      this.out.byte(0x56);
      this.out.append(encodeRawUnicodeEscape(s));
      this.out.byte(0x0a);
    } else if (s.length <= 256 && isAsciiString(s)) {
      // ASCII: its UTF-8 is its characters; written straight into the output
      this.out.byte(0x58);
      this.out.u32(s.length);
      this.out.asciiChars(s);
    } else {
      const b = encodeUtf8(s);
      this.out.byte(0x58);
      this.out.u32(b.length);
      this.out.append(b);
    }
    if (this.useMemo) this.memoize(shared ?? Symbol());
  }

  private saveBytes(b: Uint8Array): void {
    // b'' and 1-byte bytes are shared objects in CPython: memoised by value.
    const shared = b.length <= 1 ? `b:${b.length ? b[0] : ''}` : undefined;
    if (shared !== undefined && this.fromMemo(shared)) return;
    const key = shared ?? b;
    if (this.proto < 3) {
      // Python 3 writes bytes for protocols < 3 as a reduce: bytes() or
      // _codecs.encode(<latin-1 text>, 'latin1').
      if (b.length === 0) this.saveReduceRaw(new PyGlobal('builtins', 'bytes'), [], key);
      else this.saveReduceRaw(new PyGlobal('_codecs', 'encode'), [Buffer.from(b).toString('latin1'), LATIN1], key);
      return;
    }
    if (b.length < 256) this.out.bytes2(0x43, b.length);
    else {
      this.out.byte(0x42);
      this.out.u32(b.length);
    }
    this.out.append(b);
    this.memoize(key);
  }

  /** REDUCE of a global with a fresh argument tuple, then memoise `obj`. */
  private saveReduceRaw(fn: PyGlobal, args: unknown[], obj: unknown): void {
    this.saveGlobal(fn.module, fn.name);
    const t = new PyTuple();
    for (const a of args) t.push(a === LATIN1 ? LATIN1_KEY : a);
    this.saveTupleItems(t);
    this.out.byte(0x52);
    this.memoize(obj);
  }

  private saveTupleItems(t: PyTuple): void {
    // A fresh tuple (never memoised before) with the usual encoding.
    if (t.length === 0) {
      if (this.proto >= 1) this.out.byte(0x29);
      else this.out.ascii('(t');
      return;
    }
    this.saveTuple(t);
  }

  private saveTuple(t: PyTuple): void {
    const n = t.length;
    const o = this.out;
    if (n === 0) {
      if (this.proto >= 1) o.byte(0x29);
      else o.ascii('(t');
      return;
    }
    if (n <= 3 && this.proto >= 2) {
      for (let i = 0; i < n; i++) this.saveItem(t[i]);
      if (this.useMemo && this.memo.has(t)) {
        // The tuple was reached recursively through its items: drop them, fetch it.
        for (let i = 0; i < n; i++) o.byte(0x30);
        this.get(this.memo.get(t)!);
        return;
      }
      o.byte(0x84 + n);
      this.memoize(t);
      return;
    }
    o.byte(0x28);
    for (let i = 0; i < n; i++) this.saveItem(t[i]);
    if (this.useMemo && this.memo.has(t)) {
      if (this.proto >= 1) o.byte(0x31);
      else for (let i = 0; i <= n; i++) o.byte(0x30);
      this.get(this.memo.get(t)!);
      return;
    }
    o.byte(0x74);
    this.memoize(t);
  }

  private saveItem(x: unknown): void {
    if (x === LATIN1_KEY) {
      // The constant 'latin1' is one Python object: written once, then fetched.
      if (this.fromMemo(LATIN1_KEY)) return;
      this.saveStrRaw('latin1');
      this.memoize(LATIN1_KEY);
      return;
    }
    this.save(x, false);
  }

  private saveStrRaw(s: string): void {
    const b = encodeUtf8(s);
    if (this.proto === 0) {
      this.out.byte(0x56);
      this.out.append(encodeRawUnicodeEscape(s));
      this.out.byte(0x0a);
      return;
    }
    this.out.byte(0x58);
    this.out.u32(b.length);
    this.out.append(b);
  }

  private saveList(list: unknown[]): void {
    if (this.proto >= 1) this.out.byte(0x5d);
    else this.out.ascii('(l');
    this.memoize(list);
    this.batchAppends(list);
  }

  /**
   * APPENDs in batches of 1000. For a real list (`exact`) a one-item list uses APPEND and every
   * batch MARK..APPENDS; for the items of a reduced object a batch of one uses APPEND (CPython's
   * batch_list_exact vs batch_list).
   */
  private batchAppends(items: unknown[], exact = true): void {
    const n = items.length;
    if (this.proto === 0) {
      for (const x of items) {
        this.save(x, false);
        this.out.byte(0x61);
      }
      return;
    }
    if (n === 1) {
      this.save(items[0], false);
      this.out.byte(0x61);
      return;
    }
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (!exact && stop - i === 1) {
        this.save(items[i++], false);
        this.out.byte(0x61);
        continue;
      }
      this.out.byte(0x28);
      for (; i < stop; i++) this.save(items[i], false);
      this.out.byte(0x65);
    }
  }

  private saveDict(obj: object, size: number, entries: Iterator<[unknown, unknown]>): void {
    if (this.proto >= 1) this.out.byte(0x7d);
    else this.out.ascii('(d');
    this.memoize(obj);
    this.batchSetItems(size, entries);
  }

  /** SETITEMs in batches of 1000, with the same exact/iterator rule as batchAppends. */
  private batchSetItems(size: number, entries: Iterator<[unknown, unknown]>, exact = true): void {
    if (this.proto === 0 || size === 1) {
      for (let r = entries.next(); !r.done; r = entries.next()) {
        this.save(r.value[0], false);
        this.save(r.value[1], false);
        this.out.byte(0x73);
      }
      return;
    }
    let done = 0;
    let r = entries.next();
    while (!r.done) {
      if (!exact && size - done === 1) {
        this.save(r.value[0], false);
        this.save(r.value[1], false);
        this.out.byte(0x73);
        done++;
        r = entries.next();
        continue;
      }
      this.out.byte(0x28);
      let k = 0;
      for (; !r.done && k < BATCHSIZE; r = entries.next(), k++) {
        this.save(r.value[0], false);
        this.save(r.value[1], false);
      }
      done += k;
      this.out.byte(0x75);
    }
    if (done !== size) throw new Error('pickler: dict changed size while being written');
  }

  private saveSet(s: Set<unknown>, kind: 'set' | 'frozenset'): void {
    // Protocols < 4: a reduce of builtins.set/frozenset with a fresh list of the items.
    this.saveGlobal('builtins', kind);
    const items = [...s];
    const args = new PyTuple();
    args.push(items);
    this.saveTuple(args);
    this.out.byte(0x52);
    this.memoize(s);
  }

  private saveObject(obj: PyObject): void {
    const o = this.out;
    switch (obj.kind) {
      case 'reduce':
        this.save(obj.cls, false);
        this.save(obj.args, false);
        o.byte(0x52);
        break;
      case 'newobj':
        if (this.proto < 2) throw new PickleError('NEWOBJ needs protocol 2 or higher', -1, 'pickle.PicklingError');
        this.save(obj.cls, false);
        this.save(obj.args, false);
        o.byte(0x81);
        break;
      case 'obj':
        o.byte(0x28);
        this.save(obj.cls, false);
        for (const a of obj.args) this.save(a, false);
        o.byte(0x6f);
        break;
      case 'inst': {
        if (!(obj.cls instanceof PyGlobal)) throw new PickleError('INST needs a PyGlobal class', -1, 'pickle.PicklingError');
        o.byte(0x28);
        for (const a of obj.args) this.save(a, false);
        o.byte(0x69);
        o.append(encodeUtf8(`${obj.cls.module}\n${obj.cls.name}\n`));
        break;
      }
      case 'newobj_ex':
        throw new PickleError('NEWOBJ_EX needs protocol 4', -1, 'pickle.PicklingError');
    }
    this.memoize(obj);
    if (obj.listItems) this.batchAppends(obj.listItems, false);
    if (obj.dictItems) this.batchSetItems(obj.dictItems.length, obj.dictItems[Symbol.iterator](), false);
    if (obj.state !== undefined) {
      this.save(obj.state, false);
      o.byte(0x62);
    }
  }

  private saveGlobal(module: string, name: string): void {
    const key = `g:${module}\n${name}`;
    if (this.fromMemo(key)) return;
    if (module.includes('\n') || name.includes('\n')) {
      throw new PickleError(`global name contains a newline: ${module}.${name}`, -1, 'pickle.PicklingError');
    }
    let m = module;
    if (this.proto < 3) m = REVERSE_IMPORT[module] ?? module;
    this.out.byte(0x63);
    this.out.append(encodeUtf8(`${m}\n${name}\n`));
    if (this.useMemo) this.memoize(key);
  }
}

const LATIN1 = Symbol('latin1');
const LATIN1_KEY = Symbol('latin1-str');

/** Minimal little-endian two's complement bytes of v (v not 0), as Python's encode_long. */
function isAsciiString(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

function longBytes(v: bigint): Buffer {
  if (v === 0n) return Buffer.alloc(0);
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n; // arithmetic shift for negatives
    const last = out[out.length - 1]!;
    if ((x === 0n && (last & 0x80) === 0) || (x === -1n && (last & 0x80) !== 0)) break;
  }
  return Buffer.from(out);
}

/** Python's repr(float). */
export function pyFloatRepr(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  // JS and Python both give the shortest round-tripping digits; only the layout differs.
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(Math.abs(v).toExponential())!;
  const digits = m[1]! + (m[2] ?? '');
  const e = Number(m[3]);
  const sign = v < 0 ? '-' : '';
  if (e >= -4 && e < 16) {
    if (e >= 0) {
      const int = digits.length > e + 1 ? digits.slice(0, e + 1) : digits.padEnd(e + 1, '0');
      const frac = digits.length > e + 1 ? digits.slice(e + 1) : '0';
      return `${sign}${int}.${frac}`;
    }
    return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  }
  const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const es = e < 0 ? `-${String(-e).padStart(2, '0')}` : `+${String(e).padStart(2, '0')}`;
  return `${sign}${mant}e${es}`;
}

/** Pickle `value` (one complete pickle). Default protocol 3 with memo, like ZODB. */
export function dumps(value: unknown, options: DumpOptions = {}): Buffer {
  return new Pickler(options).dump(value).result();
}
