/**
 * The ZRS primary (zrs spec §6.2–§6.4, §6.11–§6.12, §7): a FileStorage wrapper that listens for
 * secondaries and streams its history and every new commit to each of them, in order, with
 * back-pressure (one transaction in flight per connection beyond the socket buffer).
 *
 * Also speaks our native channel (native.ts): acknowledgements, lag per secondary, and
 * semi-synchronous commits (`ackQuorum`).
 */
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import {
  ReadOnlyError,
  StorageError,
  TimeStamp,
  toHex,
  type CommitListener,
  type HistoryEntry,
  type IStorage,
  type LoadBeforeResult,
  type LoadResult,
  type Oid,
  type Tid,
  type TransactionMetaData,
  type TransactionRecord,
  type UndoFilter,
  type UndoLogEntry,
} from '@zeo-ts/storage';
import { FileStorage, rawAppendInternalsOf } from '@zeo-ts/filestorage';
import { RunningChecksum } from './checksum.ts';
import { MessageTooLarge, SizedMessageDecoder, encodeSized, sizePrefix } from './framing.ts';
import { FileIterator, ScanAborted, TidTooHigh, type ReplTransaction } from './fsiterator.ts';
import { encodeB, encodeC, encodeS, encodeT, extensionDict } from './messages.ts';
import { blobBlocks, blobToSend, sendNativeBlob, streamBlob } from './blobs.ts';
import { NATIVE_PROTOCOL, decodeFrame, encodeFrame, txnDigest } from './native.ts';
import { type ZrsAddress, addressRepr, listenArgs } from './address.ts';
import type { NativeFrame } from './native.ts';
import { RawSource, produceRaw, rawAgreed, type RawProducerContext, type RawSourceOptions } from './raw.ts';

export interface PrimaryOptions {
  logger?: Logger;
  /** semi-synchronous: tpc_finish waits for this many native secondaries to acknowledge (0 = async) */
  ackQuorum?: number;
  /** how long tpc_finish waits for the quorum (ms, default 10000) */
  ackTimeout?: number;
  /** what happens when the quorum does not answer in time: refuse commits, or go asynchronous */
  ackTimeoutPolicy?: 'refuse' | 'async';
  /** socket buffer level above which a producer pauses (bytes, default 1 MiB) */
  highWaterMark?: number;
  /** raw mode: hold a commit of a steady stream up to this long after the previous send (ms, default 1; 0 = send each commit at once; RawSourceOptions.sendDelayMs) */
  rawSendDelayMs?: number;
  /** raw mode: most commits held back by rawSendDelayMs (default 4; RawSourceOptions.sendBatch) */
  rawSendBatch?: number;
}

export interface SecondaryLag {
  peer: string;
  protocol: string;
  /** tid the secondary started from */
  startTid: string;
  /** last transaction sent */
  sentTid: string;
  /** last transaction acknowledged (native only) */
  ackedTid: string | null;
  /** committed transactions not yet acknowledged (native) or not yet sent (zrs2) */
  lagTransactions: number;
  lagBytes: number;
  lagSeconds: number;
  paused: boolean;
}

const defaultLogger = (): Logger => pino({ name: 'zc.zrs.primary', level: process.env.ZEO_TS_LOG_LEVEL ?? 'info' }, pino.destination(2));

/** Primary construction accepts only a FileStorage (or a filename). §14 #44 */
export function asFileStorage(storage: unknown): FileStorage {
  if (typeof storage === 'string') return new FileStorage(storage);
  if (storage instanceof FileStorage) return storage;
  throw new StorageError(`Invalid storage: ${String((storage as { getName?: () => string })?.getName?.() ?? storage)}`);
}

export class Primary implements IStorage {
  readonly storage: FileStorage;
  readonly log: Logger;
  private server: net.Server;
  private readonly conns = new Set<PrimaryConnection>();
  private waiters: Array<() => void> = [];
  private closing = false;
  private closed = false;
  /** bound address once listening */
  address: net.AddressInfo | string | null = null;
  readonly listening: Promise<net.AddressInfo | string>;
  /** may be changed at run time */
  ackQuorum: number;
  /** milliseconds to wait for the quorum; may be changed at run time */
  ackTimeout: number;
  readonly ackTimeoutPolicy: 'refuse' | 'async';
  readonly highWaterMark: number;
  private readonly rawDefaults: RawSourceOptions;
  /** true after a quorum timeout, until the quorum catches up again */
  ackDegraded = false;
  /** true after a quorum timeout with policy 'refuse': commits are refused */
  commitsRefused = false;
  private ackWaiters = new Set<() => void>();
  /** tid → committed end position, for lag in bytes (bounded) */
  private readonly endPositions = new Map<Tid, number>();
  /** recent commit tids, oldest first (bounded), for lag in transactions */
  private readonly recentTids: Tid[] = [];

  constructor(
    storage: FileStorage | string,
    readonly addr: ZrsAddress,
    options: PrimaryOptions = {},
  ) {
    this.storage = asFileStorage(storage);
    this.log = (options.logger ?? defaultLogger()).child({ name: 'zc.zrs.primary' });
    this.ackQuorum = options.ackQuorum ?? 0;
    this.ackTimeout = options.ackTimeout ?? 10000;
    this.ackTimeoutPolicy = options.ackTimeoutPolicy ?? 'refuse';
    this.highWaterMark = options.highWaterMark ?? 1 << 20;
    this.rawDefaults = { ackNow: () => this.ackQuorum > 0 };
    if (options.rawSendDelayMs !== undefined) this.rawDefaults.sendDelayMs = options.rawSendDelayMs;
    if (options.rawSendBatch !== undefined) this.rawDefaults.sendBatch = options.rawSendBatch;
    new RawSource(this.storage, this.rawDefaults).close(); // RangeError now for bad raw options (it opens nothing)
    this.log.info(`Opening ${this.storage.getName()} ${addressRepr(addr)}`);
    this.server = net.createServer((sock) => this.accept(sock));
    this.server.maxConnections = 1000;
    if (typeof addr === 'string' && existsSync(addr)) unlinkSync(addr);
    this.listening = new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(listenArgs(addr), () => {
        this.server.off('error', reject);
        this.address = this.server.address();
        const a = this.address!;
        this.log.info({ replication: a }, `listening for secondaries on ${typeof a === 'string' ? a : `${a.address}:${a.port}`}`);
        resolve(a);
      });
    });
    this.listening.catch((e) => this.log.error({ err: String(e) }, `cannot listen on ${addressRepr(addr)}`));
  }

  /** The TCP port bound (tests). */
  get port(): number {
    const a = this.address;
    if (a && typeof a === 'object') return a.port;
    throw new Error('not listening on TCP');
  }

  private accept(sock: net.Socket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    const c = new PrimaryConnection(this, sock);
    this.conns.add(c);
    sock.once('close', () => {
      this.conns.delete(c);
      this.wakeAckWaiters();
    });
  }

  // ---- producer notification ---------------------------------------------------------------

  /** Wake every producer waiting for new data (§6.11). */
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next notify(). */
  waitForData(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  get isClosing(): boolean {
    return this.closing;
  }

  // ---- acknowledgements ----------------------------------------------------------------------

  wakeAckWaiters(): void {
    for (const f of [...this.ackWaiters]) f();
    const w = this.changeWaiters;
    this.changeWaiters = [];
    for (const f of w) f();
  }
  private changeWaiters: Array<() => void> = [];

  /** Resolves at the next acknowledgement or secondary disconnect (tests, tools). */
  changed(): Promise<void> {
    return new Promise((r) => this.changeWaiters.push(r));
  }

  /** Number of native secondaries that acknowledged `tid` or later. */
  ackedCount(tid: Tid): number {
    let n = 0;
    for (const c of this.conns) if (c.native && c.ackedTid !== null && c.ackedTid >= tid) n++;
    return n;
  }

  private async waitForQuorum(tid: Tid): Promise<void> {
    if (this.ackedCount(tid) >= this.ackQuorum) return;
    if (this.ackDegraded && this.ackTimeoutPolicy === 'async') return;
    let timer: NodeJS.Timeout | null = null;
    let wake: (() => void) | null = null;
    try {
      const ok = await new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.ackTimeout);
        wake = () => {
          if (this.ackedCount(tid) >= this.ackQuorum) resolve(true);
          else if (this.closed) resolve(false);
        };
        this.ackWaiters.add(wake);
      });
      if (ok) return;
    } finally {
      if (timer) clearTimeout(timer);
      if (wake) this.ackWaiters.delete(wake);
    }
    const msg = `REPLICATION QUORUM LOST: transaction ${toHex(tid)} was not acknowledged by ${this.ackQuorum} secondar${this.ackQuorum === 1 ? 'y' : 'ies'} within ${this.ackTimeout} ms`;
    if (this.ackTimeoutPolicy === 'async') {
      this.ackDegraded = true;
      this.log.error(`${msg}; continuing ASYNCHRONOUSLY (acknowledgements no longer awaited until the quorum catches up)`);
      return;
    }
    this.commitsRefused = true;
    this.log.error(`${msg}; REFUSING further commits until the quorum catches up`);
    throw new StorageError(`${msg}; the transaction is committed on the primary only`);
  }

  /** Called when an ack arrives: maybe leave the degraded states. */
  onAck(): void {
    this.wakeAckWaiters();
    if ((this.ackDegraded || this.commitsRefused) && this.ackedCount(this.storage.lastTransaction()) >= this.ackQuorum) {
      this.ackDegraded = false;
      this.commitsRefused = false;
      this.log.warn(`replication quorum of ${this.ackQuorum} restored at ${toHex(this.storage.lastTransaction())}; semi-synchronous commits resumed`);
    }
  }

  /** committed transactions after `tid` (bounded by the recent window) */
  txnsAfter(tid: Tid): number {
    const r = this.recentTids;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid]! <= tid) lo = mid + 1;
      else hi = mid;
    }
    return r.length - lo;
  }

  endPosition(tid: Tid): number | undefined {
    return this.endPositions.get(tid);
  }

  private readonly txnFrames = new Map<string, Buffer>();
  private txnFrameBytes = 0;

  /**
   * @internal Native record path: the size-prefixed Txn frame of a transaction, encoded once for
   * every secondary that needs it (bounded cache: 16 MiB, 256 frames; keyed by data-file
   * generation, tid and end position, so a pack never mixes up two versions of a transaction).
   */
  nativeTxnFrame(t: ReplTransaction, endPos: number): Buffer {
    const key = `${rawAppendInternalsOf(this.storage).generation()}:${t.tid}:${endPos}`;
    const hit = this.txnFrames.get(key);
    if (hit) return hit;
    const frame = encodeFrame({ kind: 'txn', txn: { ...t, endPos } });
    const f = Buffer.concat([sizePrefix(frame.length), frame]);
    this.txnFrames.set(key, f);
    this.txnFrameBytes += f.length;
    for (const [k, v] of this.txnFrames) {
      if (this.txnFrameBytes <= 16 << 20 && this.txnFrames.size <= 256) break;
      this.txnFrames.delete(k);
      this.txnFrameBytes -= v.length;
    }
    return f;
  }

  private rawSrc: RawSource | null = null;
  /**
   * Raw mode (raw.ts): the data-file segments shared by every raw connection. `options` apply
   * when it is first made (tests: small segments).
   */
  rawSource(options?: RawSourceOptions): RawSource {
    // while commits wait for acknowledgements, secondaries must not delay them (ack_now)
    if (!this.rawSrc) this.rawSrc = new RawSource(this.storage, { ...this.rawDefaults, ...options });
    return this.rawSrc;
  }

  /** Replication state of every connected secondary. */
  replicationStatus(): Record<string, unknown> {
    const last = this.storage.lastTransaction();
    return {
      role: 'primary',
      address: addressRepr(this.addr),
      'last-transaction': toHex(last),
      'ack-quorum': this.ackQuorum,
      'ack-degraded': this.ackDegraded,
      'commits-refused': this.commitsRefused,
      secondaries: [...this.conns].filter((c) => c.started).map((c) => c.lag()),
    };
  }

  // ---- IStorage delegation ---------------------------------------------------------------------

  getName(): string {
    return this.storage.getName();
  }
  sortKey(): string {
    return this.storage.sortKey();
  }
  getSize(): number {
    return this.storage.getSize();
  }
  len(): number {
    return this.storage.len();
  }
  isReadOnly(): boolean {
    return this.storage.isReadOnly();
  }
  supportsUndo(): boolean {
    return this.storage.supportsUndo();
  }
  lastTransaction(): Tid {
    return this.storage.lastTransaction();
  }
  load(oid: Oid): Promise<LoadResult> {
    return this.storage.load(oid);
  }
  loadBefore(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null> {
    return this.storage.loadBefore(oid, tid);
  }
  loadSerial(oid: Oid, serial: Tid): Promise<Buffer> {
    return this.storage.loadSerial(oid, serial);
  }
  getTid(oid: Oid): Promise<Tid> {
    return this.storage.getTid(oid);
  }
  history(oid: Oid, size?: number): Promise<HistoryEntry[]> {
    return this.storage.history(oid, size);
  }
  new_oid(): Promise<Oid> {
    return this.storage.new_oid();
  }
  async tpc_begin(txn: TransactionMetaData, tid?: Tid, status?: string): Promise<void> {
    if (this.commitsRefused) throw new StorageError(`commits refused: the replication quorum (${this.ackQuorum}) has not acknowledged ${toHex(this.storage.lastTransaction())}`);
    return this.storage.tpc_begin(txn, tid, status);
  }
  store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void> {
    return this.storage.store(oid, serial, data, txn);
  }
  restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    return this.storage.restore(oid, serial, data, prevTxn, txn);
  }
  deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    return this.storage.deleteObject(oid, serial, txn);
  }
  checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    return this.storage.checkCurrentSerialInTransaction(oid, serial, txn);
  }
  tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined> {
    return this.storage.tpc_vote(txn);
  }
  /** The wrapped tpc_finish, then wake the producers; with ackQuorum, wait for acknowledgements. */
  async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    const tid = await this.storage.tpc_finish(txn);
    this.recentTids.push(tid);
    this.endPositions.set(tid, this.storage.getSize());
    if (this.recentTids.length > 100_000) this.endPositions.delete(this.recentTids.shift()!);
    this.notify();
    if (this.ackQuorum > 0) await this.waitForQuorum(tid);
    return tid;
  }
  tpc_abort(txn: TransactionMetaData): Promise<void> {
    return this.storage.tpc_abort(txn);
  }
  undoLog(first?: number, last?: number, filter?: UndoFilter): Promise<UndoLogEntry[]> {
    return this.storage.undoLog(first, last, filter);
  }
  undoInfo(first?: number, last?: number, specification?: Record<string, Buffer | string>): Promise<UndoLogEntry[]> {
    return this.storage.undoInfo(first, last, specification);
  }
  undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]> {
    return this.storage.undo(transactionId, txn);
  }
  pack(t: number, gc?: boolean): Promise<void> {
    return this.storage.pack(t, gc);
  }
  iterator(start?: Tid, stop?: Tid): AsyncIterable<TransactionRecord> {
    return this.storage.iterator(start, stop);
  }
  lastInvalidations(count: number): Array<[Tid, Oid[]]> {
    return this.storage.lastInvalidations(count);
  }
  record_iternext(next?: Oid | null) {
    return this.storage.record_iternext(next);
  }
  onCommit(listener: CommitListener): () => void {
    return this.storage.onCommit(listener);
  }

  // ---- blobs: IBlobStorage of the FileStorage, when it has a blob directory (§7) ---------------

  supportsBlobs(): boolean {
    return this.storage.supportsBlobs();
  }
  temporaryDirectory(): string {
    return this.storage.temporaryDirectory();
  }
  storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void> {
    return this.storage.storeBlob(oid, serial, data, blobFilename, txn);
  }
  restoreBlob(oid: Oid, serial: Tid, data: Buffer | null, blobFilename: string | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    return this.storage.restoreBlob(oid, serial, data, blobFilename, prevTxn, txn);
  }
  loadBlob(oid: Oid, serial: Tid): Promise<string> {
    return this.storage.loadBlob(oid, serial);
  }

  /**
   * §6.12 / §14 #45: stop listening, close the storage, let every producer send what is
   * committed, then close the connections (waiting at most `wait` ms).
   */
  async close(wait = 60000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.log.info(`Closing ${this.storage.getName()} ${addressRepr(this.addr)}`);
    // net.Server.close calls back only when every connection is gone: start it, await it last
    const stoppedListening = new Promise<void>((r) => this.server.close(() => r()));
    await this.storage.close();
    this.closed = true;
    this.wakeAckWaiters();
    const done = [...this.conns].map((c) => c.finish());
    this.notify();
    let timer: NodeJS.Timeout | null = null;
    await Promise.race([Promise.all(done), new Promise<void>((r) => (timer = setTimeout(r, wait)))]);
    if (timer) clearTimeout(timer);
    for (const c of this.conns) c.destroy();
    await stoppedListening;
    this.rawSrc?.close();
    if (typeof this.addr === 'string' && existsSync(this.addr)) {
      try {
        unlinkSync(this.addr);
      } catch {
        /* gone */
      }
    }
  }

  /** Drop every secondary connection now (tests; they reconnect). */
  disconnectAll(): void {
    for (const c of this.conns) c.destroy();
  }
}

/** One secondary connection on the primary side. */
class PrimaryConnection {
  readonly peer: string;
  private readonly log: Logger;
  private readonly decoder = new SizedMessageDecoder(8);
  protocol: string | null = null;
  native = false;
  started = false;
  startTid: Tid = 0n;
  sentTid: Tid = 0n;
  ackedTid: Tid | null = null;
  private iter: FileIterator | null = null;
  private hello: Extract<NativeFrame, { kind: 'hello' }> | null = null;
  /** sending whole transactions as data-file bytes (raw.ts) */
  raw = false;
  private stopped = false;
  private catchUpThenStop = false;
  private producing: Promise<void> | null = null;
  private drainWaiter: (() => void) | null = null;
  paused = false;
  private closedLogged = false;

  constructor(
    private readonly primary: Primary,
    private readonly sock: net.Socket,
  ) {
    this.peer = sock.remoteAddress ? `${sock.remoteAddress}:${sock.remotePort}` : 'unix';
    this.log = primary.log.child({ peer: this.peer });
    this.log.info(`${this.peer}: Connected`);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('drain', () => {
      if (this.paused) this.log.debug(`${this.peer} resuming`);
      this.paused = false;
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w?.();
    });
    sock.on('error', (e) => this.log.debug({ err: String(e) }, `${this.peer}: socket error`));
    sock.on('close', () => {
      this.stopped = true;
      this.iter?.close();
      this.iter = null;
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w?.();
      this.primary.notify();
      this.log.info(`${this.peer}: Disconnected`);
    });
  }

  private fail(msg: string): void {
    this.log.error(`${this.peer}: ${msg}`);
    this.close();
  }

  private close(): void {
    if (!this.closedLogged) {
      this.closedLogged = true;
      this.log.info(`${this.peer}: Closed`);
    }
    this.stopped = true;
    this.sock.end();
    this.sock.destroySoon();
  }

  destroy(): void {
    this.stopped = true;
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    try {
      this.decoder.feed(d, (m) => {
        if (this.stopped) return false;
        this.onMessage(m);
      });
    } catch (e) {
      if (e instanceof MessageTooLarge) return this.fail(e.message);
      return this.fail(String(e));
    }
  }

  private onMessage(m: Buffer): void {
    if (this.protocol === null) {
      const p = m.toString('latin1');
      if (p === 'zrs2.0' && this.primary.supportsBlobs()) {
        // §6.2, §14 #6: a blob-enabled primary needs a secondary that can take blobs
        return this.fail(`Invalid protocol ${pyBytesRepr(m)}. Require >= 2.1`);
      } else if (p === 'zrs2.0' || p === 'zrs2.1') {
        this.protocol = p;
      } else if (p === NATIVE_PROTOCOL) {
        this.protocol = p;
        this.native = true;
        this.decoder.limit = 64 * 1024;
      } else {
        return this.fail(`Invalid protocol ${pyBytesRepr(m)}`);
      }
      return;
    }
    if (!this.started) {
      if (this.native) {
        let f;
        try {
          f = decodeFrame(m);
        } catch (e) {
          return this.fail(`Invalid hello: ${(e as Error).message}`);
        }
        if (f.kind !== 'hello') return this.fail(`Invalid hello: got ${f.kind}`);
        if (this.primary.supportsBlobs() && !f.blobs) {
          // the native counterpart of refusing zrs2.0 (§6.2, §14 #6): say why, at the handshake
          const reason = 'this primary stores blobs and the secondary has no blob directory (configure blob-dir on the secondary)';
          this.log.error(`${this.peer}: ${reason}`);
          this.stopped = true;
          this.sock.end(encodeSized(encodeFrame({ kind: 'refuse', reason, code: 'blobs' })));
          return;
        }
        this.hello = f;
        return this.start(f.lastTid, f.lastDigest);
      }
      if (m.length !== 8) return this.fail(`Invalid transaction id, ${pyBytesRepr(m)}`);
      return this.start(m.readBigUInt64BE(0), null);
    }
    if (m.length === 0) {
      this.log.debug(`${this.peer}: keep-alive`);
      return;
    }
    if (!this.native) return this.fail('Too many messages');
    let f;
    try {
      f = decodeFrame(m);
    } catch (e) {
      return this.fail(`Invalid frame: ${(e as Error).message}`);
    }
    if (f.kind !== 'ack') return this.fail(`Unexpected ${f.kind} frame`);
    if (f.tid > this.sentTid) return this.fail(`acknowledgement of ${toHex(f.tid)} which was never sent`);
    this.ackedTid = f.tid;
    this.primary.onAck();
  }

  private start(ltid: Tid, lastDigest: Buffer | null): void {
    this.started = true;
    this.startTid = ltid;
    this.sentTid = ltid;
    this.log.info(`${this.peer}: start ${toHex(ltid)} (${new TimeStamp(ltid).toString()})`);
    this.producing = this.produce(ltid, lastDigest).catch((e) => {
      if (e instanceof ScanAborted) return;
      if (this.native && !this.sock.destroyed) {
        const code = e instanceof TidTooHigh ? 'ahead' : e instanceof DivergedError ? 'diverged' : 'error';
        this.sock.end(encodeSized(encodeFrame({ kind: 'refuse', reason: `${e.name}: ${e.message}`, code })));
      }
      this.log.error({ err: e instanceof Error ? { type: e.name, message: e.message, stack: e.stack } : String(e) }, `${this.peer}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      this.stopped = true;
      if (!this.native) this.sock.destroy();
      else this.sock.destroySoon();
    });
  }

  /** primary closing: send what is committed, then close (§6.12). */
  finish(): Promise<void> {
    if (!this.producing) {
      this.close();
      return Promise.resolve();
    }
    this.catchUpThenStop = true;
    return this.producing;
  }

  lag(): Record<string, unknown> {
    const p = this.primary;
    const last = p.lastTransaction();
    const ref = this.native ? (this.ackedTid ?? this.startTid) : this.sentTid;
    const lagTxns = ref >= last ? 0 : p.txnsAfter(ref);
    const endRef = p.endPosition(ref);
    const lagBytes = ref >= last ? 0 : Math.max(0, p.getSize() - (endRef ?? this.iter?.pos ?? 0));
    const lagSeconds = ref >= last || ref === 0n ? (ref >= last ? 0 : new TimeStamp(last).timeTime() - new TimeStamp(0n).timeTime()) : new TimeStamp(last).timeTime() - new TimeStamp(ref).timeTime();
    return {
      peer: this.peer,
      protocol: this.protocol,
      'start-tid': toHex(this.startTid),
      'sent-tid': toHex(this.sentTid),
      'acked-tid': this.ackedTid === null ? null : toHex(this.ackedTid),
      'lag-transactions': lagTxns,
      'lag-bytes': lagBytes,
      'lag-seconds': Math.max(0, Math.round(lagSeconds * 1e6) / 1e6),
      paused: this.paused,
    };
  }

  private async send(buf: Buffer): Promise<void> {
    if (this.stopped && !this.catchUpThenStop) return;
    if (this.sock.destroyed) {
      this.stopped = true;
      return;
    }
    const ok = this.sock.write(buf);
    if (!ok || this.sock.writableLength > this.primary.highWaterMark) {
      if (!this.paused) this.log.debug(`${this.peer} pausing`);
      this.paused = true;
      await new Promise<void>((r) => {
        if (this.sock.destroyed || this.sock.writableLength === 0) {
          this.paused = false;
          return r();
        }
        this.drainWaiter = r;
      });
    }
  }

  private async produce(ltid: Tid, lastDigest: Buffer | null): Promise<void> {
    const p = this.primary;
    const fs = p.storage;
    const it = new FileIterator(fs.path, {
      committedEnd: () => fs.getSize(),
      lastTransaction: () => fs.lastTransaction(),
      log: this.log,
      aborted: () => this.stopped && !this.catchUpThenStop,
    });
    this.iter = it;
    if (this.sock.destroyed) {
      it.close();
      return;
    }
    try {
      it.locate(ltid);
      if (this.native) {
        if (ltid !== 0n) this.checkSamePast(it, ltid, lastDigest);
        this.raw = this.rawAgreed(it.pos);
        await this.send(encodeSized(encodeFrame({ kind: 'welcome', lastTid: fs.lastTransaction(), name: fs.getName(), raw: this.raw })));
      }
      if (this.raw) {
        const how = await produceRaw(p.rawSource(), this.rawContext(), it.pos);
        if (how !== 'fallback') {
          if (how === 'done') this.close();
          return;
        }
        this.raw = false;
        it.locate(this.sentTid);
      }
      const sum = new RunningChecksum(Buffer.from(p64b(ltid)));
      for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
        if (this.stopped && !this.catchUpThenStop) return;
        if (this.sock.destroyed) return;
        const t = it.next();
        if (t === null) {
          if (this.catchUpThenStop || p.isClosing) break;
          const wait = p.waitForData();
          // re-check: a commit may have landed between next() and the wait
          const again = it.next();
          if (again === null) {
            await wait;
            continue;
          }
          await this.sendTxn(again, sum, it.pos);
          continue;
        }
        await this.sendTxn(t, sum, it.pos);
      }
      this.close();
    } finally {
      it.close();
      if (this.iter === it) this.iter = null;
    }
  }

  /** raw mode when the secondary asked and its file ends where our next transaction starts */
  private rawAgreed(startPos: number): boolean {
    const h = this.hello;
    if (!h?.raw) return false;
    const r = rawAgreed(this.primary.rawSource(), h, startPos);
    this.log.info(`${this.peer}: ${r.ok ? 'raw mode' : 'record mode'} (${r.why})`);
    return r.ok;
  }

  private rawContext(): RawProducerContext {
    return {
      log: this.log,
      stopped: () => (this.stopped && !this.catchUpThenStop) || this.sock.destroyed,
      finishing: () => this.catchUpThenStop || this.primary.isClosing,
      send: (b: Buffer) => this.send(b),
      sent: (tid: Tid) => {
        this.sentTid = tid;
      },
      waitForData: () => this.primary.waitForData(),
    };
  }

  /** native only: the secondary's last transaction must be ours too (divergence check). */
  private checkSamePast(it: FileIterator, ltid: Tid, lastDigest: Buffer | null): void {
    const saved = it.pos;
    const fs = this.primary.storage;
    // find our transaction with that tid by walking back from the located position
    const probe = new FileIterator(fs.path, { committedEnd: () => fs.getSize(), lastTransaction: () => fs.lastTransaction() });
    try {
      let found: ReplTransaction | null = null;
      for (const t of backwardsFrom(probe, saved)) {
        if (t.tid === ltid) found = t;
        break;
      }
      if (!found) throw new DivergedError(`the secondary's last transaction ${toHex(ltid)} does not exist on the primary (diverged history)`);
      if (lastDigest && lastDigest.length && !txnDigest(found).equals(lastDigest)) {
        throw new DivergedError(`the secondary's transaction ${toHex(ltid)} differs from the primary's (diverged history)`);
      }
    } finally {
      probe.close();
    }
  }

  /** one sized message made of `parts`, while streaming a blob; a lost connection ends the blob */
  private async sendBlobPart(parts: Buffer[]): Promise<void> {
    if ((this.stopped && !this.catchUpThenStop) || this.sock.destroyed) throw new ScanAborted('connection lost while sending a blob');
    let n = 0;
    for (const p of parts) n += p.length;
    await this.send(Buffer.concat([sizePrefix(n), ...parts]));
  }

  private async sendTxn(t: ReplTransaction, sum: RunningChecksum, endPos: number): Promise<void> {
    const blobs = this.primary.supportsBlobs() ? this.primary.storage : null;
    if (this.native) {
      // blob files travel as blob frames just before the transaction frame (blobs.ts)
      if (blobs) {
        for (const r of t.records) {
          const b = await blobToSend(blobs, r);
          if (b) await sendNativeBlob(r.oid, r.tid, b, (parts) => this.sendBlobPart(parts));
        }
      }
      await this.send(this.primary.nativeTxnFrame(t, endPos));
      this.sentTid = t.tid;
      return;
    }
    const parts: Buffer[] = [];
    const add = (payload: Buffer) => {
      sum.update(payload);
      parts.push(sizePrefix(payload.length), payload);
    };
    add(encodeT(t.tid, t.status, t.user, t.description, extensionDict(t.extension)));
    for (const r of t.records) {
      // §6.5, §14 #22/#23: B + data + blocks for a blob record whose file exists, else S + data
      const b = blobs ? await blobToSend(blobs, r) : null;
      if (b) {
        add(encodeB(r.oid, r.tid, r.dataTxn, blobBlocks(b.size)));
        add(r.data ?? Buffer.alloc(0));
        await this.send(Buffer.concat(parts));
        parts.length = 0;
        await streamBlob(b.path, b.size, (block) => {
          sum.update(block);
          return this.sendBlobPart([block]);
        });
        continue;
      }
      add(encodeS(r.oid, r.tid, r.dataTxn));
      add(r.data ?? Buffer.alloc(0));
    }
    add(encodeC(sum.digest()));
    await this.send(Buffer.concat(parts));
    this.sentTid = t.tid;
  }
}

export class DivergedError extends Error {
  override name = 'Diverged';
}

function p64b(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v, 0);
  return b;
}

/** The transaction that ends just before `pos` (one step back). */
function* backwardsFrom(it: FileIterator, pos: number): Generator<ReplTransaction> {
  const t = it.transactionBefore(pos);
  if (t) yield t;
}

/** Python's repr of bytes, for log lines like upstream's. */
export function pyBytesRepr(b: Buffer): string {
  let s = "b'";
  for (const c of b) {
    if (c === 0x5c) s += '\\\\';
    else if (c === 0x27) s += "\\'";
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + "'";
}
