/**
 * The transport-independent ZEO 5 storage server: named storages, their commit locks, invalidation
 * queues and counters, and the sessions (one per client connection) registered to them.
 *
 * A transport (net.ts, or a test) creates one `ZEOSession` per connection with `server.newSession(channel)`
 * and feeds it every decoded message; the session answers through the channel.
 */
import pino, { type Logger } from 'pino';
import { toHex, TimeStamp, type IStorage, type Oid, type Tid } from '@zeo-ts/storage';
import { CommitLock } from './lock.ts';
import { StorageStats, statusMap, monitorReport, pythonJson } from './stats.ts';
import { ZEOSession, invalidationArgs, type ClientChannel } from './session.ts';

export interface StorageServerOptions {
  /** server-wide read-only mode (zeo5-protocol §12.1) */
  read_only?: boolean;
  /** transactions remembered per storage for getInvalidations (§11.3); default 100 */
  invalidation_queue_size?: number;
  /** seconds; verification by iteration for clients older than the queue (§11.3 step 2) */
  invalidation_age?: number | null;
  /** seconds a commit-lock holder may take before it is disconnected (§10.11) */
  transaction_timeout?: number | null;
  /** leave conflict resolution to clients (§10.6); default true for this server */
  client_conflict_resolution?: boolean;
  /** bound of each storage's commit-lock queue */
  max_waiting_voters?: number;
  /** bound of live iterators per connection */
  max_iterators?: number;
  /** bound of the object data one transaction may send before vote (default 2 GiB) */
  max_transaction_bytes?: number;
  /** bound of one blob upload (storeBlobChunk), default 1 TiB */
  max_blob_bytes?: number;
  /** calls of one connection awaiting their replies above which reading pauses (default 2000) */
  max_backlog?: number;
  /**
   * group commit (default true): with a storage that supports it (FileStorage), the commit lock
   * passes to the next voter as soon as tpc_finish has flagged the transaction committed, and one
   * fdatasync covers every transaction finished meanwhile. Replies to tpc_finish, invalidations
   * and loads still only see a transaction once it is durable, in tid order.
   */
  group_commit?: boolean;
  logger?: Logger;
  /** version string for the monitor report */
  version?: string;
}

/** One invalidation-queue entry: oids null is the startup sentinel (§11.3). */
export interface InvalidationEntry {
  tid: Tid;
  oids: Oid[] | null;
}

export class StorageEntry {
  readonly sessions = new Set<ZEOSession>();
  readonly stats: StorageStats;
  readonly lock: CommitLock;
  /** newest first */
  readonly invq: InvalidationEntry[] = [];
  /** commits of ours inside storage.tpc_finish (the external-commit listener ignores commits meanwhile) */
  ownCommits = 0;
  /** the in-flight tpc_finish calls (several with group commit); close waits for them */
  readonly finishing = new Set<Promise<unknown>>();
  /** storage.tpc_finish releases its commit lock before the fdatasync (group commit is on) */
  readonly pipelinedFinish: boolean;
  private readonly unsubscribe: () => void;

  constructor(
    readonly name: string,
    readonly storage: IStorage,
    readonly server: StorageServer,
  ) {
    this.stats = new StorageStats(server.startTime);
    this.lock = new CommitLock(name, server.log, server.options.transaction_timeout, server.options.max_waiting_voters);
    this.setupInvalidationQueue();
    const gc = storage as unknown as { enableGroupCommit?: () => void; pipelinedFinish?: boolean };
    if (server.options.group_commit && !storage.isReadOnly() && typeof gc.enableGroupCommit === 'function') gc.enableGroupCommit();
    this.pipelinedFinish = gc.pipelinedFinish === true;
    this.unsubscribe = storage.onCommit((tid, oids) => {
      if (this.ownCommits > 0) return;
      // A commit that did not come through this server (e.g. a replica being fed): tell everybody.
      this.recordInvalidation(tid, oids);
      const args = invalidationArgs(tid, oids);
      for (const s of this.sessions) s.sendInvalidationArgs(args);
    });
  }

  /**
   * Fill the queue at startup (§11.3): from the storage's recent history when it can tell
   * (`lastInvalidations(n)`, oldest first), else the sentinel (lastTransaction, none).
   */
  setupInvalidationQueue(): void {
    this.invq.length = 0;
    const s = this.storage as unknown as { lastInvalidations?: (n: number) => Array<[Tid, Oid[]]> };
    if (typeof s.lastInvalidations === 'function') {
      const list = s.lastInvalidations(this.server.options.invalidation_queue_size);
      for (const [tid, oids] of list) this.invq.unshift({ tid, oids });
    } else {
      this.invq.push({ tid: this.storage.lastTransaction(), oids: null });
    }
  }

  recordInvalidation(tid: Tid, oids: Oid[]): void {
    const bound = this.server.options.invalidation_queue_size;
    while (this.invq.length >= bound && this.invq.length > 0) this.invq.pop();
    if (bound > 0) this.invq.unshift({ tid, oids: [...oids] });
  }

  /** getInvalidations (§11.3): [latest tid, oids] or null. */
  async getInvalidations(tid: Tid): Promise<[Tid, Oid[]] | null> {
    const q = this.invq;
    if (q.length > 0 && q[q.length - 1]!.tid <= tid) {
      const oids = new Set<Oid>();
      for (const e of q) {
        if (e.tid <= tid) break;
        for (const o of e.oids ?? []) oids.add(o);
      }
      return [q[0]!.tid, [...oids]];
    }
    const age = this.server.options.invalidation_age;
    if (age && age > Date.now() / 1000 - new TimeStamp(tid).timeTime()) {
      const oids = new Set<Oid>();
      let latest: Tid | null = null;
      let n = 0;
      for await (const t of this.storage.iterator(tid + 1n)) {
        for (const r of t.records) oids.add(r.oid);
        latest = t.tid;
        if (++n > 10_000_000) throw new Error('getInvalidations: iteration bound exceeded');
      }
      return latest === null ? null : [latest, [...oids]];
    }
    if (q.length === 0) this.server.log.info('invq empty');
    else this.server.log.info(`tid to old for invq ${tid} < ${q[q.length - 1]!.tid}`);
    return null;
  }

  status(): Record<string, unknown> {
    return statusMap({
      stats: this.stats,
      lockTime: this.lock.lockTime,
      waiting: this.lock.waiting,
      timeoutConfigured: this.server.options.transaction_timeout !== null,
      lastTransactionHex: toHex(this.storage.lastTransaction()),
    });
  }

  sizeInfo(): Record<string, unknown> {
    return { length: this.storage.len(), size: this.storage.getSize() };
  }

  broadcastInfo(): void {
    const info = this.sizeInfo();
    for (const s of this.sessions) s.sendOneWay('info', [info]);
  }

  detach(): void {
    this.unsubscribe();
  }
}

type ResolvedOptions = Required<Omit<StorageServerOptions, 'logger' | 'invalidation_age' | 'transaction_timeout'>> & {
  invalidation_age: number | null;
  transaction_timeout: number | null;
};

export class StorageServer {
  readonly storages = new Map<string, StorageEntry>();
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly startTime = new Date();
  private readonly allSessions = new Set<ZEOSession>();
  private closed = false;

  constructor(storages: Map<string, IStorage> | Record<string, IStorage>, options: StorageServerOptions = {}) {
    this.options = {
      read_only: options.read_only ?? false,
      invalidation_queue_size: options.invalidation_queue_size ?? 100,
      invalidation_age: options.invalidation_age ?? null,
      transaction_timeout: options.transaction_timeout ?? null,
      client_conflict_resolution: options.client_conflict_resolution ?? true,
      max_waiting_voters: options.max_waiting_voters ?? 1000,
      max_iterators: options.max_iterators ?? 1000,
      max_transaction_bytes: options.max_transaction_bytes ?? 2 * 1024 ** 3,
      max_blob_bytes: options.max_blob_bytes ?? 1024 ** 4,
      max_backlog: options.max_backlog ?? 2000,
      group_commit: options.group_commit ?? true,
      version: options.version ?? '0.1.0',
    };
    if (!(this.options.invalidation_queue_size >= 0)) throw new RangeError('invalidation_queue_size must be >= 0');
    if (this.options.transaction_timeout !== null && !(this.options.transaction_timeout > 0)) {
      throw new RangeError(`transaction_timeout must be positive, got ${this.options.transaction_timeout}`);
    }
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ name: 'ZEO.StorageServer' });
    const entries = storages instanceof Map ? [...storages.entries()] : Object.entries(storages);
    if (entries.length === 0) throw new Error('StorageServer needs at least one storage');
    for (const [name, storage] of entries) this.storages.set(name, new StorageEntry(name, storage, this));
    const list = entries.map(([name, s]) => `${name}:${s.isReadOnly() ? 'RO' : 'RW'}:${s.getName()}`).join(', ');
    this.log.info(`StorageServer created ${this.options.read_only ? 'RO' : 'RW'} with storages: ${list}`);
  }

  /** A new session for a client connection; the transport calls `session.handle()` per message. */
  newSession(channel: ClientChannel): ZEOSession {
    if (this.closed) throw new Error('server is closed');
    const s = new ZEOSession(this, channel);
    this.allSessions.add(s);
    return s;
  }

  /** @internal called by a session when its connection ended */
  forget(s: ZEOSession): void {
    this.allSessions.delete(s);
  }

  get sessionCount(): number {
    return this.allSessions.size;
  }

  /**
   * The storage's whole state changed outside the server (e.g. a replica was reset): rebuild its
   * invalidation queue and close every connection of that storage, so that clients reconnect and
   * verify their caches (zeo5-protocol §11.1).
   */
  async invalidateCache(storageName: string): Promise<void> {
    const e = this.storages.get(storageName);
    if (!e) throw new Error(`unknown storage: ${storageName}`);
    e.setupInvalidationQueue();
    await Promise.all([...e.sessions].map((s) => s.closeConnection('storage state replaced; reconnect and verify')));
  }

  /** The `ruok` document (operations §6.2): storage name → status map. */
  ruok(): Record<string, Record<string, unknown>> {
    const out: Record<string, Record<string, unknown>> = {};
    for (const [name, e] of this.storages) out[name] = e.status();
    return out;
  }

  /** The `ruok` reply body as ASCII JSON text. */
  ruokJson(): string {
    return pythonJson(this.ruok());
  }

  /** The legacy text monitor report (operations §6.4). */
  monitorReport(now = new Date()): string {
    return monitorReport(
      this.options.version,
      now,
      [...this.storages.values()].map((e) => ({ name: e.name, stats: e.stats, lockTime: e.lock.lockTime })),
    );
  }

  /**
   * Orderly shutdown: let an in-flight tpc_finish complete, abort every other transaction, close
   * every connection, then close the storages (logging `closing storage '<name>'`).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.storages.values()) for (const f of [...e.finishing]) await f.catch(() => undefined);
    await Promise.all([...this.allSessions].map((s) => s.shutdown('server shutting down')));
    for (const [name, e] of this.storages) {
      e.detach();
      this.log.info(`closing storage '${name}'`);
      try {
        await e.storage.close();
      } catch (err) {
        this.log.error({ err }, `error closing storage '${name}'`);
      }
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

