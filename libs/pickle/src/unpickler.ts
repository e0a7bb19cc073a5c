/**
 * The general pickle reader (protocols 0-5). It never imports or executes anything: globals
 * become PyGlobal markers (unless a findClass hook says otherwise) and object construction
 * becomes PyObject markers. Every read is bounds-checked; stack, memo and input size are capped.
 */
import { decodeRawUnicodeEscape, decodeUtf8, escapeDecode } from './text.ts';
import {
  adoptAsTuple,
  PersistentRef,
  PickleError,
  PyByteArray,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
  type PyObjectKind,
} from './values.ts';

/**
 * How the Python 2 string opcodes (STRING, BINSTRING, SHORT_BINSTRING) decode:
 *  - 'ascii-or-bytes' (default): text when every byte is ASCII, else bytes — ZODB's
 *    `encoding='ASCII', errors='bytes'` (filestorage spec §3.3);
 *  - 'bytes': always bytes (Buffer);
 *  - 'ascii': text, error on a non-ASCII byte (Python's default);
 *  - 'latin1', 'utf-8': text in that encoding (error on invalid UTF-8).
 */
export type StringEncoding = 'ascii-or-bytes' | 'bytes' | 'ascii' | 'latin1' | 'utf-8';

export interface LoadOptions {
  /** Decoding of Python 2 string opcodes; default 'ascii-or-bytes'. */
  encoding?: StringEncoding;
  /**
   * Resolve a global (GLOBAL, STACK_GLOBAL, INST). Return the value to use, or throw to refuse
   * it (the error propagates unchanged). Default: a PyGlobal marker. Module and name are
   * passed exactly as written (no Python 2 → 3 name mapping).
   */
  findClass?: (module: string, name: string) => unknown;
  /** Turn a persistent id (PERSID: a string; BINPERSID: any value) into a value. Default: PersistentRef. */
  persistentLoad?: (pid: unknown) => unknown;
  /**
   * Highest protocol accepted (default 5): a higher PROTO, or an opcode introduced by a later
   * protocol (0x8c-0x95: 4, 0x96-0x98: 5), is an error. zodbpickle's Unpickler, which ZODB and
   * ZEO use, stops at 3.
   */
  maxProtocol?: number;
  /** Refuse inputs longer than this many bytes (default 1 GiB). */
  maxLength?: number;
  /** Most values + marks on the stack at once (default 1,000,000). */
  maxStack?: number;
  /** Most memo entries (default 1,000,000). */
  maxMemo?: number;
}

/** CPython 3.11's int_max_str_digits default: longer decimal ints are refused, as Python does. */
const MAX_INT_DIGITS = 4300;

const DEFAULTS = { maxLength: 1 << 30, maxStack: 1_000_000, maxMemo: 1_000_000 };

type Hook<T extends unknown[]> = ((...a: T) => unknown) | undefined;

/**
 * A reader over one buffer. `load()` reads one pickle (up to its STOP) from the current
 * position; call it again to read a following pickle with the same memo (as ZODB records
 * do: class pickle then state pickle).
 */
export class Unpickler {
  private readonly data: Uint8Array;
  private pos: number;
  private readonly end: number;
  private readonly memo = new Map<number, unknown>();
  private stack: unknown[] = [];
  private marks: number[] = [];
  private readonly encoding: StringEncoding;
  private readonly findClass: Hook<[string, string]>;
  private readonly persistentLoad: Hook<[unknown]>;
  private readonly maxStack: number;
  private readonly maxMemo: number;
  private readonly maxProtocol: number;
  /** The protocol announced by the last PROTO opcode (0 when none). */
  proto = 0;

  constructor(data: Uint8Array, options: LoadOptions = {}, start = 0) {
    const maxLength = options.maxLength ?? DEFAULTS.maxLength;
    if (data.length > maxLength) {
      throw new PickleError(`pickle of ${data.length} bytes exceeds the limit of ${maxLength}`, 0);
    }
    if (start < 0 || start > data.length) throw new RangeError(`Unpickler: start ${start} outside 0..${data.length}`);
    this.data = data;
    this.pos = start;
    this.end = data.length;
    this.encoding = options.encoding ?? 'ascii-or-bytes';
    this.findClass = options.findClass;
    this.persistentLoad = options.persistentLoad;
    this.maxStack = options.maxStack ?? DEFAULTS.maxStack;
    this.maxMemo = options.maxMemo ?? DEFAULTS.maxMemo;
    this.maxProtocol = options.maxProtocol ?? 5;
  }

  /** Byte offset of the next unread byte. */
  get position(): number {
    return this.pos;
  }

  /** True when every byte has been read. */
  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  private fail(msg: string, at: number = this.pos): never {
    throw new PickleError(msg, at);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      this.fail(`truncated pickle: ${what} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  private u8(): number {
    this.need(1, 'operand');
    return this.data[this.pos++]!;
  }

  private u16(): number {
    this.need(2, 'operand');
    const d = this.data;
    const v = d[this.pos]! | (d[this.pos + 1]! << 8);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4, 'operand');
    const d = this.data;
    const p = this.pos;
    const v = (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16)) + d[p + 3]! * 0x1000000;
    this.pos += 4;
    return v;
  }

  private i32(): number {
    const v = this.u32();
    return v | 0;
  }

  private u64len(): number {
    this.need(8, 'operand');
    const d = this.data;
    const p = this.pos;
    const lo = (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16)) + d[p + 3]! * 0x1000000;
    const hi = (d[p + 4]! | (d[p + 5]! << 8) | (d[p + 6]! << 16)) + d[p + 7]! * 0x1000000;
    this.pos += 8;
    if (hi > 0x1fffff) this.fail('length operand too large', p);
    return hi * 0x100000000 + lo;
  }

  /** Bytes up to (not including) the next newline; the newline is consumed. */
  private line(): [number, number] {
    const d = this.data;
    const start = this.pos;
    let i = start;
    while (i < this.end && d[i] !== 0x0a) i++;
    if (i >= this.end) this.fail('truncated pickle: missing newline', start);
    this.pos = i + 1;
    return [start, i];
  }

  private lineText(): string {
    const [s, e] = this.line();
    const t = decodeUtf8(this.data, s, e);
    if (t === undefined) this.fail('invalid UTF-8 in text line', s);
    return t;
  }

  private lineAscii(): string {
    const [s, e] = this.line();
    let t = '';
    for (let i = s; i < e; i++) {
      const c = this.data[i]!;
      if (c >= 0x80) this.fail('non-ASCII byte in text operand', i);
      t += String.fromCharCode(c);
    }
    return t;
  }

  private bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = Buffer.from(this.data.subarray(this.pos, this.pos + n));
    this.pos += n;
    return b;
  }

  private text(n: number): string {
    this.need(n, 'text');
    const s = decodeUtf8(this.data, this.pos, this.pos + n);
    if (s === undefined) this.fail('invalid UTF-8 in text');
    this.pos += n;
    return s;
  }

  private str2(start: number, end: number, at: number): unknown {
    const d = this.data;
    switch (this.encoding) {
      case 'bytes':
        return Buffer.from(d.subarray(start, end));
      case 'ascii-or-bytes':
      case 'ascii': {
        let s = '';
        for (let i = start; i < end; i++) {
          const c = d[i]!;
          if (c >= 0x80) {
            if (this.encoding === 'ascii') this.fail('non-ASCII byte in a Python 2 string (encoding ascii)', at);
            return Buffer.from(d.subarray(start, end));
          }
          s += String.fromCharCode(c);
        }
        return s;
      }
      case 'latin1':
        return Buffer.from(d.subarray(start, end)).toString('latin1');
      case 'utf-8': {
        const s = decodeUtf8(d, start, end);
        if (s === undefined) this.fail('invalid UTF-8 in a Python 2 string (encoding utf-8)', at);
        return s;
      }
    }
  }

  private push(v: unknown): void {
    if (this.stack.length + this.marks.length >= this.maxStack) {
      this.fail(`pickle stack exceeds the limit of ${this.maxStack}`);
    }
    this.stack.push(v);
  }

  private pop(at: number): unknown {
    const base = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= base) this.fail('unpickling stack underflow', at);
    return this.stack.pop();
  }

  private top(at: number): unknown {
    const base = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= base) this.fail('unpickling stack underflow', at);
    return this.stack[this.stack.length - 1];
  }

  private popMark(at: number): unknown[] {
    if (this.marks.length === 0) this.fail('could not find MARK', at);
    const m = this.marks.pop()!;
    return this.stack.splice(m);
  }

  private memoPut(idx: number, at: number): void {
    if (!this.memo.has(idx) && this.memo.size >= this.maxMemo) {
      this.fail(`pickle memo exceeds the limit of ${this.maxMemo} entries`, at);
    }
    this.memo.set(idx, this.top(at));
  }

  private memoGet(idx: number, at: number): void {
    if (!this.memo.has(idx)) this.fail(`memo key ${idx} not found`, at);
    this.push(this.memo.get(idx));
  }

  private global(module: string, name: string): unknown {
    return this.findClass ? this.findClass(module, name) : new PyGlobal(module, name);
  }

  private persistent(pid: unknown): unknown {
    return this.persistentLoad ? this.persistentLoad(pid) : new PersistentRef(pid);
  }

  private decimal(s: string, at: number, allowHex: boolean): number | bigint {
    let t = s.trim().replace(/_/g, '');
    let neg = false;
    if (t.startsWith('-') || t.startsWith('+')) {
      neg = t[0] === '-';
      t = t.slice(1);
    }
    let v: bigint;
    if (allowHex && /^0[xX][0-9a-fA-F]+$/.test(t)) v = BigInt(t);
    else if (allowHex && /^0[oO][0-7]+$/.test(t)) v = BigInt(t);
    else if (allowHex && /^0[bB][01]+$/.test(t)) v = BigInt(t);
    else if (/^[0-9]+$/.test(t)) {
      if (t.length > MAX_INT_DIGITS) this.fail(`integer literal of ${t.length} digits exceeds ${MAX_INT_DIGITS}`, at);
      v = BigInt(t);
    } else this.fail(`invalid integer literal ${JSON.stringify(s.slice(0, 40))}`, at);
    return normInt(neg ? -v : v);
  }

  private long(n: number): number | bigint {
    this.need(n, 'LONG operand');
    const d = this.data;
    const p = this.pos;
    this.pos += n;
    if (n === 0) return 0;
    if (n <= 6) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + d[p + i]!;
      if (d[p + n - 1]! & 0x80) v -= 2 ** (8 * n);
      return v;
    }
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(d[p + i]!);
    if (d[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return normInt(v);
  }

  private makeObject(kind: PyObjectKind, cls: unknown, args: unknown, kwargs: unknown, at: number): unknown {
    if (!(args instanceof PyTuple)) {
      if (Array.isArray(args) && kind === 'reduce') this.fail('REDUCE arguments must be a tuple', at);
      if (!Array.isArray(args)) this.fail(`${kind.toUpperCase()} arguments must be a tuple`, at);
    }
    const t = args instanceof PyTuple ? args : adoptAsTuple((args as unknown[]).slice());
    if (kind === 'reduce' && typeof cls === 'function') return (cls as (...a: unknown[]) => unknown)(...t);
    let kw: Map<unknown, unknown> | null = null;
    if (kwargs !== undefined) {
      if (!(kwargs instanceof Map)) this.fail('NEWOBJ_EX keyword arguments must be a dict', at);
      kw = kwargs;
    }
    return new PyObject(kind, cls, t, kw);
  }

  /** Read one pickle (through its STOP) and return its value. */
  load(): unknown {
    this.stack = [];
    this.marks = [];
    const d = this.data;
    if (this.pos >= this.end) this.fail('empty pickle: no data to read');
    for (;;) {
      if (this.pos >= this.end) this.fail('truncated pickle: no STOP opcode');
      const at = this.pos;
      const op = d[this.pos++]!;
      if (op >= 0x8c && op <= 0x98 && (op >= 0x96 ? 5 : 4) > this.maxProtocol) {
        this.fail(`invalid load key 0x${op.toString(16)} (a protocol ${op >= 0x96 ? 5 : 4} opcode; limit is ${this.maxProtocol})`, at);
      }
      switch (op) {
        case 0x80: {
          // PROTO
          const v = this.u8();
          if (v > this.maxProtocol) this.fail(`unsupported pickle protocol: ${v}`, at);
          this.proto = v;
          break;
        }
        case 0x95: {
          // FRAME: framing is only a read-ahead hint; check the length is plausible.
          const n = this.u64len();
          if (n > this.end - this.pos) this.fail(`truncated pickle: FRAME of ${n} bytes`, at);
          break;
        }
        case 0x2e: // STOP
          return this.pop(at);
        case 0x28: // MARK
          if (this.stack.length + this.marks.length >= this.maxStack) this.fail(`pickle stack exceeds the limit of ${this.maxStack}`, at);
          this.marks.push(this.stack.length);
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x8a: // LONG1
          this.push(this.long(this.u8()));
          break;
        case 0x8b: {
          // LONG4
          const n = this.i32();
          if (n < 0) this.fail('LONG pickle has negative byte count', at);
          this.push(this.long(n));
          break;
        }
        case 0x49: {
          // INT (text); I00/I01 are False/True
          const s = this.lineAscii();
          if (s === '00') this.push(false);
          else if (s === '01') this.push(true);
          else this.push(this.decimal(s, at, true));
          break;
        }
        case 0x4c: {
          // LONG (text), optional trailing L
          let s = this.lineAscii();
          if (s.endsWith('L')) s = s.slice(0, -1);
          this.push(this.decimal(s, at, true));
          break;
        }
        case 0x46: // FLOAT (text)
          this.push(new PyFloat(parseFloatText(this.lineAscii(), at)));
          break;
        case 0x47: {
          // BINFLOAT: big-endian double
          this.need(8, 'BINFLOAT');
          const v = Buffer.from(d.buffer, d.byteOffset + this.pos, 8).readDoubleBE(0);
          this.pos += 8;
          this.push(new PyFloat(v));
          break;
        }
        case 0x58: // BINUNICODE
          this.push(this.text(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.text(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.text(this.u64len()));
          break;
        case 0x56: {
          // UNICODE (raw-unicode-escape line)
          const [s, e] = this.line();
          const t = decodeRawUnicodeEscape(d, s, e);
          if (t === undefined) this.fail('invalid raw-unicode-escape text', s);
          this.push(t);
          break;
        }
        case 0x43: // SHORT_BINBYTES
          this.push(this.bytes(this.u8(), 'SHORT_BINBYTES'));
          break;
        case 0x42: // BINBYTES
          this.push(this.bytes(this.u32(), 'BINBYTES'));
          break;
        case 0x8e: // BINBYTES8
          this.push(this.bytes(this.u64len(), 'BINBYTES8'));
          break;
        case 0x96: // BYTEARRAY8
          this.push(new PyByteArray(this.bytes(this.u64len(), 'BYTEARRAY8')));
          break;
        case 0x55: {
          // SHORT_BINSTRING
          const n = this.u8();
          this.need(n, 'SHORT_BINSTRING');
          this.push(this.str2(this.pos, this.pos + n, at));
          this.pos += n;
          break;
        }
        case 0x54: {
          // BINSTRING
          const n = this.i32();
          if (n < 0) this.fail('BINSTRING pickle has negative byte count', at);
          this.need(n, 'BINSTRING');
          this.push(this.str2(this.pos, this.pos + n, at));
          this.pos += n;
          break;
        }
        case 0x53: {
          // STRING: a quoted bytes literal
          const [s, e] = this.line();
          const q = d[s];
          if (e - s < 2 || (q !== 0x27 && q !== 0x22) || d[e - 1] !== q) {
            this.fail('the STRING opcode argument must be quoted', at);
          }
          const raw = escapeDecode(d, s + 1, e - 1);
          if (raw === undefined) this.fail('invalid escape in STRING', at);
          this.push(strFrom(raw, this.encoding, at));
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(adoptAsTuple([]));
          break;
        case 0x8f: // EMPTY_SET
          this.push(new Set());
          break;
        case 0x64: {
          // DICT
          const items = this.popMark(at);
          if (items.length % 2) this.fail('DICT with an odd number of items', at);
          const m = new Map<unknown, unknown>();
          for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
          this.push(m);
          break;
        }
        case 0x6c: // LIST
          this.push(this.popMark(at));
          break;
        case 0x74: // TUPLE
          this.push(adoptAsTuple(this.popMark(at)));
          break;
        case 0x85: {
          // TUPLE1
          this.push(adoptAsTuple([this.pop(at)]));
          break;
        }
        case 0x86: {
          // TUPLE2
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(adoptAsTuple([a, b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop(at);
          const b = this.pop(at);
          const a = this.pop(at);
          this.push(adoptAsTuple([a, b, c]));
          break;
        }
        case 0x91: // FROZENSET
          this.push(new PyFrozenSet(this.popMark(at)));
          break;
        case 0x61: {
          // APPEND
          const v = this.pop(at);
          this.appendTo(this.top(at), [v], at);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark(at);
          this.appendTo(this.top(at), items, at);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.pop(at);
          const k = this.pop(at);
          this.setItems(this.top(at), [k, v], at);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark(at);
          if (items.length % 2) this.fail('SETITEMS with an odd number of items', at);
          this.setItems(this.top(at), items, at);
          break;
        }
        case 0x90: {
          // ADDITEMS
          const items = this.popMark(at);
          const s = this.top(at);
          if (!(s instanceof Set) || s instanceof PyFrozenSet) this.fail('ADDITEMS target is not a set', at);
          for (const x of items) s.add(x);
          break;
        }
        case 0x63: {
          // GLOBAL: module line, name line
          const module = this.lineText();
          const name = this.lineText();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop(at);
          const module = this.pop(at);
          if (typeof name !== 'string' || typeof module !== 'string') this.fail('STACK_GLOBAL requires str', at);
          this.push(this.global(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop(at);
          const fn = this.pop(at);
          this.push(this.makeObject('reduce', fn, args, undefined, at));
          break;
        }
        case 0x81: {
          // NEWOBJ
          const args = this.pop(at);
          const cls = this.pop(at);
          this.push(this.makeObject('newobj', cls, args, undefined, at));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          const kwargs = this.pop(at);
          const args = this.pop(at);
          const cls = this.pop(at);
          this.push(this.makeObject('newobj_ex', cls, args, kwargs, at));
          break;
        }
        case 0x6f: {
          // OBJ: MARK cls args... OBJ
          const items = this.popMark(at);
          if (items.length === 0) this.fail('OBJ without a class', at);
          this.push(this.makeObject('obj', items[0], adoptAsTuple(items.slice(1)), undefined, at));
          break;
        }
        case 0x69: {
          // INST: MARK args... INST module\n name\n
          const module = this.lineText();
          const name = this.lineText();
          const items = this.popMark(at);
          const cls = this.global(module, name);
          this.push(this.makeObject('inst', cls, adoptAsTuple(items), undefined, at));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop(at);
          const obj = this.top(at);
          if (obj instanceof PyObject) obj.state = state;
          else if (obj !== null && typeof obj === 'object' && typeof (obj as { __setstate__?: unknown }).__setstate__ === 'function') {
            (obj as { __setstate__: (s: unknown) => void }).__setstate__(state);
          } else this.fail(`BUILD on a value that is not an object (${describe(obj)})`, at);
          break;
        }
        case 0x71: // BINPUT
          this.memoPut(this.u8(), at);
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32(), at);
          break;
        case 0x70: {
          // PUT
          const n = this.decimal(this.lineAscii(), at, false);
          if (typeof n !== 'number' || n < 0) this.fail('invalid PUT argument', at);
          this.memoPut(n, at);
          break;
        }
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size, at);
          break;
        case 0x68: // BINGET
          this.memoGet(this.u8(), at);
          break;
        case 0x6a: // LONG_BINGET
          this.memoGet(this.u32(), at);
          break;
        case 0x67: {
          // GET
          const n = this.decimal(this.lineAscii(), at, false);
          if (typeof n !== 'number' || n < 0) this.fail('invalid GET argument', at);
          this.memoGet(n, at);
          break;
        }
        case 0x30: // POP (on an empty frame it discards the mark, as Python does)
          if (this.stack.length > (this.marks.length ? this.marks[this.marks.length - 1]! : 0)) this.stack.pop();
          else this.popMark(at);
          break;
        case 0x31: // POP_MARK
          this.popMark(at);
          break;
        case 0x32: // DUP
          this.push(this.top(at));
          break;
        case 0x51: // BINPERSID
          this.push(this.persistent(this.pop(at)));
          break;
        case 0x50: // PERSID
          this.push(this.persistent(this.lineAscii()));
          break;
        case 0x82:
        case 0x83:
        case 0x84:
          this.fail('EXT opcodes (copyreg extension registry) are not supported', at);
          break;
        case 0x97:
        case 0x98:
          this.fail('out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported', at);
          break;
        default:
          this.fail(`invalid pickle opcode 0x${op.toString(16).padStart(2, '0')}`, at);
      }
    }
  }

  private appendTo(target: unknown, items: unknown[], at: number): void {
    if (Array.isArray(target) && !(target instanceof PyTuple)) {
      for (const x of items) target.push(x);
    } else if (target instanceof PyObject) {
      (target.listItems ??= []).push(...items);
    } else this.fail(`APPEND to a value that is not a list (${describe(target)})`, at);
  }

  private setItems(target: unknown, items: unknown[], at: number): void {
    if (target instanceof Map) {
      for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
    } else if (target instanceof PyObject) {
      const di = (target.dictItems ??= []);
      for (let i = 0; i < items.length; i += 2) di.push([items[i], items[i + 1]]);
    } else this.fail(`SETITEM on a value that is not a dict (${describe(target)})`, at);
  }
}

function strFrom(raw: Buffer, enc: StringEncoding, at: number): unknown {
  switch (enc) {
    case 'bytes':
      return raw;
    case 'latin1':
      return raw.toString('latin1');
    case 'utf-8': {
      const s = decodeUtf8(raw, 0, raw.length);
      if (s === undefined) throw new PickleError('invalid UTF-8 in a Python 2 string (encoding utf-8)', at);
      return s;
    }
    default: {
      for (const c of raw) {
        if (c >= 0x80) {
          if (enc === 'ascii') throw new PickleError('non-ASCII byte in a Python 2 string (encoding ascii)', at);
          return raw;
        }
      }
      return raw.toString('latin1');
    }
  }
}

function parseFloatText(s: string, at: number): number {
  const t = s.trim().toLowerCase();
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  if (t === 'nan' || t === '+nan' || t === '-nan') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) throw new PickleError(`invalid float literal ${JSON.stringify(s.slice(0, 40))}`, at);
  return Number(t);
}

/** bigint → number when it is a safe integer. */
export function normInt(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  if (Buffer.isBuffer(v)) return 'bytes';
  return typeof v;
}

/** Read one pickle from the start of `data` and return its value (bytes after its STOP are ignored). */
export function loads(data: Uint8Array, options: LoadOptions = {}): unknown {
  return new Unpickler(data, options).load();
}
