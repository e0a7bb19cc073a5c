/**
 * The storage contract, modelled on ZODB's interfaces.py (IStorage, IMVCCStorage's loadBefore,
 * IStorageUndoable, IStorageIteration, IStorageRestoreable, IStorageCurrentRecordIteration).
 *
 * Every storage of the project implements `IStorage`: MappingStorage, FileStorage, the ZEO
 * ClientStorage, ZRS primaries and secondaries, and ZEORaid. One conformance suite
 * (`@zeo-ts/storage/testing`) runs against each.
 *
 * Conventions:
 *  - oids and tids are bigints (see ids.ts); object states are opaque pickle bytes (Buffer).
 *  - every call that may do I/O returns a Promise; cheap cached facts are synchronous.
 *  - errors are the POSException classes of errors.ts.
 */
import type { Oid, Tid } from './ids.ts';

/**
 * The transaction object passed to tpc_begin and every later call of the same transaction
 * (ZODB's TransactionMetaData). Storages compare it by identity.
 */
export class TransactionMetaData {
  /** user name bytes (UTF-8 by convention) */
  user: Buffer;
  /** description bytes (UTF-8 by convention) */
  description: Buffer;
  /** the extension: empty, or the pickle of a dict, exactly as stored */
  extension: Buffer;
  /** per-storage scratch space, as ZODB's TransactionMetaData.data(ob) */
  private readonly scratch = new Map<unknown, unknown>();

  constructor(user: Buffer | string = '', description: Buffer | string = '', extension: Buffer = Buffer.alloc(0)) {
    this.user = typeof user === 'string' ? Buffer.from(user, 'utf8') : user;
    this.description = typeof description === 'string' ? Buffer.from(description, 'utf8') : description;
    this.extension = extension;
  }

  data(key: unknown): unknown {
    return this.scratch.get(key);
  }

  setData(key: unknown, value: unknown): void {
    this.scratch.set(key, value);
  }
}

export interface LoadResult {
  data: Buffer;
  tid: Tid;
}

export interface LoadBeforeResult {
  data: Buffer;
  /** tid of the revision returned */
  start: Tid;
  /** tid of the next revision, or null if the returned revision is current */
  end: Tid | null;
}

/** One entry of history(oid): newest first. */
export interface HistoryEntry {
  /** seconds since the epoch of the revision's tid */
  time: number;
  tid: Tid;
  serial: Tid;
  user_name: Buffer;
  description: Buffer;
  /** size in bytes of the revision's data */
  size: number;
  /** decoded extension entries are left to higher layers; the raw extension bytes */
  extension: Buffer;
}

/** One entry of undoLog / undoInfo: newest first. */
export interface UndoLogEntry {
  /** opaque transaction id for undo(); FileStorage uses base64(tid) without the newline */
  id: Buffer;
  time: number;
  user_name: Buffer;
  description: Buffer;
  /** the raw extension bytes of the transaction */
  extension: Buffer;
  /** the tid of the transaction (not part of ZODB's dict; convenient) */
  tid: Tid;
}

/** A data record as yielded by iterator(): ZODB's IStorageRecordInformation. */
export interface DataRecord {
  oid: Oid;
  /** the tid of the transaction this record is in */
  tid: Tid;
  /** the state, or null when the object was deleted / its creation undone */
  data: Buffer | null;
  /** for a record that reuses earlier data (backpointer), the tid of the transaction that wrote it; else null */
  data_txn: Tid | null;
}

/** A transaction as yielded by iterator(): ZODB's IStorageTransactionInformation. */
export interface TransactionRecord {
  tid: Tid;
  /** ' ' committed, 'p' packed, (FileStorage also 'u' never yielded, 'c' never yielded) */
  status: string;
  user: Buffer;
  description: Buffer;
  extension: Buffer;
  records: DataRecord[];
}

/** Called after every committed transaction, in commit order, before tpc_finish returns. */
export type CommitListener = (tid: Tid, oids: Oid[]) => void;

/** A filter over undoLog entries, evaluated by the storage. */
export type UndoFilter = (entry: UndoLogEntry) => boolean;

export interface IStorage {
  // ---- identity and facts -------------------------------------------------------------
  getName(): string;
  sortKey(): string;
  /** approximate size in bytes */
  getSize(): number;
  /** number of objects (ZODB's __len__) */
  len(): number;
  isReadOnly(): boolean;
  supportsUndo(): boolean;
  /** tid of the last committed transaction, z64 when empty */
  lastTransaction(): Tid;

  // ---- reading -------------------------------------------------------------------------
  /** current revision; POSKeyError if the object does not exist (or is deleted) */
  load(oid: Oid): Promise<LoadResult>;
  /** the revision current just before `tid`; null if none; POSKeyError if the oid never existed */
  loadBefore(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null>;
  /** the revision written by `serial`; POSKeyError if absent */
  loadSerial(oid: Oid, serial: Tid): Promise<Buffer>;
  /** tid of the current revision; POSKeyError if absent */
  getTid(oid: Oid): Promise<Tid>;
  /** revisions of the object, newest first, at most `size` */
  history(oid: Oid, size?: number): Promise<HistoryEntry[]>;

  // ---- writing (two-phase commit) -------------------------------------------------------
  new_oid(): Promise<Oid>;
  /**
   * Begin a transaction. `tid` given: use it (restore/copy); `status` is the status byte to
   * record (' ' by default, 'p' for copies of packed transactions).
   */
  tpc_begin(txn: TransactionMetaData, tid?: Tid, status?: string): Promise<void>;
  /** store a new revision of oid whose previous revision was `serial` (z64 for a new object) */
  store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void>;
  /** write a revision as-is (copy/replication): no conflict check; data null = delete; prevTxn = backpointer source */
  restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void>;
  deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void>;
  /** assert that `serial` is still current for oid at commit; else ReadConflictError at vote */
  checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void>;
  /** durably prepare; returns the oids whose conflicts were resolved by the storage (if any) */
  tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined>;
  /** make the transaction visible; calls commit listeners; returns the committed tid */
  tpc_finish(txn: TransactionMetaData): Promise<Tid>;
  tpc_abort(txn: TransactionMetaData): Promise<void>;

  // ---- undo -----------------------------------------------------------------------------
  undoLog(first?: number, last?: number, filter?: UndoFilter): Promise<UndoLogEntry[]>;
  undoInfo(first?: number, last?: number, specification?: Record<string, Buffer | string>): Promise<UndoLogEntry[]>;
  /** undo the transaction with the given undoLog id inside `txn`; returns the oids affected */
  undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]>;

  // ---- pack, iteration ------------------------------------------------------------------
  /** remove revisions not needed to read any state at or after time `t` (seconds since epoch); gc: remove unreachable objects */
  pack(t: number, gc?: boolean): Promise<void>;
  /** transactions with start <= tid <= stop, oldest first */
  iterator(start?: Tid, stop?: Tid): AsyncIterable<TransactionRecord>;

  // ---- observation and lifecycle ---------------------------------------------------------
  /** observe committed transactions (for invalidations); returns an unsubscribe function */
  onCommit(listener: CommitListener): () => void;
  close(): Promise<void>;
}

/**
 * ZODB's IBlobStorage and IBlobStorageRestoreable: a storage whose objects may carry a blob, a
 * file kept beside the data record (one file per revision, `(oid, tid)`). Blob files are passed
 * by path; the storage takes ownership of a file given to storeBlob/restoreBlob (it is moved into
 * the blob directory, so callers create it under `temporaryDirectory()`, on the same file
 * system). A storage built without a blob directory answers `supportsBlobs()` false and its blob
 * methods throw StorageError.
 */
export interface IBlobStorage extends IStorage {
  /** true when this instance has a blob directory (Python: IBlobStorage.providedBy) */
  supportsBlobs(): boolean;
  /** directory for uncommitted blob files, on the blob directory's file system */
  temporaryDirectory(): string;
  /** `store`, plus the blob file of the new revision (the file is moved; the caller loses it) */
  storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void>;
  /** `restore`, plus the blob file of the revision (moved); blobFilename null = no blob file */
  restoreBlob(
    oid: Oid,
    serial: Tid,
    data: Buffer | null,
    blobFilename: string | null,
    prevTxn: Tid | null,
    txn: TransactionMetaData,
  ): Promise<void>;
  /** path of the committed (read-only) blob file of revision `serial` of oid; POSKeyError if missing */
  loadBlob(oid: Oid, serial: Tid): Promise<string>;
}

/** whether `storage` implements IBlobStorage and has blob support switched on */
export function isBlobStorage(storage: IStorage): storage is IBlobStorage {
  const s = storage as Partial<IBlobStorage>;
  return typeof s.supportsBlobs === 'function' && typeof s.storeBlob === 'function' && s.supportsBlobs();
}
