/**
 * Cache trace records (client-cache spec §9.2, §9.3). Pure: bytes in, values out.
 *
 *   0  i32  timestamp (whole seconds since the epoch, signed)
 *   4  i32  encoded = dlen * 256 + code
 *   8  u16  oid length (8, or 0 for the restart record)
 *  10  8    "start tid" field
 *  18  8    "end tid" field
 *  26  oid
 */

/** Size of the fixed part of a trace record. */
export const TRACE_FIXED_SIZE = 26;
/** Largest dlen the 23-bit field can hold (spec §12.4). */
export const TRACE_MAX_DLEN = 2 ** 23 - 1;

export const TraceCode = {
  RESTART: 0x00,
  INVALIDATE_MISS: 0x10,
  INVALIDATE_HIT_VERSION: 0x1a,
  INVALIDATE_HIT_SAVING_NONCURRENT: 0x1c,
  INVALIDATE_HIT_DISCARDING: 0x1e,
  LOAD_MISS: 0x20,
  LOAD_HIT: 0x22,
  LOAD_NONCURRENT_MISS: 0x24,
  LOAD_NONCURRENT_HIT: 0x26,
  STORE_VERSION: 0x50,
  STORE_CURRENT: 0x52,
  STORE_NONCURRENT: 0x54,
} as const;

/** The names cache_stats prints for each (masked) code. */
export const TRACE_CODE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, '_setup_trace (initialization)'],
  [0x10, 'invalidate (miss)'],
  [0x1a, 'invalidate (hit, version)'],
  [0x1c, 'invalidate (hit, saving non-current)'],
  [0x1e, 'invalidate (hit, discarding current or non-current)'],
  [0x20, 'load (miss)'],
  [0x22, 'load (hit)'],
  [0x24, 'load (non-current, miss)'],
  [0x26, 'load (non-current, hit)'],
  [0x50, 'store (version)'],
  [0x52, 'store (current, non-version)'],
  [0x54, 'store (non-current)'],
]);

/** Encode one record with an 8-byte oid (or none, for the restart record) into `out` at `at`; returns bytes written. */
export function encodeTraceRecord(
  out: Buffer,
  at: number,
  ts: number,
  code: number,
  oid: bigint | null,
  start: bigint,
  end: bigint,
  dlen: number,
): number {
  const n = TRACE_FIXED_SIZE + (oid === null ? 0 : 8);
  if (out.length - at < n) throw new RangeError(`trace buffer too small: need ${n} bytes at ${at}`);
  // Timestamps after 2038 wrap to signed 32 bits rather than fail (spec §12.4).
  out.writeInt32BE(Math.trunc(ts) | 0, at);
  const d = Math.min(Math.max(0, dlen), TRACE_MAX_DLEN);
  out.writeInt32BE(d * 256 + (code & 0xff), at + 4);
  out.writeUInt16BE(oid === null ? 0 : 8, at + 8);
  out.writeBigUInt64BE(start, at + 10);
  out.writeBigUInt64BE(end, at + 18);
  if (oid !== null) out.writeBigUInt64BE(oid, at + 26);
  return n;
}

/** A decoded trace record as the analysis tools see it. */
export interface TraceRecord {
  ts: number;
  /** data length (bits 8..30 of the encoded field) */
  dlen: number;
  /** the code with the version and legacy bits masked off (code & 0x7e) */
  code: number;
  /** the version bit (code & 0x80) was set */
  version: boolean;
  /** raw oid bytes (8 bytes normally, empty for the restart record) */
  oid: Buffer;
  /** raw start/end fields */
  start: Buffer;
  end: Buffer;
}

/** Decode the fixed 26-byte part at `at`: [ts, encoded, oidlen]. */
export function decodeTraceFixed(b: Buffer, at: number): { ts: number; encoded: number; oidlen: number } {
  return { ts: b.readInt32BE(at), encoded: b.readInt32BE(at + 4), oidlen: b.readUInt16BE(at + 8) };
}

/** Split the encoded field into dlen, masked code and version flag as the tools do. */
export function splitEncoded(encoded: number): { dlen: number; code: number; version: boolean } {
  const raw = encoded & 0xff;
  return { dlen: (encoded & 0x7fffff00) >>> 8, code: raw & 0x7e, version: (raw & 0x80) !== 0 };
}
