/**
 * The ZEO client cache: one file of exactly `maxsize` bytes used as a circular buffer of object
 * revisions (client-cache spec §3–§5, §9).
 *
 * All operations except open/close are synchronous: they do positional reads and writes on the
 * file descriptor, so a call is atomic with respect to every other call (JavaScript runs one
 * call at a time; this replaces upstream's re-entrant lock). A load hit costs one map lookup and
 * one positional read into the Buffer that is returned.
 */
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readSync,
  readFileSync,
  renameSync,
  rmdirSync,
  existsSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Oid, Tid } from '@zeo-ts/storage';
import {
  DATA_OFFSET,
  encodeHeader,
  freeBlockHeader,
  freeTiling,
  GROW_MARKER,
  HEADER_SIZE,
  MAGIC,
  MAX_BLOCK_SIZE,
  RECORD_OVERHEAD,
  STATUS_ALLOCATED,
  STATUS_DIGIT_1,
  STATUS_DIGIT_4,
  STATUS_FREE,
} from './format.ts';
import { CacheLock, LockError, pyRepr } from './lock.ts';
import { TraceCode } from './trace-format.ts';
import { TraceWriter, type TraceClock } from './trace-writer.ts';

/** Default size of a directly constructed cache (ClientStorage passes its own, 20 MiB). */
export const DEFAULT_CACHE_SIZE = 200 * 1024 * 1024;
/** Caches up to this size keep a copy of the file in memory by default (see `memoryImage`). */
export const DEFAULT_IMAGE_LIMIT = 64 * 1024 * 1024;
/** Default copy-forward factor (spec §5.4 step 5). */
export const DEFAULT_REARRANGE = 0.8;

type LogFn = (objOrMsg: unknown, msg?: string) => void;
/** The logging methods the cache uses; a pino logger fits. CRITICAL is `fatal`. */
export interface CacheLogger {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
}

let defaultLogger: CacheLogger | null = null;
function getDefaultLogger(): CacheLogger {
  defaultLogger ??= pino({ name: 'ZEO.cache' }, pino.destination({ dest: 2, sync: true }));
  return defaultLogger;
}

export interface ClientCacheOptions {
  /** cache file size in bytes; default 200 MiB; values below 12 are raised to 12 */
  size?: number;
  /** copy-forward factor; default 0.8 */
  rearrange?: number;
  /** default: a pino logger named ZEO.cache writing to standard error */
  logger?: CacheLogger;
  /** trace to `<path>.trace`; default: the environment variable ZEO_CACHE_TRACE is non-empty */
  trace?: boolean;
  /**
   * keep a copy of the whole file in memory so a load hit is a memory copy instead of a read
   * system call (costs `size` bytes of memory); default: size <= 64 MiB. Writes always go to
   * the file as well.
   */
  memoryImage?: boolean;
  /** seconds since the epoch for trace timestamps (tests pin it); default the wall clock */
  traceClock?: TraceClock;
}

/**
 * The cache file does not hold what the index says (a bug or outside damage). Python side: a
 * ZODB.POSException.StorageError (upstream asserts).
 */
export class CacheCorruptionError extends Error {
  readonly pythonClass = 'ZODB.POSException.StorageError';
  override name = 'CacheCorruptionError';
}

/**
 * Where a ClientStorage keeps its cache (spec §2.2): an explicit cache path wins; else, with a
 * client name, `<varDir or cwd>/<client>-<storage>.zec` (storage defaults to "1"); else null,
 * meaning a temporary cache.
 */
export function cachePathFor(o: { cachePath?: string | null; client?: string | null; storage?: string; varDir?: string | null }): string | null {
  if (o.cachePath) return o.cachePath;
  if (!o.client) return null;
  return join(o.varDir || process.cwd(), `${o.client}-${o.storage ?? '1'}.zec`);
}

/** Python's ValueError, as raised by the cache for caller mistakes. */
export class CacheValueError extends Error {
  readonly pythonClass = 'ValueError';
  override name = 'ValueError';
}

/** getStats(): the counters of spec §4, in upstream's order. */
export interface CacheStats {
  adds: number;
  addedBytes: number;
  evictions: number;
  evictedBytes: number;
  accesses: number;
}

export interface CacheLoadResult {
  data: Buffer;
  /** start tid of the revision */
  tid: Tid;
}

export interface CacheLoadBeforeResult {
  data: Buffer;
  start: Tid;
  /** null when the answer is the current record */
  end: Tid | null;
}

/** One indexed record, as `records()` reports it (for tests and tools). */
export interface CacheRecordInfo {
  offset: number;
  size: number;
  oid: Oid;
  start: Tid;
  end: Tid | null;
}

interface CurrentSlot {
  ofs: number;
  size: number;
  start: Tid;
  oidHi: number;
  oidLo: number;
}

interface NoncurrentSlot {
  ofs: number;
  size: number;
  start: Tid;
  end: Tid;
}

class ScanError extends Error {
  override name = 'CacheScanError';
}

// Local copies of ZODB.utils' formatting (kept here so the cache loads nothing else at run time).
function toHex(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}
function oidRepr(v: bigint): string {
  const h = v.toString(16);
  return '0x' + (h.length % 2 ? '0' + h : h);
}

function hi32(v: bigint): number {
  return Number(v >> 32n);
}
function lo32(v: bigint): number {
  return Number(v & 0xffffffffn);
}

export class ClientCache {
  /** the cache file, or null for a temporary cache */
  readonly path: string | null;
  readonly maxsize: number;
  private readonly rearrangeLimit: number;
  private readonly log: CacheLogger;
  private fd: number;
  private lock: CacheLock | null;
  private tracer: TraceWriter | null = null;
  /** a copy of the whole file in memory, for fast loads (null: positional reads) */
  private img: Buffer | null = null;
  private readonly useImage: boolean;

  private current = new Map<Oid, CurrentSlot>();
  private noncurrent = new Map<Oid, NoncurrentSlot[]>();
  private _len = 0;
  private tid: Tid = 0n;
  private currentofs = HEADER_SIZE;
  private readonly scratch = Buffer.allocUnsafe(DATA_OFFSET);

  private nAdds = 0;
  private nAddedBytes = 0;
  private nEvicts = 0;
  private nEvictedBytes = 0;
  private nAccesses = 0;

  private constructor(path: string | null, maxsize: number, rearrange: number, log: CacheLogger, fd: number, lock: CacheLock | null, useImage: boolean) {
    this.path = path;
    this.useImage = useImage;
    this.maxsize = maxsize;
    this.rearrangeLimit = rearrange * maxsize;
    this.log = log;
    this.fd = fd;
    this.lock = lock;
  }

  /**
   * Open (or create) a persistent cache at `path`, or a temporary one when `path` is null.
   * A persistent cache is locked first (`<path>.lock`; LockError if held elsewhere). A damaged
   * file is moved to `<path>.bad` (or deleted if that exists) and replaced by an empty cache.
   */
  static async open(path: string | null, options: ClientCacheOptions = {}): Promise<ClientCache> {
    const requested = options.size ?? DEFAULT_CACHE_SIZE;
    if (!Number.isSafeInteger(requested)) throw new RangeError(`cache size must be an integer number of bytes, got ${requested}`);
    const maxsize = Math.max(requested, HEADER_SIZE);
    const rearrange = options.rearrange ?? DEFAULT_REARRANGE;
    const log = options.logger ?? getDefaultLogger();
    let lock: CacheLock | null = null;
    let fd: number;
    let fsize = HEADER_SIZE;
    if (path) {
      try {
        lock = await CacheLock.acquire(path + '.lock');
      } catch (e) {
        if (e instanceof LockError) {
          // as zc.lockfile does: say who holds it
          let pid = '';
          try {
            pid = readFileSync(path + '.lock', 'latin1').trim().slice(0, 20);
          } catch {
            // unreadable: UNKNOWN
          }
          log.error({ err: e }, `Error locking file ${path}.lock; pid=${pid || 'UNKNOWN'}`);
        }
        throw e;
      }
      try {
        try {
          fd = openSync(path, 'r+');
          fsize = fstatSync(fd).size;
          log.info(`reusing persistent cache file ${pyRepr(path)}`);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          fd = openSync(path, 'w+');
          writeAll(fd, encodeHeader(0n), 0);
          log.info(`created persistent cache file ${pyRepr(path)}`);
        }
      } catch (e) {
        await lock.release();
        throw e;
      }
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'zeo-cache-'));
      const name = join(dir, 'cache.zec');
      fd = openSync(name, 'w+');
      unlinkSync(name);
      rmdirSync(dir);
      writeAll(fd, encodeHeader(0n), 0);
      log.info(`created temporary cache file ${pyRepr(name)}`);
    }
    const cache = new ClientCache(path, maxsize, rearrange, log, fd, lock, options.memoryImage ?? maxsize <= DEFAULT_IMAGE_LIMIT);
    try {
      try {
        cache.scan(fsize);
      } catch (e) {
        if (!path || !(e instanceof ScanError)) throw e;
        closeSync(cache.fd);
        cache.fd = -1;
        const bad = path + '.bad';
        if (existsSync(bad)) {
          log.fatal({ err: e }, `Removing bad cache file: ${pyRepr(path)} (prev bad exists).`);
          unlinkSync(path);
        } else {
          log.fatal({ err: e }, `Moving bad cache file to ${pyRepr(bad)}.`);
          renameSync(path, bad);
        }
        cache.fd = openSync(path, 'w+');
        writeAll(cache.fd, encodeHeader(0n), 0);
        cache.scan(HEADER_SIZE);
      }
    } catch (e) {
      if (cache.fd >= 0) closeSync(cache.fd);
      await lock?.release();
      throw e;
    }
    const trace = options.trace ?? Boolean(process.env.ZEO_CACHE_TRACE);
    if (path && trace) {
      const tfn = path + '.trace';
      try {
        cache.tracer = TraceWriter.open(tfn, options.traceClock);
        log.info(`opened tracefile ${pyRepr(tfn)}`);
        cache.tracer.record(TraceCode.RESTART, null, 0n, 0n, 0);
      } catch (e) {
        log.warn(`cannot write tracefile ${pyRepr(tfn)} (${(e as Error).message})`);
      }
    }
    return cache;
  }

  // ---- facts ----------------------------------------------------------------------------

  /** number of records (current + non-current) */
  get len(): number {
    return this._len;
  }

  /** offset where the next record will be written (spec §4 `currentofs`) */
  get writePointer(): number {
    return this.currentofs;
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** true when trace records are being written */
  get tracing(): boolean {
    return this.tracer !== null;
  }

  getStats(): CacheStats {
    return {
      adds: this.nAdds,
      addedBytes: this.nAddedBytes,
      evictions: this.nEvicts,
      evictedBytes: this.nEvictedBytes,
      accesses: this.nAccesses,
    };
  }

  clearStats(): void {
    this.nAdds = this.nAddedBytes = this.nEvicts = this.nEvictedBytes = this.nAccesses = 0;
  }

  /** last tid known to the cache (0n if none) */
  getLastTid(): Tid {
    return this.tid;
  }

  /**
   * Record the last tid seen. Ignores null/0n and an equal tid; a smaller tid is an error unless
   * the cache is empty. Written to the file header (not fsynced).
   */
  setLastTid(tid: Tid | null | undefined): void {
    this.checkOpen();
    if (tid === null || tid === undefined || tid === 0n) return;
    if (tid <= this.tid && this._len > 0) {
      if (tid === this.tid) return;
      throw new CacheValueError(`new last tid (${tid}) must be greater than previous one (${this.tid})`);
    }
    this.tid = tid;
    this.scratch.writeBigUInt64BE(tid, 0);
    this.put(this.scratch.subarray(0, 8), 4);
  }

  /** (oid, start tid) of every current record. */
  *contents(): IterableIterator<[Oid, Tid]> {
    for (const [oid, slot] of [...this.current]) yield [oid, slot.start];
  }

  /** Every indexed record, in file order (diagnostics and tests). */
  records(): CacheRecordInfo[] {
    const out: CacheRecordInfo[] = [];
    for (const [oid, s] of this.current) out.push({ offset: s.ofs, size: s.size, oid, start: s.start, end: null });
    for (const [oid, list] of this.noncurrent) for (const s of list) out.push({ offset: s.ofs, size: s.size, oid, start: s.start, end: s.end });
    return out.sort((a, b) => a.offset - b.offset);
  }

  // ---- reading ---------------------------------------------------------------------------

  /**
   * The current revision of oid, or null. With `beforeTid`, null (and no trace record) when the
   * current revision starts at or after it.
   */
  load(oid: Oid, beforeTid?: Tid | null): CacheLoadResult | null {
    this.checkOpen();
    const slot = this.current.get(oid);
    if (slot === undefined) {
      if (this.tracer) this.tracer.record(TraceCode.LOAD_MISS, oid, 0n, 0n, 0);
      return null;
    }
    if (beforeTid !== undefined && beforeTid !== null && slot.start >= beforeTid) return null;
    const size = slot.size;
    const ofs = slot.ofs;
    const dlen = size - RECORD_OVERHEAD;
    let data: Buffer;
    const img = this.img;
    if (img !== null) {
      // in-memory image: check the record in place, copy out only the data
      if (!this.recordMatches(img, ofs, size, slot)) throw this.corrupt(ofs, `current record of oid ${oidRepr(oid)} does not match the index`);
      data = Buffer.allocUnsafe(dlen);
      img.copy(data, 0, ofs + DATA_OFFSET, ofs + DATA_OFFSET + dlen);
    } else {
      const buf = Buffer.allocUnsafe(size);
      const n = readSync(this.fd, buf, 0, size, ofs);
      if (n !== size || !this.recordMatches(buf, 0, size, slot)) throw this.corrupt(ofs, `current record of oid ${oidRepr(oid)} does not match the index`);
      data = buf.subarray(DATA_OFFSET, DATA_OFFSET + dlen);
    }
    this.nAccesses++;
    if (this.tracer) this.tracer.record(TraceCode.LOAD_HIT, oid, slot.start, 0n, dlen);

    // Copy-forward: keep a record that is read from being evicted soon (spec §5.4 step 5).
    let behind = this.currentofs - ofs;
    if (behind < 0) behind += this.maxsize;
    if (behind > this.rearrangeLimit && this.maxsize > 10 * dlen && size > 4) {
      this.current.delete(oid);
      this.put(freeBlockHeader(size), ofs);
      this.write(oid, slot.start, null, data, size);
    }
    return { data, tid: slot.start };
  }

  /** The revision that was current just before `tid`, or null (spec §5.5). */
  loadBefore(oid: Oid, beforeTid: Tid): CacheLoadBeforeResult | null {
    this.checkOpen();
    const list = this.noncurrent.get(oid);
    if (list !== undefined) {
      // greatest start < beforeTid
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (list[mid]!.start < beforeTid) lo = mid + 1;
        else hi = mid;
      }
      const found = lo > 0 ? list[lo - 1]! : undefined;
      if (found !== undefined && found.end >= beforeTid) {
        const data = this.readNoncurrent(oid, found);
        this.nAccesses++;
        if (this.tracer) this.tracer.record(TraceCode.LOAD_NONCURRENT_HIT, oid, 0n, found.start, 0);
        return { data, start: found.start, end: found.end };
      }
    }
    const r = this.load(oid, beforeTid);
    if (r) return { data: r.data, start: r.tid, end: null };
    if (this.tracer) this.tracer.record(TraceCode.LOAD_NONCURRENT_MISS, oid, 0n, beforeTid, 0);
    return null;
  }

  // ---- writing ---------------------------------------------------------------------------

  /**
   * Cache a revision: current when `end` is null, else valid for [start, end). Storing current
   * data when a current record with another start exists is an error (invalidate first);
   * duplicates are ignored; objects too large for the cache are silently not cached.
   */
  store(oid: Oid, start: Tid, end: Tid | null, data: Uint8Array): void {
    this.checkOpen();
    if (end === null) {
      const slot = this.current.get(oid);
      if (slot !== undefined) {
        this.readHeaderChecked(slot.ofs, oid, true);
        if (slot.start === start) return;
        throw new CacheValueError('already have current data for oid');
      }
    } else {
      if (end <= start) throw new CacheValueError(`non-current data needs start < end, got [${toHex(start)}, ${toHex(end)})`);
      const list = this.noncurrent.get(oid);
      if (list !== undefined && list.some((s) => s.start === start)) return;
    }
    const size = RECORD_OVERHEAD + data.length;
    if (size >= Math.min(MAX_BLOCK_SIZE, this.maxsize - HEADER_SIZE)) return;
    this.nAdds++;
    this.nAddedBytes += size;
    this._len++;
    this.write(oid, start, end, data, size);
    if (this.tracer) {
      if (end === null) this.tracer.record(TraceCode.STORE_CURRENT, oid, start, 0n, data.length);
      else this.tracer.record(TraceCode.STORE_NONCURRENT, oid, start, end, data.length);
    }
  }

  /**
   * A transaction `tid` changed oid: the current record becomes non-current [start, tid).
   * With tid null the current record is dropped (non-current ones are kept).
   */
  invalidate(oid: Oid, tid: Tid | null): void {
    this.checkOpen();
    const slot = this.current.get(oid);
    if (slot === undefined) {
      if (this.tracer) this.tracer.record(TraceCode.INVALIDATE_MISS, oid, tid ?? 0n, 0n, 0);
      return;
    }
    this.readHeaderChecked(slot.ofs, oid, true);
    if (tid !== null && tid === slot.start) {
      // Upstream also drops the index entry here (spec §12.1); we keep the record usable.
      this.log.warn('Ignoring invalidation with same tid as current');
      return;
    }
    if (tid !== null && tid < slot.start) {
      // Would make a record with start >= end, which no reader accepts: forget it instead.
      this.log.warn(`invalidation of ${oidRepr(oid)} at ${toHex(tid)} older than its cached start ${toHex(slot.start)}: dropping it`);
      tid = null;
    }
    this.current.delete(oid);
    if (tid === null) {
      this.put(freeBlockHeader(slot.size), slot.ofs);
      this._len--;
      if (this.tracer) this.tracer.record(TraceCode.INVALIDATE_HIT_DISCARDING, oid, 0n, 0n, 0);
      return;
    }
    this.scratch.writeBigUInt64BE(tid, 0);
    this.put(this.scratch.subarray(0, 8), slot.ofs + 21);
    this.addNoncurrent(oid, { ofs: slot.ofs, size: slot.size, start: slot.start, end: tid });
    if (this.tracer) this.tracer.record(TraceCode.INVALIDATE_HIT_SAVING_NONCURRENT, oid, tid, 0n, 0);
  }

  /** Empty the cache; size and last tid are kept. */
  clear(): void {
    this.checkOpen();
    ftruncateSync(this.fd, HEADER_SIZE);
    this.scan(HEADER_SIZE);
  }

  /** Flush buffered trace records and the file to disk (also done by close). */
  sync(): void {
    this.checkOpen();
    this.tracer?.flush();
    fsyncSync(this.fd);
  }

  /** Stop tracing, sync and close the file, release the lock. */
  async close(): Promise<void> {
    if (this.fd >= 0) {
      this.tracer?.close();
      this.tracer = null;
      const fd = this.fd;
      this.fd = -1;
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    const lock = this.lock;
    this.lock = null;
    await lock?.release();
  }

  // ---- internals -------------------------------------------------------------------------

  /** Does the current record at `at` in `b` agree with its index slot? */
  private recordMatches(b: Buffer, at: number, size: number, slot: CurrentSlot): boolean {
    return (
      b[at] === STATUS_ALLOCATED &&
      b.readUInt32BE(at + 1) === size &&
      b.readUInt32BE(at + 5) === slot.oidHi &&
      b.readUInt32BE(at + 9) === slot.oidLo &&
      b.readUInt32BE(at + 21) === 0 &&
      b.readUInt32BE(at + 25) === 0 &&
      b.readUInt32BE(at + 31) === size - RECORD_OVERHEAD &&
      b.readUInt32BE(at + size - 8) === slot.oidHi &&
      b.readUInt32BE(at + size - 4) === slot.oidLo
    );
  }

  /** Write `buf` at `pos` in the file (and the in-memory image). */
  private put(buf: Buffer, pos: number): void {
    writeAll(this.fd, buf, pos);
    if (this.img !== null) buf.copy(this.img, pos);
  }

  /** Read up to `len` bytes at `pos` into `target`; returns the count. */
  private get(target: Buffer, len: number, pos: number): number {
    const img = this.img;
    if (img === null) return readSync(this.fd, target, 0, len, pos);
    if (pos >= img.length) return 0;
    return img.copy(target, 0, pos, Math.min(img.length, pos + len));
  }

  private checkOpen(): void {
    if (this.fd < 0) throw new Error(`client cache ${this.path === null ? '(temporary)' : pyRepr(this.path)} is closed`);
  }

  private corrupt(ofs: number, what: string): CacheCorruptionError {
    return new CacheCorruptionError(`client cache ${this.path === null ? '(temporary)' : pyRepr(this.path)} at offset ${ofs}: ${what}`);
  }

  /** Read the 35-byte header at ofs into scratch and check it is oid's record (current or not). */
  private readHeaderChecked(ofs: number, oid: Oid, current: boolean): number {
    const b = this.scratch;
    const n = this.get(b, DATA_OFFSET, ofs);
    if (n !== DATA_OFFSET || b[0] !== STATUS_ALLOCATED || b.readBigUInt64BE(5) !== oid) {
      throw this.corrupt(ofs, `expected a record of oid ${oidRepr(oid)}`);
    }
    const isCurrent = b.readUInt32BE(21) === 0 && b.readUInt32BE(25) === 0;
    if (isCurrent !== current) throw this.corrupt(ofs, `record of oid ${oidRepr(oid)} is ${isCurrent ? '' : 'not '}current, the index says otherwise`);
    return b.readUInt32BE(1);
  }

  private readNoncurrent(oid: Oid, s: NoncurrentSlot): Buffer {
    const buf = Buffer.allocUnsafe(s.size);
    const n = this.get(buf, s.size, s.ofs);
    const dlen = s.size - RECORD_OVERHEAD;
    if (
      n !== s.size ||
      buf[0] !== STATUS_ALLOCATED ||
      buf.readUInt32BE(1) !== s.size ||
      buf.readBigUInt64BE(5) !== oid ||
      buf.readBigUInt64BE(13) !== s.start ||
      buf.readBigUInt64BE(21) !== s.end ||
      buf.readUInt32BE(31) !== dlen ||
      buf.readBigUInt64BE(s.size - 8) !== oid
    ) {
      throw this.corrupt(s.ofs, `non-current record of oid ${oidRepr(oid)} does not match the index`);
    }
    return buf.subarray(DATA_OFFSET, DATA_OFFSET + dlen);
  }

  private addNoncurrent(oid: Oid, s: NoncurrentSlot): void {
    let list = this.noncurrent.get(oid);
    if (list === undefined) {
      this.noncurrent.set(oid, [s]);
      return;
    }
    let i = 0;
    while (i < list.length && list[i]!.start < s.start) i++;
    if (i < list.length && list[i]!.start === s.start) list[i] = s; // same key: replace (as upstream's index does)
    else list.splice(i, 0, s);
  }

  private removeNoncurrent(oid: Oid, start: Tid): boolean {
    const list = this.noncurrent.get(oid);
    if (list === undefined) return false;
    const i = list.findIndex((s) => s.start === start);
    if (i < 0) return false;
    list.splice(i, 1);
    if (list.length === 0) this.noncurrent.delete(oid);
    return true;
  }

  /**
   * Evict what lies in the next `nbytes` bytes from the write pointer (wrapping to 12 first if
   * they do not fit before the end). Returns the size of the area walked (>= nbytes). The file
   * is not modified.
   */
  private makeroom(nbytes: number): number {
    if (!(nbytes > 0 && nbytes <= this.maxsize - HEADER_SIZE)) throw new RangeError(`makeroom(${nbytes}) with maxsize ${this.maxsize}`);
    if (this.currentofs + nbytes > this.maxsize) this.currentofs = HEADER_SIZE;
    const b = this.scratch;
    let ofs = this.currentofs;
    let left = nbytes;
    while (left > 0) {
      if (ofs >= this.maxsize) throw this.corrupt(ofs, 'block chain runs past the end of the cache');
      const n = this.get(b, 29, ofs);
      if (n < 1) throw this.corrupt(ofs, 'unexpected end of file');
      const status = b[0]!;
      let size: number;
      if (status === STATUS_ALLOCATED) {
        if (n < 29) throw this.corrupt(ofs, 'truncated record header');
        size = b.readUInt32BE(1);
        const oid = b.readBigUInt64BE(5);
        const start = b.readBigUInt64BE(13);
        const end = b.readBigUInt64BE(21);
        this.nEvicts++;
        this.nEvictedBytes += size;
        if (end === 0n) {
          const slot = this.current.get(oid);
          if (slot !== undefined && slot.ofs === ofs) this.current.delete(oid);
          else this.log.error(`Couldn't find current ${oidRepr(oid)} at offset ${ofs}`);
        } else if (!this.removeNoncurrent(oid, start)) {
          this.log.error(`Couldn't find non-current (${oidRepr(oid)}, ${oidRepr(start)})`);
        }
        this._len--;
      } else if (status === STATUS_FREE) {
        if (n < 5) throw this.corrupt(ofs, 'truncated free block header');
        size = b.readUInt32BE(1);
      } else if (status >= STATUS_DIGIT_1 && status <= STATUS_DIGIT_4) {
        size = status - 0x30;
      } else {
        throw this.corrupt(ofs, `unknown status byte 0x${status.toString(16).padStart(2, '0')}`);
      }
      if (size < 1) throw this.corrupt(ofs, 'zero-size block');
      ofs += size;
      left -= size;
    }
    return ofs - this.currentofs;
  }

  /** Write a record at the write pointer (spec §5.2) and index it. */
  private write(oid: Oid, start: Tid, end: Tid | null, data: Uint8Array, size: number): void {
    const avail = this.makeroom(size + 1);
    const excess = avail - size;
    const trailer = freeBlockHeader(excess);
    const rec = Buffer.allocUnsafe(size + trailer.length);
    rec.writeBigUInt64BE(oid, 5);
    rec.writeBigUInt64BE(start, 13);
    rec.writeBigUInt64BE(end ?? 0n, 21);
    rec.writeUInt16BE(0, 29);
    rec.writeUInt32BE(data.length, 31);
    rec.set(data, DATA_OFFSET);
    rec.writeBigUInt64BE(oid, DATA_OFFSET + data.length);
    trailer.copy(rec, size);
    const ofs = this.currentofs;
    // Crash safety: first the whole area reads as one free block (its header and the body go out
    // in one write: a dying process cannot split it), then the real header makes it a record.
    rec[0] = STATUS_FREE;
    rec.writeUInt32BE(avail, 1);
    this.put(rec, ofs);
    rec[0] = STATUS_ALLOCATED;
    rec.writeUInt32BE(size, 1);
    this.put(rec.subarray(0, 5), ofs);
    if (end === null) this.current.set(oid, { ofs, size, start, oidHi: hi32(oid), oidLo: lo32(oid) });
    else this.addNoncurrent(oid, { ofs, size, start, end });
    this.currentofs += size;
  }

  /** Read the file and rebuild the indexes (spec §5.1 scan). Throws ScanError for a bad file. */
  private scan(fsize: number): void {
    const maxsize = this.maxsize;
    const fd = this.fd;
    const b = this.scratch;
    const bad = (ofs: number, what: string) =>
      new ScanError(`client cache ${this.path === null ? '(temporary)' : pyRepr(this.path)} at offset ${ofs}: ${what}`);

    this.img = null;
    let n = readSync(fd, b, 0, HEADER_SIZE, 0);
    if (n < 4 || !b.subarray(0, 4).equals(MAGIC)) throw bad(0, `unexpected magic number: ${bytesRepr(b.subarray(0, Math.min(n, 4)))}`);
    if (n < HEADER_SIZE) throw bad(4, 'cache file too small -- no tid at start');
    const tid = b.readBigUInt64BE(4);

    const current = new Map<Oid, CurrentSlot>();
    this.current = current;
    this.noncurrent = new Map();
    this.tid = tid;
    let count = 0;
    let ofs = HEADER_SIZE;
    let last = HEADER_SIZE;
    let lastStatus = -1;
    let firstFree = 0;
    const short = fsize < maxsize;
    while (ofs < fsize) {
      n = readSync(fd, b, 0, DATA_OFFSET, ofs);
      if (n < 1) throw bad(ofs, 'unexpected end of file');
      const status = b[0]!;
      let size: number;
      if (status === STATUS_ALLOCATED) {
        if (n < DATA_OFFSET) throw bad(ofs, 'truncated record header');
        size = b.readUInt32BE(1);
        if (size < RECORD_OVERHEAD) throw bad(ofs, `record size ${size} is below the 43-byte minimum`);
        if (short && ofs + size > fsize) throw bad(ofs, `record of ${size} bytes runs past the end of the file (${fsize} bytes)`);
        if (ofs + size <= maxsize) {
          const oid = b.readBigUInt64BE(5);
          const start = b.readBigUInt64BE(13);
          const end = b.readBigUInt64BE(21);
          if (b.readUInt16BE(29) !== 0) throw bad(ofs, 'record has a version (not supported)');
          if (b.readUInt32BE(31) !== size - RECORD_OVERHEAD) throw bad(ofs, `data length ${b.readUInt32BE(31)} does not match record size ${size}`);
          if (end === 0n) {
            if (current.has(oid)) throw bad(ofs, `second current record for oid ${oidRepr(oid)}`);
            current.set(oid, { ofs, size, start, oidHi: hi32(oid), oidLo: lo32(oid) });
          } else {
            if (!(start < end)) throw bad(ofs, `non-current record of oid ${oidRepr(oid)} has start ${toHex(start)} >= end ${toHex(end)}`);
            this.addNoncurrent(oid, { ofs, size, start, end });
          }
          count++;
        }
      } else {
        if (firstFree === 0) firstFree = ofs;
        if (status === STATUS_FREE) {
          if (n < 5) throw bad(ofs, 'truncated free block header');
          size = b.readUInt32BE(1);
          if (size < 5) throw bad(ofs, `free block size ${size} is below 5`);
          if (short && ofs + size > fsize) throw bad(ofs, `free block of ${size} bytes runs past the end of the file (${fsize} bytes)`);
          if (size > MAX_BLOCK_SIZE) {
            // Left by a crash during a store: split it in two (spec §5.1).
            if (size > 2 * MAX_BLOCK_SIZE) throw bad(ofs, `free block size ${size} is impossible`);
            if (ofs + MAX_BLOCK_SIZE < maxsize) writeAll(fd, freeBlockHeader(size - MAX_BLOCK_SIZE), ofs + MAX_BLOCK_SIZE);
            writeAll(fd, freeBlockHeader(MAX_BLOCK_SIZE), ofs);
            fsyncSync(fd);
          }
        } else if (status >= STATUS_DIGIT_1 && status <= STATUS_DIGIT_4) {
          size = status - 0x30;
        } else {
          throw bad(ofs, `unknown status byte value 0x${status.toString(16).padStart(2, '0')}`);
        }
      }
      lastStatus = status;
      last = ofs;
      ofs += size;
      if (ofs >= maxsize) {
        if (ofs > maxsize) {
          // The file was larger before: the block straddling the new end becomes free.
          writeAll(fd, freeBlockHeader(maxsize - last), last);
          fsyncSync(fd);
          ofs = maxsize;
        }
        break;
      }
    }

    if (fsize < maxsize) {
      if (ofs !== fsize) throw bad(ofs, `blocks end at ${ofs}, the file at ${fsize}`);
      if (lastStatus === STATUS_ALLOCATED) throw bad(last, 'the last block of the file is not free; cannot extend it');
      // Grow: the marker byte at the end (as upstream), then free blocks over the new space.
      writeAll(fd, Buffer.from([GROW_MARKER]), maxsize - 1);
      for (const { offset, header } of freeTiling(ofs, maxsize - ofs)) writeAll(fd, header, offset);
      fsyncSync(fd);
      firstFree = last;
    } else if (fsize > maxsize) {
      ftruncateSync(fd, maxsize);
    }
    this.currentofs = firstFree || HEADER_SIZE;
    this._len = count;
    if (this.useImage) {
      const img = Buffer.alloc(maxsize);
      let done = 0;
      while (done < maxsize) {
        const got = readSync(fd, img, done, maxsize - done, done);
        if (got <= 0) break;
        done += got;
      }
      this.img = img;
    }
  }
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, buf.length - done, position + done);
    if (n <= 0) throw new Error(`short write at ${position + done}`);
    done += n;
  }
}

/** Python's repr() of bytes (for messages mirroring upstream's). */
function bytesRepr(b: Uint8Array): string {
  // Python picks double quotes when the value holds ' but no "
  const q = b.includes(0x27) && !b.includes(0x22) ? '"' : "'";
  let s = 'b' + q;
  for (const c of b) {
    if (c === 0x5c) s += '\\\\';
    else if (c === q.charCodeAt(0)) s += '\\' + q;
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + q;
}
