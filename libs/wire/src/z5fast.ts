/**
 * Direct writer and reader for the common shapes of Z5 messages (zeo5-protocol §7): protocol 3
 * pickles of None, bools, ints of up to 32 bits, floats, str, bytes, tuples, lists and str-keyed
 * dicts, without memo (ZEO's "fast" pickler). Z5Codec tries them first; anything they do not
 * handle (opaque objects, big ints, globals, memo opcodes, non-ASCII text read, ...) makes them
 * return `undefined`, and the codec then uses the general @zeo-ts/pickle path, which also
 * produces every error. Their output equals the general path's (checked by a differential
 * test). Pure: bytes in, values out.
 */
import { PyFloat, isPyList, isWireMap, mapKeys, pyList, setKeyOrder, type WireMap, type WireValue } from './values.ts';
import { ScratchWriter } from './scratch.ts';

/** Nesting handled here; deeper values go to the general path (whose limit is 100). */
const FAST_DEPTH = 64;
/** Containers a decoded pickle may build here (bounds the nesting below the general limit). */
const FAST_CONTAINERS = 64;
/** Stack entries handled here (the general path's limit is far larger). */
const FAST_STACK = 100_000;
/** Python's batch size for APPENDS / SETITEMS. */
const BATCHSIZE = 1000;
/** A UTF-16 surrogate without its partner. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Thrown inside the writer/reader to give up (never escapes this module). */
const GIVE_UP: unique symbol = Symbol('z5fast.giveUp');

// ------------------------------------------------------------------------------------- writer

export class Z5Writer extends ScratchWriter {
  /**
   * The pickle of the 4-tuple (msgid, flags, method, args), or undefined to use the general path.
   * With `framed`, the result starts with the 4-byte big-endian length of the pickle (§3): the
   * whole frame in one buffer.
   */
  encodeMessage(msgid: WireValue, flags: boolean | number, method: string, args: WireValue, framed = false): Buffer | undefined {
    this.begin(framed);
    try {
      this.ensure(3);
      this.buf[this.len++] = 0x80; // PROTO 3
      this.buf[this.len++] = 3;
      this.buf[this.len++] = 0x28; // MARK: a 4-tuple
      this.value(msgid, 1);
      this.value(flags, 1);
      this.value(method, 1);
      this.value(args, 1);
      this.ensure(2);
      this.buf[this.len++] = 0x74; // TUPLE
      this.buf[this.len++] = 0x2e; // STOP
      return this.take(framed);
    } catch (e) {
      if (e === GIVE_UP) return undefined;
      throw e;
    } finally {
      this.release();
    }
  }

  /** one opcode byte */
  private op(x: number): void {
    this.u8(x);
  }

  private value(v: unknown, depth: number): void {
    if (depth > FAST_DEPTH) throw GIVE_UP;
    switch (typeof v) {
      case 'string':
        this.str(v);
        return;
      case 'boolean':
        this.op(v ? 0x88 : 0x89);
        return;
      case 'number':
        if (Number.isInteger(v)) this.int(v);
        else this.float(v);
        return;
      case 'bigint':
        if (v < -0x80000000n || v > 0x7fffffffn) throw GIVE_UP;
        this.int(Number(v));
        return;
      case 'object': {
        if (v === null) {
          this.op(0x4e);
          return;
        }
        if (v instanceof Uint8Array) {
          this.bytes(v);
          return;
        }
        if (v instanceof PyFloat) {
          this.float(v.value);
          return;
        }
        if (Array.isArray(v)) {
          if (isPyList(v)) this.list(v, depth);
          else this.tuple(v, depth);
          return;
        }
        if (isWireMap(v)) {
          this.dict(v, depth);
          return;
        }
        throw GIVE_UP;
      }
      default:
        throw GIVE_UP;
    }
  }

  private int(x: number): void {
    this.ensure(5);
    const b = this.buf;
    if (x >= 0 && x <= 0xff) {
      b[this.len++] = 0x4b; // BININT1
      b[this.len++] = x;
    } else if (x >= 0 && x <= 0xffff) {
      b[this.len++] = 0x4d; // BININT2
      b[this.len++] = x & 0xff;
      b[this.len++] = x >> 8;
    } else if (x >= -0x80000000 && x <= 0x7fffffff) {
      b[this.len] = 0x4a; // BININT
      b.writeInt32LE(x, this.len + 1);
      this.len += 5;
    } else {
      throw GIVE_UP; // LONG1: general path
    }
  }

  private float(x: number): void {
    this.ensure(9);
    this.buf[this.len] = 0x47; // BINFLOAT
    this.buf.writeDoubleBE(x, this.len + 1);
    this.len += 9;
  }

  private str(s: string): void {
    // BINUNICODE, UTF-8; lone surrogates (surrogatepass) are left to the general path
    this.ensure(5 + s.length * 3);
    const b = this.buf;
    const at = this.len;
    b[at] = 0x58;
    let n = s.length;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      b[at + 5 + i] = c;
    }
    if (!ascii) {
      if (LONE_SURROGATE.test(s)) throw GIVE_UP;
      n = b.write(s, at + 5, 'utf8');
    }
    b.writeUInt32LE(n, at + 1);
    this.len = at + 5 + n;
  }

  private bytes(v: Uint8Array): void {
    const n = v.length;
    this.ensure(5 + n);
    if (n < 256) {
      this.buf[this.len++] = 0x43; // SHORT_BINBYTES
      this.buf[this.len++] = n;
    } else {
      this.buf[this.len] = 0x42; // BINBYTES
      this.buf.writeUInt32LE(n, this.len + 1);
      this.len += 5;
    }
    this.buf.set(v, this.len);
    this.len += n;
  }

  private tuple(t: readonly unknown[], depth: number): void {
    const n = t.length;
    if (n === 0) {
      this.op(0x29); // EMPTY_TUPLE
      return;
    }
    if (n <= 3) {
      for (let i = 0; i < n; i++) this.value(t[i], depth + 1);
      this.op(0x84 + n); // TUPLE1..3
      return;
    }
    this.op(0x28);
    for (let i = 0; i < n; i++) this.value(t[i], depth + 1);
    this.op(0x74);
  }

  private list(l: readonly unknown[], depth: number): void {
    this.op(0x5d); // EMPTY_LIST
    const n = l.length;
    if (n === 0) return;
    if (n === 1) {
      this.value(l[0], depth + 1);
      this.op(0x61); // APPEND
      return;
    }
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      this.op(0x28);
      for (; i < stop; i++) this.value(l[i], depth + 1);
      this.op(0x65); // APPENDS
    }
  }

  private dict(m: WireMap, depth: number): void {
    this.op(0x7d); // EMPTY_DICT
    const keys = mapKeys(m);
    const n = keys.length;
    if (n === 0) return;
    if (n === 1) {
      this.str(keys[0]!);
      this.value(m[keys[0]!], depth + 1);
      this.op(0x73); // SETITEM
      return;
    }
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      this.op(0x28);
      for (; i < stop; i++) {
        this.str(keys[i]!);
        this.value(m[keys[i]!], depth + 1);
      }
      this.op(0x75); // SETITEMS
    }
  }
}

// ------------------------------------------------------------------------------------- reader

/** A dict being built: its object and the order its keys arrived in. */
interface DictBuild {
  obj: WireMap;
  order: string[];
  indexKeys: boolean;
}

const INDEX_KEY = /^(0|[1-9][0-9]{0,9})$/;


/**
 * The value of a protocol 2/3 pickle made of the opcodes above, or undefined when it uses
 * anything else or is malformed in any way (the general path then decides).
 */
export function readZ5(data: Uint8Array): WireValue | undefined {
  try {
    return new Z5Reader(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).read();
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    throw e;
  }
}

/**
 * The reader's state. A class rather than closures: under tsx (esbuild keepNames) every named
 * closure created per call costs an Object.defineProperty.
 */
class Z5Reader {
  private pos = 0;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private dicts: Map<WireMap, DictBuild> | null = null;
  private lists: unknown[][] | null = null;
  private containers = 0;

  constructor(private readonly b: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw GIVE_UP;
  }

  private floor(): number {
    return this.marks.length ? this.marks[this.marks.length - 1]! : 0;
  }

  private pop(): unknown {
    if (this.stack.length <= this.floor()) throw GIVE_UP;
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length <= this.floor()) throw GIVE_UP;
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    if (!this.marks.length) throw GIVE_UP;
    return this.stack.splice(this.marks.pop()!);
  }

  private container(): void {
    if (++this.containers > FAST_CONTAINERS) throw GIVE_UP;
  }

  private setItems(items: unknown[]): void {
    const d = this.dicts?.get(this.top() as WireMap);
    if (!d) throw GIVE_UP;
    for (let i = 0; i < items.length; i += 2) {
      const k = items[i];
      if (typeof k !== 'string' || k === '__proto__' || Object.hasOwn(d.obj, k)) throw GIVE_UP;
      d.obj[k] = items[i + 1] as WireValue;
      d.order.push(k);
      if (!d.indexKeys && INDEX_KEY.test(k)) d.indexKeys = true;
    }
  }

  private appendTo(items: unknown[]): void {
    const l = this.top() as unknown[];
    if (!this.lists?.includes(l)) throw GIVE_UP;
    for (const x of items) l.push(x);
  }

  private ascii(n: number): string {
    this.need(n);
    const b = this.b;
    const start = this.pos;
    let s = '';
    if (n < 64) {
      for (let i = start; i < start + n; i++) {
        const c = b[i]!;
        if (c > 0x7f) throw GIVE_UP;
        s += String.fromCharCode(c);
      }
    } else {
      for (let i = start; i < start + n; i++) if (b[i]! > 0x7f) throw GIVE_UP;
      s = b.toString('latin1', start, start + n);
    }
    this.pos += n;
    return s;
  }

  private bytes(n: number): Buffer {
    this.need(n);
    const out = Buffer.allocUnsafe(n);
    this.b.copy(out, 0, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  read(): WireValue {
    const b = this.b;
    const end = b.length;
    const stack = this.stack;
    // bounded: every round consumes at least one byte
    while (this.pos < end) {
      if (stack.length + this.marks.length > FAST_STACK) throw GIVE_UP;
      const op = b[this.pos++]!;
      switch (op) {
        case 0x80: // PROTO
          this.need(1);
          if (b[this.pos] !== 2 && b[this.pos] !== 3) throw GIVE_UP;
          this.pos++;
          break;
        case 0x2e: {
          // STOP: exactly one value, nothing after
          if (this.pos !== end || stack.length !== 1 || this.marks.length) throw GIVE_UP;
          if (this.dicts) for (const d of this.dicts.values()) if (d.indexKeys) setKeyOrder(d.obj, d.order);
          if (this.lists) for (const l of this.lists) pyList(l as WireValue[]);
          return stack[0] as WireValue;
        }
        case 0x28: // MARK
          this.marks.push(stack.length);
          break;
        case 0x4e:
          stack.push(null);
          break;
        case 0x88:
          stack.push(true);
          break;
        case 0x89:
          stack.push(false);
          break;
        case 0x4b: // BININT1
          this.need(1);
          stack.push(b[this.pos++]!);
          break;
        case 0x4d: // BININT2
          this.need(2);
          stack.push(b.readUInt16LE(this.pos));
          this.pos += 2;
          break;
        case 0x4a: // BININT
          this.need(4);
          stack.push(b.readInt32LE(this.pos));
          this.pos += 4;
          break;
        case 0x47: {
          // BINFLOAT: integral values stay floats (PyFloat), as the general path
          this.need(8);
          const x = b.readDoubleBE(this.pos);
          this.pos += 8;
          stack.push(Number.isInteger(x) ? new PyFloat(x) : x);
          break;
        }
        case 0x58: {
          // BINUNICODE (ASCII here)
          this.need(4);
          const n = b.readUInt32LE(this.pos);
          this.pos += 4;
          stack.push(this.ascii(n));
          break;
        }
        case 0x43: // SHORT_BINBYTES
          this.need(1);
          stack.push(this.bytes(b[this.pos++]!));
          break;
        case 0x42: {
          // BINBYTES
          this.need(4);
          const n = b.readUInt32LE(this.pos);
          this.pos += 4;
          stack.push(this.bytes(n));
          break;
        }
        case 0x29: // EMPTY_TUPLE
          this.container();
          stack.push([]);
          break;
        case 0x85: // TUPLE1
          this.container();
          stack.push([this.pop()]);
          break;
        case 0x86: {
          this.container();
          const y = this.pop();
          const x = this.pop();
          stack.push([x, y]);
          break;
        }
        case 0x87: {
          this.container();
          const z = this.pop();
          const y = this.pop();
          const x = this.pop();
          stack.push([x, y, z]);
          break;
        }
        case 0x74: // TUPLE
          this.container();
          stack.push(this.popMark());
          break;
        case 0x5d: {
          // EMPTY_LIST
          this.container();
          const l: unknown[] = [];
          (this.lists ??= []).push(l);
          stack.push(l);
          break;
        }
        case 0x61: // APPEND
          this.appendTo([this.pop()]);
          break;
        case 0x65: // APPENDS
          this.appendTo(this.popMark());
          break;
        case 0x7d: {
          // EMPTY_DICT
          this.container();
          const obj: WireMap = {};
          (this.dicts ??= new Map()).set(obj, { obj, order: [], indexKeys: false });
          stack.push(obj);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems([k, v]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          if (items.length % 2) throw GIVE_UP;
          this.setItems(items);
          break;
        }
        default:
          throw GIVE_UP;
      }
    }
    throw GIVE_UP; // no STOP
  }
}
