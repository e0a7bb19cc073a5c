/**
 * A direct msgpack writer and reader for M5 messages (zeo5-protocol §6), used by M5Codec on its
 * hot path. They produce and accept exactly what the @msgpack/msgpack based `packValue` /
 * `unpackValue` of m5.ts do (checked by a differential test), without the intermediate value
 * walks: the writer fills one scratch buffer, the reader builds the value model in one pass.
 * Pure: bytes in, values out.
 */
import { ProtocolError } from './errors.ts';
import { PyFloat, isWireMap, mapKeys, normInt, setKeyOrder, type WireMap, type WireValue } from './values.ts';
import { ScratchWriter } from './scratch.ts';

/** Deepest nesting accepted or produced (same limit as m5.ts). */
const MAX_DEPTH = 100;
const U32_LIMIT = 0x100000000;
const I32_MIN = -0x80000000;
const INDEX_KEY = /^(0|[1-9][0-9]{0,9})$/;

/** Scratch buffers that grew beyond this are dropped after use. */

// ------------------------------------------------------------------------------------- writer

export class M5Writer extends ScratchWriter {
  /**
   * The msgpack document of `v` as a fresh Buffer (TypeError/RangeError for unencodable values).
   * With `framed`, the result starts with the 4-byte big-endian length of the document (§3).
   */
  encode(v: WireValue, framed = false): Buffer {
    this.begin(framed);
    try {
      this.value(v, 0);
      return this.take(framed);
    } finally {
      this.release();
    }
  }

  private head8(t: number, x: number): void {
    this.ensure(2);
    this.buf[this.len++] = t;
    this.buf[this.len++] = x & 0xff;
  }

  private head16(t: number, x: number): void {
    this.ensure(3);
    this.buf[this.len] = t;
    this.buf.writeUInt16BE(x, this.len + 1);
    this.len += 3;
  }

  private head32(t: number, x: number): void {
    this.ensure(5);
    this.buf[this.len] = t;
    this.buf.writeUInt32BE(x, this.len + 1);
    this.len += 5;
  }

  private value(v: unknown, depth: number): void {
    if (depth > MAX_DEPTH) throw new TypeError(`value nests deeper than ${MAX_DEPTH} levels`);
    switch (typeof v) {
      case 'string':
        this.str(v);
        return;
      case 'boolean':
        this.u8(v ? 0xc3 : 0xc2);
        return;
      case 'number':
        if (Number.isSafeInteger(v)) this.int(v);
        else this.float(v);
        return;
      case 'bigint':
        if (v >= 0n ? v > 0xffffffffffffffffn : v < -0x8000000000000000n) {
          throw new RangeError(`integer ${v} does not fit msgpack's 64 bits`);
        }
        if (v < BigInt(U32_LIMIT) && v >= BigInt(I32_MIN)) this.int(Number(v));
        else this.int64(v);
        return;
      case 'object': {
        if (v === null) {
          this.u8(0xc0);
          return;
        }
        if (v instanceof Uint8Array) {
          this.bin(v);
          return;
        }
        if (v instanceof PyFloat) {
          // a Python float is always float 64, integral or not, as msgpack-python writes it
          this.float(v.value);
          return;
        }
        if (Array.isArray(v)) {
          const n = v.length;
          if (n < 16) this.u8(0x90 | n);
          else if (n < 0x10000) this.head16(0xdc, n);
          else this.head32(0xdd, n);
          for (let i = 0; i < n; i++) this.value(v[i], depth + 1);
          return;
        }
        if (isWireMap(v)) {
          const keys = mapKeys(v);
          const n = keys.length;
          if (n < 16) this.u8(0x80 | n);
          else if (n < 0x10000) this.head16(0xde, n);
          else this.head32(0xdf, n);
          for (const k of keys) {
            if (k === '__proto__') throw new TypeError('map key __proto__ cannot be encoded');
            this.str(k);
            this.value((v as WireMap)[k], depth + 1);
          }
          return;
        }
        throw new TypeError(`cannot encode ${Object.prototype.toString.call(v)} in a ZEO message`);
      }
      default:
        throw new TypeError(`cannot encode a ${typeof v} in a ZEO message`);
    }
  }

  /** msgpack's smallest int family, as Python's packer (uint for >= 0, int for < 0). */
  private int(x: number): void {
    if (x >= 0) {
      if (x < 0x80) this.u8(x);
      else if (x < 0x100) this.head8(0xcc, x);
      else if (x < 0x10000) this.head16(0xcd, x);
      else if (x < U32_LIMIT) this.head32(0xce, x);
      else this.int64(BigInt(x));
    } else if (x >= -0x20) this.u8(0xe0 | (x + 0x20));
    else if (x >= -0x80) this.head8(0xd0, x);
    else if (x >= -0x8000) this.head16(0xd1, x & 0xffff);
    else if (x >= I32_MIN) this.head32(0xd2, x >>> 0);
    else this.int64(BigInt(x));
  }

  private int64(x: bigint): void {
    this.ensure(9);
    if (x >= 0n) {
      this.buf[this.len] = 0xcf;
      this.buf.writeBigUInt64BE(x, this.len + 1);
    } else {
      this.buf[this.len] = 0xd3;
      this.buf.writeBigInt64BE(x, this.len + 1);
    }
    this.len += 9;
  }

  private float(x: number): void {
    this.ensure(9);
    this.buf[this.len] = 0xcb;
    this.buf.writeDoubleBE(x, this.len + 1);
    this.len += 9;
  }

  private str(s: string): void {
    // at most 3 bytes per UTF-16 unit; write first, then fix the header size
    const max = s.length * 3;
    this.ensure(max + 5);
    const hdr = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
    let n: number;
    if (s.length < 32 && isAscii(s)) {
      // short ASCII (method names, map keys): byte per unit
      n = s.length;
      for (let i = 0; i < n; i++) this.buf[this.len + 1 + i] = s.charCodeAt(i);
      this.buf[this.len] = 0xa0 | n;
      this.len += 1 + n;
      return;
    }
    n = this.buf.write(s, this.len + hdr, 'utf8');
    const need = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    if (need !== hdr) this.buf.copy(this.buf, this.len + need, this.len + hdr, this.len + hdr + n);
    if (need === 1) this.buf[this.len] = 0xa0 | n;
    else if (need === 2) {
      this.buf[this.len] = 0xd9;
      this.buf[this.len + 1] = n;
    } else if (need === 3) {
      this.buf[this.len] = 0xda;
      this.buf.writeUInt16BE(n, this.len + 1);
    } else {
      this.buf[this.len] = 0xdb;
      this.buf.writeUInt32BE(n, this.len + 1);
    }
    this.len += need + n;
  }

  private bin(b: Uint8Array): void {
    const n = b.length;
    if (n < 0x100) this.head8(0xc4, n);
    else if (n < 0x10000) this.head16(0xc5, n);
    else this.head32(0xc6, n);
    this.ensure(n);
    this.buf.set(b, this.len);
    this.len += n;
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

// ------------------------------------------------------------------------------------- reader

/** str payloads must be valid UTF-8, as for Python's unpackb(raw=False) */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decode one msgpack document into the value model, as `unpackb(raw=False, use_list=False)`:
 * ProtocolError for anything invalid (truncation, extra bytes, extension types, non-str map keys,
 * nesting beyond the limit).
 */
export function readM5(data: Uint8Array, what: string): WireValue {
  const r = new Reader(data, what);
  const v = r.value(0);
  if (r.pos !== data.length) throw r.error(`${data.length - r.pos} extra byte(s) after the document`);
  return v;
}

class Reader {
  pos = 0;
  private readonly b: Buffer;
  constructor(data: Uint8Array, private readonly what: string) {
    this.b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  error(msg: string): ProtocolError {
    return new ProtocolError(`undecodable ${this.what} (${this.b.length} bytes): ${msg} at byte ${this.pos}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw this.error(`truncated: ${n} more byte(s) needed`);
  }

  value(depth: number): WireValue {
    if (depth > MAX_DEPTH) throw new ProtocolError(`msgpack value nests deeper than ${MAX_DEPTH} levels`);
    this.need(1);
    const b = this.b;
    const t = b[this.pos++]!;
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t <= 0x8f) return this.map(t & 0x0f, depth);
    if (t <= 0x9f) return this.array(t & 0x0f, depth);
    if (t <= 0xbf) return this.str(t & 0x1f);
    let n: number;
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        this.need(1);
        return this.bin(b[this.pos++]!);
      case 0xc5:
        this.need(2);
        n = b.readUInt16BE(this.pos);
        this.pos += 2;
        return this.bin(n);
      case 0xc6:
        this.need(4);
        n = b.readUInt32BE(this.pos);
        this.pos += 4;
        return this.bin(n);
      case 0xca:
        this.need(4);
        this.pos += 4;
        return b.readFloatBE(this.pos - 4);
      case 0xcb:
        this.need(8);
        this.pos += 8;
        return b.readDoubleBE(this.pos - 8);
      case 0xcc:
        this.need(1);
        return b[this.pos++]!;
      case 0xcd:
        this.need(2);
        this.pos += 2;
        return b.readUInt16BE(this.pos - 2);
      case 0xce:
        this.need(4);
        this.pos += 4;
        return b.readUInt32BE(this.pos - 4);
      case 0xcf:
        this.need(8);
        this.pos += 8;
        return normInt(b.readBigUInt64BE(this.pos - 8));
      case 0xd0:
        this.need(1);
        return b.readInt8(this.pos++);
      case 0xd1:
        this.need(2);
        this.pos += 2;
        return b.readInt16BE(this.pos - 2);
      case 0xd2:
        this.need(4);
        this.pos += 4;
        return b.readInt32BE(this.pos - 4);
      case 0xd3:
        this.need(8);
        this.pos += 8;
        return normInt(b.readBigInt64BE(this.pos - 8));
      case 0xd9:
        this.need(1);
        return this.str(b[this.pos++]!);
      case 0xda:
        this.need(2);
        n = b.readUInt16BE(this.pos);
        this.pos += 2;
        return this.str(n);
      case 0xdb:
        this.need(4);
        n = b.readUInt32BE(this.pos);
        this.pos += 4;
        return this.str(n);
      case 0xdc:
        this.need(2);
        n = b.readUInt16BE(this.pos);
        this.pos += 2;
        return this.array(n, depth);
      case 0xdd:
        this.need(4);
        n = b.readUInt32BE(this.pos);
        this.pos += 4;
        return this.array(n, depth);
      case 0xde:
        this.need(2);
        n = b.readUInt16BE(this.pos);
        this.pos += 2;
        return this.map(n, depth);
      case 0xdf:
        this.need(4);
        n = b.readUInt32BE(this.pos);
        this.pos += 4;
        return this.map(n, depth);
      case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
        const type = this.extType(t);
        throw new ProtocolError(`msgpack extension type ${type} is not allowed in ZEO messages`);
      }
      default:
        throw this.error(`unexpected msgpack type byte 0x${t.toString(16)}`);
    }
  }

  /** The type of an extension value (after checking it is complete), as the library reports it. */
  private extType(t: number): number {
    const b = this.b;
    let size: number;
    if (t >= 0xd4) {
      size = 1 << (t - 0xd4);
    } else {
      const w = t === 0xc7 ? 1 : t === 0xc8 ? 2 : 4;
      this.need(w);
      size = w === 1 ? b[this.pos]! : w === 2 ? b.readUInt16BE(this.pos) : b.readUInt32BE(this.pos);
      this.pos += w;
    }
    this.need(1 + size);
    return b.readInt8(this.pos);
  }

  private str(n: number): string {
    this.need(n);
    const b = this.b;
    const start = this.pos;
    this.pos += n;
    if (n < 32) {
      let s = '';
      for (let i = start; i < start + n; i++) {
        const c = b[i]!;
        if (c > 0x7f) return this.utf8(start, n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.utf8(start, n);
  }

  private utf8(start: number, n: number): string {
    try {
      return utf8.decode(this.b.subarray(start, start + n));
    } catch {
      this.pos = start;
      throw this.error(`invalid UTF-8 in a str of ${n} bytes`);
    }
  }

  private bin(n: number): Buffer {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    // small values (oids, tids) are copied so they do not pin the whole frame
    const view = this.b.subarray(start, start + n);
    return n <= 64 ? Buffer.from(view) : view;
  }

  private array(n: number, depth: number): WireValue[] {
    // every element takes at least one byte: a count beyond the remaining bytes is truncation
    if (n > this.b.length - this.pos) throw this.error(`array of ${n} items in ${this.b.length - this.pos} bytes`);
    const out: WireValue[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  private map(n: number, depth: number): WireMap {
    if (2 * n > this.b.length - this.pos) throw this.error(`map of ${n} items in ${this.b.length - this.pos} bytes`);
    const out: WireMap = {};
    let order: string[] | null = null;
    let indexKeys = false;
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1);
      if (typeof k !== 'string') throw new ProtocolError(`msgpack map key is not a str: ${typeof k === 'object' ? Object.prototype.toString.call(k) : String(k)}`);
      if (k === '__proto__') throw this.error('the map key __proto__ is not allowed');
      const v = this.value(depth + 1);
      if (!indexKeys && INDEX_KEY.test(k)) indexKeys = true;
      if (!Object.hasOwn(out, k)) (order ??= []).push(k);
      out[k] = v;
    }
    if (indexKeys && order) setKeyOrder(out, order);
    return out;
  }
}
