/**
 * One client connection's server side (the reference's ZEOStorage): the methods of
 * zeo5-protocol §8 as handlers over decoded wire arguments, the per-connection transaction
 * (§10.2), iterators (§8.6), and an ordered output so that replies and invalidations reach the
 * client in an order that keeps its cache consistent (§5.7, §11.2).
 *
 * Output ordering: a synchronous call whose reply is computed right away (loads, ...) reserves its
 * place in the connection's output when it ARRIVES; invalidations and delayed replies (vote, pack,
 * undoLog/undoInfo) take their place when they are produced. A load reply that reports a revision
 * as current therefore always precedes the invalidation of any transaction that committed after
 * the load began (§11.2), whatever the storage's I/O latency.
 */
import {
  ConflictError,
  POSError,
  POSKeyError,
  ReadConflictError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  TransactionMetaData,
  p64,
  u64,
  z64,
  TimeStamp,
  type Oid,
  type Tid,
  type TransactionRecord,
  type DataRecord,
  type UndoLogEntry,
  isBlobStorage,
} from '@zeo-ts/storage';
import { OidKeyError, PyBuiltinError, TxnMismatchError } from './errors.ts';
import assert from 'node:assert/strict';
import { open as openFile } from 'node:fs/promises';
import {
  BLOB_CHUNK_SIZE,
  BlobKeyError,
  BlobSend,
  BlobUpload,
  blobStorageOf,
  checkSharedBlobName,
  removeQuietly,
  sharedBlobPath,
  workingCopy,
  type BlobRecord,
} from './blobs.ts';
import { resolveLengthConflict } from './resolve.ts';
import { decodeExtension, encodeExtension, getPickleMetadata } from '@zeo-ts/pickle';
import type { LockClient } from './lock.ts';
import type { StorageEntry, StorageServer } from './server.ts';
import {
  PyFloat,
  asBytes,
  asBytes8,
  asInt,
  asNumber,
  asOptBytes8,
  asStr,
  describe,
  pyList,
  truthy,
  txnKey,
  type PyListValue,
} from './values.ts';

/** What a session needs from its transport. */
export interface ClientChannel {
  /** peer address label: `host:port` or a socket path */
  readonly peer: string;
  /** send a successful reply (flag 0) */
  reply(msgid: unknown, value: unknown): void;
  /** send an error reply (flag 2) for an error carrying pythonClass/pythonArgs */
  error(msgid: unknown, err: Error): void;
  /** send a server→client one-way call (msgid 0, flag True) */
  call(name: string, args: unknown[]): void;
  /** close the connection (no further output) */
  close(reason: string): void;
  /** false while the transport's output is backed up (optional: absent = always writable) */
  readonly writable?: boolean;
  /** resolves once the transport's output drained (or the connection closed) */
  waitDrain?(): Promise<void>;
}

/** The methods a registered connection may call (zeo5-protocol §8.0). */
export const REGISTERED_METHODS: ReadonlySet<string> = new Set([
  'get_info', 'lastTransaction', 'getInvalidations', 'new_oids', 'pack', 'loadBefore', 'storea',
  'checkCurrentSerialInTransaction', 'restorea', 'storeBlobStart', 'storeBlobChunk', 'storeBlobEnd',
  'storeBlobShared', 'deleteObject', 'tpc_begin', 'vote', 'tpc_finish', 'tpc_abort', 'history',
  'record_iternext', 'sendBlob', 'getTid', 'loadSerial', 'new_oid', 'undoa', 'undoLog', 'undoInfo',
  'iterator_start', 'iterator_next', 'iterator_record_start', 'iterator_record_next', 'iterator_gc',
  'server_status', 'set_client_label', 'ping',
]);

/**
 * Methods whose replies are produced later and take their output place then (§5.5 rule 7).
 * tpc_finish too: with group commit a client may finish while an earlier transaction is still
 * becoming durable, and that transaction's invalidation (sent when durable) must reach it before
 * its own, later, tid (a client's last tid only grows).
 */
const DELAYED = new Set(['vote', 'pack', 'undoLog', 'undoInfo', 'tpc_finish']);

/** Bound on invalidations held behind one tpc_finish reply (a reply is due within a few turns). */
const MAX_HELD_INVALIDATIONS = 100_000;

/** Bound on the calls of one transaction log (storea etc.), protecting server memory. */
const MAX_LOG_ENTRIES = 10_000_000;

type LogOp =
  | { op: 'store'; oid: Buffer; serial: Buffer; data: Buffer }
  | { op: 'restore'; oid: Buffer; serial: Buffer; data: Buffer | null; prevTxn: Buffer | null }
  | { op: 'delete'; oid: Buffer; serial: Buffer }
  | { op: 'checkread'; oid: Buffer; serial: Buffer }
  | { op: 'undo'; transId: Buffer };

type TxnState = 'begun' | 'waiting' | 'voting' | 'voted' | 'finishing';

interface Txn {
  id: unknown;
  key: string;
  meta: TransactionMetaData;
  tid: Tid | null;
  status: string;
  log: LogOp[];
  logBytes: number;
  state: TxnState;
  /** a storage-level transaction is open (between storage.tpc_begin and finish/abort) */
  storageBegun: boolean;
  /** the vote/finish currently running, if any */
  running: Promise<unknown> | null;
  cancelled: boolean;
  /** blob records (storeBlobEnd / storeBlobShared), stored after the log at vote (§8.4) */
  blobs: BlobRecord[];
  /** files handed to storeBlob (links to `blobs` files) that may still exist */
  blobWork: string[];
}

/** What an output slot writes once ready (plain data: no closure per call). */
const OUT_REPLY = 0;
const OUT_ERROR = 1;
/** tpc_finish: `info` then the tid reply (§10.8) */
const OUT_FINISH = 2;
/** a server→client one-way call: `name(...value)` */
const OUT_CALL = 3;
/** sendBlob: stream receiveBlobStart/Chunk/Stop from the open file, then reply nil (§8.4) */
const OUT_STREAM = 4;
/** chunks read from a blob file at once by sendBlob (≈ 0.9 MB in memory per stream) */
const BLOB_READ_CHUNKS = 16;

interface Slot {
  ready: boolean;
  kind: number;
  msgid: unknown;
  /** method name (for error logs and OUT_CALL) */
  name: string;
  /** reply value, error, FinishResult or call arguments */
  value: unknown;
}

interface TxnIterator {
  kind: 'txn';
  it: AsyncIterator<TransactionRecord>;
}
interface RecIterator {
  kind: 'rec';
  records: DataRecord[];
  pos: number;
}

export class ZEOSession implements LockClient {
  private entry: StorageEntry | null = null;
  private readOnly: boolean;
  private clientLabel: string | null = null;
  private txn: Txn | null = null;
  private readonly slots: Slot[] = [];
  private closed = false;
  private cleanup: Promise<void> | null = null;
  private iteratorIds = 0;
  private readonly iterators = new Map<number, TxnIterator | RecIterator>();
  private readonly txnIteratorLast = new Map<number, TransactionRecord>();
  /** the blob upload in progress (at most one per connection, §8.4) */
  private upload: BlobUpload | null = null;
  /** a sendBlob stream is being written: later output waits behind it */
  private streaming = false;

  constructor(
    readonly server: StorageServer,
    readonly channel: ClientChannel,
  ) {
    this.readOnly = server.options.read_only;
  }

  /** `(<client label> )<peer>` as in the reference's log lines. */
  get label(): string {
    return this.clientLabel === null ? this.channel.peer : `${this.clientLabel} ${this.channel.peer}`;
  }

  get storageName(): string | null {
    return this.entry?.name ?? null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isReadOnly(): boolean {
    return this.readOnly;
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error' | 'fatal', msg: string, extra?: object): void {
    const log = this.server.log;
    if (!log.isLevelEnabled(level)) return;
    log[level](extra ?? {}, `(${this.label}) ${msg}`);
  }

  private debugEnabled(): boolean {
    return this.server.log.isLevelEnabled('debug');
  }

  // ---------------------------------------------------------------------------------------
  // Message entry point (§5.5)

  /**
   * Handle one decoded message. `flags` is the raw flag: truthy = one-way call.
   * Messages with msgid -1 (heartbeats) are ignored in every state.
   */
  handle(msgid: unknown, flags: unknown, name: string, args: unknown[]): void {
    if (this.closed) return;
    if (msgid === -1 || msgid === -1n) return;
    const oneway = truthy(flags);
    const allowed = this.entry === null ? name === 'register' : REGISTERED_METHODS.has(name);
    if (!allowed || typeof name !== 'string') {
      this.log('warn', `invalid method ${JSON.stringify(String(name))} (${this.entry === null ? 'not registered' : 'registered'}); closing`);
      this.closeConnection(`invalid method ${String(name)}`);
      return;
    }
    if (!Array.isArray(args)) {
      this.log('warn', `arguments of ${name} are not a sequence (${describe(args)}); closing`);
      this.closeConnection(`bad arguments for ${name}`);
      return;
    }
    if (oneway) {
      this.handleOneWay(name, args);
      return;
    }
    if (DELAYED.has(name)) {
      let p: Promise<unknown>;
      try {
        p = Promise.resolve(this.dispatch(name, args));
      } catch (err) {
        p = Promise.reject(err);
      }
      this.delayedPending++;
      p.then(
        (v) => {
          this.delayedPending--;
          this.push(v instanceof FinishResult ? OUT_FINISH : OUT_REPLY, msgid, name, v);
          if (name === 'tpc_finish') this.releaseHeldInvalidations();
        },
        (err) => {
          this.delayedPending--;
          this.push(OUT_ERROR, msgid, name, err);
          if (name === 'tpc_finish') this.releaseHeldInvalidations();
        },
      );
      return;
    }
    const slot = this.reserve(msgid, name);
    let r: unknown;
    try {
      r = this.dispatch(name, args);
    } catch (err) {
      this.fill(slot, OUT_ERROR, err);
      return;
    }
    if (r instanceof Promise) {
      r.then(
        (v) => this.fill(slot, v instanceof FinishResult ? OUT_FINISH : v instanceof BlobSend ? OUT_STREAM : OUT_REPLY, v),
        (err) => this.fill(slot, OUT_ERROR, err),
      );
    } else {
      this.fill(slot, r instanceof FinishResult ? OUT_FINISH : OUT_REPLY, r);
    }
  }

  // (no named closures on per-message paths: under tsx every function created at run time with
  // a name is wrapped in an extra __name() call)
  private handleOneWay(name: string, args: unknown[]): void {
    try {
      const r = this.dispatch(name, args);
      if (r instanceof Promise) r.catch((err) => this.oneWayFailed(name, err));
    } catch (err) {
      this.oneWayFailed(name, err);
    }
  }

  /** S-9: a failing one-way call closes the connection, nothing is sent */
  private oneWayFailed(name: string, err: unknown): void {
    if (this.closed) return;
    this.log('error', `one-way call ${name} failed: ${errText(err)}; closing the connection`);
    void this.closeConnection(`one-way ${name} failed`);
  }

  private sendError(msgid: unknown, name: string, err: unknown): void {
    const e = toWireError(err);
    if (!(e instanceof POSKeyError) && !(e instanceof ConflictError) && !(e instanceof ReadOnlyError) && !(e instanceof StorageTransactionError)) {
      this.log('warn', `${name} failed: ${errText(err)}`);
    }
    this.channel.error(msgid, e);
  }

  // ---------------------------------------------------------------------------------------
  // Ordered output

  /** calls whose replies are not written yet (reserved places and delayed replies) */
  private delayedPending = 0;
  /** set once this client's transaction is durable, until its tpc_finish reply is in the output */
  private finishReplyPending = false;
  /** invalidations of later transactions waiting behind that reply (bounded) */
  private heldInvalidations: unknown[][] = [];
  private backlogWaiters: Array<{ n: number; resolve: () => void }> = [];

  /** Replies still owed to the client; the transport pauses reading while it is above max_backlog. */
  get backlog(): number {
    return this.slots.length + this.delayedPending;
  }

  /** Resolves once the backlog is at or below `n` (or the session closed). */
  whenBacklogBelow(n: number): Promise<void> {
    if (this.backlog <= n || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.backlogWaiters.push({ n, resolve }));
  }

  private checkBacklog(): void {
    if (this.backlogWaiters.length === 0) return;
    const keep: Array<{ n: number; resolve: () => void }> = [];
    for (const w of this.backlogWaiters) {
      if (this.backlog <= w.n || this.closed) w.resolve();
      else keep.push(w);
    }
    this.backlogWaiters = keep;
  }

  private reserve(msgid: unknown, name: string): Slot {
    const s: Slot = { ready: false, kind: OUT_REPLY, msgid, name, value: undefined };
    this.slots.push(s);
    return s;
  }

  private fill(slot: Slot, kind: number, value: unknown): void {
    if (this.closed && value instanceof BlobSend) void value.fh.close().catch(() => undefined);
    slot.kind = kind;
    slot.value = value;
    slot.ready = true;
    // only the head of the queue can be written; anything else waits for it
    if (this.slots[0] === slot) this.flush();
  }

  /** Append output that is ready now, behind everything reserved before. */
  private push(kind: number, msgid: unknown, name: string, value: unknown): void {
    this.slots.push({ ready: true, kind, msgid, name, value });
    if (this.slots.length === 1) this.flush();
  }

  private flush(): void {
    this.flushSlots();
    this.checkBacklog();
  }

  private flushSlots(): void {
    const slots = this.slots;
    while (slots.length > 0 && slots[0]!.ready) {
      if (this.streaming) return;
      if (slots[0]!.kind === OUT_STREAM && !this.closed) {
        // the stream keeps its place at the head until the reply is written
        this.streaming = true;
        void this.streamBlob(slots[0]!);
        return;
      }
      const s = slots.shift()!;
      if (s.kind === OUT_STREAM) void (s.value as BlobSend).fh.close().catch(() => undefined);
      if (this.closed) continue;
      try {
        this.write(s);
      } catch (err) {
        this.log('error', `cannot send: ${errText(err)}; closing`);
        this.closeConnection('send failed');
        return;
      }
    }
  }

  private write(s: Slot): void {
    switch (s.kind) {
      case OUT_REPLY:
        this.channel.reply(s.msgid, s.value);
        break;
      case OUT_ERROR:
        this.sendError(s.msgid, s.name, s.value);
        break;
      case OUT_FINISH: {
        const f = s.value as FinishResult;
        this.channel.call('info', [f.info]);
        this.channel.reply(s.msgid, f.tid);
        break;
      }
      case OUT_CALL:
        this.channel.call(s.name, s.value as unknown[]);
        break;
      default:
        throw new Error(`unknown output kind ${s.kind}`);
    }
  }

  /**
   * Write sendBlob's stream (§8.4, S-32): receiveBlobStart, chunks of BLOB_CHUNK_SIZE read one at
   * a time (waiting for the transport to drain: never the whole blob in memory), receiveBlobStop,
   * then the nil reply; the slot stays at the head of the output meanwhile.
   */
  private async streamBlob(slot: Slot): Promise<void> {
    const b = slot.value as BlobSend;
    const ch = this.channel;
    let failure: unknown = null;
    let sent = false;
    try {
      ch.call('receiveBlobStart', [b.oid, b.serial]);
      sent = true;
      let pos = 0;
      // bounded: one read of at most BLOB_READ_CHUNKS chunks per round, ends at end of file
      for (;;) {
        if (this.closed) return;
        const buf = Buffer.allocUnsafe(BLOB_CHUNK_SIZE * BLOB_READ_CHUNKS);
        const { bytesRead } = await b.fh.read(buf, 0, buf.length, pos);
        if (this.closed) return;
        if (bytesRead === 0) break;
        pos += bytesRead;
        for (let off = 0; off < bytesRead; off += BLOB_CHUNK_SIZE) {
          ch.call('receiveBlobChunk', [b.oid, b.serial, buf.subarray(off, Math.min(off + BLOB_CHUNK_SIZE, bytesRead))]);
        }
        if (ch.waitDrain && ch.writable === false) await ch.waitDrain();
      }
      ch.call('receiveBlobStop', [b.oid, b.serial]);
    } catch (err) {
      failure = err;
    } finally {
      await b.fh.close().catch(() => undefined);
      if (this.slots[0] === slot) this.slots.shift();
      this.streaming = false;
    }
    if (this.closed) return;
    try {
      if (failure === null) ch.reply(slot.msgid, null);
      else {
        this.log('error', `sendBlob of ${b.path} failed${sent ? ' during the stream' : ''}: ${errText(failure)}`);
        this.sendError(slot.msgid, 'sendBlob', new StorageError(`cannot read blob file ${b.path}: ${(failure as Error).message ?? String(failure)}`));
      }
    } catch (err) {
      this.log('error', `cannot send: ${errText(err)}; closing`);
      void this.closeConnection('send failed');
      return;
    }
    this.flush();
  }

  /** @internal server→client one-way call, in output order */
  sendOneWay(name: string, args: unknown[]): void {
    if (this.closed) return;
    this.push(OUT_CALL, 0, name, args);
  }

  /** @internal invalidation of a transaction committed by another client (§11.1) */
  sendInvalidation(tid: Tid, oids: Oid[]): void {
    this.sendInvalidationArgs(invalidationArgs(tid, oids));
  }

  /** @internal the same with the call's arguments built once for all receivers (see invalidationArgs) */
  sendInvalidationArgs(args: unknown[]): void {
    if (this.finishReplyPending) {
      // this client's own transaction is durable but its tpc_finish reply is not out yet: a later
      // transaction's invalidation must follow that reply (a client's last tid only grows)
      assert(this.heldInvalidations.length < MAX_HELD_INVALIDATIONS, 'invalidations held behind a tpc_finish reply are bounded');
      this.heldInvalidations.push(args);
      return;
    }
    this.sendOneWay('invalidateTransaction', args);
  }

  /** this client's tpc_finish reply (or error) is in the output: send what waited behind it */
  private releaseHeldInvalidations(): void {
    this.finishReplyPending = false;
    const held = this.heldInvalidations;
    if (held.length === 0) return;
    this.heldInvalidations = [];
    for (const args of held) this.sendOneWay('invalidateTransaction', args);
  }

  // ---------------------------------------------------------------------------------------
  // Connection end (§10.10, S-27)

  /** The transport reports that the connection ended (for any reason). */
  connectionLost(): Promise<void> {
    this.closed = true;
    return this.doCleanup();
  }

  /** Close the connection from the server side; cleanup still runs (unlike ZEO ≥ 5.4). */
  closeConnection(reason: string): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      try {
        this.channel.close(reason);
      } catch {
        /* already gone */
      }
    }
    return this.doCleanup();
  }

  /** @internal server shutdown */
  shutdown(reason: string): Promise<void> {
    return this.closeConnection(reason);
  }

  private doCleanup(): Promise<void> {
    if (!this.cleanup) {
      this.cleanup = (async () => {
        for (let i = this.streaming ? 1 : 0; i < this.slots.length; i++) {
          const s = this.slots[i]!;
          if (s.ready && s.kind === OUT_STREAM) void (s.value as BlobSend).fh.close().catch(() => undefined);
        }
        this.slots.length = 0;
        this.discardUpload();
        this.checkBacklog();
        const t = this.txn;
        if (t) {
          this.log('info', `disconnected during ${this.entry?.lock.isHolder(this) ? 'locked' : 'unlocked'} transaction`);
          try {
            await this.abortTxn(t, true);
          } catch (err) {
            this.log('error', `abort after disconnect failed: ${errText(err)}`);
          }
        } else {
          this.log('info', 'disconnected');
        }
        for (const it of this.iterators.values()) if (it.kind === 'txn') void it.it.return?.().catch(() => undefined);
        this.iterators.clear();
        this.txnIteratorLast.clear();
        if (this.entry) {
          if (this.entry.sessions.delete(this)) this.entry.stats.connections--;
          this.entry.lock.release(this);
        }
        this.server.forget(this);
      })();
    }
    return this.cleanup;
  }

  /** LockClient: the transaction timeout expired while this connection held the commit lock. */
  onTransactionTimeout(seconds: number): void {
    this.log('fatal', `Transaction timeout after ${seconds} seconds`);
    void this.closeConnection('transaction timeout');
  }

  // ---------------------------------------------------------------------------------------
  // Dispatch

  private dispatch(name: string, a: unknown[]): unknown {
    switch (name) {
      case 'register':
        arity(name, a, 2, 2);
        return this.register(a[0], a[1]);
      case 'get_info':
        arity(name, a, 0, 0);
        return this.getInfo();
      case 'lastTransaction':
        arity(name, a, 0, 0);
        return p64(this.reg().storage.lastTransaction());
      case 'getInvalidations':
        arity(name, a, 1, 1);
        return this.getInvalidations(asBytes8(a[0], 'tid'));
      case 'ping':
        arity(name, a, 0, 0);
        return null;
      case 'server_status':
        arity(name, a, 0, 0);
        return this.reg().status();
      case 'set_client_label':
        arity(name, a, 1, 1);
        this.clientLabel = a[0] === null ? 'None' : Buffer.isBuffer(a[0]) ? a[0].toString('utf8') : String(a[0]);
        return null;
      case 'loadBefore':
        arity(name, a, 2, 2);
        return this.loadBefore(asBytes8(a[0], 'oid'), asBytes8(a[1], 'tid'));
      case 'loadSerial':
        arity(name, a, 2, 2);
        return this.loadSerial(asBytes8(a[0], 'oid'), asBytes8(a[1], 'serial'));
      case 'getTid':
        arity(name, a, 1, 1);
        return this.getTid(asBytes8(a[0], 'oid'));
      case 'history':
        arity(name, a, 1, 2);
        return this.history(asBytes8(a[0], 'oid'), a.length > 1 ? asInt(a[1], 'size') : 1);
      case 'record_iternext':
        arity(name, a, 0, 1);
        return this.recordIternext(a.length > 0 ? asOptBytes8(a[0], 'next') : null);
      case 'new_oids':
        arity(name, a, 0, 1);
        return this.newOids(a.length > 0 ? asInt(a[0], 'n') : 100);
      case 'new_oid':
        throw new PyBuiltinError('AttributeError', ["'ZEOStorage' object has no attribute 'new_oid'"]);
      case 'tpc_begin':
        arity(name, a, 4, 6);
        return this.tpcBegin(a[0], a[1], a[2], a[3], a.length > 4 ? a[4] : null, a.length > 5 ? a[5] : ' ');
      case 'storea':
        arity(name, a, 4, 4);
        return this.logOp(a[3], { op: 'store', oid: asBytes8(a[0], 'oid'), serial: asBytes8(a[1], 'serial'), data: asBytes(a[2], 'data') }, true);
      case 'restorea':
        arity(name, a, 5, 5);
        return this.logOp(
          a[4],
          {
            op: 'restore',
            oid: asBytes8(a[0], 'oid'),
            serial: asBytes8(a[1], 'serial'),
            data: a[2] === null ? null : asBytes(a[2], 'data'),
            prevTxn: asOptBytes8(a[3], 'prev_txn'),
          },
          true,
        );
      case 'deleteObject':
        arity(name, a, 3, 3);
        return this.logOp(a[2], { op: 'delete', oid: asBytes8(a[0], 'oid'), serial: asBytes8(a[1], 'serial') }, true);
      case 'checkCurrentSerialInTransaction':
        arity(name, a, 3, 3);
        return this.logOp(a[2], { op: 'checkread', oid: asBytes8(a[0], 'oid'), serial: asBytes8(a[1], 'serial') }, false);
      case 'undoa':
        arity(name, a, 2, 2);
        return this.logOp(a[1], { op: 'undo', transId: asBytes(a[0], 'trans_id') }, false);
      case 'vote':
        arity(name, a, 1, 1);
        return this.vote(a[0]);
      case 'tpc_finish':
        arity(name, a, 1, 1);
        return this.tpcFinish(a[0]);
      case 'tpc_abort':
        arity(name, a, 1, 1);
        return this.tpcAbort(a[0]);
      case 'storeBlobStart':
        arity(name, a, 0, 0);
        return this.storeBlobStart();
      case 'storeBlobChunk':
        arity(name, a, 1, 1);
        return this.storeBlobChunk(asBytes(a[0], 'chunk'));
      case 'storeBlobEnd':
        arity(name, a, 4, 4);
        return this.storeBlobEnd(asBytes8(a[0], 'oid'), asBytes8(a[1], 'serial'), asBytes(a[2], 'data'), a[3]);
      case 'storeBlobShared':
        arity(name, a, 5, 5);
        return this.storeBlobShared(asBytes8(a[0], 'oid'), asBytes8(a[1], 'serial'), asBytes(a[2], 'data'), asStr(a[3], 'filename'), a[4]);
      case 'sendBlob':
        arity(name, a, 2, 2);
        return this.sendBlob(asBytes8(a[0], 'oid'), asBytes8(a[1], 'serial'));
      case 'undoLog':
        arity(name, a, 0, 2);
        return this.undoLog(a.length > 0 ? asInt(a[0], 'first') : 0, a.length > 1 ? asInt(a[1], 'last') : -20);
      case 'undoInfo':
        arity(name, a, 0, 3);
        return this.undoInfo(a.length > 0 ? asInt(a[0], 'first') : 0, a.length > 1 ? asInt(a[1], 'last') : -20, a.length > 2 ? a[2] : null);
      case 'pack':
        arity(name, a, 1, 2);
        return this.pack(asNumber(a[0], 't'), a.length > 1 ? truthy(a[1]) : true);
      case 'iterator_start':
        arity(name, a, 2, 2);
        return this.iteratorStart(asOptBytes8(a[0], 'start'), asOptBytes8(a[1], 'stop'));
      case 'iterator_next':
        arity(name, a, 1, 1);
        return this.iteratorNext(asInt(a[0], 'iid'));
      case 'iterator_record_start':
        arity(name, a, 2, 2);
        return this.iteratorRecordStart(asInt(a[0], 'txn_iid'), asBytes8(a[1], 'tid'));
      case 'iterator_record_next':
        arity(name, a, 1, 1);
        return this.iteratorRecordNext(asInt(a[0], 'iid'));
      case 'iterator_gc':
        arity(name, a, 1, 1);
        return this.iteratorGc(a[0]);
      default:
        throw new PyBuiltinError('AttributeError', [`'ZEOStorage' object has no attribute '${name}'`]);
    }
  }

  private reg(): StorageEntry {
    if (!this.entry) throw new StorageError('not registered');
    return this.entry;
  }

  // ---------------------------------------------------------------------------------------
  // Session methods (§8.1)

  private register(storageName: unknown, readOnly: unknown): Buffer {
    const name = typeof storageName === 'string' ? storageName : Buffer.isBuffer(storageName) ? null : String(storageName);
    const entry = name === null ? undefined : this.server.storages.get(name);
    if (!entry) {
      this.log('info', `unknown storage_id: ${name ?? describe(storageName)}`);
      throw new PyBuiltinError('ValueError', [`unknown storage: ${name ?? describe(storageName)}`]);
    }
    const ro = truthy(readOnly);
    if (!ro && (this.readOnly || entry.storage.isReadOnly())) throw new ReadOnlyError();
    this.readOnly = this.readOnly || ro;
    this.entry = entry;
    entry.sessions.add(this);
    entry.stats.connections++;
    return p64(entry.storage.lastTransaction());
  }

  private getInfo(): Record<string, unknown> {
    const e = this.reg();
    const s = e.storage;
    const undo = s.supportsUndo();
    const iternext = typeof (s as unknown as { record_iternext?: unknown }).record_iternext === 'function';
    const ifaces: Array<[string, string]> = [];
    // a blob storage is listed as the reference lists a FileStorage with a blob directory (§13)
    if (isBlobStorage(s)) ifaces.push(['ZODB.interfaces', 'IBlobStorageRestoreable'], ['ZODB.interfaces', 'IBlobStorage']);
    ifaces.push(
      ['ZODB.interfaces', 'IStorageRestoreable'],
      ['ZODB.interfaces', 'IStorageIteration'],
    );
    if (undo) ifaces.push(['ZODB.interfaces', 'IStorageUndoable']);
    if (iternext) ifaces.push(['ZODB.interfaces', 'IStorageCurrentRecordIteration']);
    ifaces.push(['ZODB.interfaces', 'IExternalGC'], ['ZODB.interfaces', 'IStorage'], ['zope.interface', 'Interface']);
    return {
      length: s.len(),
      size: s.getSize(),
      name: s.getName(),
      supportsUndo: undo,
      supports_record_iternext: iternext,
      interfaces: ifaces,
    };
  }

  private async getInvalidations(tid: Buffer): Promise<unknown> {
    const r = await this.reg().getInvalidations(u64(tid));
    if (r === null) return null;
    if (this.debugEnabled()) this.log('debug', `Return ${r[1].length} invalidations up to tid ${r[0]}`);
    return [p64(r[0]), pyList(r[1].map((o) => p64(o)))];
  }

  // ---------------------------------------------------------------------------------------
  // Reads (§8.2)

  private loadBefore(oidB: Buffer, tidB: Buffer): unknown {
    const e = this.reg();
    e.stats.loads++;
    const oid = u64(oidB);
    const s = e.storage as unknown as { loadBeforeSync?: (oid: Oid, tid: Tid) => { data: Buffer; start: Tid; end: Tid | null } | null };
    // a storage that answers at once (FileStorage): no promise, the reply is written right away
    if (typeof s.loadBeforeSync === 'function') {
      let r: { data: Buffer; start: Tid; end: Tid | null } | null;
      try {
        r = s.loadBeforeSync(oid, u64(tidB));
      } catch (err) {
        throw keyErr(err, oid, oidB);
      }
      return r === null ? null : [r.data, p64(r.start), r.end === null ? null : p64(r.end)];
    }
    return this.loadBeforeAsync(e, oid, oidB, tidB);
  }

  private async loadBeforeAsync(e: StorageEntry, oid: Oid, oidB: Buffer, tidB: Buffer): Promise<unknown> {
    try {
      const r = await e.storage.loadBefore(oid, u64(tidB));
      if (r === null) return null;
      return [r.data, p64(r.start), r.end === null ? null : p64(r.end)];
    } catch (err) {
      throw keyErr(err, oid, oidB);
    }
  }

  private async loadSerial(oidB: Buffer, serial: Buffer): Promise<Buffer> {
    const oid = u64(oidB);
    try {
      return await this.reg().storage.loadSerial(oid, u64(serial));
    } catch (err) {
      throw keyErr(err, oid, oidB);
    }
  }

  private async getTid(oidB: Buffer): Promise<Buffer> {
    const oid = u64(oidB);
    try {
      return p64(await this.reg().storage.getTid(oid));
    } catch (err) {
      throw keyErr(err, oid, oidB);
    }
  }

  private async history(oidB: Buffer, size: number): Promise<PyListValue> {
    const oid = u64(oidB);
    let h;
    try {
      h = await this.reg().storage.history(oid, size);
    } catch (err) {
      throw keyErr(err, oid, oidB);
    }
    return pyList(
      h.map((x) => {
        const d: Record<string, unknown> = { time: new PyFloat(x.time), user_name: x.user_name, description: x.description };
        addExtension(d, x.extension);
        d.tid = p64(x.tid);
        d.size = x.size;
        return d;
      }),
    );
  }

  private async recordIternext(next: Buffer | null): Promise<unknown> {
    const s = this.reg().storage as unknown as { record_iternext?: (next: Oid | null) => Promise<unknown> };
    if (typeof s.record_iternext !== 'function') {
      throw new PyBuiltinError('AttributeError', ["'ZEOStorage' object has no attribute 'record_iternext'"]);
    }
    let r: unknown;
    try {
      r = await s.record_iternext(next === null ? null : u64(next));
    } catch (err) {
      // the reference (a BTree walk) fails on an empty storage with ValueError('empty tree')
      if (err instanceof StorageError && /empty/.test(err.message)) throw new PyBuiltinError('ValueError', ['empty tree']);
      throw err;
    }
    const get = (k: string, i: number): unknown => (Array.isArray(r) ? r[i] : (r as Record<string, unknown>)[k]);
    const idb = (v: unknown) => (v === null || v === undefined ? null : typeof v === 'bigint' ? p64(v) : v);
    return [idb(get('oid', 0)), idb(get('tid', 1)), get('data', 2), idb(get('next', 3))];
  }

  private async newOids(n: number): Promise<PyListValue> {
    const e = this.reg();
    n = Math.min(n, 100);
    if (this.readOnly) throw new ReadOnlyError();
    if (n <= 0) n = 1;
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) out.push(p64(await e.storage.new_oid()));
    return pyList(out);
  }

  // ---------------------------------------------------------------------------------------
  // Two-phase commit (§8.3, §10)

  /** The transaction check of §8.0; returns the transaction or throws / returns null. */
  private checkTid(id: unknown, raise: boolean): Txn | null {
    if (this.readOnly) throw new ReadOnlyError();
    const key = txnKey(id);
    if (this.txn === null) {
      if (raise) {
        this.log('warn', `no current transaction`);
        throw new TxnMismatchError(null, id);
      }
      return null;
    }
    if (this.txn.key !== key) {
      if (raise) {
        this.log('warn', `transaction ${String(id)} invalid; current transaction = ${String(this.txn.id)}`);
        throw new TxnMismatchError(this.txn.id, id);
      }
      return null;
    }
    return this.txn;
  }

  private tpcBegin(id: unknown, user: unknown, description: unknown, ext: unknown, tid: unknown, status: unknown): null {
    const e = this.reg();
    if (this.readOnly) throw new ReadOnlyError();
    const key = txnKey(id);
    if (this.txn !== null) {
      if (this.txn.key === key) {
        this.log('info', `duplicate tpc_begin(${String(id)})`);
        return null;
      }
      throw new StorageTransactionError('Multiple simultaneous tpc_begin requests from one client.');
    }
    const meta = new TransactionMetaData(asBytes(user ?? Buffer.alloc(0), 'user'), asBytes(description ?? Buffer.alloc(0), 'description'), encodeExt(ext));
    const st = status === null || status === undefined ? ' ' : asStr(status, 'status');
    if (st.length !== 1) throw new StorageTransactionError(`invalid transaction status ${JSON.stringify(st)}`);
    this.txn = {
      id,
      key,
      meta,
      tid: tid === null || tid === undefined ? null : u64(asBytes8(tid, 'tid')),
      status: st,
      log: [],
      logBytes: 0,
      state: 'begun',
      storageBegun: false,
      running: null,
      cancelled: false,
      blobs: [],
      blobWork: [],
    };
    e.stats.active_txns++;
    return null;
  }

  private logOp(id: unknown, op: LogOp, countsAsStore: boolean): null {
    const e = this.reg();
    const t = this.checkTid(id, true)!;
    if (t.state !== 'begun') throw new StorageTransactionError(`cannot add to a transaction that is ${t.state}`);
    if (t.log.length >= MAX_LOG_ENTRIES) throw new StorageTransactionError(`transaction has more than ${MAX_LOG_ENTRIES} operations`);
    const bytes = 'data' in op && op.data ? op.data.length : 0;
    if (t.logBytes + bytes > this.server.options.max_transaction_bytes) {
      throw new StorageTransactionError(`transaction data exceeds ${this.server.options.max_transaction_bytes} bytes (max_transaction_bytes)`);
    }
    t.log.push(op);
    t.logBytes += bytes;
    if (countsAsStore) e.stats.stores++;
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // Blobs (§8.4)

  private storeBlobStart(): null {
    const e = this.reg();
    const s = blobStorageOf(e.storage, e.name, 'storeBlobStart');
    if (this.readOnly) throw new ReadOnlyError();
    // as the reference (an assertion): a nested start closes the connection
    if (this.upload !== null) throw new PyBuiltinError('AssertionError', ['storeBlobStart: a blob upload is already in progress on this connection']);
    this.upload = BlobUpload.create(s.temporaryDirectory(), this.server.options.max_blob_bytes);
    return null;
  }

  private storeBlobChunk(chunk: Buffer): null {
    const u = this.upload;
    if (u === null) throw new PyBuiltinError('AssertionError', ['storeBlobChunk without storeBlobStart']);
    try {
      u.write(chunk);
    } catch (err) {
      this.discardUpload();
      throw err;
    }
    return null;
  }

  private storeBlobEnd(oid: Buffer, serial: Buffer, data: Buffer, id: unknown): null {
    const t = this.checkTid(id, true)!;
    const u = this.upload;
    if (u === null) throw new PyBuiltinError('AssertionError', ['storeBlobEnd without storeBlobStart']);
    this.upload = null;
    let file: string;
    try {
      if (t.state !== 'begun') throw new StorageTransactionError(`cannot add to a transaction that is ${t.state}`);
      this.checkTxnBytes(t, data.length);
      file = u.finish();
    } catch (err) {
      u.discard();
      throw err;
    }
    this.addBlob(t, { oid, serial, data, file });
    if (this.debugEnabled()) this.log('debug', `blob upload of ${u.bytes} bytes for oid ${oid.toString('hex')} in ${file}`);
    return null;
  }

  private storeBlobShared(oid: Buffer, serial: Buffer, data: Buffer, filename: string, id: unknown): null {
    const e = this.reg();
    const t = this.checkTid(id, true)!;
    const s = blobStorageOf(e.storage, e.name, 'storeBlobShared');
    try {
      checkSharedBlobName(filename);
    } catch (err) {
      this.log('fatal', `bad filename to storeBlobShared: ${JSON.stringify(filename)}; closing`);
      throw err;
    }
    if (t.state !== 'begun') throw new StorageTransactionError(`cannot add to a transaction that is ${t.state}`);
    this.checkTxnBytes(t, data.length);
    const file = sharedBlobPath(s, oid, filename);
    this.addBlob(t, { oid, serial, data, file });
    return null;
  }

  private addBlob(t: Txn, b: BlobRecord): void {
    if (t.log.length + t.blobs.length >= MAX_LOG_ENTRIES) {
      removeQuietly(b.file);
      throw new StorageTransactionError(`transaction has more than ${MAX_LOG_ENTRIES} operations`);
    }
    t.blobs.push(b);
    t.logBytes += b.data.length;
  }

  private checkTxnBytes(t: Txn, bytes: number): void {
    if (t.logBytes + bytes > this.server.options.max_transaction_bytes) {
      throw new StorageTransactionError(`transaction data exceeds ${this.server.options.max_transaction_bytes} bytes (max_transaction_bytes)`);
    }
  }

  /** Drop the upload in progress, removing its file. */
  private discardUpload(): void {
    const u = this.upload;
    this.upload = null;
    u?.discard();
  }

  private async sendBlob(oid: Buffer, serial: Buffer): Promise<BlobSend> {
    const e = this.reg();
    const s = blobStorageOf(e.storage, e.name, 'sendBlob');
    let path: string;
    try {
      path = await s.loadBlob(u64(oid), u64(serial));
    } catch (err) {
      if (err instanceof POSKeyError) throw new BlobKeyError(err.message, oid, serial);
      throw err;
    }
    let fh;
    try {
      fh = await openFile(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobKeyError(`No blob file at ${path}`, oid, serial);
      throw new StorageError(`cannot open blob file ${path}: ${(err as Error).message}`);
    }
    if (this.closed) {
      await fh.close().catch(() => undefined);
      throw new StorageError('connection closed');
    }
    return new BlobSend(oid, serial, path, fh);
  }

  /** Remove the files of a transaction's blob records (they were moved if the storage took them). */
  private removeBlobFiles(t: Txn): void {
    for (const f of t.blobWork) removeQuietly(f);
    t.blobWork.length = 0;
    for (const b of t.blobs) removeQuietly(b.file);
    t.blobs.length = 0;
  }

  private async vote(id: unknown): Promise<unknown> {
    const e = this.reg();
    const t = this.checkTid(id, true)!;
    if (t.state === 'voted' || t.state === 'voting' || t.state === 'finishing') throw new StorageTransactionError('Already voting (locked)');
    if (t.state === 'waiting') throw new StorageTransactionError('Already voting (waiting)');
    t.state = 'waiting';
    try {
      await e.lock.acquire(this);
    } catch (err) {
      if (this.txn === t && t.state === 'waiting') t.state = 'begun';
      throw err;
    }
    // We hold the lock now.
    if (this.closed || this.txn !== t || t.cancelled) {
      e.lock.release(this);
      throw new StorageTransactionError('transaction ended while waiting for the commit lock');
    }
    t.state = 'voting';
    const run = this.runVote(e, t);
    t.running = run;
    try {
      return await run;
    } finally {
      if (t.running === run) t.running = null;
    }
  }

  /** the transaction was aborted or the connection closed while its vote awaited the storage */
  private checkVoting(t: Txn): void {
    if (t.cancelled || this.closed) throw new StorageTransactionError('transaction aborted during vote');
  }

  private async runVote(e: StorageEntry, t: Txn): Promise<unknown> {
    const s = e.storage;
    const ccr = this.server.options.client_conflict_resolution;
    const conflicts = new Map<string, Record<string, unknown>>();
    const lastData = new Map<bigint, Buffer>();
    const invalidated: Oid[] = [];
    const resolved: Oid[] = [];
    try {
      if (this.debugEnabled()) this.log('debug', `Preparing to commit transaction: ${t.log.length} objects, ${t.logBytes} bytes`);
      if (t.tid !== null && t.tid <= s.lastTransaction()) {
        throw new StorageTransactionError(`explicit tid ${p64(t.tid).toString('hex')} is not later than the last transaction ${p64(s.lastTransaction()).toString('hex')}`);
      }
      if (t.tid !== null || t.status !== ' ') await s.tpc_begin(t.meta, t.tid ?? undefined, t.status);
      else await s.tpc_begin(t.meta);
      t.storageBegun = true;
      this.checkVoting(t);
      for (const op of t.log) {
        switch (op.op) {
          case 'store': {
            const oid = u64(op.oid);
            const serial = u64(op.serial);
            const current = await currentSerial(s, oid);
            this.checkVoting(t);
            if (current !== null && current !== serial) {
              if (ccr) {
                conflicts.set(op.oid.toString('hex'), { oid: op.oid, serials: [p64(current), op.serial], data: op.data });
                break;
              }
              // no ccr: the server resolves what it can (BTrees.Length), else ConflictError (§10.5)
              const merged = await tryResolve(s, oid, serial, current, op.data);
              this.checkVoting(t);
              if (merged === null) throw new ConflictError({ oid, serials: [current, serial], className: className(op.data) });
              await s.store(oid, current, merged, t.meta);
              this.checkVoting(t);
              conflicts.delete(op.oid.toString('hex'));
              lastData.set(oid, merged);
              invalidated.push(oid);
              if (!resolved.includes(oid)) resolved.push(oid);
              break;
            }
            try {
              await s.store(oid, serial, op.data, t.meta);
            } catch (err) {
              if (ccr && err instanceof ConflictError && !(err instanceof ReadConflictError) && err.serials) {
                conflicts.set(op.oid.toString('hex'), { oid: op.oid, serials: [p64(err.serials[0]), p64(err.serials[1])], data: op.data });
                break;
              }
              throw err;
            }
            this.checkVoting(t);
            // (no hex key built per store when there is no conflict: the common case)
            if (conflicts.size > 0) conflicts.delete(op.oid.toString('hex'));
            lastData.set(oid, op.data);
            invalidated.push(oid);
            break;
          }
          case 'restore': {
            const oid = u64(op.oid);
            await s.restore(oid, u64(op.serial), op.data, op.prevTxn === null ? null : u64(op.prevTxn), t.meta);
            invalidated.push(oid);
            break;
          }
          case 'delete': {
            const oid = u64(op.oid);
            const serial = u64(op.serial);
            const current = await currentSerial(s, oid);
            if (current === null) throw new OidKeyError(oid, op.oid);
            if (current !== serial) throw new ConflictError({ oid, serials: [current, serial] });
            await s.deleteObject(oid, serial, t.meta);
            invalidated.push(oid);
            break;
          }
          case 'checkread': {
            const oid = u64(op.oid);
            const serial = u64(op.serial);
            const current = await currentSerial(s, oid);
            if (current === null) throw new OidKeyError(oid, op.oid);
            if (current !== serial) throw new ReadConflictError({ oid, serials: [current, serial] });
            await s.checkCurrentSerialInTransaction(oid, serial, t.meta);
            break;
          }
          case 'undo': {
            const oids = await s.undo(op.transId, t.meta);
            invalidated.push(...oids);
            resolved.push(...oids);
            break;
          }
        }
        this.checkVoting(t);
      }
      // blob records after the rest of the log, newest upload first, as the reference (§8.4)
      if (t.blobs.length > 0) {
        const bs = blobStorageOf(s, e.name, 'vote');
        for (const f of t.blobWork) removeQuietly(f);
        t.blobWork.length = 0;
        for (let i = t.blobs.length - 1; i >= 0; i--) {
          const b = t.blobs[i]!;
          const oid = u64(b.oid);
          const serial = u64(b.serial);
          const current = await currentSerial(s, oid);
          this.checkVoting(t);
          if (current !== null && current !== serial) {
            if (ccr) {
              conflicts.set(b.oid.toString('hex'), { oid: b.oid, serials: [p64(current), b.serial], data: b.data });
              continue;
            }
            throw new ConflictError({ oid, serials: [current, serial], className: className(b.data) });
          }
          const work = workingCopy(b.file, t.blobWork.length);
          t.blobWork.push(work);
          try {
            await bs.storeBlob(oid, serial, b.data, work, t.meta);
          } catch (err) {
            if (ccr && err instanceof ConflictError && !(err instanceof ReadConflictError) && err.serials) {
              conflicts.set(b.oid.toString('hex'), { oid: b.oid, serials: [p64(err.serials[0]), p64(err.serials[1])], data: b.data });
              continue;
            }
            throw err;
          }
          this.checkVoting(t);
          conflicts.delete(b.oid.toString('hex'));
          lastData.set(oid, b.data);
          invalidated.push(oid);
        }
      }
      if (conflicts.size === 0) {
        try {
          const r = await s.tpc_vote(t.meta);
          if (r) resolved.push(...r);
        } catch (err) {
          if (ccr && err instanceof ConflictError && !(err instanceof ReadConflictError) && err.oid !== undefined && err.serials && lastData.has(err.oid)) {
            conflicts.set(p64(err.oid).toString('hex'), { oid: p64(err.oid), serials: [p64(err.serials[0]), p64(err.serials[1])], data: lastData.get(err.oid)! });
          } else {
            throw err;
          }
        }
        this.checkVoting(t);
      }
      if (conflicts.size > 0) {
        // ccr (§10.6): hand the conflicts to the client; the transaction stays open.
        await s.tpc_abort(t.meta);
        t.storageBegun = false;
        t.state = 'begun';
        e.lock.release(this);
        return pyList([...conflicts.values()]);
      }
      t.state = 'voted';
      (t as Txn & { invalidated?: Oid[] }).invalidated = invalidated;
      return pyList(resolved.map((o) => p64(o)));
    } catch (err) {
      if (t.storageBegun) {
        t.storageBegun = false;
        try {
          await s.tpc_abort(t.meta);
        } catch (e2) {
          this.log('error', `tpc_abort after a failed vote failed: ${errText(e2)}`);
        }
      }
      if (err instanceof ConflictError) {
        e.stats.conflicts++;
        if (this.debugEnabled()) this.log('debug', `conflict error ${err.message}`);
      } else if (!(err instanceof POSError)) {
        this.log('error', `While voting: ${errText(err)}`, { err });
      }
      if (this.txn === t) this.clearTxn(t);
      else e.lock.release(this);
      throw err;
    }
  }

  private async tpcFinish(id: unknown): Promise<unknown> {
    const e = this.reg();
    const t = this.checkTid(id, false);
    if (t === null) return null;
    if (t.state !== 'voted' || !e.lock.isHolder(this)) throw new PyBuiltinError('AssertionError', ['finished called wo lock']);
    t.state = 'finishing';
    e.stats.commits++;
    const run = this.runFinish(e, t);
    e.finishing.add(run);
    t.running = run;
    try {
      const tid = await run;
      const info = e.sizeInfo();
      this.clearTxn(t);
      // info precedes the reply (§10.8); both go into this call's reserved output place.
      return new FinishResult(p64(tid), info);
    } catch (err) {
      this.log('fatal', `tpc_finish failed: ${errText(err)}`);
      if (t.storageBegun) {
        t.storageBegun = false;
        await e.storage.tpc_abort(t.meta).catch(() => undefined);
      }
      this.clearTxn(t);
      throw err;
    } finally {
      e.finishing.delete(run);
      if (t.running === run) t.running = null;
    }
  }

  /**
   * storage.tpc_finish, then the invalidations to the other clients. With group commit the commit
   * lock goes to the next voter as soon as the storage has flagged this transaction committed:
   * its fdatasync may then cover the next transactions too. The storage resolves finishes only
   * once durable and in tid order, so the invalidations (and this client's reply) go out in tid
   * order and never before the transaction is durable.
   */
  private async runFinish(e: StorageEntry, t: Txn): Promise<Tid> {
    const invalidated = (t as Txn & { invalidated?: Oid[] }).invalidated ?? [];
    let tid: Tid;
    e.ownCommits++;
    try {
      const finished = e.storage.tpc_finish(t.meta);
      if (e.pipelinedFinish) e.lock.release(this);
      tid = await finished;
      // durable, in tid order: invalidations of later transactions now wait behind our reply
      this.finishReplyPending = true;
    } finally {
      e.ownCommits--;
    }
    t.storageBegun = false;
    e.recordInvalidation(tid, invalidated);
    if (e.sessions.size > 1) {
      const args = invalidationArgs(tid, invalidated);
      for (const other of e.sessions) if (other !== this) other.sendInvalidationArgs(args);
    }
    return tid;
  }

  private async tpcAbort(id: unknown): Promise<null> {
    const e = this.reg();
    const t = this.checkTid(id, false);
    if (t === null) return null;
    e.stats.aborts++;
    await this.abortTxn(t, false);
    return null;
  }

  /** Abort `t` whatever its state: wait for a running vote/finish, abort the storage txn, release. */
  private async abortTxn(t: Txn, countAbort: boolean): Promise<void> {
    const e = this.entry!;
    if (t.state === 'finishing') {
      // the commit is under way: let it complete (it broadcasts and releases the lock itself)
      if (t.running) await t.running.catch(() => undefined);
      if (this.txn === t) this.clearTxn(t);
      return;
    }
    if (countAbort) e.stats.aborts++;
    t.cancelled = true;
    this.discardUpload();
    e.lock.release(this); // dequeues a waiting vote (it then fails)
    if (t.running) await t.running.catch(() => undefined);
    if (this.txn !== t) return; // the vote/finish already cleared it
    if (t.storageBegun) {
      t.storageBegun = false;
      await e.storage.tpc_abort(t.meta);
    }
    this.clearTxn(t);
  }

  private clearTxn(t: Txn, release = true): void {
    const e = this.entry!;
    this.removeBlobFiles(t);
    if (this.txn === t) {
      this.txn = null;
      e.stats.active_txns--;
    }
    if (release || e.lock.isHolder(this)) e.lock.release(this);
  }

  // ---------------------------------------------------------------------------------------
  // Undo and pack (§8.5)

  private async undoLog(first: number, last: number): Promise<PyListValue> {
    const s = this.reg().storage;
    if (!s.supportsUndo()) return pyList([]);
    return pyList((await s.undoLog(first, last)).map(undoMap));
  }

  private async undoInfo(first: number, last: number, spec: unknown): Promise<PyListValue> {
    const s = this.reg().storage;
    if (!s.supportsUndo()) return pyList([]);
    if (spec === null || spec === undefined) return pyList((await s.undoLog(first, last)).map(undoMap));
    const entries: Array<[string, unknown]> = spec instanceof Map ? [...spec.entries()].map(([k, v]) => [String(k), v]) : Object.entries(spec as object);
    // As ZODB's undoInfo: keep entries whose description dict has every key with an equal value
    // (a ZopeUndo Prefix matches by prefix).
    const filter = (e: UndoLogEntry) => {
      const d = undoMap(e);
      return entries.every(([k, v]) => specMatches(d[k], v));
    };
    return pyList((await s.undoLog(first, last, filter)).map(undoMap));
  }

  private async pack(t: number, wait: boolean): Promise<null> {
    const e = this.reg();
    const run = async () => {
      this.log('info', `pack(time=${t}) started...`);
      await e.storage.pack(t);
      this.log('info', `pack(time=${t}) complete`);
      e.broadcastInfo();
    };
    if (wait) {
      await run();
    } else {
      run().catch((err) => this.log('error', `pack failed: ${errText(err)}`));
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // Iteration (§8.6)

  private newIteratorId(): number {
    if (this.iterators.size >= this.server.options.max_iterators) {
      throw new StorageError(`too many open iterators on this connection (${this.iterators.size}); call iterator_gc`);
    }
    return this.iteratorIds++;
  }

  private iteratorStart(start: Buffer | null, stop: Buffer | null): number {
    const s = this.reg().storage;
    const iid = this.newIteratorId();
    const it = s.iterator(start === null ? undefined : u64(start), stop === null ? undefined : u64(stop))[Symbol.asyncIterator]();
    this.iterators.set(iid, { kind: 'txn', it });
    return iid;
  }

  private async iteratorNext(iid: number): Promise<unknown> {
    const it = this.iterators.get(iid);
    if (!it || it.kind !== 'txn') throw new PyBuiltinError('KeyError', [iid]);
    const r = await it.it.next();
    if (r.done) {
      this.iterators.delete(iid);
      this.txnIteratorLast.delete(iid);
      return null;
    }
    const info = r.value;
    this.txnIteratorLast.set(iid, info);
    return [p64(info.tid), info.status, info.user, info.description, decodeExt(info.extension)];
  }

  private iteratorRecordStart(txnIid: number, tid: Buffer): number {
    const last = this.txnIteratorLast.get(txnIid);
    if (!last) throw new PyBuiltinError('KeyError', [txnIid]);
    if (last.tid !== u64(tid)) throw new PyBuiltinError('Exception', [`Out-of-order request for record iterator for transaction ${tid.toString('hex')}`]);
    const riid = this.newIteratorId();
    this.iterators.set(riid, { kind: 'rec', records: last.records, pos: 0 });
    return riid;
  }

  private iteratorRecordNext(iid: number): unknown {
    const it = this.iterators.get(iid);
    if (!it || it.kind !== 'rec') throw new PyBuiltinError('KeyError', [iid]);
    if (it.pos >= it.records.length) {
      this.iterators.delete(iid);
      return null;
    }
    const r = it.records[it.pos++]!;
    return [p64(r.oid), p64(r.tid), r.data, r.data_txn === null ? null : p64(r.data_txn)];
  }

  private iteratorGc(iids: unknown): null {
    const list = Array.isArray(iids) ? iids : (iids as { items?: unknown[] } | null)?.items;
    if (!Array.isArray(list)) throw new TypeError(`iterator_gc needs a list of ids, got ${describe(iids)}`);
    for (const x of list) {
      const iid = asInt(x, 'iid');
      const it = this.iterators.get(iid);
      if (it?.kind === 'txn') void it.it.return?.().catch(() => undefined);
      this.iterators.delete(iid);
      this.txnIteratorLast.delete(iid);
    }
    return null;
  }
}

/** The arguments of `invalidateTransaction(tid, [oid, ...])` (§11.1); never mutated once built. */
export function invalidationArgs(tid: Tid, oids: Oid[]): unknown[] {
  const list: Buffer[] = new Array(oids.length);
  for (let i = 0; i < oids.length; i++) list[i] = p64(oids[i]!);
  return [p64(tid), pyList(list)];
}

/**
 * tpc_finish's result: the transport-facing reply is the tid, preceded by `info` on the same
 * connection (§10.8). The session unwraps it (see `handle`).
 */
export class FinishResult {
  constructor(
    readonly tid: Buffer,
    readonly info: Record<string, unknown>,
  ) {}
}

// ---------------------------------------------------------------------------------------
// helpers

function arity(name: string, a: unknown[], min: number, max: number): void {
  if (a.length >= min && a.length <= max) return;
  if (a.length > max) {
    throw new PyBuiltinError('TypeError', [`ZEOStorage.${name}() takes ${max + 1} positional argument${max + 1 === 1 ? '' : 's'} but ${a.length + 1} were given`]);
  }
  throw new PyBuiltinError('TypeError', [`ZEOStorage.${name}() missing ${min - a.length} required positional argument${min - a.length === 1 ? '' : 's'}`]);
}

/**
 * The oid's current serial, or null when it has none (a new object). Every new object of a vote
 * makes the storage throw a POSKeyError here; capturing its stack trace costs ~0.2 ms under tsx
 * (measured), more than storing the object, so errors raised while the storage runs the
 * synchronous part of getTid carry no stack (their message still names the oid, or the file and
 * position for a damaged file).
 */
async function currentSerial(s: { getTid(oid: Oid): Promise<Tid> }, oid: Oid): Promise<Tid | null> {
  let p: Promise<Tid>;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    // a group-commit storage: the serial the storage's own check will use (finished, still
    // syncing transactions included), null for a new object
    const w = (s as { writerTid?: (oid: Oid) => Tid | null }).writerTid;
    if (typeof w === 'function') return w.call(s, oid);
    p = s.getTid(oid);
  } catch (err) {
    p = Promise.reject(err);
  } finally {
    Error.stackTraceLimit = limit;
  }
  try {
    return await p;
  } catch (err) {
    if (err instanceof POSKeyError) return null;
    throw err;
  }
}

async function tryResolve(s: { loadSerial(oid: Oid, serial: Tid): Promise<Buffer> }, oid: Oid, oldSerial: Tid, committedSerial: Tid, mine: Buffer): Promise<Buffer | null> {
  if (oldSerial === z64) return null;
  try {
    const [old, committed] = await Promise.all([s.loadSerial(oid, oldSerial), s.loadSerial(oid, committedSerial)]);
    return resolveLengthConflict(old, committed, mine);
  } catch {
    return null;
  }
}

function keyErr(err: unknown, oid: Oid, oidB: Buffer): unknown {
  if (err instanceof POSKeyError && !(err instanceof OidKeyError)) return new OidKeyError(err.oid ?? oid, err.oid === undefined || err.oid === oid ? oidB : p64(err.oid));
  return err;
}

function errText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Errors without a Python class become StorageError with their message (§6.4 rules). */
function toWireError(err: unknown): Error {
  if (err instanceof POSError || err instanceof PyBuiltinError) return err;
  if (err instanceof TypeError || err instanceof RangeError) return new PyBuiltinError('TypeError', [err.message]);
  if (err instanceof Error) return new StorageError(err.message);
  return new StorageError(String(err));
}

function className(data: Buffer): string | undefined {
  try {
    const m = getPickleMetadata(data);
    return `${m.module}.${m.name}`;
  } catch {
    return undefined;
  }
}

function decodeExt(ext: Buffer): Record<string, unknown> {
  if (ext.length === 0) return {};
  try {
    return decodeExtension(ext);
  } catch {
    return {};
  }
}

function addExtension(d: Record<string, unknown>, ext: Buffer | undefined): void {
  if (!ext || ext.length === 0) return;
  for (const [k, v] of Object.entries(decodeExt(ext))) if (!(k in d)) d[k] = v;
}

function encodeExt(ext: unknown): Buffer {
  if (ext === null || ext === undefined) return Buffer.alloc(0);
  const obj: Record<string, unknown> = ext instanceof Map ? Object.fromEntries(ext) : (ext as Record<string, unknown>);
  if (typeof obj !== 'object' || Object.keys(obj).length === 0) return Buffer.alloc(0);
  return encodeExtension(obj);
}

/** Python equality of an undo description value with a spec value (bytes/str, ZopeUndo Prefix). */
function specMatches(actual: unknown, wanted: unknown): boolean {
  const prefix = zopeUndoPrefix(wanted);
  if (prefix !== null) {
    const a = Buffer.isBuffer(actual) ? actual.toString('utf8') : typeof actual === 'string' ? actual : null;
    return a !== null && a.slice(0, prefix.length) === prefix;
  }
  if (Buffer.isBuffer(actual) && wanted instanceof Uint8Array) return actual.equals(wanted);
  if (typeof actual === 'string' && typeof wanted === 'string') return actual === wanted;
  if (actual instanceof PyFloat) return typeof wanted === 'number' && actual.value === wanted;
  return actual === wanted;
}

/** The path of a ZopeUndo.Prefix instance decoded by the Z5 codec, else null. */
function zopeUndoPrefix(v: unknown): string | null {
  const inner = v && typeof v === 'object' && 'value' in v ? (v as { value: unknown }).value : v;
  const o = inner as { className?: string; state?: unknown; args?: unknown[] } | null;
  if (!o || typeof o !== 'object' || o.className !== 'ZopeUndo.Prefix.Prefix') return null;
  const st = o.state instanceof Map ? o.state.get('value') : (o.state as Record<string, unknown> | undefined)?.value;
  const pair = Array.isArray(st) ? st : null;
  const path = pair ? pair[1] : Array.isArray(o.args) ? o.args[0] : undefined;
  if (typeof path === 'string') return path;
  if (Buffer.isBuffer(path)) return path.toString('utf8');
  return null;
}

function undoMap(x: { id: Buffer; time: number; user_name: Buffer; description: Buffer; extension: Buffer } & { size?: number }): Record<string, unknown> {
  const d: Record<string, unknown> = { id: x.id, time: new PyFloat(x.time), user_name: x.user_name };
  if (typeof x.size === 'number') d.size = x.size;
  d.description = x.description;
  addExtension(d, x.extension);
  return d;
}

