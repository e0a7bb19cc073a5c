/**
 * oids and tids: 8-byte big-endian unsigned integers. In the API they are `bigint`s (usable as
 * Map keys, ordered by value); on the wire and on disk they are 8-byte strings, converted with
 * `p64` / `u64` exactly as ZODB.utils does.
 */
export type Oid = bigint;
export type Tid = bigint;

/** The root object's oid and the "no tid" value. */
export const z64: bigint = 0n;
/** ZODB.utils.maxtid: the largest tid (7f ff ff ff ff ff ff ff). */
export const maxtid: bigint = 0x7fffffffffffffffn;
const U64_MAX = 0xffffffffffffffffn;

/** Pack an unsigned 64-bit value into 8 big-endian bytes. */
export function p64(v: bigint): Buffer {
  if (v < 0n || v > U64_MAX) throw new RangeError(`p64: value out of range: ${v}`);
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v, 0);
  return b;
}

/** Unpack 8 big-endian bytes (at `offset`) into an unsigned 64-bit value. */
export function u64(b: Uint8Array, offset = 0): bigint {
  if (b.length - offset < 8) throw new RangeError(`u64: need 8 bytes at offset ${offset}, have ${b.length - offset}`);
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return buf.readBigUInt64BE(offset);
}

/** 16 lower-case hex digits, as ZODB tools print oids and tids. */
export function toHex(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/** Parse 16 hex digits (or fewer, or with a 0x prefix) into an oid/tid. */
export function fromHex(s: string): bigint {
  const t = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (!/^[0-9a-fA-F]{1,16}$/.test(t)) throw new RangeError(`not a hex oid/tid: ${JSON.stringify(s)}`);
  return BigInt('0x' + t);
}

/** ZODB.utils.oid_repr: "0x" followed by the shortest even number of hex digits (0x00 for z64). */
export function oidRepr(v: bigint): string {
  let h = v.toString(16);
  if (h.length % 2) h = '0' + h;
  return '0x' + h;
}

/** Compare two ids (for sorting). */
export function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
