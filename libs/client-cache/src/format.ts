/**
 * The `.zec` cache file format (client-cache spec §3). Pure: bytes in, values out.
 *
 *   header (12 bytes): "ZEC3" + last tid (8 bytes)
 *   then blocks tiling [12, maxsize):
 *     'a' + u32 size + oid + start_tid + end_tid (z64 = current) + u16 0 + u32 dlen + data + oid
 *     'f' + u32 size           free block of >= 5 bytes
 *     '1' .. '4'               free block of exactly that many bytes
 */

export const MAGIC = Buffer.from('ZEC3', 'latin1');
export const HEADER_SIZE = 12;
/** 43: the bytes an allocated record takes besides its data. */
export const RECORD_OVERHEAD = 43;
/** The offset of the data inside an allocated record. */
export const DATA_OFFSET = 35;
/** Largest block size written (except transiently during a store). */
export const MAX_BLOCK_SIZE = 2 ** 31 - 1;

export const STATUS_ALLOCATED = 0x61; // 'a'
export const STATUS_FREE = 0x66; // 'f'
export const STATUS_DIGIT_1 = 0x31; // '1'
export const STATUS_DIGIT_4 = 0x34; // '4'
/** The byte upstream writes at maxsize - 1 whenever it grows the file (spec §14.2). */
export const GROW_MARKER = 0x78; // 'x'

/** The header of a free block of `size` bytes: 'f' + u32 for size >= 5, else the digit. */
export function freeBlockHeader(size: number): Buffer {
  if (!Number.isInteger(size) || size < 1 || size > 0xffffffff) throw new RangeError(`bad free block size ${size}`);
  if (size <= 4) return Buffer.from([0x30 + size]);
  const b = Buffer.allocUnsafe(5);
  b[0] = STATUS_FREE;
  b.writeUInt32BE(size, 1);
  return b;
}

/** Free-block headers tiling `length` bytes starting at `start`, each block at most MAX_BLOCK_SIZE. */
export function freeTiling(start: number, length: number): Array<{ offset: number; header: Buffer }> {
  const out: Array<{ offset: number; header: Buffer }> = [];
  let ofs = start;
  let left = length;
  while (left > 0) {
    const n = Math.min(MAX_BLOCK_SIZE, left);
    out.push({ offset: ofs, header: freeBlockHeader(n) });
    ofs += n;
    left -= n;
  }
  return out;
}

/**
 * Encode a complete allocated record (43 + data.length bytes). `end` null = current (z64 on disk).
 */
export function encodeRecord(oid: bigint, start: bigint, end: bigint | null, data: Uint8Array): Buffer {
  const size = RECORD_OVERHEAD + data.length;
  const b = Buffer.allocUnsafe(size);
  b[0] = STATUS_ALLOCATED;
  b.writeUInt32BE(size, 1);
  b.writeBigUInt64BE(oid, 5);
  b.writeBigUInt64BE(start, 13);
  b.writeBigUInt64BE(end ?? 0n, 21);
  b.writeUInt16BE(0, 29);
  b.writeUInt32BE(data.length, 31);
  b.set(data, DATA_OFFSET);
  b.writeBigUInt64BE(oid, DATA_OFFSET + data.length);
  return b;
}

/** The fields of an allocated record header (the first 35 bytes). */
export interface RecordHeader {
  size: number;
  oid: bigint;
  start: bigint;
  /** null when current (z64 on disk) */
  end: bigint | null;
  versionLength: number;
  dlen: number;
}

/** Decode the first 35 bytes of an allocated record; the caller checks status byte 'a'. */
export function decodeRecordHeader(b: Buffer, at = 0): RecordHeader {
  if (b.length - at < DATA_OFFSET) throw new RangeError(`record header needs ${DATA_OFFSET} bytes, have ${b.length - at}`);
  const end = b.readBigUInt64BE(at + 21);
  return {
    size: b.readUInt32BE(at + 1),
    oid: b.readBigUInt64BE(at + 5),
    start: b.readBigUInt64BE(at + 13),
    end: end === 0n ? null : end,
    versionLength: b.readUInt16BE(at + 29),
    dlen: b.readUInt32BE(at + 31),
  };
}

/** A new file's header: magic + last tid. */
export function encodeHeader(lastTid: bigint): Buffer {
  const b = Buffer.allocUnsafe(HEADER_SIZE);
  MAGIC.copy(b, 0);
  b.writeBigUInt64BE(lastTid, 4);
  return b;
}
