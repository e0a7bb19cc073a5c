/**
 * The ZRS secondary (zrs spec §6.1, §6.7, §6.9, §6.10, §6.12, §8): a read-only storage that
 * connects to a primary, sends its last tid, and re-commits every replicated transaction with
 * the same tid, durably and in order. Speaks zrs2.0 with any primary and our native channel
 * (acknowledgements) with a zeo-ts primary, falling back to zrs2.0 when the primary refuses it.
 */
import net from 'node:net';
import pino, { type Logger } from 'pino';
import {
  ReadOnlyError,
  StorageError,
  TimeStamp,
  TransactionMetaData,
  toHex,
  type CommitListener,
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
import { RunningChecksum } from './checksum.ts';
import { SizedMessageDecoder, encodeSized } from './framing.ts';
import { decodeMessage, extensionBytes, ProtocolError, type BMessage, type SMessage } from './messages.ts';
import { IncomingBlob, NativeBlobReceiver, blobStorageOf, decodeBlobFrame, isBlobFrame, removeStaleIncoming } from './blobs.ts';
import { NATIVE_PROTOCOL, decodeFrame, encodeFrame, encodeSizedAck, txnDigest, type NativeTxn, type NativeRecord } from './native.ts';
import { type ZrsAddress, addressRepr, connectArgs } from './address.ts';
import type { IBlobStorage } from '@zeo-ts/storage';
import { RawReceiver, isRawPayload, rawHello } from './raw.ts';
import { Primary, type PrimaryOptions } from './primary.ts';
import type { FileStorage } from '@zeo-ts/filestorage';

export interface SecondaryOptions {
  logger?: Logger;
  /** seconds before reconnecting after a failed or lost connection (default 60, §3.3) */
  reconnectDelay?: number;
  /** the delay doubles after each consecutive failure up to this (seconds; default = reconnectDelay) */
  maxReconnectDelay?: number;
  /** verify the zrs2 running MD5 (default true) */
  checkChecksums?: boolean;
  /** seconds between keep-alives; 0 = none (default) */
  keepAliveDelay?: number;
  /** 'auto' (default): try our native channel, fall back to zrs2.0; 'never'; 'always' */
  native?: 'auto' | 'never' | 'always';
  /** do not connect until start() (default: connect at once) */
  deferStart?: boolean;
  /** most received bytes queued for application before the socket is paused (default 8 MiB) */
  maxQueuedBytes?: number;
  /** native channel: ask for raw mode (whole transactions as data-file bytes, raw.ts) when our file is positionally identical to the primary's (default true) */
  raw?: boolean;
  /** raw mode: at least this long between two fdatasyncs under a steady stream (ms, default 1; 0 = sync each batch at once; see RawReceiverOptions.syncDelayMs) */
  rawSyncDelayMs?: number;
}

export type SecondaryState = 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed';

/** What the secondary needs from the storage it writes into: any IStorage (FileStorage, or a Primary for a relay). */
export type ReplicaTarget = IStorage;

const defaultLogger = (): Logger => pino({ name: 'zc.zrs.secondary', level: process.env.ZEO_TS_LOG_LEVEL ?? 'info' }, pino.destination(2));

export class Secondary implements IStorage {
  readonly log: Logger;
  private addr: ZrsAddress | null;
  readonly reconnectDelay: number;
  readonly maxReconnectDelay: number;
  readonly checkChecksums: boolean;
  readonly keepAliveDelay: number;
  private nativeMode: 'auto' | 'never' | 'always';
  /** in 'auto' mode: the primary refused our native id, use zrs2.0 */
  private nativeRefused = false;
  private readonly maxQueuedBytes: number;
  private readonly rawEnabled: boolean;
  /** @internal RawReceiver's syncDelayMs */
  readonly rawSyncDelayMs: number | undefined;
  /** the last raw connection refused a segment: the next connection uses the record path */
  private rawOffOnce = false;
  /** raw segments refused so far (each one made a connection fall back to the record path) */
  rawFallbacks = 0;
  state: SecondaryState = 'idle';
  private sock: net.Socket | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private conn: ApplyConnection | null = null;
  /** last refusal by the primary (ahead / diverged), cleared when data flows again */
  refused: { code: string; reason: string } | null = null;
  lastError: string | null = null;
  connectedAt: number | null = null;
  /** transactions applied since start */
  applied = 0;
  /** number of connections made (tests) */
  connections = 0;
  /** seconds until the pending reconnection attempt, as scheduled (null before the first) */
  nextReconnectDelay: number | null = null;
  private stateWaiters: Array<() => void> = [];

  constructor(
    readonly storage: ReplicaTarget,
    addr: ZrsAddress | null,
    options: SecondaryOptions = {},
  ) {
    this.addr = addr;
    this.log = (options.logger ?? defaultLogger()).child({ name: 'zc.zrs.secondary' });
    this.reconnectDelay = options.reconnectDelay ?? 60;
    this.maxReconnectDelay = Math.max(this.reconnectDelay, options.maxReconnectDelay ?? this.reconnectDelay);
    if (!Number.isFinite(this.reconnectDelay) || this.reconnectDelay < 0 || !Number.isFinite(this.maxReconnectDelay)) {
      throw new RangeError(`Secondary: reconnectDelay must be a finite number of seconds >= 0, not ${options.reconnectDelay} (max ${options.maxReconnectDelay})`);
    }
    this.checkChecksums = options.checkChecksums ?? true;
    this.keepAliveDelay = options.keepAliveDelay ?? 0;
    this.nativeMode = options.native ?? 'auto';
    this.maxQueuedBytes = options.maxQueuedBytes ?? 8 << 20;
    this.rawEnabled = options.raw ?? true;
    this.rawSyncDelayMs = options.rawSyncDelayMs;
    this.log.info(`Opening ${storage.getName()} ${addr === null ? 'None' : addressRepr(addr)}`);
    if (this.supportsBlobs()) {
      const stale = removeStaleIncoming(this.temporaryDirectory());
      if (stale) this.log.warn(`removed ${stale} partial blob file(s) left by an earlier run in ${this.temporaryDirectory()}`);
    }
    if (addr !== null && !options.deferStart) this.connect();
  }

  /** Set or change the primary address; connecting starts if there was none (§3.3). */
  setReplicationAddress(addr: ZrsAddress): void {
    const had = this.addr !== null;
    this.addr = addr;
    if (!had && !this.closed && this.state === 'idle') this.connect();
  }

  get replicationAddress(): ZrsAddress | null {
    return this.addr;
  }

  start(): void {
    if (this.state === 'idle' && this.addr !== null && !this.closed) this.connect();
  }

  /** Resolves at the next state change or applied transaction (tests, tools). */
  changed(): Promise<void> {
    return new Promise((r) => this.stateWaiters.push(r));
  }

  /** @internal */
  signal(): void {
    const w = this.stateWaiters;
    this.stateWaiters = [];
    for (const f of w) f();
  }

  private setState(s: SecondaryState): void {
    this.state = s;
    this.signal();
  }

  private useNative(): boolean {
    if (this.nativeMode === 'always') return true;
    if (this.nativeMode === 'never') return false;
    return !this.nativeRefused;
  }

  private connect(): void {
    if (this.closed || this.addr === null) return;
    this.setState('connecting');
    const native = this.useNative();
    const sock = net.connect(connectArgs(this.addr));
    this.sock = sock;
    sock.setNoDelay(true);
    let connected = false;
    let gotAnything = false;
    sock.once('connect', () => {
      if (this.closed) {
        sock.destroy();
        return;
      }
      connected = true;
      this.connections++;
      const peer = sock.remoteAddress ? `${sock.remoteAddress}:${sock.remotePort}` : addressRepr(this.addr!);
      const last = this.storage.lastTransaction();
      // §6.1: protocol id, then the last tid (or, natively, a Hello), without waiting
      const proto = native ? NATIVE_PROTOCOL : this.supportsBlobs() ? 'zrs2.1' : 'zrs2.0'; // §6.1, §14 #4
      sock.write(encodeSized(Buffer.from(proto, 'latin1')));
      if (native) {
        const rh = this.rawEnabled && !this.rawOffOnce ? rawHello(this.storage) : null;
        this.rawOffOnce = false;
        sock.write(encodeSized(encodeFrame({ kind: 'hello', lastTid: last, lastDigest: Buffer.alloc(0), name: this.storage.getName(), blobs: this.supportsBlobs(), ...(rh ? { raw: true, endPos: rh.endPos, lastRawSha1: rh.lastRawSha1 } : {}) })));
      } else {
        sock.write(encodeSized(p64b(last)));
      }
      this.conn = new ApplyConnection(this, sock, peer, native, last, () => (gotAnything = true));
      this.connectedAt = Date.now();
      this.setState('connected');
      this.log.info(`${peer}: Connected`);
      if (this.keepAliveDelay > 0) this.armKeepAlive(sock);
    });
    sock.on('error', (e) => {
      this.lastError = String(e.message ?? e);
      this.log.debug({ err: this.lastError }, 'replication connection error');
    });
    sock.once('close', () => {
      if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
      this.keepAliveTimer = null;
      const c = this.conn;
      this.conn = null;
      if (this.sock === sock) this.sock = null;
      void (async () => {
        if (c) await c.abort();
        if (connected) this.log.info(`${c?.peer ?? ''}: Disconnected${this.lastError ? ` ${this.lastError}` : ''}`);
        if (this.closed) return;
        let delay = this.reconnectDelay;
        if (connected && native && !gotAnything && this.nativeMode === 'auto' && !this.nativeRefused && !this.refused) {
          // a primary that closes on our native id without a word is a zc.zrs primary: use zrs2.0 now
          this.nativeRefused = true;
          this.log.info('the primary does not speak the native channel; using zrs2.0');
          delay = 0;
        } else if (!c?.progressed) {
          this.failures++;
          delay = Math.min(this.maxReconnectDelay, this.reconnectDelay * 2 ** Math.min(this.failures - 1, 20));
        } else {
          this.failures = 0;
        }
        if (c?.rawFallback) delay = 0; // reconnect at once, on the record path
        this.nextReconnectDelay = delay;
        this.log.info({ reconnectDelay: delay }, `reconnecting to ${addressRepr(this.addr!)} in ${delay} s`);
        this.setState('waiting');
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = null;
          if (!this.closed) this.connect();
        }, delay * 1000);
      })();
    });
  }

  private armKeepAlive(sock: net.Socket): void {
    this.keepAliveTimer = setTimeout(() => {
      if (sock.destroyed || this.closed) return;
      sock.write(encodeSized(Buffer.alloc(0)));
      this.armKeepAlive(sock);
    }, this.keepAliveDelay * 1000);
  }

  /** Drop the current connection (tests / operator); reconnects after the delay. */
  disconnect(): void {
    this.sock?.destroy();
  }

  /** @internal for ApplyConnection */
  get queueLimit(): number {
    return this.maxQueuedBytes;
  }

  /** @internal a raw segment was refused: the next connection uses the record path */
  noteRawFallback(): void {
    this.rawOffOnce = true;
    this.rawFallbacks++;
  }

  /** @internal */
  noteApplied(transactions = 1): void {
    this.applied += transactions;
    this.refused = null;
    this.signal();
  }

  replicationStatus(): Record<string, unknown> {
    if (this.writeTarget) {
      const p = this.primary;
      return { ...(p ? p.replicationStatus() : { role: 'primary', 'last-transaction': toHex(this.storage.lastTransaction()) }), promoted: true };
    }
    const last = this.storage.lastTransaction();
    return {
      role: 'secondary',
      'replicate-from': this.addr === null ? null : addressRepr(this.addr),
      state: this.refused ? 'refused' : this.state,
      protocol: this.conn ? (this.conn.native ? NATIVE_PROTOCOL : this.supportsBlobs() ? 'zrs2.1' : 'zrs2.0') : null,
      'last-transaction': toHex(last),
      'last-transaction-time': new TimeStamp(last).toString(),
      'applied-transactions': this.applied,
      refused: this.refused,
      'last-error': this.lastError,
    };
  }

  // ---- read-only IStorage (§8) -----------------------------------------------------------------

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
    return this.writeTarget === null ? true : this.writeTarget.isReadOnly();
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
  /** after promote(): where writes go (the FileStorage, or a Primary around it) */
  private writeTarget: IStorage | null = null;

  private writer(): IStorage {
    if (!this.writeTarget) throw new ReadOnlyError();
    return this.writeTarget;
  }
  get promoted(): boolean {
    return this.writeTarget !== null;
  }
  async new_oid(): Promise<Oid> {
    return this.writer().new_oid();
  }
  async tpc_begin(txn: TransactionMetaData, tid?: Tid, status?: string): Promise<void> {
    return this.writer().tpc_begin(txn, tid, status);
  }
  async store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void> {
    return this.writer().store(oid, serial, data, txn);
  }
  async restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    return this.writer().restore(oid, serial, data, prevTxn, txn);
  }
  async deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    return this.writer().deleteObject(oid, serial, txn);
  }
  async checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    return this.writer().checkCurrentSerialInTransaction(oid, serial, txn);
  }
  async tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined> {
    return this.writer().tpc_vote(txn);
  }
  async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    return this.writer().tpc_finish(txn);
  }
  async tpc_abort(txn: TransactionMetaData): Promise<void> {
    if (this.writeTarget) return this.writeTarget.tpc_abort(txn);
  }
  undoLog(first?: number, last?: number, filter?: UndoFilter): Promise<UndoLogEntry[]> {
    return this.storage.undoLog(first, last, filter);
  }
  undoInfo(first?: number, last?: number, specification?: Record<string, Buffer | string>): Promise<UndoLogEntry[]> {
    return this.storage.undoInfo(first, last, specification);
  }
  async undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]> {
    return this.writer().undo(transactionId, txn);
  }
  pack(t: number, gc?: boolean): Promise<void> {
    return this.storage.pack(t, gc);
  }
  iterator(start?: Tid, stop?: Tid): AsyncIterable<TransactionRecord> {
    return this.storage.iterator(start, stop);
  }
  lastInvalidations(count: number): Array<[Tid, Oid[]]> {
    const s = this.storage as unknown as { lastInvalidations?: (n: number) => Array<[Tid, Oid[]]> };
    return typeof s.lastInvalidations === 'function' ? s.lastInvalidations(count) : [];
  }
  // ---- blobs (§8): read through the wrapped blob storage; writes only after promotion ---------

  supportsBlobs(): boolean {
    return blobStorageOf(this.storage) !== null;
  }
  temporaryDirectory(): string {
    return this.blobStorage('temporaryDirectory').temporaryDirectory();
  }
  loadBlob(oid: Oid, serial: Tid): Promise<string> {
    return this.blobStorage('loadBlob').loadBlob(oid, serial);
  }
  async storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void> {
    const w = this.writer();
    const b = blobStorageOf(w);
    if (!b) throw new StorageError(`storeBlob: ${this.getName()} has no blob directory`);
    return b.storeBlob(oid, serial, data, blobFilename, txn);
  }
  async restoreBlob(oid: Oid, serial: Tid, data: Buffer | null, blobFilename: string | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    const w = this.writer();
    const b = blobStorageOf(w);
    if (!b) throw new StorageError(`restoreBlob: ${this.getName()} has no blob directory`);
    return b.restoreBlob(oid, serial, data, blobFilename, prevTxn, txn);
  }
  /** @internal the wrapped storage as a blob storage (replication writes blobs through it) */
  blobStorage(what: string): IBlobStorage {
    const b = blobStorageOf(this.storage);
    if (!b) throw new StorageError(`${what}: ${this.getName()} has no blob directory`);
    return b;
  }

  /** invalidations flow from the wrapped storage's commit listeners (§14 #37) */
  onCommit(listener: CommitListener): () => void {
    return this.storage.onCommit(listener);
  }

  /** Stop replicating (no timers, no connection attempts remain) but keep the storage open. */
  async stopReplication(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = null;
    const c = this.conn;
    const s = this.sock;
    if (s) {
      const gone = new Promise<void>((r) => s.once('close', () => r()));
      s.destroy();
      await gone;
    }
    if (c) await c.abort();
    await c?.idle();
    this.setState('closed');
  }

  /**
   * Promotion (spec §3.5, done online): stop replicating and become writable. With `listen`,
   * a Primary is started on the storage so other secondaries can re-point here (their history
   * being a prefix of ours, they continue without a full copy). A relay (whose storage is
   * already a Primary) keeps its listener.
   */
  async promote(listen?: ZrsAddress | null, options: PrimaryOptions = {}): Promise<void> {
    if (this.writeTarget) return;
    await this.stopReplication();
    this.closed = true;
    let target: IStorage = this.storage;
    if (listen && !(this.storage instanceof Primary)) {
      const p = new Primary(this.storage as FileStorage, listen, { logger: this.log, ...options });
      await p.listening;
      target = p;
    }
    this.writeTarget = target;
    this.log.warn(`PROMOTED: ${this.storage.getName()} is now a writable primary at ${toHex(this.storage.lastTransaction())}${listen ? ` listening on ${addressRepr(listen)}` : ''}`);
    this.signal();
  }

  /** the Primary serving other secondaries after promotion (or the relay's), if any */
  get primary(): Primary | null {
    if (this.writeTarget instanceof Primary) return this.writeTarget;
    if (this.storage instanceof Primary) return this.storage;
    return null;
  }

  /** §6.12 / §14 #43 */
  async close(): Promise<void> {
    if (this.state === 'closed' && this.closed && this.storageClosed) return;
    this.log.info(`Closing ${this.storage.getName()} ${this.addr === null ? 'None' : addressRepr(this.addr)}`);
    await this.stopReplication();
    this.storageClosed = true;
    if (this.writeTarget && this.writeTarget !== this.storage) await this.writeTarget.close();
    else await this.storage.close();
  }
  private storageClosed = false;
}

/** One connection's receive side: decode, queue, apply in order. */
class ApplyConnection {
  private readonly decoder = new SizedMessageDecoder(0xffffffff);
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private running: Promise<void> = Promise.resolve();
  private busy = false;
  private dead = false;
  private sum: RunningChecksum;
  private txn: TransactionMetaData | null = null;
  private txnTid: Tid = 0n;
  private pendingS: SMessage | null = null;
  private expectData = false;
  /** zrs2.1: the B record whose data message comes next */
  private pendingB: BMessage | null = null;
  /** zrs2.1: the blob file whose blocks are arriving (§6.10) */
  private incoming: { msg: BMessage; data: Buffer | null; blob: IncomingBlob } | null = null;
  /** native: blob files received ahead of their transaction frame */
  private nativeBlobs: NativeBlobReceiver | null = null;
  /** a welcome, a transaction, or anything arrived */
  progressed = false;
  /** the primary sends raw segments (its welcome said so) */
  rawMode = false;
  /** a raw segment was refused on this connection */
  rawFallback = false;
  private rawRx: RawReceiver | null = null;

  constructor(
    private readonly sec: Secondary,
    private readonly sock: net.Socket,
    readonly peer: string,
    readonly native: boolean,
    startTid: Tid,
    private readonly onAnything: () => void,
  ) {
    this.sum = new RunningChecksum(p64b(startTid));
    sock.on('data', (d: Buffer) => this.onData(d));
  }

  private onData(d: Buffer): void {
    if (this.dead) return;
    this.onAnything();
    let msgs: Buffer[];
    try {
      msgs = this.decoder.push(d);
    } catch (e) {
      return this.inputError(e);
    }
    for (const m of msgs) {
      this.queue.push(m);
      this.queued += m.length + 4;
    }
    if (this.queued > this.sec.queueLimit) this.sock.pause();
    if (!this.busy && this.queue.length) this.pump();
  }

  private pump(): void {
    this.busy = true;
    this.running = (async () => {
      try {
        for (let guard = 0; this.queue.length && !this.dead && guard < Number.MAX_SAFE_INTEGER; guard++) {
          const m = this.queue.shift()!;
          this.queued -= m.length + 4;
          if (this.native && isRawPayload(m)) {
            await this.handleRaw(m);
            continue;
          }
          if (this.queued <= this.sec.queueLimit / 2 && this.sock.isPaused()) this.sock.resume();
          await this.handle(m);
        }
      } catch (e) {
        this.inputError(e);
      } finally {
        this.busy = false;
      }
    })();
  }

  /** resolves when queued work has finished */
  async idle(): Promise<void> {
    await this.running;
  }

  private inputError(e: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.sec.lastError = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    this.sec.log.fatal({ err: e instanceof Error ? { type: e.name, message: e.message, stack: e.stack } : String(e) }, `${this.peer}: Input data error`);
    this.queue.length = 0;
    this.sock.destroy();
  }

  /** Connection lost: abort the open transaction (§14 #34). */
  async abort(): Promise<void> {
    this.dead = true;
    this.queue.length = 0;
    await this.running.catch(() => undefined);
    await this.flushRaw().catch((e) => this.sec.log.error({ err: String(e) }, `${this.peer}: cannot make the raw transactions durable`));
    const inc = this.incoming;
    this.incoming = null;
    await inc?.blob.discard();
    await this.nativeBlobs?.discard();
    const t = this.txn;
    this.txn = null;
    if (t) await this.sec.storage.tpc_abort(t).catch(() => undefined);
  }

  private async handle(m: Buffer): Promise<void> {
    if (this.native) return this.handleNative(m);
    if (this.incoming) return this.blobBlock(m);
    if (this.expectData) {
      this.expectData = false;
      const s = this.pendingS!;
      this.pendingS = null;
      if (!this.txn) throw new ProtocolError('data outside a transaction');
      const b = this.pendingB;
      this.pendingB = null;
      if (b && b.blocks > 0) {
        // §6.10: the blocks go to a temporary file in the storage's temporary directory
        this.incoming = { msg: b, data: m.length === 0 ? null : m, blob: await IncomingBlob.create(this.sec.blobStorage('restoreBlob').temporaryDirectory(), b.blocks) };
        this.sum.update(m);
        return;
      }
      await this.sec.storage.restore(s.oid, s.tid, m.length === 0 ? null : m, s.dataTxn, this.txn);
      this.sum.update(m);
      return;
    }
    const msg = decodeMessage(m);
    switch (msg.type) {
      case 'T': {
        if (this.txn) throw new ProtocolError('T while a transaction is open');
        const txn = new TransactionMetaData(msg.user, msg.description, extensionBytes(msg.extension));
        await this.sec.storage.tpc_begin(txn, msg.tid, msg.status);
        this.txn = txn;
        this.txnTid = msg.tid;
        break;
      }
      case 'S':
        if (!this.txn) throw new ProtocolError('S outside a transaction');
        this.pendingS = msg;
        this.expectData = true;
        break;
      case 'B':
        if (!this.txn) throw new ProtocolError('B outside a transaction');
        if (!this.sec.supportsBlobs()) throw new ProtocolError('blob records (B) from the primary, but this secondary has no blob directory');
        if (!Number.isSafeInteger(msg.blocks) || msg.blocks < 0) throw new ProtocolError(`B with ${msg.blocks} blocks`);
        this.pendingS = { type: 'S', oid: msg.oid, tid: msg.tid, version: msg.version, dataTxn: msg.dataTxn };
        this.pendingB = msg;
        this.expectData = true;
        break;
      case 'C': {
        if (!this.txn) throw new ProtocolError('C outside a transaction');
        if (this.sec.checkChecksums) {
          if (msg.checksum === null) throw new ProtocolError('missing checksum in C');
          const d = this.sum.digest();
          if (!d.equals(msg.checksum)) throw new ProtocolError(`checksum mismatch in transaction ${toHex(this.txnTid)}: got ${msg.checksum.toString('hex')}, computed ${d.toString('hex')}`);
        }
        const txn = this.txn;
        await this.sec.storage.tpc_vote(txn);
        this.txn = null;
        await this.sec.storage.tpc_finish(txn);
        this.progressed = true;
        this.sec.noteApplied();
        break;
      }
    }
    this.sum.update(m);
  }

  /** zrs2.1: one blob block; after the last, install the file with restoreBlob (§6.10, §14 #36) */
  private async blobBlock(m: Buffer): Promise<void> {
    const inc = this.incoming!;
    await inc.blob.write(m);
    this.sum.update(m);
    if (--inc.blob.remaining > 0) return;
    this.incoming = null;
    await inc.blob.close();
    const b = inc.msg;
    try {
      await this.sec.blobStorage('restoreBlob').restoreBlob(b.oid, b.tid, inc.data, inc.blob.path, b.dataTxn, this.txn!);
    } catch (e) {
      await inc.blob.discard();
      throw e;
    }
  }

  private async handleNative(m: Buffer): Promise<void> {
    if (isBlobFrame(m)) {
      // blob files arrive ahead of the transaction frame that holds their records (blobs.ts)
      if (!this.sec.supportsBlobs()) throw new ProtocolError('blob frames from the primary, but this secondary has no blob directory');
      if (!this.nativeBlobs) this.nativeBlobs = new NativeBlobReceiver(this.sec.blobStorage('restoreBlob'));
      await this.nativeBlobs.handle(decodeBlobFrame(m));
      return;
    }
    const f = decodeFrame(m);
    switch (f.kind) {
      case 'welcome':
        this.rawMode = !!f.raw;
        if (this.rawMode) this.sec.log.info(`${this.peer}: raw mode (our file is positionally identical to the primary's)`);
        this.progressed = true;
        this.sec.refused = null;
        this.sec.signal();
        return;
      case 'refuse':
        this.sec.refused = { code: f.code, reason: f.reason };
        this.sec.log.error(`${this.peer}: REFUSED by the primary (${f.code}): ${f.reason}; the local storage is left untouched`);
        this.sec.signal();
        this.dead = true;
        this.sock.destroy();
        return;
      case 'txn':
        await this.flushRaw();
        await this.applyNative(f.txn);
        this.sock.write(encodeSizedAck(f.txn.tid));
        this.progressed = true;
        this.sec.noteApplied();
        return;
      default:
        throw new ProtocolError(`unexpected ${f.kind} frame from the primary`);
    }
  }

  /**
   * Raw segments (raw.ts): `first` and every raw frame queued behind it are appended, then made
   * durable with one fdatasync (unless more keep arriving, up to a bound), then acknowledged
   * once. A refused segment: what came before it stays, the connection falls back.
   */
  private async handleRaw(first: Buffer): Promise<void> {
    if (!this.rawMode) throw new ProtocolError('raw segment from the primary without raw mode');
    const batch = [first];
    let bytes = first.length;
    for (let guard = 0; this.queue.length && isRawPayload(this.queue[0]!) && bytes < 64 << 20 && guard < 1_000_000; guard++) {
      const m = this.queue.shift()!;
      this.queued -= m.length + 4;
      bytes += m.length;
      batch.push(m);
    }
    if (this.queued <= this.sec.queueLimit / 2 && this.sock.isPaused()) this.sock.resume();
    if (!this.rawRx) this.rawRx = new RawReceiver(this.sec.storage as FileStorage, this.sec.log, (n, tid) => this.rawDurable(n, tid), this.sec.rawSyncDelayMs === undefined ? {} : { syncDelayMs: this.sec.rawSyncDelayMs });
    const refused = await this.rawRx.apply(batch);
    if (refused !== null) {
      await this.rawRx.flush(); // what came before the refused frame: durable and acknowledged
      this.rawFallback = true;
      this.sec.noteRawFallback();
      this.sec.lastError = `raw segment refused: ${refused}`;
      this.dead = true;
      this.queue.length = 0;
      this.sock.destroy();
    }
  }

  /** a group fdatasync completed (raw.ts): acknowledge its last tid once */
  private rawDurable(durable: number, ack: Tid): void {
    if (!this.sock.destroyed) this.sock.write(encodeSizedAck(ack));
    this.progressed = true;
    this.sec.noteApplied(durable); // one wake-up for the whole durable group
  }

  /** make raw transactions appended so far durable (before a record transaction, or at the end) */
  private async flushRaw(): Promise<void> {
    await this.rawRx?.flush();
  }

  private async applyNative(t: NativeTxn): Promise<void> {
    const s = this.sec.storage;
    const txn = new TransactionMetaData(t.user, t.description, t.extension);
    await s.tpc_begin(txn, t.tid, t.status);
    this.txn = txn;
    for (const r of t.records) {
      const blob = this.nativeBlobs?.take(r.oid, r.tid) ?? null;
      if (blob) await this.sec.blobStorage('restoreBlob').restoreBlob(r.oid, r.tid, r.data, blob, r.dataTxn, txn);
      else await s.restore(r.oid, r.tid, r.data, r.dataTxn, txn);
    }
    if (this.nativeBlobs?.pending) await this.nativeBlobs.discard();
    await s.tpc_vote(txn);
    this.txn = null;
    await s.tpc_finish(txn);
  }
}

/** MD5 of a local transaction in the native digest form (for the hello's divergence check). */
export function localTxnDigest(t: TransactionRecord): Buffer {
  const records: NativeRecord[] = t.records.map((r) => ({ oid: r.oid, tid: r.tid, data: r.data, dataTxn: r.data_txn }));
  return txnDigest({ tid: t.tid, status: t.status, user: t.user, description: t.description, extension: t.extension, records });
}

function p64b(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v, 0);
  return b;
}

export { StorageError };
