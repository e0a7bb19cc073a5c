/**
 * M5: the msgpack encoding (zeo5-protocol §6), built on @msgpack/msgpack.
 *
 * Encoding reproduces Python's `msgpack.packb(message, use_bin_type=True)` (W-3..W-6): bytes as
 * bin, text as str, tuples and lists as arrays, integers in the smallest int family (uint 64 `cf`
 * above 2^32, never floats), floats as float 64, str map keys only, no extension types.
 * Decoding mirrors `unpackb(raw=False, use_list=False)`: every array is a plain Array (W-7),
 * 64-bit integers keep their exact value (W-5), extension types and non-str map keys are
 * protocol errors.
 */
import { Decoder, Encoder, type ExtensionCodecType } from '@msgpack/msgpack';
import { ProtocolError } from './errors.ts';
import { M5Writer, readM5 } from './m5fast.ts';
import { messageFromTuple, type Message, type MessageCodec } from './message.ts';
import { PyFloat, isWireMap, mapKeys, normInt, setKeyOrder, shortRepr, type WireValue } from './values.ts';

/** Deepest nesting accepted or produced (messages nest a handful of levels). */
export const MAX_DEPTH = 100;

const U32_LIMIT = 0x100000000;
const I32_MIN = -0x80000000;

const noExtensions: ExtensionCodecType<undefined> = {
  tryToEncode: () => null,
  decode: (_data: Uint8Array, type: number) => {
    throw new ProtocolError(`msgpack extension type ${type} is not allowed in ZEO messages`);
  },
};

/** Set while decoding when a map key is integer-like (JS would enumerate it out of wire order). */
let sawIndexKey = false;
const INDEX_KEY = /^(0|[1-9][0-9]{0,9})$/;

function strKey(key: unknown): string {
  if (typeof key !== 'string') throw new ProtocolError(`msgpack map key is not a str: ${shortRepr(key)}`);
  if (!sawIndexKey && INDEX_KEY.test(key)) sawIndexKey = true;
  return key;
}

type KeyNode = null | KeyNode[] | { order: string[]; values: Map<string, KeyNode> };

/**
 * Walk the structure of an already decoded (hence well-formed) msgpack document and return the
 * wire order of every map's keys, so that maps with integer-like keys keep Python's order.
 */
function keyOrders(b: Uint8Array): KeyNode {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 0;
  const text = new TextDecoder();
  const walk = (depth: number): KeyNode => {
    if (depth > MAX_DEPTH + 2) throw new ProtocolError('msgpack value nests too deeply');
    const t = b[pos++]!;
    const skip = (n: number): KeyNode => {
      pos += n;
      return null;
    };
    const seq = (n: number): KeyNode => {
      const out: KeyNode[] = [];
      for (let i = 0; i < n; i++) out.push(walk(depth + 1));
      return out;
    };
    const map = (n: number): KeyNode => {
      const order: string[] = [];
      const values = new Map<string, KeyNode>();
      for (let i = 0; i < n; i++) {
        const k = readStr();
        const v = walk(depth + 1);
        if (!values.has(k)) order.push(k);
        values.set(k, v);
      }
      return { order, values };
    };
    const readStr = (): string => {
      const h = b[pos++]!;
      let n: number;
      if (h >= 0xa0 && h <= 0xbf) n = h & 0x1f;
      else if (h === 0xd9) n = b[pos++]!;
      else if (h === 0xda) { n = dv.getUint16(pos); pos += 2; }
      else if (h === 0xdb) { n = dv.getUint32(pos); pos += 4; }
      else throw new ProtocolError('msgpack map key is not a str');
      const s = text.decode(b.subarray(pos, pos + n));
      pos += n;
      return s;
    };
    if (t <= 0x7f || t >= 0xe0) return null;
    if (t <= 0x8f) return map(t & 0x0f);
    if (t <= 0x9f) return seq(t & 0x0f);
    if (t <= 0xbf) return skip(t & 0x1f);
    switch (t) {
      case 0xc0: case 0xc2: case 0xc3: return null;
      case 0xc4: return skip(1 + b[pos]!);
      case 0xc5: return skip(2 + dv.getUint16(pos));
      case 0xc6: return skip(4 + dv.getUint32(pos));
      case 0xc7: return skip(2 + b[pos]!);
      case 0xc8: return skip(3 + dv.getUint16(pos));
      case 0xc9: return skip(5 + dv.getUint32(pos));
      case 0xca: return skip(4);
      case 0xcb: return skip(8);
      case 0xcc: case 0xd0: return skip(1);
      case 0xcd: case 0xd1: return skip(2);
      case 0xce: case 0xd2: return skip(4);
      case 0xcf: case 0xd3: return skip(8);
      case 0xd4: return skip(2);
      case 0xd5: return skip(3);
      case 0xd6: return skip(5);
      case 0xd7: return skip(9);
      case 0xd8: return skip(17);
      case 0xd9: return skip(1 + b[pos]!);
      case 0xda: return skip(2 + dv.getUint16(pos));
      case 0xdb: return skip(4 + dv.getUint32(pos));
      case 0xdc: { const n = dv.getUint16(pos); pos += 2; return seq(n); }
      case 0xdd: { const n = dv.getUint32(pos); pos += 4; return seq(n); }
      case 0xde: { const n = dv.getUint16(pos); pos += 2; return map(n); }
      case 0xdf: { const n = dv.getUint32(pos); pos += 4; return map(n); }
      default: throw new ProtocolError(`unexpected msgpack type byte 0x${t.toString(16)}`);
    }
  };
  return walk(0);
}

/** Attach the wire key order to the maps of a decoded value (see setKeyOrder). */
function applyKeyOrders(v: WireValue, node: KeyNode): void {
  if (node === null) return;
  if (Array.isArray(node)) {
    if (Array.isArray(v)) for (let i = 0; i < node.length && i < v.length; i++) applyKeyOrders(v[i] as WireValue, node[i]!);
    return;
  }
  if (isWireMap(v)) {
    setKeyOrder(v, node.order);
    for (const [k, child] of node.values) if (Object.hasOwn(v, k)) applyKeyOrders(v[k]!, child);
  }
}

/** Decode with the library, then restore map key order when some key is integer-like. */
function decodeOrdered(decoder: Decoder, data: Uint8Array, what: string): WireValue {
  sawIndexKey = false;
  let raw: unknown;
  try {
    raw = decoder.decode(data);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError(`undecodable ${what} (${data.length} bytes): ${(e as Error).message}`);
  }
  const v = fromUnpacked(raw, 0);
  if (sawIndexKey) applyKeyOrders(v, keyOrders(data));
  return v;
}

/**
 * Turn a value of the model into what @msgpack/msgpack encodes exactly like Python: with
 * `useBigInt64` it writes bigints as uint 64 / int 64, so integers beyond 32 bits become bigints
 * and bigints within 32 bits become numbers.
 */
function toPackable(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new TypeError(`value nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      // unsafe integral numbers (beyond 2^53) go out as floats, as they are not exact ints
      if (Number.isSafeInteger(v) && (v >= U32_LIMIT || v < I32_MIN)) return BigInt(v);
      return v;
    case 'bigint':
      if (v >= 0n ? v > 0xffffffffffffffffn : v < -0x8000000000000000n) {
        throw new RangeError(`integer ${v} does not fit msgpack's 64 bits`);
      }
      return v < BigInt(U32_LIMIT) && v >= BigInt(I32_MIN) ? Number(v) : v;
    case 'object': {
      if (v === null) return null;
      if (v instanceof Uint8Array) return v;
      if (v instanceof PyFloat) return floatSentinel(v.value);
      if (Array.isArray(v)) return v.map((x) => toPackable(x, depth + 1));
      if (isWireMap(v)) {
        const out: Record<string, unknown> = {};
        const keys = mapKeys(v);
        for (const k of keys) {
          if (k === '__proto__') throw new TypeError('map key __proto__ cannot be encoded');
          out[k] = toPackable(v[k], depth + 1);
        }
        // the encoder enumerates Object.keys(); a proxy keeps the wire order of integer-like keys
        if (keys.some((k, i) => Object.keys(out)[i] !== k)) {
          return new Proxy(out, { ownKeys: () => [...keys] });
        }
        return out;
      }
      throw new TypeError(`cannot encode ${Object.prototype.toString.call(v)} in a ZEO message`);
    }
    default:
      throw new TypeError(`cannot encode a ${typeof v} in a ZEO message`);
  }
}

/** Decoded values to the value model: bigints normalised, bins as Buffers. */
function fromUnpacked(v: unknown, depth: number): WireValue {
  if (depth > MAX_DEPTH) throw new ProtocolError(`msgpack value nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'number':
      return v;
    case 'bigint':
      return normInt(v);
    case 'object': {
      if (v === null) return null;
      if (v instanceof Uint8Array) {
        // small values (oids, tids) are copied so they do not pin the whole frame
        return v.length <= 64 ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      }
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) v[i] = fromUnpacked(v[i], depth + 1);
        return v as WireValue[];
      }
      if (Object.getPrototypeOf(v) === Object.prototype) {
        const o = v as Record<string, unknown>;
        for (const k of Object.keys(o)) o[k] = fromUnpacked(o[k], depth + 1);
        return o as WireValue;
      }
      throw new ProtocolError(`unexpected msgpack value ${Object.prototype.toString.call(v)}`);
    }
    default:
      throw new ProtocolError(`unexpected msgpack value of type ${typeof v}`);
  }
}

/** Encode any value of the model as a msgpack document (no frame header). */
export function packValue(v: WireValue): Buffer {
  pendingFloats.length = 0;
  try {
    const out = newEncoder().encode(toPackable(v, 0));
    const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    return pendingFloats.length ? patchFloatSentinels(buf) : buf;
  } finally {
    pendingFloats.length = 0;
  }
}

/*
 * A Python float is always written as float 64, but @msgpack/msgpack writes every integral
 * number as an int. Integral PyFloats are therefore encoded as unique non-integral sentinel
 * floats, whose 9-byte encodings are then overwritten with the real value's float 64.
 */
const pendingFloats: Array<{ sentinel: number; value: number }> = [];
const SENTINEL_BASE = 0.7071067811865476; // an irrational-looking fraction; collisions are checked

function floatSentinel(x: number): number {
  if (!Number.isInteger(x)) return x;
  const sentinel = SENTINEL_BASE + pendingFloats.length * 2 ** -40;
  pendingFloats.push({ sentinel, value: x });
  return sentinel;
}

function patchFloatSentinels(buf: Buffer): Buffer {
  const pattern = Buffer.alloc(9);
  pattern[0] = 0xcb;
  for (const { sentinel, value } of pendingFloats) {
    pattern.writeDoubleBE(sentinel, 1);
    const at = buf.indexOf(pattern);
    if (at < 0 || buf.indexOf(pattern, at + 1) >= 0) {
      throw new Error(`packValue: float sentinel ${sentinel} is not unique in the encoding`);
    }
    buf.writeDoubleBE(value, at + 1);
  }
  return buf;
}

/** Decode one msgpack document into the model; ProtocolError on anything invalid. */
export function unpackValue(data: Uint8Array): WireValue {
  const dec = new Decoder({ useBigInt64: true, extensionCodec: noExtensions, mapKeyConverter: strKey });
  return decodeOrdered(dec, data, 'msgpack payload');
}

function newEncoder(): Encoder {
  return new Encoder({ useBigInt64: true, extensionCodec: noExtensions, maxDepth: MAX_DEPTH + 2 });
}

/**
 * The M5 message codec. Messages go through the direct writer/reader of m5fast.ts, which produce
 * and accept exactly what `packValue` / `unpackValue` (built on @msgpack/msgpack) do.
 */
export class M5Codec implements MessageCodec {
  readonly letter = 'M' as const;
  private readonly writer = new M5Writer();

  encode(msg: Message): Buffer {
    return this.writer.encode([msg.msgid, msg.flags, msg.method, msg.args]);
  }

  encodeFrame(msg: Message): Buffer {
    return this.writer.encode([msg.msgid, msg.flags, msg.method, msg.args], true);
  }

  decode(payload: Uint8Array): Message {
    return messageFromTuple(readM5(payload, 'M5 message'), 'M5');
  }
}
