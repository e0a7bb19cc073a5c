/**
 * Pure codecs for the FileStorage (FS30) record layouts — filestorage spec §3.
 *
 * No file access here: functions take a Buffer (and an offset) and return typed values, or
 * build Buffers. Positions and lengths are JavaScript numbers (FileStorage positions are
 * < 2^48, spec §5); oids and tids are bigints.
 *
 * Transaction record (spec §3.1), at `tpos`:
 *   tid(8) tlen(u64) status(1) ulen(u16) dlen(u16) elen(u16) user description extension
 *   data records… tlen(u64 again)
 * Data record (spec §3.4), at `pos`:
 *   oid(8) tid(8) prev(u64) tloc(u64) vlen(u16)=0 plen(u64) then plen bytes of data, or (plen 0)
 *   an 8-byte backpointer.
 */

/** Magic of files written by Python 3 ZODB: "FS30". */
export const MAGIC_FS30: Buffer = Buffer.from('FS30', 'latin1');
/**
 * Magic of files written by ZODB on Python 2: "FS21". The record layout is the FS30 one (spec §3);
 * Python 3 ZODB refuses such files. We open them read-only (FileStorage, FileReader with
 * `allowFs21`, the fs-tools) and convert them with the fs-tools command `fsconvert-fs21`.
 */
export const MAGIC_FS21: Buffer = Buffer.from('FS21', 'latin1');
/** Length of the magic; the first transaction starts here. */
export const MAGIC_LEN = 4;
/** Fixed part of a transaction header (">8sQcHHH"). */
export const TRANS_HDR_LEN = 23;
/** Fixed part of a data record header (">8s8sQQHQ"). */
export const DATA_HDR_LEN = 42;
/** Length of a backpointer-only record (header + 8-byte back). */
export const BACKPOINTER_RECORD_LEN = DATA_HDR_LEN + 8;
/** Largest position/length representable in the index format (spec §5): 2^48. */
export const MAX_POSITION = 2 ** 48;
/** Largest user / description / extension length (u16). */
export const MAX_META_LEN = 0xffff;

/** Transaction status bytes (spec §3.2). */
export const STATUS_COMMITTED = ' ';
export const STATUS_PACKED = 'p';
export const STATUS_CHECKPOINT = 'c';
export const STATUS_UNDONE = 'u';

/** Thrown by the pure decoders when bytes are not a valid record; the reader adds file and position. */
export class RecordFormatError extends Error {
  override name = 'RecordFormatError';
  /** offset inside the buffer given to the decoder */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

/** Read a u64 that must be a position/length (< 2^48 .. 2^53) as a number. */
export function readPos(buf: Buffer, offset: number): number {
  if (!(offset >= 0 && offset + 8 <= buf.length)) {
    // out of bounds: let Buffer raise its usual RangeError
    buf.readUInt32BE(offset);
    buf.readUInt32BE(offset + 4);
  }
  const hi = buf[offset]! * 0x1000000 + ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!);
  const lo = buf[offset + 4]! * 0x1000000 + ((buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!);
  if (hi >= 0x200000) throw new RecordFormatError(`u64 value too large for a position: 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`, offset);
  return hi * 0x100000000 + lo;
}

/** Scratch for readU64: 8 bytes with a DataView, so one native read makes the bigint. */
const u64Bytes = new Uint8Array(8);
const u64View = new DataView(u64Bytes.buffer);

/**
 * Read a u64 (oid, tid) as a bigint. Same value and errors as `buf.readBigUInt64BE`, faster
 * (one native DataView read; no BigInt arithmetic).
 */
export function readU64(buf: Buffer, offset: number): bigint {
  if (!(offset >= 0 && offset + 8 <= buf.length)) return buf.readBigUInt64BE(offset);
  const t = u64Bytes;
  t[0] = buf[offset]!;
  t[1] = buf[offset + 1]!;
  t[2] = buf[offset + 2]!;
  t[3] = buf[offset + 3]!;
  t[4] = buf[offset + 4]!;
  t[5] = buf[offset + 5]!;
  t[6] = buf[offset + 6]!;
  t[7] = buf[offset + 7]!;
  return u64View.getBigUint64(0);
}

const U64_LIMIT = 2n ** 64n;
const SAFE_LIMIT = 2n ** 53n;

/** Write a u64 (oid, tid) big-endian; same checks as `buf.writeBigUInt64BE`, fewer BigInt ops. */
export function writeU64(buf: Buffer, value: bigint, offset: number): void {
  if (value >= 0n && value < SAFE_LIMIT && offset >= 0 && offset + 8 <= buf.length) {
    const n = Number(value);
    const hi = Math.floor(n / 0x100000000);
    const lo = n >>> 0;
    buf[offset] = hi >>> 24;
    buf[offset + 1] = hi >>> 16;
    buf[offset + 2] = hi >>> 8;
    buf[offset + 3] = hi;
    buf[offset + 4] = lo >>> 24;
    buf[offset + 5] = lo >>> 16;
    buf[offset + 6] = lo >>> 8;
    buf[offset + 7] = lo;
    return;
  }
  if (value >= 0n && value < U64_LIMIT && offset >= 0 && offset + 8 <= buf.length) {
    const hi = Number(value >> 32n);
    const lo = Number(value & 0xffffffffn);
    buf.writeUInt32BE(hi, offset);
    buf.writeUInt32BE(lo, offset + 4);
    return;
  }
  buf.writeBigUInt64BE(value, offset); // raises Buffer's usual error
}

/** Write a position/length as a u64 big-endian. */
export function writePos(buf: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`bad position/length ${value}`);
  buf.writeUInt32BE(Math.floor(value / 0x100000000), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** Encode a position as 8 bytes. */
export function p64pos(value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writePos(b, value, 0);
  return b;
}

// ---- transaction header --------------------------------------------------------------------

/** The fixed 23-byte part of a transaction header, decoded. */
export interface TxnHeader {
  tid: bigint;
  /** record length minus the trailing 8 bytes */
  tlen: number;
  /** one character: ' ', 'p', 'c', 'u' (or anything invalid) */
  status: string;
  ulen: number;
  dlen: number;
  elen: number;
}

/** Header length including user/description/extension: 23 + ulen + dlen + elen. */
export function txnHeaderLength(h: TxnHeader): number {
  return TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
}

/** Decode the 23 fixed bytes of a transaction header at `offset`. */
export function decodeTxnHeader(buf: Buffer, offset = 0): TxnHeader {
  if (buf.length - offset < TRANS_HDR_LEN) throw new RecordFormatError(`short transaction header (${buf.length - offset} of ${TRANS_HDR_LEN} bytes)`, offset);
  return {
    tid: readU64(buf, offset),
    tlen: readPos(buf, offset + 8),
    status: String.fromCharCode(buf[offset + 16]!),
    ulen: buf.readUInt16BE(offset + 17),
    dlen: buf.readUInt16BE(offset + 19),
    elen: buf.readUInt16BE(offset + 21),
  };
}

/** Transaction metadata as stored (raw bytes). */
export interface TxnMeta {
  user: Buffer;
  description: Buffer;
  extension: Buffer;
}

/**
 * Encode a full transaction header (fixed part + user + description + extension).
 * Throws RangeError when a metadata field exceeds 65535 bytes (spec §3.1).
 */
export function encodeTxnHeader(tid: bigint, tlen: number, status: string, meta: TxnMeta): Buffer {
  checkMetaLengths(meta);
  if (status.length !== 1) throw new RangeError(`status must be one character, got ${JSON.stringify(status)}`);
  const hlen = TRANS_HDR_LEN + meta.user.length + meta.description.length + meta.extension.length;
  const b = Buffer.allocUnsafe(hlen);
  b.writeBigUInt64BE(tid, 0);
  writePos(b, tlen, 8);
  b[16] = status.charCodeAt(0) & 0xff;
  b.writeUInt16BE(meta.user.length, 17);
  b.writeUInt16BE(meta.description.length, 19);
  b.writeUInt16BE(meta.extension.length, 21);
  let o = TRANS_HDR_LEN;
  o += meta.user.copy(b, o);
  o += meta.description.copy(b, o);
  meta.extension.copy(b, o);
  return b;
}

/** The reason a metadata field cannot be stored, or null (Python's FileStorageError texts). */
export function metaLengthProblem(meta: TxnMeta): string | null {
  if (meta.user.length > MAX_META_LEN) return 'user name too long';
  if (meta.description.length > MAX_META_LEN) return 'description too long';
  if (meta.extension.length > MAX_META_LEN) return 'too much extension data';
  return null;
}

function checkMetaLengths(meta: TxnMeta): void {
  const p = metaLengthProblem(meta);
  if (p) throw new RangeError(p);
}

/** Split user/description/extension out of a full header buffer (`buf` starts at the header). */
export function decodeTxnMeta(h: TxnHeader, buf: Buffer, offset = 0): TxnMeta {
  const need = txnHeaderLength(h);
  if (buf.length - offset < need) throw new RecordFormatError(`short transaction metadata (${buf.length - offset} of ${need} bytes)`, offset);
  let o = offset + TRANS_HDR_LEN;
  const user = Buffer.from(buf.subarray(o, o + h.ulen));
  o += h.ulen;
  const description = Buffer.from(buf.subarray(o, o + h.dlen));
  o += h.dlen;
  const extension = Buffer.from(buf.subarray(o, o + h.elen));
  return { user, description, extension };
}

// ---- data record ---------------------------------------------------------------------------

/** The fixed 42-byte part of a data record, decoded. */
export interface DataHeader {
  oid: bigint;
  tid: bigint;
  /** position of the previous record of this oid, or 0 */
  prev: number;
  /** position of the enclosing transaction header */
  tloc: number;
  /** must be 0 */
  vlen: number;
  /** length of the pickle; 0 means an 8-byte backpointer follows */
  plen: number;
}

/** Decode the 42 fixed bytes of a data record at `offset` (does not check vlen). */
export function decodeDataHeader(buf: Buffer, offset = 0): DataHeader {
  if (buf.length - offset < DATA_HDR_LEN) throw new RecordFormatError(`short data record header (${buf.length - offset} of ${DATA_HDR_LEN} bytes)`, offset);
  return {
    oid: readU64(buf, offset),
    tid: readU64(buf, offset + 8),
    prev: readPos(buf, offset + 16),
    tloc: readPos(buf, offset + 24),
    vlen: buf.readUInt16BE(offset + 32),
    plen: readPos(buf, offset + 34),
  };
}

/** Total length of a data record given its header: 42 + plen, or 50 for a backpointer record. */
export function dataRecordLength(h: DataHeader): number {
  return h.plen > 0 ? DATA_HDR_LEN + h.plen : BACKPOINTER_RECORD_LEN;
}

/** Write the 42 fixed bytes of a data record into `buf` at `offset`. */
export function writeDataHeader(buf: Buffer, offset: number, oid: bigint, tid: bigint, prev: number, tloc: number, plen: number): void {
  writeU64(buf, oid, offset);
  writeU64(buf, tid, offset + 8);
  writePos(buf, prev, offset + 16);
  writePos(buf, tloc, offset + 24);
  buf.writeUInt16BE(0, offset + 32);
  writePos(buf, plen, offset + 34);
}

/**
 * Encode a complete data record: with `data` (non-empty) a data record; with `data` null a
 * backpointer record pointing at `back` (0 = zero backpointer: object deleted / creation undone).
 */
export function encodeDataRecord(oid: bigint, tid: bigint, prev: number, tloc: number, data: Buffer | null, back = 0): Buffer {
  if (data !== null) {
    if (data.length === 0) throw new RangeError('a data record needs non-empty data (use a backpointer for none)');
    const b = Buffer.allocUnsafe(DATA_HDR_LEN + data.length);
    writeDataHeader(b, 0, oid, tid, prev, tloc, data.length);
    data.copy(b, DATA_HDR_LEN);
    return b;
  }
  const b = Buffer.allocUnsafe(BACKPOINTER_RECORD_LEN);
  writeDataHeader(b, 0, oid, tid, prev, tloc, 0);
  writePos(b, back, DATA_HDR_LEN);
  return b;
}

/** Check the magic at the start of a file: 'ok' (FS30), 'fs21' (Python 2 file) or 'bad'. */
export function checkMagic(head: Buffer): 'ok' | 'fs21' | 'bad' {
  if (head.length >= 4 && head.subarray(0, 4).equals(MAGIC_FS30)) return 'ok';
  if (head.length >= 4 && head.subarray(0, 4).equals(MAGIC_FS21)) return 'fs21';
  return 'bad';
}

/** The two data file formats: identical record layouts, different magic (spec §3). */
export type FileFormat = 'FS30' | 'FS21';

/** The format named by the first 4 bytes of a file, or null for anything else. */
export function fileFormat(head: Buffer): FileFormat | null {
  const m = checkMagic(head);
  return m === 'ok' ? 'FS30' : m === 'fs21' ? 'FS21' : null;
}

/**
 * Why an FS21 file cannot be opened for writing, and what to do instead (one sentence, used by
 * FileStorage and the tools so that operators always read the same advice).
 */
export const FS21_CONVERSION_HINT =
  'FS21 file written by ZODB on Python 2: it can only be opened read-only; ' +
  'convert it with `fsconvert-fs21 IN OUT` (a new FS30 copy, pickles unchanged), ' +
  'then convert the pickles with zodbupdate --convert-py3';

// ---- undo ids ---------------------------------------------------------------------------------

/** undoLog id of a transaction: base64 of the 8 tid bytes, no newline (spec §2.3). */
export function tidToUndoId(tid: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(tid, 0);
  return Buffer.from(b.toString('base64'), 'latin1');
}

/** Inverse of tidToUndoId; null when the id is not base64 of 8 bytes. */
export function undoIdToTid(id: Buffer | string): bigint | null {
  const s = typeof id === 'string' ? id : id.toString('latin1');
  if (!/^[A-Za-z0-9+/]{11}=$/.test(s.trim())) return null;
  const b = Buffer.from(s.trim(), 'base64');
  if (b.length !== 8) return null;
  return b.readBigUInt64BE(0);
}
