/**
 * Positional reading of a FileStorage data file: transaction headers forward and backward,
 * data records, backpointer chains. Every problem is reported as a CorruptedDataError /
 * CorruptedError naming the file and the byte position (spec §3.5 invariants).
 *
 * Reads use fs.readSync with an explicit position, so one file descriptor can be shared with
 * a writer that appends (the reader never trusts bytes past the `end` it is given).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { POSKeyError } from '@zeo-ts/storage';
import { CorruptedDataError, CorruptedError, FileStorageFormatError } from './errors.ts';
import {
  BACKPOINTER_RECORD_LEN,
  DATA_HDR_LEN,
  MAGIC_LEN,
  FS21_CONVERSION_HINT,
  RecordFormatError,
  STATUS_CHECKPOINT,
  TRANS_HDR_LEN,
  checkMagic,
  decodeDataHeader,
  decodeTxnHeader,
  decodeTxnMeta,
  readPos,
  readU64,
  type DataHeader,
  type FileFormat,
  type TxnHeader,
  type TxnMeta,
} from './format.ts';

/** A transaction header read from the file, with its position and derived positions. */
export interface TxnHeaderAt extends TxnHeader {
  /** position of the header */
  pos: number;
  /** header length (23 + ulen + dlen + elen); first record at pos + hlen */
  hlen: number;
  /** pos + tlen: where the redundant length is; the next transaction is at end + 8 */
  end: number;
}

/** A data record read from the file. */
export interface DataRecordAt extends DataHeader {
  pos: number;
  /** the pickle when plen > 0, else null */
  data: Buffer | null;
  /** backpointer when plen == 0 (0 = object deleted / creation undone); 0 for data records */
  back: number;
  /** position just after this record */
  next: number;
}

/**
 * A bounded cache of fixed-size blocks of *committed* data (immutable until a pack replaces the
 * file), so hot loads need no system call. One preallocated slab, FIFO replacement; `maxBytes`
 * bounds memory (the slab grows on demand up to it).
 */
export class BlockCache {
  readonly blockSize: number;
  readonly maxBlocks: number;
  private readonly slots = new Map<number, number>();
  private owner: Int32Array;
  private slab: Buffer;
  private nextSlot = 0;
  hits = 0;
  misses = 0;
  constructor(maxBytes: number, blockSize = 8192) {
    if (!(blockSize >= 64 && (blockSize & (blockSize - 1)) === 0)) throw new RangeError(`block size must be a power of two >= 64, got ${blockSize}`);
    this.blockSize = blockSize;
    this.maxBlocks = Math.max(1, Math.floor(maxBytes / blockSize));
    const initial = Math.min(this.maxBlocks, 256);
    this.slab = Buffer.allocUnsafe(initial * blockSize);
    this.owner = new Int32Array(initial).fill(-1);
  }
  /** offset of the cached block in `buffer`, or -1 */
  find(index: number): number {
    const s = this.slots.get(index);
    if (s === undefined) return -1;
    this.hits++;
    return s * this.blockSize;
  }
  get buffer(): Buffer {
    return this.slab;
  }
  /** a slot for block `index` (evicting the oldest when full); returns its offset in `buffer` */
  allocate(index: number): number {
    const cap = this.owner.length;
    if (this.nextSlot >= cap && cap < this.maxBlocks) {
      const ncap = Math.min(this.maxBlocks, cap * 2);
      const slab = Buffer.allocUnsafe(ncap * this.blockSize);
      this.slab.copy(slab, 0, 0, cap * this.blockSize);
      const owner = new Int32Array(ncap).fill(-1);
      owner.set(this.owner);
      this.slab = slab;
      this.owner = owner;
    }
    const slot = this.nextSlot % this.owner.length;
    this.nextSlot = slot + 1;
    const prev = this.owner[slot]!;
    if (prev >= 0) this.slots.delete(prev);
    this.owner[slot] = index;
    this.slots.set(index, slot);
    this.misses++;
    return slot * this.blockSize;
  }
  /** forget a block whose read failed */
  drop(index: number): void {
    const s = this.slots.get(index);
    if (s !== undefined) {
      this.slots.delete(index);
      this.owner[s] = -1;
    }
  }
  clear(): void {
    this.slots.clear();
    this.owner.fill(-1);
  }
  get size(): number {
    return this.slots.size;
  }
}

/** Options of FileReader.open. */
export interface FileReaderOpenOptions {
  /** also accept an FS21 (Python 2) file; the caller must not write to it (default false) */
  allowFs21?: boolean;
}

/** How a forward walk should treat a bad transaction: throw, or stop quietly. */
export type WalkMode = 'strict' | 'lenient';

export class FileReader {
  readonly fd: number;
  /** file name used in error messages */
  readonly name: string;
  private readonly ownsFd: boolean;
  /** the magic found by open()/checkMagic() (FS30 until checked) */
  format: FileFormat = 'FS30';
  private readonly hdr = Buffer.allocUnsafe(BACKPOINTER_RECORD_LEN);
  private readonly scratch = Buffer.allocUnsafe(4096);

  private cache: BlockCache | null = null;
  private committedEnd: () => number = () => 0;

  constructor(fd: number, name: string, ownsFd = false) {
    this.fd = fd;
    this.name = name;
    this.ownsFd = ownsFd;
  }

  /**
   * Serve record reads below `committedEnd()` from a block cache. Only blocks lying entirely
   * below the committed end are cached, so bytes that may still change (a voted transaction,
   * a truncated tail) never are.
   */
  useCache(cache: BlockCache, committedEnd: () => number): void {
    this.cache = cache;
    this.committedEnd = committedEnd;
  }

  private atBuf: Buffer = this.hdr;
  private atOff = 0;

  /**
   * Make `len` (<= 50) bytes at `pos` available at this.atBuf/this.atOff, from the block cache
   * when they lie in one committed block, else by a read into the small header buffer.
   * Returns the number of bytes available (less than `len` only at the end of the file).
   */
  private at(pos: number, len: number): number {
    const c = this.cache;
    if (c !== null) {
      const bs = c.blockSize;
      const index = Math.floor(pos / bs);
      const off = pos - index * bs;
      if (off + len <= bs) {
        const o = this.block(index);
        if (o >= 0) {
          this.atBuf = c.buffer;
          this.atOff = o + off;
          return len;
        }
      }
    }
    this.atBuf = this.hdr;
    this.atOff = 0;
    return this.readInto(this.hdr, len, pos);
  }

  /** Offset in the cache slab of a committed block (read on a miss); -1 when not fully committed. */
  private block(index: number): number {
    const c = this.cache!;
    const hit = c.find(index);
    if (hit >= 0) return hit;
    const bs = c.blockSize;
    if ((index + 1) * bs > this.committedEnd()) return -1;
    const off = c.allocate(index);
    const buf = c.buffer;
    let got = 0;
    while (got < bs) {
      const n = readSync(this.fd, buf, off + got, bs - got, index * bs + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== bs) {
      c.drop(index);
      return -1;
    }
    return off;
  }

  /**
   * Open `path` read-only and check its magic: FileStorageFormatError unless it is FS30, or
   * FS21 (a Python 2 file, same record layout) when `allowFs21` is set. `format` tells which.
   */
  static open(path: string, options: FileReaderOpenOptions = {}): FileReader {
    const fd = openSync(path, 'r');
    const r = new FileReader(fd, path, true);
    try {
      r.format = r.checkMagic(options.allowFs21 ?? false);
    } catch (e) {
      r.close();
      throw e;
    }
    return r;
  }

  close(): void {
    if (this.ownsFd) closeSync(this.fd);
  }

  /** Physical size of the file. */
  size(): number {
    return fstatSync(this.fd).size;
  }

  /**
   * Throw FileStorageFormatError unless the file starts with FS30 (or FS21 when `allowFs21`);
   * returns the format found.
   */
  checkMagic(allowFs21 = false): FileFormat {
    const b = Buffer.alloc(MAGIC_LEN);
    const n = readSync(this.fd, b, 0, MAGIC_LEN, 0);
    const m = checkMagic(b.subarray(0, n));
    if (m === 'fs21') {
      if (allowFs21) return 'FS21';
      throw new FileStorageFormatError(this.name, 0, `invalid file header: ${FS21_CONVERSION_HINT}`);
    }
    if (m !== 'ok') throw new FileStorageFormatError(this.name, 0, 'invalid file header (not FS30)');
    return 'FS30';
  }

  /** Read up to `len` bytes at `pos` into `buf` (from 0); returns the count read. */
  readInto(buf: Buffer, len: number, pos: number): number {
    let got = 0;
    // bounded: each iteration either reads > 0 bytes or stops
    while (got < len) {
      const n = readSync(this.fd, buf, got, len - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  /** Read exactly `len` bytes at `pos`; CorruptedDataError naming `what` when the file is shorter. */
  readExact(pos: number, len: number, what = 'data'): Buffer {
    const b = Buffer.allocUnsafe(len);
    const n = this.readInto(b, len, pos);
    if (n !== len) throw new CorruptedDataError(this.name, pos, `short read of ${what} (${n} of ${len} bytes)`);
    return b;
  }

  /** The transaction header at `pos` (fixed part only). Checks tlen >= hlen. */
  readTxnHeader(pos: number): TxnHeaderAt {
    const n = this.at(pos, TRANS_HDR_LEN);
    if (n !== TRANS_HDR_LEN) throw new CorruptedError(this.name, pos, `truncated transaction header (${n} of ${TRANS_HDR_LEN} bytes)`);
    let h: TxnHeader;
    try {
      h = decodeTxnHeader(this.atBuf, this.atOff);
    } catch (e) {
      throw this.wrap(e, pos, 'bad transaction header');
    }
    const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
    if (h.tlen < hlen) throw new CorruptedError(this.name, pos, `invalid transaction header (tlen ${h.tlen} < header length ${hlen})`);
    return { ...h, pos, hlen, end: pos + h.tlen };
  }

  /** user, description and extension of a transaction. */
  readTxnMeta(h: TxnHeaderAt): TxnMeta {
    const b = this.readExact(h.pos, h.hlen, 'transaction metadata');
    return decodeTxnMeta(h, b, 0);
  }

  /** The 8-byte redundant length at `pos` (end of a transaction). */
  readPosAt(pos: number, what = 'length'): number {
    const n = this.at(pos, 8);
    if (n !== 8) throw new CorruptedError(this.name, pos, `short read of ${what}`);
    try {
      return readPos(this.atBuf, this.atOff);
    } catch (e) {
      throw this.wrap(e, pos, `bad ${what}`);
    }
  }

  /**
   * A complete, validated transaction at `pos` within `[.., limit)`: header, redundant length.
   * Throws CorruptedError naming the position for any inconsistency.
   */
  readTxn(pos: number, limit: number): TxnHeaderAt {
    const h = this.readTxnHeader(pos);
    if (h.end + 8 > limit) throw new CorruptedError(this.name, pos, `transaction extends past the end of data (${h.end + 8} > ${limit})`);
    const rtl = this.readPosAt(h.end, 'redundant transaction length');
    if (rtl !== h.tlen) throw new CorruptedError(this.name, h.end, `redundant transaction length ${rtl} != ${h.tlen} of the transaction at ${pos}`);
    return h;
  }

  /** The transaction ending just before `pos` (a transaction boundary > 4), validated; null at the start. */
  txnBefore(pos: number): TxnHeaderAt | null {
    if (pos <= MAGIC_LEN) return null;
    const tlen = this.readPosAt(pos - 8, 'redundant transaction length');
    const tpos = pos - 8 - tlen;
    if (tpos < MAGIC_LEN) throw new CorruptedError(this.name, pos - 8, `redundant transaction length ${tlen} points before the file start`);
    const h = this.readTxnHeader(tpos);
    if (h.tlen !== tlen) throw new CorruptedError(this.name, tpos, `transaction length ${h.tlen} != redundant length ${tlen} at ${pos - 8}`);
    return h;
  }

  /**
   * Walk committed transactions forward from `start` to `end` (a known-good end of data).
   * Stops before a 'c' transaction. In 'strict' mode damage throws; in 'lenient' mode the walk
   * stops at it.
   */
  *transactions(start: number, end: number, mode: WalkMode = 'strict'): Generator<TxnHeaderAt> {
    let pos = start;
    let guard = 0;
    while (pos < end) {
      if (++guard > Number.MAX_SAFE_INTEGER) break;
      let h: TxnHeaderAt;
      try {
        h = this.readTxn(pos, end);
      } catch (e) {
        if (mode === 'lenient') return;
        throw e;
      }
      if (h.status === STATUS_CHECKPOINT) return;
      yield h;
      pos = h.end + 8;
    }
  }

  /** Walk transactions backward from `end` (a transaction boundary) down to `stopAt` (default 4). */
  *transactionsBackward(end: number, stopAt = MAGIC_LEN): Generator<TxnHeaderAt> {
    let pos = end;
    while (pos > stopAt) {
      const h = this.txnBefore(pos);
      if (!h) return;
      if (h.pos >= pos) throw new CorruptedError(this.name, pos, 'backward walk did not move');
      yield h;
      pos = h.pos;
    }
  }

  /** The fixed header of the data record at `pos` (no data). Rejects vlen != 0. */
  readDataHeader(pos: number): DataHeader {
    const n = this.at(pos, DATA_HDR_LEN);
    if (n !== DATA_HDR_LEN) throw new CorruptedDataError(this.name, pos, `truncated data record header (${n} of ${DATA_HDR_LEN} bytes)`);
    let h: DataHeader;
    try {
      h = decodeDataHeader(this.atBuf, this.atOff);
    } catch (e) {
      throw this.wrap(e, pos, 'bad data record header');
    }
    if (h.vlen !== 0) throw new CorruptedDataError(this.name, pos, `non-zero version length ${h.vlen}; versions aren't supported`);
    return h;
  }

  /**
   * The data record at `pos` with its data or backpointer. One positional read of up to 4 KiB
   * usually brings header and data together (the load path's single syscall).
   */
  readRecord(pos: number): DataRecordAt {
    const c = this.cache;
    if (c !== null) {
      const bs = c.blockSize;
      const index = Math.floor(pos / bs);
      const off = pos - index * bs;
      if (off + BACKPOINTER_RECORD_LEN <= bs) {
        const at = this.block(index);
        if (at >= 0) return this.decodeRecord(c.buffer, at + off, bs - off, pos);
      }
    }
    const b = this.scratch;
    const n = readSync(this.fd, b, 0, b.length, pos);
    if (n < DATA_HDR_LEN) {
      // a short read: report it through the exact path
      this.readDataHeader(pos);
    }
    return this.decodeRecord(b, 0, n, pos);
  }

  /** Decode the record at `pos` whose first `avail` bytes are in `b` at `off`. */
  private decodeRecord(b: Buffer, off: number, avail: number, pos: number): DataRecordAt {
    let oid: bigint, tid: bigint, prev: number, tloc: number, vlen: number, plen: number;
    if (avail < DATA_HDR_LEN) throw new CorruptedDataError(this.name, pos, `truncated data record header (${avail} of ${DATA_HDR_LEN} bytes)`);
    try {
      oid = readU64(b, off);
      tid = readU64(b, off + 8);
      prev = readPos(b, off + 16);
      tloc = readPos(b, off + 24);
      vlen = b.readUInt16BE(off + 32);
      plen = readPos(b, off + 34);
    } catch (e) {
      throw this.wrap(e, pos, 'bad data record header');
    }
    if (vlen !== 0) throw new CorruptedDataError(this.name, pos, `non-zero version length ${vlen}; versions aren't supported`);
    if (plen > 0) {
      let data: Buffer;
      if (DATA_HDR_LEN + plen <= avail) {
        data = Buffer.allocUnsafe(plen);
        data.set(b.subarray(off + DATA_HDR_LEN, off + DATA_HDR_LEN + plen));
      } else {
        // the data runs past what we have: read it. A large length is checked against the file
        // size before anything is allocated (a corrupt length must not allocate); for a small
        // one a short read tells the same (saves an fstat per record straddling a cache block).
        if (plen > 1 << 20) {
          const size = this.size();
          if (pos + DATA_HDR_LEN + plen > size) throw new CorruptedDataError(this.name, pos, `data length ${plen} runs past the end of the file (${size})`);
        }
        data = Buffer.allocUnsafe(plen);
        const n = this.readInto(data, plen, pos + DATA_HDR_LEN);
        if (n !== plen) {
          const size = this.size();
          if (pos + DATA_HDR_LEN + plen > size) throw new CorruptedDataError(this.name, pos, `data length ${plen} runs past the end of the file (${size})`);
          throw new CorruptedDataError(this.name, pos + DATA_HDR_LEN, `short read of record data (${n} of ${plen} bytes)`);
        }
      }
      return { oid, tid, prev, tloc, vlen, plen, pos, data, back: 0, next: pos + DATA_HDR_LEN + plen };
    }
    const back = avail >= BACKPOINTER_RECORD_LEN ? this.posIn(b, off + DATA_HDR_LEN, pos) : this.readPosAt(pos + DATA_HDR_LEN, 'backpointer');
    if (back !== 0 && back >= pos) throw new CorruptedDataError(this.name, pos, `backpointer ${back} does not point before the record`);
    return { oid, tid, prev, tloc, vlen, plen, pos, data: null, back, next: pos + BACKPOINTER_RECORD_LEN };
  }

  private posIn(b: Buffer, off: number, pos: number): number {
    try {
      return readPos(b, off);
    } catch (e) {
      throw this.wrap(e, pos, 'bad backpointer');
    }
  }

  /**
   * The records of a transaction in file order, each checked to lie inside the transaction
   * and to name it in tloc. Checks that the records add up to the transaction end.
   */
  *records(t: TxnHeaderAt, mode: WalkMode = 'strict'): Generator<DataRecordAt> {
    let pos = t.pos + t.hlen;
    while (pos < t.end) {
      let r: DataRecordAt;
      try {
        r = this.readRecord(pos);
        if (r.tloc !== t.pos) throw new CorruptedDataError(this.name, pos, `data record tloc ${r.tloc} != transaction position ${t.pos}`);
        if (r.next > t.end) throw new CorruptedDataError(this.name, pos, `data record exceeds transaction record (ends at ${r.next} > ${t.end})`);
      } catch (e) {
        if (mode === 'lenient') return;
        throw e;
      }
      yield r;
      pos = r.next;
    }
    if (pos !== t.end && mode === 'strict') throw new CorruptedDataError(this.name, t.pos, `data records don't add up (${pos} != ${t.end})`);
  }

  /**
   * Follow backpointers from `pos` until a record with data (spec §9 loadBack). POSKeyError
   * when the chain ends in a zero backpointer. Positions must strictly decrease (bounded).
   */
  loadBack(oid: bigint, pos: number): { data: Buffer; tid: bigint; pos: number; tloc: number } {
    let p = pos;
    let last = Number.MAX_SAFE_INTEGER;
    for (;;) {
      if (p === 0) throw new POSKeyError(oid);
      if (p >= last) throw new CorruptedDataError(this.name, p, `backpointer loop (position ${p} not below ${last})`);
      last = p;
      const r = this.readRecord(p);
      if (r.oid !== oid) throw new CorruptedDataError(this.name, p, `record oid ${r.oid.toString(16).padStart(16, '0')} != expected ${oid.toString(16).padStart(16, '0')} (bad backpointer?)`);
      if (r.data) return { data: r.data, tid: r.tid, pos: p, tloc: r.tloc };
      p = r.back;
    }
  }

  private wrap(e: unknown, pos: number, what: string): Error {
    if (e instanceof RecordFormatError) return new CorruptedDataError(this.name, pos + e.offset, `${what}: ${e.message}`);
    return e as Error;
  }
}
