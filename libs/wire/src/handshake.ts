/**
 * Handshake and version negotiation (zeo5-protocol §4). Pure helpers over payloads (the frames
 * themselves are built with framing.ts).
 */
import { ProtocolError } from './errors.ts';
import { shortRepr } from './values.ts';

/** 'M' = msgpack (M5), 'Z' = pickle (Z5). */
export type EncodingLetter = 'M' | 'Z';

/** The only protocol version of ZEO 5 / 6. */
export const PROTOCOL_VERSION = '5';
/** The 4-byte status probe a monitor sends instead of a handshake answer (§4.4). */
export const RUOK = Buffer.from('ruok', 'ascii');

/** The server announcement payload: `M5` (4d35) or `Z5` (5a35) (§4.1, S-1). */
export function announcement(letter: EncodingLetter): Buffer {
  if (letter !== 'M' && letter !== 'Z') throw new RangeError(`encoding letter must be 'M' or 'Z', got ${String(letter)}`);
  return Buffer.from(letter + PROTOCOL_VERSION, 'ascii');
}

export type ClientHandshake = { kind: 'ruok' } | { kind: 'protocol'; letter: EncodingLetter };

/**
 * Server side (§4.3, S-2/S-3): classify the client's first message. `ruok` is the status probe;
 * `M5`/`Z5` select the encoding by the client's letter (not the server's announcement); anything
 * else is a bad handshake (ProtocolError; the server closes without a reply). Letters not in
 * `accept` (e.g. 'Z' on a server without pickle support) are refused the same way.
 */
export function parseClientHandshake(payload: Uint8Array, accept: readonly EncodingLetter[] = ['M', 'Z']): ClientHandshake {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (b.equals(RUOK)) return { kind: 'ruok' };
  if (b.length === 2 && b[1] === 0x35) {
    const letter = String.fromCharCode(b[0]!);
    if ((letter === 'M' || letter === 'Z') && accept.includes(letter)) return { kind: 'protocol', letter };
  }
  throw new ProtocolError(`bad handshake ${shortRepr(b)} (expected M5${accept.includes('Z') ? ', Z5' : ''} or ruok)`);
}

/** Byte-string comparison as Python orders bytes (lexicographic, shorter prefix first). */
function bytesMin(a: Buffer, b: Buffer): Buffer {
  return Buffer.compare(a, b) <= 0 ? a : b;
}

/**
 * Client side (§4.2, C-1): the answer to a server announcement. The version is
 * `min(offered, b"5")` compared byte-wise and must be `5`; the client mirrors the server's
 * letter when it supports it. A client without pickle support (`supported` lacking 'Z') answers
 * `M5` to a `Z5` announcement (§4.3 MAY; likewise `Z5` to `M5` for a pickle-only client, since
 * servers use the client's letter). ProtocolError when no answer is possible.
 */
export function clientAnswer(announced: Uint8Array, supported: readonly EncodingLetter[] = ['M', 'Z']): { answer: Buffer; letter: EncodingLetter } {
  const b = Buffer.from(announced.buffer, announced.byteOffset, announced.byteLength);
  if (b.length < 1) throw new ProtocolError('empty server announcement');
  const letter = String.fromCharCode(b[0]!);
  const version = bytesMin(b.subarray(1), Buffer.from(PROTOCOL_VERSION, 'ascii'));
  if (version.toString('latin1') !== PROTOCOL_VERSION) {
    throw new ProtocolError(`server announced unsupported protocol ${shortRepr(b)}`);
  }
  if (letter !== 'M' && letter !== 'Z') throw new ProtocolError(`server announced unknown encoding ${shortRepr(b)}`);
  let use: EncodingLetter = letter;
  if (!supported.includes(use)) {
    // the server uses the client's letter (§4.3), so answer in one we speak (M preferred)
    const other = supported.includes('M') ? 'M' : supported.includes('Z') ? 'Z' : undefined;
    if (!other) throw new ProtocolError(`server announced ${shortRepr(b)}, which this client cannot speak`);
    use = other;
  }
  return { answer: announcement(use), letter: use };
}

/** Python `json.dumps` default formatting: ", " / ": " separators, non-ASCII escaped. */
export function pythonJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    return String(v);
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  }
  if (Array.isArray(v)) return '[' + v.map(pythonJson).join(', ') + ']';
  if (typeof v === 'object') {
    return '{' + Object.entries(v as object).map(([k, x]) => `${pythonJson(k)}: ${pythonJson(x)}`).join(', ') + '}';
  }
  throw new TypeError(`cannot JSON-encode a ${typeof v}`);
}

/** The payload answering `ruok`: ASCII JSON `{storage_name: server_status map}` (§4.4, S-3). */
export function encodeRuokReply(status: Record<string, Record<string, unknown>>): Buffer {
  return Buffer.from(pythonJson(status), 'ascii');
}

/** Parse a `ruok` status payload. */
export function decodeRuokReply(payload: Uint8Array): Record<string, Record<string, unknown>> {
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError(`ruok status is not JSON: ${(e as Error).message}: ${shortRepr(text)}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ProtocolError(`ruok status is not a JSON object: ${shortRepr(text)}`);
  return v as Record<string, Record<string, unknown>>;
}
