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
import { messageFromTuple, type Message, type MessageCodec } from './message.ts';
import { PyFloat, isWireMap, normInt, shortRepr, type WireValue } from './values.ts';

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

function strKey(key: unknown): string {
  if (typeof key !== 'string') throw new ProtocolError(`msgpack map key is not a str: ${shortRepr(key)}`);
  return key;
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
      if (v instanceof PyFloat) return v.value; // integral PyFloats go out as ints (§6.1 MAY)
      if (Array.isArray(v)) return v.map((x) => toPackable(x, depth + 1));
      if (isWireMap(v)) {
        const out: Record<string, unknown> = {};
        for (const k of Object.keys(v)) {
          if (k === '__proto__') throw new TypeError('map key __proto__ cannot be encoded');
          out[k] = toPackable(v[k], depth + 1);
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
  const out = newEncoder().encode(toPackable(v, 0));
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Decode one msgpack document into the model; ProtocolError on anything invalid. */
export function unpackValue(data: Uint8Array): WireValue {
  const dec = new Decoder({ useBigInt64: true, extensionCodec: noExtensions, mapKeyConverter: strKey });
  let raw: unknown;
  try {
    raw = dec.decode(data);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError(`undecodable msgpack payload (${data.length} bytes): ${(e as Error).message}`);
  }
  return fromUnpacked(raw, 0);
}

/** Encoders whose scratch buffer grew beyond this are dropped after use (no per-connection bloat). */
const KEEP_ENCODER_BYTES = 1024 * 1024;

function newEncoder(): Encoder {
  return new Encoder({ useBigInt64: true, extensionCodec: noExtensions, maxDepth: MAX_DEPTH + 2 });
}

export class M5Codec implements MessageCodec {
  readonly letter = 'M' as const;
  private encoder = newEncoder();
  private readonly decoder = new Decoder({ useBigInt64: true, extensionCodec: noExtensions, mapKeyConverter: strKey });

  encode(msg: Message): Buffer {
    const packable = toPackable([msg.msgid, msg.flags, msg.method, msg.args], 0);
    const out = this.encoder.encode(packable);
    // the encoder keeps its grown scratch buffer: after a large message start afresh
    if (out.byteLength > KEEP_ENCODER_BYTES) this.encoder = newEncoder();
    // encode() returns a copy (not a view of the encoder's scratch buffer)
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  decode(payload: Uint8Array): Message {
    let raw: unknown;
    try {
      raw = this.decoder.decode(payload);
    } catch (e) {
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError(`undecodable M5 message (${payload.length} bytes): ${(e as Error).message}`);
    }
    return messageFromTuple(fromUnpacked(raw, 0), 'M5');
  }
}
