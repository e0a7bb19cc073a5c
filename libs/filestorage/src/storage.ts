/**
 * FileStorage: the ZODB transaction log (FS30), byte-compatible with Python ZODB.
 * filestorage spec §5–§10. Implements IStorage from @zeo-ts/storage.
 *
 * One writer process holds Data.fs.lock; committed data ends at `pos` (always a transaction
 * boundary). A commit writes the whole transaction with status 'c' at vote, flips the status byte
 * at finish and fsyncs before tpc_finish returns. Reads use positional reads on one descriptor.
 */
import { closeSync, existsSync, fdatasync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  BLOB_SUFFIX,
  BlobDirectory,
  ConflictError,
  MultipleUndoErrors,
  POSKeyError,
  ReadConflictError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  TimeStamp,
  TransactionMetaData,
  UndoError,
  copyBlobToTemp,
  copyFileContent,
  fsyncPath,
  isBlobRecord,
  maxtid,
  newTid,
  oidRepr,
  removeCommitted,
  removeCommittedDir,
  renameOrCopyBlob,
  tidRepr,
  toHex,
  type CommitListener,
  type IBlobStorage,
  type DataRecord,
  type HistoryEntry,
  type IStorage,
  type LoadBeforeResult,
  type LoadResult,
  type Oid,
  type Tid,
  type TransactionRecord,
  type UndoFilter,
  type UndoLogEntry,
} from '@zeo-ts/storage';
import { CorruptedDataError, CorruptedTransactionError, FileStorageError, FileStorageFormatError, FileStorageQuotaError } from './errors.ts';
import { BlockCache, FileReader, type DataRecordAt, type TxnHeaderAt } from './file-reader.ts';
import {
  BACKPOINTER_RECORD_LEN,
  DATA_HDR_LEN,
  FS21_CONVERSION_HINT,
  MAGIC_FS30,
  MAGIC_LEN,
  RecordFormatError,
  STATUS_CHECKPOINT,
  STATUS_COMMITTED,
  STATUS_PACKED,
  STATUS_UNDONE,
  TRANS_HDR_LEN,
  checkMagic,
  decodeDataHeader,
  decodeTxnHeader,
  encodeDataRecord,
  encodeTxnHeader,
  metaLengthProblem,
  p64pos,
  readPos,
  tidToUndoId,
  undoIdToTid,
  type DataHeader,
  type FileFormat,
  type TxnHeader,
} from './format.ts';
import { FsIndex } from './fsindex.ts';
import { decodeIndexFile, encodeIndexFile } from './index-file.ts';
import { LockFile } from './lockfile.ts';
import type { RawAppendInternals } from './raw-append.ts';

export interface FileStorageOptions {
  /** open read-only: no lock, nothing is ever written or truncated; a missing file is an error */
  readOnly?: boolean;
  /** delete any existing file first and start empty (read-write only) */
  create?: boolean;
  /** default for pack's gc argument (Python's pack_gc, default true) */
  packGc?: boolean;
  /** keep Data.fs.old after a pack (Python's pack_keep_old, default true) */
  packKeepOld?: boolean;
  /** refuse stores that would put a record beyond this file position */
  quota?: number;
  /** read-only "time travel": the open scan stops before the first tid >= stop */
  stop?: Tid;
  /** name for getName()/sortKey() (default: the path) */
  name?: string;
  /** pino logger (default: JSON to stderr at level $ZEO_TS_LOG_LEVEL or 'warn') */
  logger?: Logger;
  /** clock in seconds since the epoch, used for new tids (default Date.now()/1000) */
  now?: () => number;
  /** reference finder for GC packs; default: referencesf from @zeo-ts/pickle */
  referencesf?: (data: Buffer) => bigint[];
  /** bytes of committed data kept in the read block cache (default 64 MiB; 0 disables) */
  cacheSize?: number;
  /** block size of the read cache, a power of two (default 4096) */
  cacheBlockSize?: number;
  /** maximum number of tpc_begin calls waiting for the commit lock (default 10000) */
  maxCommitWaiters?: number;
  /**
   * @internal (tests) replaces the fdatasync of the data file that makes finished transactions
   * durable (default: node:fs fdatasync, on the thread pool)
   */
  fdatasync?: (fd: number) => Promise<void>;
  /**
   * Group commit (default false; a ZEO server turns it on with enableGroupCommit): tpc_begin may
   * return while earlier finished transactions still wait for their fdatasync, so one fdatasync
   * covers several commits. Loads never see a transaction before it is durable, so a caller that
   * loads after tpc_begin may see an older revision than its conflict checks (which see them all).
   * Off, tpc_begin waits until every finished transaction is durable.
   */
  groupCommit?: boolean;
  /**
   * blob directory (Python's blob_dir): enables blob support (IBlobStorage); created if missing.
   * With `create` an existing blob directory is removed first.
   */
  blobDir?: string;
  /** blob directory layout: 'automatic' (default: the marker, else bushy for new directories), 'bushy' or 'lawn' */
  blobLayout?: string;
  /**
   * 'native' (default): Python's FileStorage(blob_dir=...). 'proxy': Python's
   * ZODB.blob.BlobStorage wrapped around a FileStorage without blob_dir, which is what a
   * `<blobstorage>` section configures upstream. The files differ in three ways: `create` keeps
   * the blob directory; undo copies the blob files of the undone transaction's tid (also for an
   * undone creation, writable copies); pack removes each blob file whose revision loadSerial no
   * longer finds (no `.removed`, no B.old).
   */
  blobMode?: 'native' | 'proxy';
}

/** An undoLog entry as FileStorage builds it: also carries `size` (tlen), like Python's dict. */
export interface FileUndoLogEntry extends UndoLogEntry {
  size: number;
}

/** An iterator record as FileStorage yields it: also carries its file position. */
export interface FileDataRecord extends DataRecord {
  pos: number;
}

export interface FileTransactionRecord extends TransactionRecord {
  records: FileDataRecord[];
  /** header position */
  pos: number;
}

/**
 * Fair FIFO async lock with a bounded number of waiters. FileStorage's lock also settles its
 * group commit: every holder but a new transaction (pack, raw appends, ...) first waits until the
 * finished transactions are durable, so that it sees the file as readers do.
 */
export class CommitLock {
  private held = false;
  private readonly waiters: Array<() => void> = [];
  /** run once the lock is granted, unless acquire(true): waits for finished transactions to be durable */
  settle: (() => Promise<void> | null) | null = null;
  constructor(private readonly maxWaiters: number) {}
  get locked(): boolean {
    return this.held;
  }
  /** `pipelined`: the caller (tpc_begin) may hold the lock while finished transactions still sync */
  async acquire(pipelined = false): Promise<void> {
    if (!this.held) {
      this.held = true;
    } else {
      if (this.waiters.length >= this.maxWaiters) throw new StorageTransactionError(`too many transactions waiting for the commit lock (${this.waiters.length})`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    // no await when there is nothing to settle: callers see the same turns as a plain lock
    const settling = pipelined || this.settle === null ? null : this.settle();
    if (settling !== null) {
      try {
        await settling;
      } catch (e) {
        this.release();
        throw e;
      }
    }
  }
  release(): void {
    if (!this.held) throw new Error('CommitLock.release: not held');
    const next = this.waiters.shift();
    if (next) next();
    else this.held = false;
  }
}

interface PendingRecord {
  tid: Tid;
  data: Buffer | null;
  back: number;
  pos: number;
}

interface ActiveTxn {
  txn: TransactionMetaData;
  tid: Tid;
  /** file position of the transaction (after the finished transactions still syncing) */
  pos: number;
  status: string;
  header: Buffer;
  /** encoded records, in order */
  chunks: Buffer[];
  len: number;
  tindex: Map<Oid, number>;
  pending: Map<Oid, PendingRecord>;
  checks: Array<[Oid, Tid]>;
  voted: boolean;
  nextpos: number;
  /** blob files moved into the blob directory by this transaction (removed again by tpc_abort) */
  blobs: string[];
  /** directories that got entries for this transaction's blob files (fsynced at vote) */
  blobDirs: Set<string>;
}

/**
 * A finished transaction waiting for the fdatasync that makes it durable (group commit): its
 * bytes and status are in the file, but readers (index, pos, lastTransaction) do not see it and
 * its tpc_finish has not returned.
 */
interface FinishedTxn {
  tid: Tid;
  /** file position of the transaction and of its end */
  pos: number;
  end: number;
  tindex: Map<Oid, number>;
  /** the commit lock stays held for this transaction until it is durable (pipeline full) */
  holdsLock: boolean;
  resolve: (tid: Tid) => void;
  reject: (err: Error) => void;
}

/** Bound of the finished transactions waiting for one fdatasync; beyond it tpc_finish keeps the lock. */
const MAX_FINISHED_UNSYNCED = 256;

function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Resolves in a later turn of the event loop (after every pending promise reaction). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const defaultLogger = (): Logger => pino({ name: 'filestorage', level: process.env.ZEO_TS_LOG_LEVEL ?? 'warn' }, pino.destination(2));

/** Options for the open scan. */
interface ScanResult {
  pos: number;
  ltid: Tid;
  /** tid of the last header read, including a discarded tail (Python's quirky ltid) */
  lastSeenTid: Tid;
}

export class FileStorage implements IBlobStorage {
  readonly path: string;
  readonly log: Logger;
  private fd: number;
  private reader: FileReader;
  private readonly readOnly: boolean;
  /** the file has the FS21 magic (Python 2); only possible read-only */
  private fs21 = false;
  private readonly name: string;
  private readonly options: FileStorageOptions;
  private lockFile: LockFile | null = null;
  /** committed index oid -> position */
  index: FsIndex;
  /** end of committed data */
  private pos: number;
  private ltid: Tid;
  /** last tid issued or seen (lower bound for new tids) */
  private ts: Tid;
  private maxOid: Oid;
  private readonly commitLock: CommitLock;
  private active: ActiveTxn | null = null;
  /**
   * Group commit: finished transactions whose fdatasync is pending, oldest first. The next
   * transaction may begin and vote meanwhile (it is written after them and its conflict checks
   * see them); one fdatasync covers every transaction finished while the previous one ran.
   */
  private finished: FinishedTxn[] = [];
  /** the durability loop (syncLoop) is running */
  private syncRunning = false;
  /** waiting for `finished` to empty (drainFinished) */
  private drainWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** an fdatasync failed: the storage refuses every later commit and closes */
  private syncFailure: Error | null = null;
  private closing: Promise<void> | null = null;
  /** see FileStorageOptions.groupCommit */
  private groupCommit: boolean;
  private readonly listeners = new Set<CommitListener>();
  private closed = false;
  /** set while a pack runs (undoLog refuses) */
  packing = false;
  private readonly now: () => number;
  /** the blob directory, or null without blob support */
  readonly blobs: BlobDirectory | null = null;

  constructor(path: string, options: FileStorageOptions = {}) {
    this.path = path;
    this.options = options;
    this.readOnly = !!options.readOnly;
    this.name = options.name ?? path;
    this.log = (options.logger ?? defaultLogger()).child({ storage: this.name });
    this.now = options.now ?? (() => Date.now() / 1000);
    this.commitLock = new CommitLock(options.maxCommitWaiters ?? 10000);
    this.commitLock.settle = () => (this.syncRunning || this.finished.length > 0 ? this.drainFinished() : null);
    this.groupCommit = options.groupCommit ?? false;
    if (options.stop !== undefined && !this.readOnly) throw new StorageError('the stop option requires readOnly (time travel never writes)');
    if (this.readOnly) {
      if (options.create) throw new ReadOnlyError('cannot create a storage read-only');
      this.fd = openSync(path, 'r');
    } else {
      this.lockFile = LockFile.acquire(path + '.lock');
      try {
        if (options.create && existsSync(path)) unlinkSync(path);
        this.fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
      } catch (e) {
        this.lockFile.release();
        throw e;
      }
    }
    this.reader = this.makeReader();
    this.index = new FsIndex();
    this.pos = MAGIC_LEN;
    this.ltid = 0n;
    this.ts = 0n;
    this.maxOid = 0n;
    try {
      this.openScan();
      if (options.blobDir) {
        // as Python: create removes an existing blob directory; the directory, tmp/ and the
        // layout marker are made (also when read-only)
        if (options.blobMode !== undefined && options.blobMode !== 'native' && options.blobMode !== 'proxy') throw new StorageError(`bad blobMode ${JSON.stringify(options.blobMode)}`);
        if (options.create && !this.readOnly && options.blobMode !== 'proxy' && existsSync(options.blobDir)) removeCommittedDir(options.blobDir);
        this.blobs = new BlobDirectory(options.blobDir, { layout: options.blobLayout ?? 'automatic' });
        if (this.blobs.layoutName === 'lawn') this.log.warn(`The \`lawn\` blob directory layout of ${this.blobs.dir} is deprecated; consider migrating to \`bushy\``);
      }
    } catch (e) {
      this.releaseFiles();
      throw e;
    }
  }

  private makeReader(): FileReader {
    const r = new FileReader(this.fd, this.path);
    const size = this.options.cacheSize ?? 64 * 1024 * 1024;
    if (size > 0) r.useCache(new BlockCache(size, this.options.cacheBlockSize ?? 4096), () => this.pos);
    return r;
  }

  /** Async factory (same as the constructor). */
  static async open(path: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    return new FileStorage(path, options);
  }

  // ---- open ------------------------------------------------------------------------------

  private openScan(): void {
    const size = fstatSync(this.fd).size;
    if (size === 0) {
      if (this.readOnly) throw new FileStorageFormatError(this.path, 0, 'empty file opened read-only');
      this.writeAll(MAGIC_FS30, 0);
      fsyncSync(this.fd);
      this.pos = MAGIC_LEN;
      return;
    }
    const head = Buffer.alloc(4);
    this.reader.readInto(head, 4, 0);
    const m = checkMagic(head);
    if (m === 'fs21') {
      // a Python 2 file: same layout, read-only here (never written, no .index saved beside it)
      if (!this.readOnly) throw new FileStorageFormatError(this.path, 0, `invalid file header: ${FS21_CONVERSION_HINT}`);
      this.fs21 = true;
    } else if (m !== 'ok') throw new FileStorageFormatError(this.path, 0, 'invalid file header (not FS30)');

    let start = MAGIC_LEN;
    let ltid = 0n;
    let fromSaved = false;
    // with `stop` the saved index is not used: it could include transactions after `stop`
    // (Python uses it anyway, making time travel unreliable: spec §15 quirk 21)
    const saved = this.options.stop === undefined ? this.loadSavedIndex(size) : null;
    if (saved) {
      this.index = saved.index;
      start = saved.pos;
      ltid = saved.ltid;
      fromSaved = true;
    }
    const r = this.scan(start, ltid);
    this.pos = r.pos;
    this.ltid = r.ltid;
    this.ts = r.lastSeenTid > r.ltid ? r.lastSeenTid : r.ltid;
    this.maxOid = this.index.maxOid();
    if (!fromSaved && !this.readOnly) this.saveIndex();
    const ahead = new TimeStamp(this.ltid).timeTime() - this.now();
    if (this.ltid !== 0n && ahead > 0) {
      const msg = `${this.name} Database records ${Math.round(ahead)} seconds in the future`;
      if (ahead > 30 * 60) this.log.fatal(msg);
      else this.log.warn(msg);
    }
  }

  /** Load and sanity-check Data.fs.index (spec §6.2); null when absent or unusable. */
  private loadSavedIndex(size: number): { index: FsIndex; pos: number; ltid: Tid } | null {
    const ipath = this.path + '.index';
    if (!existsSync(ipath)) return null;
    try {
      const { pos, index } = decodeIndexFile(readFileSync(ipath));
      if (pos < 100) {
        // Python always rescans tiny files (spec §15 quirk 18)
        this.log.debug(`index position ${pos} < 100: rescanning ${this.path}`);
        return null;
      }
      if (pos > size) throw new Error(`position ${pos} beyond the file size ${size}`);
      // step back over transactions, checking at most 5 records of the newest non-empty one
      let tpos = pos;
      let ltid: Tid | null = null;
      for (let guard = 0; guard < 1e9; guard++) {
        if (tpos <= MAGIC_LEN) throw new Error('no non-empty transaction before the index position');
        const tl = this.reader.readPosAt(tpos - 8);
        const hpos = tpos - 8 - tl;
        if (hpos < MAGIC_LEN) throw new Error(`bad redundant length at ${tpos - 8}`);
        const h = this.reader.readTxnHeader(hpos);
        if (h.tlen !== tl) throw new Error(`transaction length mismatch at ${hpos}`);
        if (ltid === null) ltid = h.tid;
        if (h.status === STATUS_UNDONE || h.tlen === h.hlen) {
          tpos = hpos;
          continue;
        }
        if (h.status !== STATUS_COMMITTED && h.status !== STATUS_PACKED) throw new Error(`bad status at ${hpos}`);
        let rpos = hpos + h.hlen;
        for (let k = 0; k < 5 && rpos < h.end; k++) {
          const r = this.reader.readRecord(rpos);
          if (r.tloc !== hpos || r.next > h.end) throw new Error(`record at ${rpos} outside its transaction`);
          if (index.get(r.oid) !== rpos) throw new Error(`index disagrees with record at ${rpos}`);
          rpos = r.next;
        }
        break;
      }
      return { index, pos, ltid: ltid ?? 0n };
    } catch (e) {
      this.log.warn({ err: String(e) }, `Ignoring index for ${this.path}`);
      this.index = new FsIndex();
      return null;
    }
  }

  private nextTrPath(): string {
    for (let n = 0; n < 100000; n++) {
      const p = `${this.path}.tr${n}`;
      if (!existsSync(p)) return p;
    }
    throw new FileStorageError(`too many ${this.path}.trN files`);
  }

  private truncateTail(pos: number, size: number, keep: boolean, message: string): void {
    if (this.readOnly) return;
    this.log.warn(message);
    if (keep) {
      const tail = this.reader.readExact(pos, size - pos, 'damaged tail');
      const tr = this.nextTrPath();
      writeFileSync(tr, tail);
    }
    ftruncateSync(this.fd, pos);
    fsyncSync(this.fd);
  }

  /** The open scan (spec §8.2): index every complete transaction from `start`. */
  private scan(start: number, ltidIn: Tid): ScanResult {
    const size = fstatSync(this.fd).size;
    if (size < start) throw new FileStorageFormatError(this.path, start, `file is shorter (${size}) than the saved index position`);
    const stop = this.options.stop ?? 0xffffffffffffffffn;
    let pos = start;
    let ltid = ltidIn;
    let lastGood = ltidIn;
    const hbuf = Buffer.allocUnsafe(TRANS_HDR_LEN);
    const tindex = new Map<Oid, number>();
    const chunk = new ChunkReader(this.reader);
    for (;;) {
      const n = this.reader.readInto(hbuf, TRANS_HDR_LEN, pos);
      if (n === 0) break;
      if (n < TRANS_HDR_LEN) {
        this.truncateTail(pos, size, false, `${this.name} truncated at ${pos}`);
        break;
      }
      let h: TxnHeader;
      try {
        h = decodeTxnHeader(hbuf, 0);
      } catch (e) {
        if (!(e instanceof RecordFormatError)) throw e;
        // a length beyond any file: the same as a transaction running past the end
        h = { tid: hbuf.readBigUInt64BE(0), tlen: Number.MAX_SAFE_INTEGER, status: String.fromCharCode(hbuf[16]!), ulen: 0, dlen: 0, elen: 0 };
      }
      if (h.tid <= ltid) this.log.warn(`${this.name} time-stamp reduction at ${pos}`);
      ltid = h.tid;
      const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
      if (pos + h.tlen + 8 > size || h.status === STATUS_CHECKPOINT) {
        this.truncateTail(pos, size, true, `${this.name} truncated, possibly due to damaged records at ${pos}`);
        break;
      }
      if (h.status !== STATUS_COMMITTED && h.status !== STATUS_UNDONE && h.status !== STATUS_PACKED) {
        this.log.warn(`${this.name} has invalid status, ${h.status}, at ${pos}`);
      }
      if (h.tlen < hlen) {
        const rtl = this.reader.readPosAt(size - 8);
        if (size - rtl < pos || rtl < TRANS_HDR_LEN) {
          this.log.fatal(`${this.name} has invalid transaction header at ${pos}`);
          this.truncateTail(pos, size, true, `${this.name} has invalid transaction header at ${pos}`);
          break;
        }
        throw new CorruptedTransactionError(this.path, pos, `${this.name} has invalid transaction header`);
      }
      if (h.tid >= stop) break;
      const end = pos + h.tlen;
      if (h.status === STATUS_UNDONE) {
        if (this.reader.readPosAt(end) !== h.tlen) throw new CorruptedTransactionError(this.path, pos, `${this.name} has inconsistent transaction length`);
        pos = end + 8;
        lastGood = h.tid;
        continue;
      }
      tindex.clear();
      let rpos = pos + hlen;
      while (rpos < end) {
        const b = chunk.get(rpos, DATA_HDR_LEN);
        if (!b) throw new CorruptedTransactionError(this.path, rpos, `${this.name} data record exceeds transaction record`);
        let dh: DataHeader;
        try {
          dh = decodeDataHeader(b.buf, b.off);
        } catch (e) {
          if (!(e instanceof RecordFormatError)) throw e;
          throw new CorruptedTransactionError(this.path, rpos, `${this.name} data record exceeds transaction record (${e.message})`);
        }
        const rlen = dh.plen > 0 ? DATA_HDR_LEN + dh.plen : BACKPOINTER_RECORD_LEN;
        if (rpos + rlen > end || dh.tloc !== pos) throw new CorruptedTransactionError(this.path, rpos, `${this.name} data record exceeds transaction record`);
        if (dh.vlen !== 0) throw new CorruptedDataError(this.path, rpos, 'non-zero version length; versions aren\'t supported');
        // prev must match the committed position before this transaction
        const before = this.index.get(dh.oid);
        if (before !== dh.prev) {
          if (dh.prev !== 0) this.log.error(`${this.name} incorrect previous pointer at ${rpos}`);
          else this.log.warn(`${this.name} incorrect previous pointer at ${rpos}`);
        }
        tindex.set(dh.oid, rpos);
        rpos += rlen;
      }
      if (rpos !== end) throw new CorruptedTransactionError(this.path, pos, `${this.name} data records don't add up`);
      if (this.reader.readPosAt(end) !== h.tlen) throw new CorruptedTransactionError(this.path, end, `${this.name} redundant transaction length check failed`);
      for (const [oid, p] of tindex) this.index.set(oid, p);
      pos = end + 8;
      lastGood = h.tid;
    }
    return { pos, ltid: lastGood, lastSeenTid: ltid };
  }

  /** Write Data.fs.index for the committed state (spec §6.3). */
  saveIndex(): void {
    if (this.readOnly) return;
    const ipath = this.path + '.index';
    const tmp = ipath + '.index_tmp';
    writeFileSync(tmp, encodeIndexFile(this.pos, this.index));
    try {
      if (existsSync(ipath)) unlinkSync(ipath);
    } catch {
      // as Python: ignore remove errors
    }
    renameSync(tmp, ipath);
  }

  // ---- facts -----------------------------------------------------------------------------

  getName(): string {
    return this.name;
  }
  sortKey(): string {
    return this.name;
  }
  getSize(): number {
    return this.pos;
  }
  len(): number {
    return this.index.size;
  }
  isReadOnly(): boolean {
    return this.readOnly;
  }
  /** 'FS30', or 'FS21' for a Python 2 file (then always read-only). */
  fileFormat(): FileFormat {
    return this.fs21 ? 'FS21' : 'FS30';
  }
  /** The ReadOnlyError for a write attempt, saying why for an FS21 file. */
  private readOnlyError(): ReadOnlyError {
    return this.fs21 ? new ReadOnlyError(`${this.path}: ${FS21_CONVERSION_HINT}`) : new ReadOnlyError();
  }
  supportsUndo(): boolean {
    return true;
  }
  lastTransaction(): Tid {
    return this.ltid;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError(`${this.name} is closed`);
  }

  // ---- reading ---------------------------------------------------------------------------

  /** Record header at pos, checked to be for `oid`. */
  private recordFor(oid: Oid, pos: number): DataRecordAt {
    const r = this.reader.readRecord(pos);
    if (r.oid !== oid) throw new CorruptedDataError(this.path, pos, `record oid ${toHex(r.oid)} != expected ${toHex(oid)}`);
    return r;
  }

  private dataOf(r: DataRecordAt): Buffer {
    if (r.data) return r.data;
    return this.reader.loadBack(r.oid, r.back).data;
  }

  async load(oid: Oid): Promise<LoadResult> {
    return this.loadSync(oid);
  }

  loadSync(oid: Oid): LoadResult {
    this.checkOpen();
    const pos = this.index.get(oid);
    if (pos === 0) throw new POSKeyError(oid);
    const r = this.recordFor(oid, pos);
    if (r.data) return { data: r.data, tid: r.tid };
    if (r.back === 0) throw new POSKeyError(oid);
    return { data: this.reader.loadBack(oid, r.back).data, tid: r.tid };
  }

  async loadBefore(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null> {
    return this.loadBeforeSync(oid, tid);
  }

  loadBeforeSync(oid: Oid, tid: Tid): LoadBeforeResult | null {
    this.checkOpen();
    let pos = this.index.get(oid);
    if (pos === 0) throw new POSKeyError(oid);
    // fast path: the current revision is the answer (one read)
    const cur = this.recordFor(oid, pos);
    let r: DataRecordAt;
    let end: Tid | null = null;
    if (cur.tid < tid) r = cur;
    else {
      end = cur.tid;
      pos = cur.prev;
      if (pos === 0) return null;
      let last = cur.pos;
      for (;;) {
        if (pos >= last) throw new CorruptedDataError(this.path, pos, `prev pointer does not decrease (from ${last})`);
        last = pos;
        const h = this.headerFor(oid, pos);
        if (h.tid < tid) break;
        end = h.tid;
        pos = h.prev;
        if (pos === 0) return null;
      }
      r = this.recordFor(oid, pos);
    }
    if (r.data) return { data: r.data, start: r.tid, end };
    if (r.back === 0) throw new POSKeyError(oid);
    return { data: this.reader.loadBack(oid, r.back).data, start: r.tid, end };
  }

  private headerFor(oid: Oid, pos: number) {
    const h = this.reader.readDataHeader(pos);
    if (h.oid !== oid) throw new CorruptedDataError(this.path, pos, `record oid ${toHex(h.oid)} != expected ${toHex(oid)}`);
    return h;
  }

  async loadSerial(oid: Oid, serial: Tid): Promise<Buffer> {
    return this.loadSerialSync(oid, serial);
  }

  loadSerialSync(oid: Oid, serial: Tid): Buffer {
    this.checkOpen();
    // a revision still waiting for its fdatasync is found too: its tid is only known to a
    // committer told of it by a conflict, which then commits after it
    let pos = this.writerPosOf(oid);
    if (pos === 0) throw new POSKeyError(oid);
    let last = Number.MAX_SAFE_INTEGER;
    for (;;) {
      if (pos >= last) throw new CorruptedDataError(this.path, pos, `prev pointer does not decrease (from ${last})`);
      last = pos;
      const h = this.headerFor(oid, pos);
      if (h.tid === serial) break;
      if (h.tid < serial || h.prev === 0) throw new POSKeyError(oid);
      pos = h.prev;
    }
    const r = this.recordFor(oid, pos);
    if (r.data) return r.data;
    if (r.back === 0) throw new POSKeyError(oid);
    return this.reader.loadBack(oid, r.back).data;
  }

  async getTid(oid: Oid): Promise<Tid> {
    return this.getTidSync(oid);
  }

  getTidSync(oid: Oid): Tid {
    this.checkOpen();
    const pos = this.index.get(oid);
    if (pos === 0) throw new POSKeyError(oid);
    const r = this.recordFor(oid, pos);
    if (!r.data && r.back === 0) throw new POSKeyError(oid);
    return r.tid;
  }

  /** tid of the current record, or null (ZODB's lastTid). */
  lastTid(oid: Oid): Tid | null {
    try {
      return this.getTidSync(oid);
    } catch (e) {
      if (e instanceof POSKeyError) return null;
      throw e;
    }
  }

  async history(oid: Oid, size = 1): Promise<HistoryEntry[]> {
    this.checkOpen();
    let pos = this.index.get(oid);
    if (pos === 0) throw new POSKeyError(oid);
    const out: HistoryEntry[] = [];
    let last = Number.MAX_SAFE_INTEGER;
    while (out.length < size) {
      if (pos >= last) throw new CorruptedDataError(this.path, pos, `prev pointer does not decrease (from ${last})`);
      last = pos;
      const h = this.headerFor(oid, pos);
      const th = this.reader.readTxnHeader(h.tloc);
      const meta = this.reader.readTxnMeta(th);
      out.push({
        time: new TimeStamp(h.tid).timeTime(),
        tid: h.tid,
        serial: h.tid,
        user_name: meta.user,
        description: meta.description,
        size: h.plen,
        extension: meta.extension,
      });
      if (h.prev === 0) break;
      pos = h.prev;
    }
    return out;
  }

  // ---- writing ---------------------------------------------------------------------------

  async new_oid(): Promise<Oid> {
    this.checkOpen();
    if (this.readOnly) throw this.readOnlyError();
    this.maxOid += 1n;
    return this.maxOid;
  }

  /** Raise the new_oid floor (ZODB's set_max_oid). */
  setMaxOid(oid: Oid): void {
    if (oid > this.maxOid) this.maxOid = oid;
  }

  async tpc_begin(txn: TransactionMetaData, tid?: Tid, status = STATUS_COMMITTED): Promise<void> {
    this.checkOpen();
    if (this.readOnly) throw this.readOnlyError();
    if (this.active && this.active.txn === txn) throw new StorageTransactionError('Duplicate tpc_begin calls for same transaction');
    const meta = { user: txn.user, description: txn.description, extension: txn.extension };
    const problem = metaLengthProblem(meta);
    if (problem) throw new FileStorageError(problem);
    if (status !== STATUS_COMMITTED && status !== STATUS_PACKED) throw new StorageTransactionError(`bad transaction status ${JSON.stringify(status)}`);
    if (this.closing) throw new StorageError(`${this.name} is closing`);
    // group commit: this transaction may begin while finished ones still wait for their fdatasync
    await this.commitLock.acquire(this.groupCommit);
    try {
      this.checkOpen();
      this.checkCommits();
      const last = this.writerLastTid();
      let t: Tid;
      if (tid !== undefined) {
        if (tid <= last) throw new StorageTransactionError(`tid ${toHex(tid)} is not later than the last transaction ${toHex(last)}`);
        t = tid;
      } else {
        t = newTid(this.ts, this.now());
      }
      this.ts = t;
      this.active = {
        txn,
        tid: t,
        pos: this.writePos(),
        status,
        header: encodeTxnHeader(t, 0, STATUS_CHECKPOINT, meta),
        chunks: [],
        len: 0,
        tindex: new Map(),
        pending: new Map(),
        checks: [],
        voted: false,
        nextpos: 0,
        blobs: [],
        blobDirs: new Set(),
      };
    } catch (e) {
      this.commitLock.release();
      throw e;
    }
  }

  private activeFor(txn: TransactionMetaData, what = 'store'): ActiveTxn {
    this.checkOpen();
    if (this.readOnly) throw this.readOnlyError();
    const a = this.active;
    if (!a || a.txn !== txn) throw new StorageTransactionError(`${what} called with wrong transaction`);
    if (a.voted) throw new StorageTransactionError(`${what} called after tpc_vote`);
    return a;
  }

  /** Append one encoded record to the transaction buffer; returns its file position. */
  private addRecord(a: ActiveTxn, oid: Oid, tid: Tid, prev: number, data: Buffer | null, back: number, quota: boolean): number {
    const here = a.pos + a.header.length + a.len;
    if (quota && this.options.quota !== undefined && here > this.options.quota) throw new FileStorageQuotaError('The storage quota has been exceeded.');
    const rec = encodeDataRecord(oid, tid, prev, a.pos, data, back);
    a.chunks.push(rec);
    a.len += rec.length;
    a.tindex.set(oid, here);
    a.pending.set(oid, { tid, data, back, pos: here });
    return here;
  }

  private committedTidAt(pos: number): Tid {
    return this.reader.readDataHeader(pos).tid;
  }

  async store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void> {
    const a = this.activeFor(txn, 'store');
    if (!data || data.length === 0) throw new StorageError(`store of ${toHex(oid)}: empty data`);
    if (oid > this.maxOid) this.maxOid = oid;
    const old = this.writerPosOf(oid);
    if (old !== 0) {
      const committed = this.committedTidAt(old);
      if (serial !== committed) throw new ConflictError({ oid, serials: [committed, serial] });
    }
    this.addRecord(a, oid, a.tid, old, data, 0, true);
  }

  async deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    const a = this.activeFor(txn, 'deleteObject');
    const old = this.writerPosOf(oid);
    if (old === 0) throw new POSKeyError(oid);
    const committed = this.committedTidAt(old);
    if (serial !== committed) throw new ConflictError({ oid, serials: [committed, serial] });
    this.addRecord(a, oid, a.tid, old, null, 0, true);
  }

  async checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    const a = this.activeFor(txn, 'checkCurrentSerialInTransaction');
    if (a.checks.length > 10_000_000) throw new StorageTransactionError('too many checkCurrentSerialInTransaction calls');
    a.checks.push([oid, serial]);
  }

  /** Find a transaction by tid walking back from the end (spec §10.4 _txn_find); UndoError if absent. */
  private txnFind(tid: Tid): TxnHeaderAt {
    let pos = this.pos;
    while (pos > 39) {
      const h = this.reader.txnBefore(pos);
      if (!h) break;
      if (h.tid === tid) return h;
      // no early stop on smaller tids: files with time-stamp reductions exist (Python scans all)
      pos = h.pos;
    }
    throw new UndoError('Invalid transaction id');
  }

  async restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    let a = this.activeFor(txn, 'restore');
    // backpointers and prev_txn lookups read the committed file: finished transactions first become durable
    if (this.finished.length > 0) {
      await this.drainFinished();
      a = this.activeFor(txn, 'restore');
    }
    if (data !== null && data.length === 0) throw new StorageError(`restore of ${toHex(oid)}: empty data`);
    if (oid > this.maxOid) this.maxOid = oid;
    let back = 0;
    if (prevTxn !== null && prevTxn !== undefined) {
      const t = this.txnFind(prevTxn);
      let found: DataRecordAt | null = null;
      for (const r of this.reader.records(t)) if (r.oid === oid) found = r;
      if (found) {
        if (found.plen === 0) back = found.pos;
        else if (data === null || found.plen !== data.length) this.log.error(`Mismatch between data and backpointer at ${found.pos}`);
        else if (found.data!.equals(data)) back = found.pos;
      }
    }
    const old = this.index.get(oid);
    if (back !== 0) this.addRecord(a, oid, serial, old, null, back, false);
    else this.addRecord(a, oid, serial, old, data, 0, false);
  }

  // ---- blobs (IBlobStorage, spec §13) ------------------------------------------------------

  supportsBlobs(): boolean {
    return this.blobs !== null;
  }

  private blobDir(what: string): BlobDirectory {
    if (!this.blobs) throw new StorageError(`${what}: ${this.name} has no blob directory (blob support is off; configure blob-dir)`);
    return this.blobs;
  }

  temporaryDirectory(): string {
    return this.blobDir('temporaryDirectory').tempDir;
  }

  /**
   * Move `src` to the file of revision (oid, tid) as part of transaction `a`. When the move fails
   * the record just added for oid is taken back out, so no record ever names a missing file.
   */
  private moveBlobIn(a: ActiveTxn, oid: Oid, tid: Tid, src: string, undoRecord: () => void): void {
    const blobs = this.blobDir('storeBlob');
    try {
      if (a.blobs.length >= 10_000_000) throw new StorageTransactionError('too many blob files in one transaction');
      this.noteBlobDirs(a, blobs.createOidPath(oid));
      const target = blobs.blobFilename(oid, tid);
      renameOrCopyBlob(src, target);
      a.blobs.push(target);
    } catch (e) {
      undoRecord();
      throw e;
    }
  }

  /** Snapshot of the transaction buffer, to take the next record back out. */
  private recordMark(a: ActiveTxn, oid: Oid): () => void {
    const chunks = a.chunks.length;
    const len = a.len;
    const t = a.tindex.get(oid);
    const p = a.pending.get(oid);
    return () => {
      a.chunks.length = chunks;
      a.len = len;
      if (t === undefined) a.tindex.delete(oid);
      else a.tindex.set(oid, t);
      if (p === undefined) a.pending.delete(oid);
      else a.pending.set(oid, p);
    };
  }

  async storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void> {
    this.blobDir('storeBlob');
    const a = this.activeFor(txn, 'storeBlob');
    const undoRecord = this.recordMark(a, oid);
    await this.store(oid, serial, data, txn);
    this.moveBlobIn(a, oid, a.tid, blobFilename, undoRecord);
  }

  async restoreBlob(oid: Oid, serial: Tid, data: Buffer | null, blobFilename: string | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    this.blobDir('restoreBlob');
    const a = this.activeFor(txn, 'restoreBlob');
    const undoRecord = this.recordMark(a, oid);
    await this.restore(oid, serial, data, prevTxn, txn);
    // as Python: the file is named after the record's serial
    if (blobFilename !== null) this.moveBlobIn(a, oid, serial, blobFilename, undoRecord);
  }

  async loadBlob(oid: Oid, serial: Tid): Promise<string> {
    this.checkOpen();
    const f = this.blobDir('loadBlob').blobFilename(oid, serial);
    if (!existsSync(f)) throw new POSKeyError(oid, `No blob file at ${f} (oid ${oidRepr(oid)}, serial ${oidRepr(serial)})`);
    return f;
  }

  private noteBlobDirs(a: ActiveTxn, made: { path: string; changedDirs: string[] }): void {
    for (const d of made.changedDirs) a.blobDirs.add(d); // at most 8 per blob file, and those are bounded
  }

  /** fsync the transaction's blob files, their directories and the parents of new directories (once each). */
  private syncTxnBlobs(a: ActiveTxn): void {
    const dirs = new Set<string>(a.blobDirs);
    for (const f of a.blobs) {
      if (!existsSync(f)) throw new StorageError(`blob file ${f} of the transaction vanished before tpc_vote`);
      fsyncPath(f);
      dirs.add(dirname(f));
    }
    for (const d of dirs) fsyncPath(d);
  }

  async tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined> {
    this.checkOpen();
    const a = this.active;
    if (!a || a.txn !== txn) throw new StorageTransactionError('tpc_vote called with wrong transaction');
    if (a.voted) return [];
    this.checkCommits();
    if (a.pos !== this.writePos()) throw new FileStorageError(`${this.path}: internal error: transaction at ${a.pos} but the file's write end is ${this.writePos()}`);
    for (const [oid, serial] of a.checks) {
      const current = this.writerTidSync(oid);
      if (current !== serial) throw new ReadConflictError({ oid, serials: [current, serial] });
    }
    // the blob files reach the disk before any record naming them can be committed
    if (a.blobs.length) this.syncTxnBlobs(a);
    const tlen = a.header.length + a.len;
    a.header.writeUInt32BE(Math.floor(tlen / 0x100000000), 8);
    a.header.writeUInt32BE(tlen >>> 0, 12);
    const buf = Buffer.concat([a.header, ...a.chunks, p64pos(tlen)], tlen + 8);
    try {
      this.writeAll(buf, a.pos);
    } catch (e) {
      try {
        ftruncateSync(this.fd, a.pos);
      } catch {
        // the original error matters more
      }
      throw e;
    }
    a.voted = true;
    a.nextpos = a.pos + tlen + 8;
    a.chunks = [];
    return [];
  }

  private writeAll(buf: Buffer, pos: number): void {
    let off = 0;
    while (off < buf.length) {
      const n = writeSync(this.fd, buf, off, buf.length - off, pos + off);
      if (n <= 0) throw new FileStorageError(`${this.path}: write returned ${n} at ${pos + off}`);
      off += n;
    }
  }

  /**
   * Flag the transaction committed and make it durable; it becomes visible to readers, the commit
   * listeners are told and the promise resolves only once it is durable.
   * Without group commit: fdatasync in the call, the commit lock held throughout (as always).
   * With group commit: the fdatasync runs off the event loop and the commit lock is released
   * before it: the next transaction may begin and vote meanwhile, one fdatasync covers every
   * transaction finished while the previous one ran, and finishes resolve in tid order. A failed
   * fdatasync fails this and every later finish, and closes the storage.
   */
  async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    this.checkOpen();
    const a = this.active;
    if (!a || a.txn !== txn) throw new StorageTransactionError('tpc_finish called with wrong transaction');
    if (!a.voted) throw new StorageTransactionError('tpc_finish called before tpc_vote');
    try {
      this.checkCommits();
      this.writeAll(Buffer.from(a.status, 'latin1'), a.pos + 16);
    } catch (e) {
      this.log.fatal({ err: String(e), file: this.path, pos: a.pos }, 'Failure in _finish. Closing.');
      this.active = null;
      this.commitLock.release();
      await this.close();
      throw e;
    }
    a.blobs = []; // committed: the files stay
    this.active = null;
    if (!this.groupCommit && this.finished.length === 0) {
      const f: FinishedTxn = { tid: a.tid, pos: a.pos, end: a.nextpos, tindex: a.tindex, holdsLock: true, resolve: () => undefined, reject: () => undefined };
      try {
        try {
          // fdatasync flushes the data and the size change the commit made (what durability needs)
          if (this.options.fdatasync) await this.options.fdatasync(this.fd);
          else fdatasyncSync(this.fd);
        } catch (e) {
          this.syncFailure = new FileStorageError(`${this.path}: fdatasync failed (${String((e as Error)?.message ?? e)}) for transaction ${toHex(a.tid)} at ${a.pos}; it was not committed; the storage refuses commits and closes`);
          this.log.fatal({ err: String(e), file: this.path, pos: a.pos }, 'Failure in _finish. Closing.');
          try {
            if (!this.closed) ftruncateSync(this.fd, this.pos);
          } catch {
            // closing anyway
          }
          this.commitLock.release();
          await this.close();
          throw this.syncFailure;
        }
        this.publishFinished(f);
      } catch (e) {
        if (e === this.syncFailure) throw e;
        this.commitLock.release();
        throw e;
      }
      this.commitLock.release();
      return a.tid;
    }
    let resolve!: (tid: Tid) => void;
    let reject!: (err: Error) => void;
    const done = new Promise<Tid>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const holdsLock = this.finished.length + 1 >= MAX_FINISHED_UNSYNCED;
    this.finished.push({ tid: a.tid, pos: a.pos, end: a.nextpos, tindex: a.tindex, holdsLock, resolve, reject });
    if (!holdsLock) this.commitLock.release();
    if (!this.syncRunning) {
      this.syncRunning = true;
      void this.syncLoop();
    }
    return done;
  }

  /**
   * Make the finished transactions durable, oldest first: one fdatasync for all those waiting when
   * it starts, then each is published in order (index, pos, lastTransaction, commit listeners, its
   * tpc_finish resolves). With group commit all of a round are published in one turn of the event
   * loop (their callers' continuations then run in tid order and their network output is written
   * together); otherwise each in its own turn, so that what a caller does right after its
   * tpc_finish sees the storage as of that transaction. Bounded: every round removes the
   * transactions it started with (durable or failed).
   */
  private async syncLoop(): Promise<void> {
    for (;;) {
      const n = this.finished.length;
      if (n === 0) break;
      try {
        await (this.options.fdatasync ?? fdatasyncAsync)(this.fd);
      } catch (e) {
        this.durabilityFailed(e);
        return;
      }
      for (let i = 0; i < n; i++) {
        const f = this.finished[0]!;
        try {
          this.publishFinished(f);
        } catch (e) {
          // an internal inconsistency: fail what is left as an fdatasync failure would (loudly)
          this.durabilityFailed(e);
          return;
        }
        this.finished.shift();
        if (f.holdsLock) this.commitLock.release();
        f.resolve(f.tid);
        if (i + 1 < n && !this.groupCommit) await nextTurn();
      }
    }
    this.syncRunning = false;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  /** A finished transaction is durable: make it the committed state and tell the listeners. */
  private publishFinished(f: FinishedTxn): void {
    if (f.pos !== this.pos) throw new FileStorageError(`${this.path}: internal error: finished transaction at ${f.pos} but committed data ends at ${this.pos}`);
    this.pos = f.end;
    for (const [oid, p] of f.tindex) this.index.set(oid, p);
    this.indexVersion++;
    this.ltid = f.tid;
    const oids = [...f.tindex.keys()];
    for (const l of this.listeners) {
      try {
        l(f.tid, oids);
      } catch (e) {
        this.log.error({ err: String(e) }, 'commit listener failed');
      }
    }
  }

  /**
   * fdatasync failed: nothing finished since the last durable point may be reported committed.
   * Fail every waiting finish, cut the file back to the durable end, refuse later commits, close.
   */
  private durabilityFailed(e: unknown): void {
    const failed = this.finished.splice(0);
    const first = failed[0]!;
    const err = new FileStorageError(
      `${this.path}: fdatasync failed (${String((e as Error)?.message ?? e)}); ${failed.length} finished transaction(s) from ${toHex(first.tid)} at ${first.pos} are not durable and were not committed; the storage refuses commits and closes`,
    );
    this.syncFailure = err;
    this.log.fatal({ err: String(e), file: this.path, pos: first.pos, transactions: failed.length }, 'Failure in _finish (fdatasync). Closing.');
    try {
      if (!this.closed) ftruncateSync(this.fd, this.pos);
    } catch {
      // closing anyway: the open scan drops a tail that is not a whole committed transaction
    }
    for (const f of failed) {
      if (f.holdsLock) this.commitLock.release();
      f.reject(err);
    }
    this.syncRunning = false;
    for (const w of this.drainWaiters.splice(0)) w.reject(err);
    this.close().catch((e2) => this.log.error({ err: String(e2) }, 'close after the fdatasync failure failed'));
  }

  /** Resolves once every finished transaction is durable and published (rejects if one failed). */
  private drainFinished(): Promise<void> {
    if (!this.syncRunning && this.finished.length === 0) return this.syncFailure ? Promise.reject(this.syncFailure) : Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Refuse commits after a failed fdatasync. */
  private checkCommits(): void {
    if (this.syncFailure) throw this.syncFailure;
  }

  /** Where the next transaction is written: after the finished ones still waiting for fdatasync. */
  private writePos(): number {
    const f = this.finished;
    return f.length > 0 ? f[f.length - 1]!.end : this.pos;
  }

  /** The tid of the last finished transaction (durable or not). */
  private writerLastTid(): Tid {
    const f = this.finished;
    return f.length > 0 ? f[f.length - 1]!.tid : this.ltid;
  }

  /** The oid's newest record position as a commit sees it (finished, still syncing, included); 0: none. */
  private writerPosOf(oid: Oid): number {
    const f = this.finished;
    for (let i = f.length - 1; i >= 0; i--) {
      const p = f[i]!.tindex.get(oid);
      if (p !== undefined) return p;
    }
    return this.index.get(oid);
  }

  /** getTidSync as the next commit's conflict checks see it (finished transactions still syncing included). */
  private writerTidSync(oid: Oid): Tid {
    this.checkOpen();
    const pos = this.writerPosOf(oid);
    if (pos === 0) throw new POSKeyError(oid);
    const r = this.recordFor(oid, pos);
    if (!r.data && r.back === 0) throw new POSKeyError(oid);
    return r.tid;
  }

  /**
   * The oid's current serial as a transaction voting now is checked against: like getTid but
   * including transactions finished and still waiting for their fdatasync; null for no object.
   * A server uses it for its own conflict checks while tpc_finish calls overlap (pipelinedFinish).
   */
  writerTid(oid: Oid): Tid | null {
    this.checkOpen();
    // no POSKeyError for a new object: a server asks for every object it stores
    const pos = this.writerPosOf(oid);
    if (pos === 0) return null;
    const r = this.recordFor(oid, pos);
    if (!r.data && r.back === 0) return null;
    return r.tid;
  }

  /**
   * True with group commit: tpc_finish releases the commit lock before its fdatasync, so a
   * caller that serialises commits itself may start the next transaction (tpc_begin, stores,
   * tpc_vote) as soon as tpc_finish was called, without waiting for its promise.
   */
  get pipelinedFinish(): boolean {
    return this.groupCommit;
  }

  /** Turn group commit on (see FileStorageOptions.groupCommit); a ZEO server does at startup. */
  enableGroupCommit(): void {
    this.groupCommit = true;
  }

  async tpc_abort(txn: TransactionMetaData): Promise<void> {
    const a = this.active;
    if (!a || a.txn !== txn) return;
    try {
      if (a.voted && !this.closed) ftruncateSync(this.fd, a.pos);
    } finally {
      this.active = null;
      this.commitLock.release();
      this.removeTxnBlobs(a);
    }
  }

  /** Remove the blob files an unfinished transaction moved in (after its records are gone). */
  private removeTxnBlobs(a: ActiveTxn): void {
    for (const f of a.blobs.splice(0)) {
      try {
        removeCommitted(f);
      } catch (e) {
        this.log.error({ err: String(e), file: f }, 'cannot remove the blob file of an aborted transaction');
      }
    }
  }

  /** True while a transaction holds the commit lock. */
  get inTransaction(): boolean {
    return this.active !== null;
  }

  /**
   * @internal The writer state raw-append.ts (appendRawTransactions, ZRS raw mode) works on;
   * nothing else may use it. Raw appends run under the commit lock like any commit.
   */
  rawAppendInternals(): RawAppendInternals {
    return {
      path: this.path,
      commitLock: this.commitLock,
      check: () => {
        this.checkOpen();
        if (this.readOnly) throw this.readOnlyError();
      },
      fd: () => this.fd,
      reader: () => this.reader,
      pos: () => this.pos,
      lastTid: () => this.ltid,
      index: () => this.index,
      generation: () => this.generation,
      advance: (end: number, lastTid: Tid, maxOid: Oid) => {
        this.pos = end;
        this.ltid = lastTid;
        if (lastTid > this.ts) this.ts = lastTid;
        if (maxOid > this.maxOid) this.maxOid = maxOid;
        this.indexVersion++;
      },
      publish: (tid: Tid, oids: Oid[]) => {
        for (const l of this.listeners) {
          try {
            l(tid, oids);
          } catch (e) {
            this.log.error({ err: String(e) }, 'commit listener failed');
          }
        }
      },
      supportsBlobs: () => (this as { supportsBlobs?: () => boolean }).supportsBlobs?.() ?? false,
    };
  }

  // ---- undo ------------------------------------------------------------------------------

  async undoLog(first = 0, last = -20, filter?: UndoFilter): Promise<FileUndoLogEntry[]> {
    this.checkOpen();
    if (last < 0) last = first - last;
    if (this.packing) throw new UndoError('Undo is currently disabled for database maintenance.<p>');
    const out: FileUndoLogEntry[] = [];
    let i = 0;
    let pos = this.pos;
    while (i < last && pos >= 39) {
      const h = this.reader.txnBefore(pos);
      if (!h) break;
      pos = h.pos;
      if (h.status === STATUS_PACKED) break;
      if (h.status !== STATUS_COMMITTED) continue;
      const meta = this.reader.readTxnMeta(h);
      const e: FileUndoLogEntry = {
        id: tidToUndoId(h.tid),
        time: new TimeStamp(h.tid).timeTime(),
        user_name: meta.user,
        description: meta.description,
        extension: meta.extension,
        tid: h.tid,
        size: h.tlen,
      };
      if (!filter || filter(e)) {
        if (i >= first) out.push(e);
        i++;
      }
    }
    return out;
  }

  async undoInfo(first = 0, last = -20, specification?: Record<string, Buffer | string>): Promise<FileUndoLogEntry[]> {
    if (!specification) return this.undoLog(first, last);
    const spec = Object.entries(specification);
    const { decodeExtension } = await import('@zeo-ts/pickle');
    const same = (have: unknown, v: Buffer | string): boolean => {
      const want = typeof v === 'string' ? Buffer.from(v) : v;
      if (Buffer.isBuffer(have)) return have.equals(want);
      if (typeof have === 'string') return Buffer.from(have).equals(want);
      return false;
    };
    return this.undoLog(first, last, (e) => {
      // Python's entry: the fixed keys, then the extension dict's keys (which override)
      let ext: Record<string, unknown> = {};
      if (e.extension.length) {
        try {
          ext = decodeExtension(e.extension);
        } catch {
          ext = {};
        }
      }
      const base: Record<string, unknown> = { id: e.id, user_name: e.user_name, description: e.description };
      return spec.every(([k, v]) => same(k in ext ? ext[k] : base[k], v));
    });
  }

  async undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]> {
    let a = this.activeFor(txn, 'undo');
    // undo reads the committed file: finished transactions first become durable
    if (this.finished.length > 0) {
      await this.drainFinished();
      a = this.activeFor(txn, 'undo');
    }
    const utid = undoIdToTid(transactionId);
    if (utid === null) throw new UndoError('Invalid transaction id');
    const t = this.txnFind(utid);
    if (t.status !== STATUS_COMMITTED) throw new UndoError('non-undoable transaction');
    // snapshot so a failed undo leaves nothing behind
    const snap = { chunks: a.chunks.length, len: a.len, tindex: new Map(a.tindex), pending: new Map(a.pending), maxOid: this.maxOid, blobs: a.blobs.length };
    const rollback = () => {
      a.chunks.length = snap.chunks;
      a.len = snap.len;
      a.tindex = snap.tindex;
      a.pending = snap.pending;
      this.maxOid = snap.maxOid;
      // blob files copied by this call go again
      for (const f of a.blobs.splice(snap.blobs)) removeCommitted(f);
    };
    const errors = new Map<Oid, UndoError>();
    const written = new Set<Oid>();
    try {
    for (const r of this.reader.records(t)) {
      const o = r.oid;
      try {
        // records written earlier in *this* undo call are not consulted (Python merges them
        // into the transaction's index only after the whole undone transaction is processed)
        const tp = snap.tindex.get(o) ?? 0;
        const ip = this.index.get(o);
        const cur = tp || ip;
        let copy = true;
        if (cur !== r.pos) {
          let cptr: number;
          let cdata: Buffer | null;
          if (tp) {
            const p = snap.pending.get(o)!;
            if (p.data) {
              cptr = p.pos;
              cdata = p.data;
            } else {
              cptr = p.back;
              cdata = null;
            }
          } else {
            const c = this.recordFor(o, ip);
            if (c.data) {
              cptr = ip;
              cdata = c.data;
            } else {
              cptr = c.back;
              cdata = null;
            }
          }
          if (cptr !== r.pos) {
            let undone: Buffer;
            try {
              undone = this.reader.loadBack(o, r.pos).data;
              if (!cdata) cdata = this.reader.loadBack(o, cptr).data;
            } catch (e) {
              if (e instanceof POSKeyError) throw new UndoError('_loadBack() failed', o);
              throw e;
            }
            if (!undone.equals(cdata)) {
              copy = false;
              if (r.prev === 0) throw new UndoError("Can't undo an add transaction followed by conflicting transactions.", o);
            }
          }
        }
        if (r.prev === 0) this.addRecord(a, o, a.tid, ip, null, 0, false);
        else if (copy) {
          // undoing a blob change: the restored revision's file is copied for the undo tid
          // (spec §13); undoing a creation (prev 0) writes no file
          if (this.blobs && !this.blobProxy) this.copyBlobForUndo(a, o, r.prev);
          this.addRecord(a, o, a.tid, ip, null, r.prev, false);
        } else throw new UndoError('Some data were modified by a later transaction', o);
        errors.delete(o);
        written.add(o);
      } catch (e) {
        if (!(e instanceof UndoError)) throw e;
        errors.set(o, e);
      }
    }
    } catch (e) {
      rollback();
      throw e;
    }
    if (errors.size) {
      rollback();
      // Python raises MultipleUndoErrors even for a single failed oid
      throw new MultipleUndoErrors([...errors.values()]);
    }
    if (this.blobs && this.blobProxy) {
      try {
        this.copyBlobsForProxyUndo(a, utid);
      } catch (e) {
        rollback();
        throw e;
      }
    }
    return [...written];
  }

  /** how blob files are handled by undo and pack (see FileStorageOptions.blobMode) */
  get blobMode(): 'native' | 'proxy' {
    return this.options.blobMode ?? 'native';
  }

  private get blobProxy(): boolean {
    return this.blobMode === 'proxy';
  }

  /**
   * Undo as ZODB.blob.BlobStorage does it: for every oid with a blob file of the undone tid,
   * copy the file of the revision before it (or, for a creation, that file itself) to the undo
   * tid, as a plain (writable) copy.
   */
  private copyBlobsForProxyUndo(a: ActiveTxn, utid: Tid): void {
    const blobs = this.blobs!;
    const oids: Oid[] = [];
    for (const [oid, dir] of blobs.listOids()) {
      if (existsSync(join(dir, tidRepr(utid) + BLOB_SUFFIX))) oids.push(oid);
    }
    for (const oid of oids) {
      const before = this.loadBeforeSync(oid, utid);
      const src = blobs.blobFilename(oid, before === null ? utid : before.start);
      const target = blobs.blobFilename(oid, a.tid);
      // several undos in one transaction: the last copy wins, as with Python's open(..., 'wb')
      const mine = a.blobs.indexOf(target);
      if (mine >= 0) {
        removeCommitted(target);
        a.blobs.splice(mine, 1);
      }
      copyFileContent(src, target);
      a.blobs.push(target);
    }
  }

  /**
   * Undo writes a backpointer to the record at `back`: when that revision is a blob, copy its
   * file (named by the tid of the data-bearing record) to the file of (oid, undo tid).
   * A revision that cannot be loaded (removed) needs no file; a missing blob file is an error.
   */
  private copyBlobForUndo(a: ActiveTxn, oid: Oid, back: number): void {
    let up: { data: Buffer; tid: Tid };
    try {
      up = this.reader.loadBack(oid, back);
    } catch (e) {
      if (e instanceof POSKeyError) return;
      throw e;
    }
    if (!isBlobRecord(up.data)) return;
    const blobs = this.blobs!;
    const src = blobs.blobFilename(oid, up.tid);
    if (!existsSync(src)) throw new POSKeyError(oid, `No blob file at ${src} (needed to undo a change of ${oidRepr(oid)})`);
    const tmp = copyBlobToTemp(src, blobs.tempDir);
    try {
      this.noteBlobDirs(a, blobs.createOidPath(oid));
      const target = blobs.blobFilename(oid, a.tid);
      renameOrCopyBlob(tmp, target);
      a.blobs.push(target);
    } catch (e) {
      removeCommitted(tmp);
      throw e;
    }
  }

  // ---- pack ------------------------------------------------------------------------------

  async pack(t: number, gc?: boolean): Promise<void> {
    if (this.readOnly) throw this.readOnlyError();
    const { packStorage } = await import('./pack.ts');
    await packStorage(this, t, gc ?? this.options.packGc ?? true);
    if (this.blobs && this.blobProxy) {
      // under the commit lock, so the files of a transaction in progress are never taken
      await this.commitLock.acquire();
      try {
        this.checkOpen();
        const { packBlobsLikeProxy } = await import('./pack.ts');
        packBlobsLikeProxy(this.blobs, (oid, tid) => this.loadSerialSync(oid, tid), this.log);
      } finally {
        this.commitLock.release();
      }
    }
  }

  /** Internals used by the packer (not for general use). */
  packInternals() {
    return {
      fd: () => this.fd,
      reader: () => this.reader,
      pos: () => this.pos,
      commitLock: this.commitLock,
      options: this.options,
      referencesf: this.options.referencesf,
      keepOld: this.options.packKeepOld ?? true,
      readOnly: this.readOnly,
      closed: () => this.closed,
      /** swap in the packed file: called with the commit lock held */
      swap: (packPath: string, index: FsIndex, size: number) => {
        if (this.closed) throw new StorageError(`${this.name} was closed while packing; pack abandoned`);
        closeSync(this.fd);
        const oldPath = this.path + '.old';
        try {
          renameSync(this.path, oldPath);
        } catch (e) {
          this.fd = openSync(this.path, 'r+');
          this.reader = this.makeReader();
          throw e;
        }
        renameSync(packPath, this.path);
        this.index = index;
        this.pos = size;
        this.generation++;
        this.indexVersion++;
        this.fd = openSync(this.path, 'r+');
        this.reader = this.makeReader();
        this.saveIndex();
      },
    };
  }

  // ---- iteration -------------------------------------------------------------------------

  iterator(start?: Tid, stop?: Tid): AsyncIterable<FileTransactionRecord> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      [Symbol.asyncIterator]: async function* () {
        for (const t of self.iterateSync(start, stop)) yield t;
      },
    };
  }

  /** Bumped whenever pack swaps in a new data file. */
  private generation = 0;
  /** Bumped whenever the committed index changes (sorted-oid cache for record_iternext). */
  private indexVersion = 0;
  private sortedOidsCache: { gen: number; oids: bigint[] } | null = null;

  /**
   * Synchronous iterator over committed transactions (spec §9.9). It reads through its own
   * descriptor, so a pack that replaces the file meanwhile does not disturb it: it then finishes
   * the file it started on (as Python's FileIterator does).
   */
  *iterateSync(start?: Tid, stop?: Tid): Generator<FileTransactionRecord> {
    this.checkOpen();
    const reader = FileReader.open(this.path, { allowFs21: this.fs21 });
    const gen = this.generation;
    let frozenEnd = -1;
    const limit = () => {
      if (gen === this.generation && !this.closed) return this.pos;
      if (frozenEnd < 0) frozenEnd = reader.size();
      return frozenEnd;
    };
    reader.useCache(new BlockCache(4 * 1024 * 1024, 65536), limit);
    try {
      let pos = start === undefined ? MAGIC_LEN : this.startPosition(reader, start, limit());
      for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
        const end = limit();
        if (pos >= end) return;
        let h: TxnHeaderAt;
        try {
          h = reader.readTxn(pos, end);
        } catch (e) {
          this.log.warn({ err: String(e) }, `iterator stopped at ${pos}`);
          return;
        }
        pos = h.end + 8;
        if (h.status === STATUS_CHECKPOINT) return;
        if (h.status === STATUS_UNDONE) continue;
        if (start !== undefined && h.tid < start) continue;
        if (stop !== undefined && h.tid > stop) return;
        yield this.transactionRecord(h, reader);
      }
    } finally {
      reader.close();
    }
  }

  /**
   * Where a forward iteration from tid `start` may begin: a transaction boundary at or before
   * the first transaction with tid >= start. When `start` lies in the newer half of the tid
   * range (the common case: replicas and clients catching up) the file is walked backwards from
   * its end instead of forwards from its start. Falls back to the start on any doubt.
   */
  private startPosition(reader: FileReader, start: Tid, end: number): number {
    try {
      if (end <= MAGIC_LEN) return MAGIC_LEN;
      const first = reader.readTxnHeader(MAGIC_LEN).tid;
      const lastH = reader.txnBefore(end);
      if (!lastH || start <= first) return MAGIC_LEN;
      if (start > lastH.tid) return end;
      const frac = Number(start - first) / Number(lastH.tid - first);
      if (frac < 0.5) return MAGIC_LEN;
      let pos = end;
      let steps = 0;
      for (const h of reader.transactionsBackward(end)) {
        if (h.tid < start) return pos;
        pos = h.pos;
        if (++steps > 100_000_000) break;
      }
      return MAGIC_LEN;
    } catch {
      return MAGIC_LEN;
    }
  }

  private transactionRecord(h: TxnHeaderAt, reader: FileReader = this.reader): FileTransactionRecord {
    const meta = reader.readTxnMeta(h);
    const records: FileDataRecord[] = [];
    for (const r of reader.records(h, 'lenient')) {
      let data: Buffer | null = r.data;
      let dataTxn: Tid | null = null;
      if (!data && r.back !== 0) {
        try {
          data = reader.loadBack(r.oid, r.back).data;
        } catch (e) {
          if (!(e instanceof POSKeyError)) throw e;
          data = null;
        }
        dataTxn = reader.readDataHeader(r.back).tid;
      }
      records.push({ oid: r.oid, tid: r.tid, data, data_txn: dataTxn, pos: r.pos });
    }
    return { tid: h.tid, status: h.status, user: meta.user, description: meta.description, extension: meta.extension, records, pos: h.pos };
  }

  /** [tid, oids] of the last `count` transactions, oldest first (ZODB's lastInvalidations). */
  lastInvalidations(count: number): Array<[Tid, Oid[]]> {
    this.checkOpen();
    let pos = this.pos;
    for (let i = 0; i < count && pos > MAGIC_LEN; i++) {
      const h = this.reader.txnBefore(pos);
      if (!h) break;
      pos = h.pos;
    }
    const out: Array<[Tid, Oid[]]> = [];
    for (const h of this.reader.transactions(pos, this.pos, 'lenient')) {
      if (h.status === STATUS_UNDONE) continue;
      out.push([h.tid, [...this.reader.records(h, 'lenient')].map((r) => r.oid)]);
    }
    return out;
  }

  /**
   * ZODB's record_iternext: the smallest oid >= next (or overall), its current data and tid,
   * and the following oid (null at the end). POSKeyError on a deleted object.
   */
  async record_iternext(next?: Oid | null): Promise<{ oid: Oid; tid: Tid; data: Buffer; next: Oid | null }> {
    if (!this.sortedOidsCache || this.sortedOidsCache.gen !== this.indexVersion) this.sortedOidsCache = { gen: this.indexVersion, oids: this.index.sortedOids() };
    const oids = this.sortedOidsCache.oids;
    if (oids.length === 0) throw new StorageError('record_iternext: empty storage');
    let i = 0;
    if (next !== undefined && next !== null) {
      let lo = 0;
      let hi = oids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (oids[mid]! < next) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    if (i >= oids.length) throw new StorageError('record_iternext: no more oids');
    const oid = oids[i]!;
    const r = this.loadBeforeSync(oid, maxtid);
    if (!r) throw new POSKeyError(oid);
    return { oid, tid: r.start, data: r.data, next: i + 1 < oids.length ? oids[i + 1]! : null };
  }

  // ---- observation and lifecycle ---------------------------------------------------------

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private releaseFiles(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.lockFile?.release();
    this.lockFile = null;
  }

  /** Close; finished transactions whose fdatasync is under way complete first. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.closed) return;
    if (this.syncRunning || this.finished.length > 0) {
      await this.drainFinished().catch(() => undefined);
      // let the callers of those tpc_finish calls run their continuations before the storage closes
      await nextTurn();
    }
    if (this.closed) return;
    if (this.active) {
      const a = this.active;
      try {
        if (a.voted) ftruncateSync(this.fd, this.pos);
      } catch {
        // closing anyway
      }
      this.active = null;
      this.commitLock.release();
      this.removeTxnBlobs(a);
    }
    this.closed = true;
    try {
      if (!this.readOnly) this.saveIndex();
    } finally {
      this.releaseFiles();
    }
  }
}

/** Sequential window over a file for fast scans: one read per ~1 MiB instead of per record. */
export class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  constructor(
    private readonly reader: FileReader,
    private readonly chunk = 1 << 20,
  ) {}

  /** `len` bytes at `pos` as (buffer, offset), or null if the file ends first. */
  get(pos: number, len: number): { buf: Buffer; off: number } | null {
    if (pos >= this.start && pos + len <= this.start + this.buf.length) return { buf: this.buf, off: pos - this.start };
    const size = Math.max(this.chunk, len);
    const b = this.buf.length >= size ? this.buf : Buffer.allocUnsafe(size);
    const n = this.reader.readInto(b, size, pos);
    this.buf = b.subarray(0, n);
    this.start = pos;
    if (n < len) return null;
    return { buf: this.buf, off: 0 };
  }

  /** Forget the window (after the file changed). */
  reset(): void {
    this.buf = Buffer.alloc(0);
    this.start = 0;
  }
}

// re-exports for the packer
export { readPos };
