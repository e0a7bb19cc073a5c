/**
 * MappingStorage: an in-memory IStorage with full MVCC history.
 *
 * Every revision of every object is kept (until a pack), so load, loadBefore, loadSerial,
 * history, undo and the iterator behave like FileStorage's (filestorage spec §9, §10) without a
 * file. Records written by undo and by restore with a usable prevTxn remember the tid of the
 * revision whose data they reuse (`dataTxn`), which the iterator reports as `data_txn`, so a copy
 * of a MappingStorage into a FileStorage produces backpointers exactly where FileStorage would.
 *
 * Concurrency: one transaction at a time holds the commit lock from tpc_begin until
 * tpc_finish/tpc_abort; further tpc_begin calls wait in a bounded FIFO queue. Everything else is
 * synchronous inside one event-loop turn, so readers never see a half-committed transaction.
 */
import { pino, type Logger } from 'pino';
import { decodeExtension, referencesf } from '@zeo-ts/pickle';
import { oidRepr, p64, z64, type Oid, type Tid } from './ids.ts';
import { TimeStamp, newTid } from './timestamp.ts';
import {
  ConflictError,
  MultipleUndoErrors,
  POSKeyError,
  ReadConflictError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  TransactionTooLargeError,
  UndoError,
} from './errors.ts';
import type {
  CommitListener,
  HistoryEntry,
  IStorage,
  LoadBeforeResult,
  LoadResult,
  TransactionMetaData,
  TransactionRecord,
  UndoFilter,
  UndoLogEntry,
} from './interface.ts';

export interface MappingStorageOptions {
  /** getName()/sortKey(); default 'MappingStorage' */
  name?: string;
  /** refuse every write with ReadOnlyError */
  readOnly?: boolean;
  /** how many tpc_begin calls may wait for the commit lock (default 10000) */
  maxWaiting?: number;
  /** largest number of object records in one transaction (default 1000000) */
  maxRecordsPerTransaction?: number;
  /** pino logger; default: a silent-by-default pino logger named after the storage */
  logger?: Logger;
  /** clock for new tids, seconds since the epoch (default Date.now()/1000) */
  clock?: () => number;
}

/** One revision of one object, shared by the object's revision list and its transaction. */
interface Revision {
  oid: Oid;
  /** serial of this revision (the transaction tid, or the serial given to restore) */
  tid: Tid;
  /** the state, null when the object does not exist as of this revision */
  data: Buffer | null;
  /** for a record that reuses an earlier revision's data (undo, restore): that revision's tid */
  dataTxn: Tid | null;
  /** the committed transaction holding this record (set by tpc_finish) */
  owner?: Txn;
}

interface Txn {
  tid: Tid;
  status: string;
  user: Buffer;
  description: Buffer;
  extension: Buffer;
  /**
   * records in write order. An oid written twice in one transaction has two records (as in a
   * FileStorage file); only the last one is a revision in the object's history.
   */
  records: Revision[];
  /** lazily built: the last record of each oid (dropped whenever records change) */
  lastByOid?: Map<Oid, Revision>;
}

/** The last record of `oid` in `t` (what a backpointer into `t` means, as FileStorage's restore). */
function lastRecordOf(t: Txn | undefined, oid: Oid): Revision | undefined {
  if (t === undefined) return undefined;
  if (t.lastByOid === undefined) {
    const m = new Map<Oid, Revision>();
    for (const r of t.records) m.set(r.oid, r);
    t.lastByOid = m;
  }
  return t.lastByOid.get(oid);
}

interface Pending {
  txn: TransactionMetaData;
  tid: Tid;
  status: string;
  /** every write, in order */
  records: Revision[];
  /** the last write of each oid */
  last: Map<Oid, Revision>;
  voted: boolean;
}

interface Waiter {
  owner: unknown;
  resolve: () => void;
  reject: (e: Error) => void;
}

const VALID_STATUS = new Set([' ', 'p']);

function copyBuf(b: Buffer | null): Buffer | null {
  return b === null ? null : Buffer.from(b);
}

/** FileStorage's undo id: base64 of the 8-byte tid without the trailing newline (spec §2.3). */
export function undoIdForTid(tid: Tid): Buffer {
  return Buffer.from(p64(tid).toString('base64'), 'ascii');
}

/** Inverse of undoIdForTid; UndoError('Invalid transaction id') for anything else. */
export function tidFromUndoId(id: Buffer | string): Tid {
  const text = Buffer.isBuffer(id) ? id.toString('latin1') : id;
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== 8 || raw.toString('base64') !== text) throw new UndoError('Invalid transaction id');
  return raw.readBigUInt64BE(0);
}

export class MappingStorage implements IStorage {
  private readonly name: string;
  private readonly readOnly: boolean;
  private readonly maxWaiting: number;
  private readonly maxRecords: number;
  private readonly log: Logger;
  private readonly clock: () => number;

  /** oid -> revisions, oldest first (tids strictly increasing) */
  private readonly revisions = new Map<Oid, Revision[]>();
  /** committed transactions, oldest first (tids strictly increasing) */
  private txns: Txn[] = [];
  private readonly txnByTid = new Map<Tid, Txn>();
  private ltid: Tid = z64;
  /** the last tid handed out (aborted transactions advance it too) */
  private lastIssued: Tid = z64;
  private maxOid: Oid = z64;
  private opened = true;

  private pending: Pending | null = null;
  private lockOwner: unknown = null;
  private readonly waiters: Waiter[] = [];
  /** transactions aborted between being handed the lock and their tpc_begin resuming */
  private readonly abortedWhileStarting = new Set<unknown>();
  private readonly listeners = new Set<CommitListener>();

  constructor(options: MappingStorageOptions = {}) {
    this.name = options.name ?? 'MappingStorage';
    this.readOnly = options.readOnly ?? false;
    this.maxWaiting = options.maxWaiting ?? 10000;
    this.maxRecords = options.maxRecordsPerTransaction ?? 1_000_000;
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.log = options.logger ?? pino({ name: this.name, level: process.env.ZEO_TS_LOG_LEVEL ?? 'warn' });
    if (!(this.maxWaiting >= 0) || !(this.maxRecords >= 1)) throw new RangeError('MappingStorage: invalid limits');
  }

  // ---- identity and facts ----------------------------------------------------------------

  getName(): string {
    return this.name;
  }

  sortKey(): string {
    return this.name;
  }

  getSize(): number {
    let size = 0;
    for (const revs of this.revisions.values()) {
      size += 50;
      for (const r of revs) size += 100 + (r.data?.length ?? 0);
    }
    return size;
  }

  len(): number {
    return this.revisions.size;
  }

  isReadOnly(): boolean {
    return this.readOnly;
  }

  supportsUndo(): boolean {
    return true;
  }

  lastTransaction(): Tid {
    return this.ltid;
  }

  // ---- reading ---------------------------------------------------------------------------

  private checkOpen(): void {
    if (!this.opened) throw new StorageError(`${this.name} is closed`);
  }

  private current(oid: Oid): Revision | undefined {
    const revs = this.revisions.get(oid);
    return revs === undefined ? undefined : revs[revs.length - 1];
  }

  async load(oid: Oid): Promise<LoadResult> {
    this.checkOpen();
    const r = this.current(oid);
    if (r === undefined || r.data === null) throw new POSKeyError(oid);
    return { data: Buffer.from(r.data), tid: r.tid };
  }

  async loadBefore(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null> {
    this.checkOpen();
    const revs = this.revisions.get(oid);
    if (revs === undefined || revs.length === 0) throw new POSKeyError(oid);
    let i = revs.length - 1;
    while (i >= 0 && revs[i]!.tid >= tid) i--;
    if (i < 0) return null;
    const r = revs[i]!;
    // Like FileStorage (spec §9.3, §15 quirk 16): a deletion found here is an error, not None.
    if (r.data === null) throw new POSKeyError(oid);
    const next = revs[i + 1];
    return { data: Buffer.from(r.data), start: r.tid, end: next === undefined ? null : next.tid };
  }

  async loadSerial(oid: Oid, serial: Tid): Promise<Buffer> {
    this.checkOpen();
    const r = this.revisions.get(oid)?.find((x) => x.tid === serial);
    if (r === undefined || r.data === null) throw new POSKeyError(oid);
    return Buffer.from(r.data);
  }

  private getTidSync(oid: Oid): Tid {
    const r = this.current(oid);
    if (r === undefined || r.data === null) throw new POSKeyError(oid);
    return r.tid;
  }

  async getTid(oid: Oid): Promise<Tid> {
    this.checkOpen();
    return this.getTidSync(oid);
  }

  async history(oid: Oid, size = 1): Promise<HistoryEntry[]> {
    this.checkOpen();
    const revs = this.revisions.get(oid);
    if (revs === undefined || revs.length === 0) throw new POSKeyError(oid);
    const out: HistoryEntry[] = [];
    for (let i = revs.length - 1; i >= 0 && out.length < size; i--) {
      const r = revs[i]!;
      const t = this.txnOfRevision(r);
      out.push({
        time: new TimeStamp(r.tid).timeTime(),
        tid: r.tid,
        serial: r.tid,
        user_name: Buffer.from(t.user),
        description: Buffer.from(t.description),
        // as FileStorage's plen: 0 for records that reuse other data or mark a deletion
        size: r.dataTxn !== null || r.data === null ? 0 : r.data.length,
        extension: Buffer.from(t.extension),
      });
    }
    return out;
  }

  private txnOfRevision(r: Revision): Txn {
    if (r.owner === undefined) {
      throw new Error(`MappingStorage invariant: revision ${oidRepr(r.oid)}@${oidRepr(r.tid)} belongs to no transaction`);
    }
    return r.owner;
  }

  // ---- the commit lock -------------------------------------------------------------------

  /** Take the commit lock now (returns null) or get a promise for it (FIFO, bounded). */
  private acquire(owner: unknown): Promise<void> | null {
    if (this.lockOwner === null) {
      this.lockOwner = owner;
      return null;
    }
    if (this.waiters.length >= this.maxWaiting) {
      throw new StorageTransactionError(`${this.name}: too many transactions waiting for the commit lock (${this.maxWaiting})`);
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ owner, resolve, reject }));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next === undefined) {
      this.lockOwner = null;
    } else {
      this.lockOwner = next.owner;
      next.resolve();
    }
  }

  // ---- writing ---------------------------------------------------------------------------

  async new_oid(): Promise<Oid> {
    this.checkOpen();
    if (this.readOnly) throw new ReadOnlyError();
    this.maxOid += 1n;
    return this.maxOid;
  }

  async tpc_begin(txn: TransactionMetaData, tid?: Tid, status = ' '): Promise<void> {
    this.checkOpen();
    if (this.readOnly) throw new ReadOnlyError();
    if (this.pending?.txn === txn || this.lockOwner === txn || this.waiters.some((w) => w.owner === txn)) {
      throw new StorageTransactionError('Duplicate tpc_begin calls for same transaction');
    }
    if (!VALID_STATUS.has(status)) throw new StorageTransactionError(`tpc_begin: invalid transaction status ${JSON.stringify(status)}`);
    const waiting = this.acquire(txn);
    if (waiting !== null) await waiting;
    try {
      this.checkOpen();
      if (this.abortedWhileStarting.delete(txn)) {
        throw new StorageTransactionError('transaction aborted while waiting for the commit lock');
      }
      let t: Tid;
      if (tid === undefined) {
        t = newTid(this.lastIssued > this.ltid ? this.lastIssued : this.ltid, this.clock());
      } else {
        if (tid <= this.ltid) {
          throw new StorageTransactionError(`tpc_begin: tid ${oidRepr(tid)} is not later than the last transaction ${oidRepr(this.ltid)}`);
        }
        t = tid;
      }
      if (t > this.lastIssued) this.lastIssued = t;
      this.pending = { txn, tid: t, status, records: [], last: new Map(), voted: false };
    } catch (e) {
      this.release();
      throw e;
    }
  }

  private active(txn: TransactionMetaData, what: string): Pending {
    this.checkOpen();
    const p = this.pending;
    if (p === null || p.txn !== txn) throw new StorageTransactionError(`${what} called with wrong transaction`);
    return p;
  }

  private writable(txn: TransactionMetaData, what: string): Pending {
    this.checkOpen();
    if (this.readOnly) throw new ReadOnlyError();
    const p = this.active(txn, what);
    if (p.voted) throw new StorageTransactionError(`${what} called after tpc_vote`);
    return p;
  }

  private put(p: Pending, rec: Revision): void {
    if (p.records.length >= this.maxRecords) {
      throw new TransactionTooLargeError(`${this.name}: more than ${this.maxRecords} records in one transaction`);
    }
    // A repeated write of one oid adds a record; the last one is what load sees.
    p.records.push(rec);
    p.last.set(rec.oid, rec);
    if (rec.oid > this.maxOid) this.maxOid = rec.oid;
  }

  async store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void> {
    const p = this.writable(txn, 'store');
    if (!Buffer.isBuffer(data) || data.length === 0) {
      throw new StorageError(`store: empty data for oid ${oidRepr(oid)} (a record must hold a pickle)`);
    }
    const cur = this.current(oid);
    if (cur !== undefined && cur.tid !== serial) {
      throw new ConflictError({ oid, serials: [cur.tid, serial] });
    }
    this.put(p, { oid, tid: p.tid, data: Buffer.from(data), dataTxn: null });
  }

  async deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    const p = this.writable(txn, 'deleteObject');
    const cur = this.current(oid);
    if (cur === undefined) throw new POSKeyError(oid);
    if (cur.tid !== serial) throw new ConflictError({ oid, serials: [cur.tid, serial] });
    this.put(p, { oid, tid: p.tid, data: null, dataTxn: null });
  }

  async restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    const p = this.writable(txn, 'restore');
    if (data !== null && (!Buffer.isBuffer(data) || data.length === 0)) {
      throw new StorageError(`restore: empty data for oid ${oidRepr(oid)} (use null for a deletion)`);
    }
    let stored: Buffer | null = data === null ? null : Buffer.from(data);
    let dataTxn: Tid | null = null;
    if (prevTxn !== null && prevTxn !== undefined) {
      // As FileStorage (spec §10.4, §15 quirk 4): the named transaction must exist here.
      const prev = this.txnByTid.get(prevTxn);
      if (prev === undefined) throw new UndoError('Invalid transaction id', oid);
      const target = lastRecordOf(prev, oid);
      if (target !== undefined) {
        if (target.data === null || target.dataTxn !== null) {
          // the target itself reuses data (or marks a deletion): trust it
          dataTxn = target.tid;
          stored = target.data;
        } else if (data !== null && target.data.equals(data)) {
          dataTxn = target.tid;
          stored = target.data;
        } else {
          this.log.warn({ oid: oidRepr(oid), prevTxn: oidRepr(prevTxn) }, 'restore: data differs from the backpointer target; storing data inline');
        }
      }
    }
    this.put(p, { oid, tid: serial, data: stored, dataTxn });
  }

  async checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    this.active(txn, 'checkCurrentSerialInTransaction');
    // As ZODB's BaseStorage: checked at once (the commit lock is held, so it cannot change before vote).
    const current = this.getTidSync(oid);
    if (current !== serial) throw new ReadConflictError({ oid, serials: [current, serial] });
  }

  async tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined> {
    const p = this.active(txn, 'tpc_vote');
    if (p.voted) throw new StorageTransactionError('tpc_vote called twice');
    p.voted = true;
    return [];
  }

  async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    const p = this.active(txn, 'tpc_finish');
    if (!p.voted) throw new StorageTransactionError('tpc_finish called before tpc_vote');
    const record: Txn = {
      tid: p.tid,
      status: p.status,
      user: Buffer.from(txn.user),
      description: Buffer.from(txn.description),
      extension: Buffer.from(txn.extension),
      records: p.records,
    };
    for (const r of record.records) r.owner = record;
    for (const r of p.last.values()) {
      let revs = this.revisions.get(r.oid);
      if (revs === undefined) {
        revs = [];
        this.revisions.set(r.oid, revs);
      }
      // keep revisions sorted by serial; a serial equal to an existing one replaces it
      let i = revs.length;
      while (i > 0 && revs[i - 1]!.tid > r.tid) i--;
      if (i > 0 && revs[i - 1]!.tid === r.tid) revs[i - 1] = r;
      else revs.splice(i, 0, r);
    }
    this.txns.push(record);
    this.txnByTid.set(record.tid, record);
    this.ltid = p.tid;
    this.pending = null;
    const oids = [...p.last.keys()];
    try {
      for (const l of [...this.listeners]) {
        try {
          l(p.tid, oids);
        } catch (e) {
          this.log.error({ err: e, tid: oidRepr(p.tid) }, 'commit listener failed');
        }
      }
    } finally {
      this.release();
    }
    return p.tid;
  }

  async tpc_abort(txn: TransactionMetaData): Promise<void> {
    if (this.pending?.txn === txn) {
      this.pending = null;
      this.release();
      return;
    }
    const i = this.waiters.findIndex((w) => w.owner === txn);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.reject(new StorageTransactionError('transaction aborted while waiting for the commit lock'));
    } else if (this.lockOwner === txn) {
      // handed the lock, but its tpc_begin has not resumed yet: it will give the lock back
      this.abortedWhileStarting.add(txn);
    }
  }

  // ---- undo ------------------------------------------------------------------------------

  private undoEntry(t: Txn): UndoLogEntry {
    return {
      id: undoIdForTid(t.tid),
      time: new TimeStamp(t.tid).timeTime(),
      user_name: Buffer.from(t.user),
      description: Buffer.from(t.description),
      extension: Buffer.from(t.extension),
      tid: t.tid,
    };
  }

  async undoLog(first = 0, last = -20, filter?: UndoFilter): Promise<UndoLogEntry[]> {
    this.checkOpen();
    if (last < 0) last = first - last;
    const out: UndoLogEntry[] = [];
    let i = 0;
    for (let k = this.txns.length - 1; k >= 0 && i < last; k--) {
      const t = this.txns[k]!;
      if (t.status === 'p') break; // packed history is not undoable (spec §10.1)
      if (t.status !== ' ') continue;
      const e = this.undoEntry(t);
      if (filter === undefined || filter(e)) {
        if (i >= first) out.push(e);
        i++;
      }
    }
    return out;
  }

  /**
   * undoLog filtered by `specification`: every key must equal the entry's value, where the
   * transaction's extension keys are merged over the entry as in FileStorage (spec §10.1).
   * Buffer-valued fields also match a string given as UTF-8 text.
   */
  async undoInfo(first = 0, last = -20, specification?: Record<string, Buffer | string>): Promise<UndoLogEntry[]> {
    if (specification === undefined) return this.undoLog(first, last);
    const spec = Object.entries(specification);
    return this.undoLog(first, last, (e) => {
      let ext: Record<string, unknown> = {};
      if (e.extension.length > 0) {
        try {
          ext = decodeExtension(e.extension);
        } catch {
          ext = {}; // as FileStorage: an undecodable extension counts as {}
        }
      }
      const base = e as unknown as Record<string, unknown>;
      return spec.every(([k, want]) => {
        const have = Object.prototype.hasOwnProperty.call(ext, k) ? ext[k] : base[k];
        if (have instanceof Uint8Array) return Buffer.from(have.buffer, have.byteOffset, have.byteLength).equals(typeof want === 'string' ? Buffer.from(want, 'utf8') : want);
        if (typeof have === 'string') return typeof want === 'string' ? have === want : Buffer.from(have, 'utf8').equals(want);
        return false;
      });
    });
  }

  async undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]> {
    const p = this.writable(txn, 'undo');
    const utid = tidFromUndoId(transactionId);
    const target = this.txnByTid.get(utid);
    if (target === undefined) throw new UndoError('Invalid transaction id');
    if (target.status !== ' ') throw new UndoError('non-undoable transaction');
    // As FileStorage (spec §10.2): records are undone in order; a record written by this undo
    // is what a later record of the same oid sees as current; a later record of an oid that
    // failed gets a second chance.
    const written: Revision[] = [];
    const writtenLast = new Map<Oid, Revision>();
    const failures = new Map<Oid, UndoError>();
    for (const r of target.records) {
      failures.delete(r.oid);
      const revs = this.revisions.get(r.oid)!;
      const lastOfTxn = lastRecordOf(target, r.oid)!;
      const at = revs.indexOf(lastOfTxn);
      if (at < 0) throw new Error(`MappingStorage invariant: revision of ${oidRepr(r.oid)} missing from its history`);
      const pre = at > 0 ? revs[at - 1]! : null;
      const cur = writtenLast.get(r.oid) ?? p.last.get(r.oid) ?? revs[revs.length - 1]!;
      // "current" also when the current record reuses exactly this record's data
      const isCurrent = cur === r || (r === lastOfTxn && cur.dataTxn !== null && cur.dataTxn === r.tid);
      let copy = true;
      if (!isCurrent) {
        // The undone record is no longer current: allowed only if the current state is the same bytes.
        if (r.data === null || cur.data === null) {
          failures.set(r.oid, new UndoError('_loadBack() failed', r.oid));
          continue;
        }
        if (!r.data.equals(cur.data)) {
          copy = false;
          if (pre === null) {
            failures.set(r.oid, new UndoError("Can't undo an add transaction followed by conflicting transactions.", r.oid));
            continue;
          }
        }
      }
      let w: Revision;
      if (pre === null) w = { oid: r.oid, tid: p.tid, data: null, dataTxn: null };
      else if (copy) w = { oid: r.oid, tid: p.tid, data: pre.data, dataTxn: pre.tid };
      else {
        failures.set(r.oid, new UndoError('Some data were modified by a later transaction', r.oid));
        continue;
      }
      written.push(w);
      writtenLast.set(r.oid, w);
    }
    if (failures.size > 0) throw new MultipleUndoErrors([...failures.values()]);
    for (const w of written) this.put(p, w);
    return [...writtenLast.keys()];
  }

  // ---- pack ------------------------------------------------------------------------------

  async pack(t: number, gc = true): Promise<void> {
    this.checkOpen();
    if (this.readOnly) throw new ReadOnlyError();
    const packtid = TimeStamp.fromTime(t).raw;
    if (packtid === z64) throw new StorageError('Invalid pack time');
    if (this.revisions.size === 0) return;
    const token = Symbol('pack');
    const waiting = this.acquire(token);
    if (waiting !== null) await waiting;
    try {
      this.checkOpen();
      this.packNow(packtid, gc);
    } finally {
      this.release();
    }
  }

  /** Runs with the commit lock held; computes everything first so a failure changes nothing. */
  private packNow(packtid: Tid, gc: boolean): void {
    // Redundant pack (as FileStorage's packer): everything up to the pack time is already packed
    // and so is the transaction after it — e.g. a pack to an earlier time than a previous pack.
    const firstAfter = this.txns.findIndex((t) => t.tid > packtid);
    const upTo = firstAfter < 0 ? this.txns.length : firstAfter;
    if (this.txns.slice(0, upTo).every((t) => t.status === 'p')) {
      const next = this.txns[firstAfter < 0 ? upTo - 1 : firstAfter];
      if (next !== undefined && next.status === 'p') {
        this.log.info({ packtid: oidRepr(packtid) }, 'pack: already packed to a later time, or nothing changed since the last pack');
        return;
      }
    }
    // A. the revision of each oid current at the pack time (objects deleted then are absent)
    const cur = new Map<Oid, Revision>();
    for (const [oid, revs] of this.revisions) {
      let last: Revision | undefined;
      for (const r of revs) {
        if (r.tid > packtid) break;
        last = r;
      }
      if (last !== undefined && !(last.data === null && last.dataTxn === null)) cur.set(oid, last);
    }
    // revisions before the pack time that later records reuse (undo/restore backpointers)
    const backTargets: Revision[] = [];
    for (const txn of this.txns) {
      if (txn.tid <= packtid) continue;
      for (const r of txn.records) {
        if (r.dataTxn === null || r.dataTxn > packtid) continue;
        const target = this.findRevision(r.oid, r.dataTxn);
        if (target !== undefined) backTargets.push(target);
      }
    }

    const keep = new Set<Revision>();
    if (gc) {
      // B. reachability from the root at the pack time (weak/cross-database refs are not followed)
      const reachable = new Map<Oid, Revision>();
      const mark = (roots: Oid[]) => {
        const stack = [...roots];
        let steps = 0;
        while (stack.length > 0) {
          if (++steps > 100_000_000) throw new StorageError('pack: reference graph too large');
          const oid = stack.pop()!;
          if (reachable.has(oid)) continue;
          const r = cur.get(oid);
          if (r === undefined) {
            if (oid === z64 && cur.size === 0) continue; // pack time before the root existed
            throw new POSKeyError(oid, `pack: reachable object ${oidRepr(oid)} does not exist at the pack time`);
          }
          reachable.set(oid, r);
          if (r.data !== null) referencesf(r.data, stack);
        }
      };
      mark([z64]);
      // Later records reusing pre-pack data (as FileStorage's packer): for a reachable object the
      // reused revision is kept too and its references are followed; for any other object the
      // reused revision becomes the one kept (its references are not followed).
      const extra = new Set<Revision>();
      const extraRoots: Revision[] = [];
      for (const target of backTargets) {
        if (reachable.has(target.oid)) {
          if (!extra.has(target)) {
            extra.add(target);
            extraRoots.push(target);
          }
        } else {
          reachable.set(target.oid, target);
        }
      }
      for (const target of extraRoots) if (target.data !== null) mark(referencesf(target.data, []));
      for (const r of reachable.values()) keep.add(r);
      for (const r of extra) keep.add(r);
    } else {
      for (const r of cur.values()) keep.add(r);
      for (const r of backTargets) keep.add(r);
    }

    // C. anything to free? (a pack that frees nothing changes nothing, spec §16 #45)
    let changed = false;
    for (const txn of this.txns) {
      if (txn.tid > packtid) break;
      for (const r of txn.records) if (!keep.has(r) || r.dataTxn !== null) changed = true;
    }
    if (!changed) {
      this.log.info({ packtid: oidRepr(packtid) }, 'pack: nothing to remove');
      return;
    }
    let removed = 0;
    const txns: Txn[] = [];
    for (const txn of this.txns) {
      if (txn.tid > packtid) {
        txns.push(txn);
        continue;
      }
      const before = txn.records.length;
      txn.records = txn.records.filter((r) => keep.has(r));
      txn.lastByOid = undefined;
      removed += before - txn.records.length;
      for (const r of txn.records) r.dataTxn = null; // kept pre-pack records become self-contained
      txn.status = 'p';
      if (txn.records.length > 0) txns.push(txn);
      else this.txnByTid.delete(txn.tid);
    }
    this.txns = txns;
    // As FileStorage's packed file: an object's history (the prev chain) keeps, before the pack
    // time, only its last kept record; older records kept for later backpointers are reachable
    // through those backpointers and the iterator, not through load/loadBefore/loadSerial/history.
    const lastKept = new Map<Oid, Revision>();
    for (const r of keep) {
      if (r.tid > packtid) continue;
      const other = lastKept.get(r.oid);
      if (other === undefined || other.tid < r.tid) lastKept.set(r.oid, r);
    }
    for (const [oid, revs] of this.revisions) {
      const left = revs.filter((r) => r.tid > packtid || lastKept.get(oid) === r);
      if (left.length === 0) this.revisions.delete(oid);
      else this.revisions.set(oid, left);
    }
    this.log.info({ packtid: oidRepr(packtid), gc, removedRecords: removed, objects: this.revisions.size }, 'pack finished');
  }

  /** The record of oid written with serial tid (normally in the transaction with that tid). */
  private findRevision(oid: Oid, tid: Tid): Revision | undefined {
    return lastRecordOf(this.txnByTid.get(tid), oid) ?? this.revisions.get(oid)?.find((x) => x.tid === tid);
  }

  // ---- iteration, observation, lifecycle ---------------------------------------------------

  async *iterator(start?: Tid, stop?: Tid): AsyncIterable<TransactionRecord> {
    this.checkOpen();
    const snapshot = this.txns.filter((t) => (start === undefined || t.tid >= start) && (stop === undefined || t.tid <= stop));
    for (const t of snapshot) {
      this.checkOpen();
      yield {
        tid: t.tid,
        status: t.status,
        user: Buffer.from(t.user),
        description: Buffer.from(t.description),
        extension: Buffer.from(t.extension),
        records: t.records.map((r) => ({ oid: r.oid, tid: r.tid, data: copyBuf(r.data), data_txn: r.dataTxn })),
      };
    }
  }

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (!this.opened) return;
    this.opened = false;
    const waiting = this.waiters.splice(0);
    for (const w of waiting) w.reject(new StorageError(`${this.name} closed while waiting for the commit lock`));
  }
}
