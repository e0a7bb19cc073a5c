/**
 * ClientStorage: an IStorage that talks ZEO 5 to one or several servers (zeo5-protocol §4–§12)
 * and keeps the persistent client cache (client-cache §7–§8).
 *
 * Connection management: every configured address has its own connect loop. The first connection
 * whose `register` succeeds with the wanted access mode becomes the active one (after cache
 * verification); the others are closed. With read-only fallback a read-only registration is
 * accepted while no writable server answers, and the loops keep polling for a writable one.
 * Lost connections are retried at once, then with a doubling delay between `minDisconnectPoll`
 * and `maxDisconnectPoll` (plus jitter); registration/verification failures wait at least
 * `registrationRetry` seconds.
 */
import net from 'node:net';
import tls from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { basename } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  ClientDisconnected,
  ConflictError,
  POSKeyError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  TransactionMetaData,
  Unsupported,
  maxtid,
  p64,
  u64,
  z64,
  type CommitListener,
  type HistoryEntry,
  type IStorage,
  type IBlobStorage,
  type LoadBeforeResult,
  type LoadResult,
  type Oid,
  type Tid,
  type TransactionRecord,
  type DataRecord,
  type UndoFilter,
  type UndoLogEntry,
} from '@zeo-ts/storage';
import {
  PyFloat,
  RpcConnection,
  asBuffer,
  isBytes,
  isWireMap,
  pyList,
  type EncodingLetter,
  type WireMap,
  type WireValue,
} from '@zeo-ts/wire';
import { ClientCache } from '@zeo-ts/client-cache';
import { decodeExtension, encodeExtension } from '@zeo-ts/pickle';
import { clientCodecs } from './z5-client.ts';
import { BlobCache, UPLOAD_CHUNK_SIZE } from './blob-cache.ts';
import { addressListRepr, addressRepr, normalizeAddresses, type AddressLike, type ServerAddress } from './address.ts';

/** TLS settings of a client (zeo5-protocol §14.2, operations §4.5). Paths or PEM contents. */
export interface ClientTlsOptions {
  /** client certificate chain (PEM file path or contents) */
  certificate?: string | Buffer;
  /** private key (PEM file path or contents), if not in `certificate` */
  key?: string | Buffer;
  passphrase?: string;
  /** trust anchors for the server certificate (PEM file path or contents); absent: system CAs */
  authenticate?: string | Buffer;
  /** verify the server's host name (default true) */
  checkHostname?: boolean;
  /** name for SNI and the host-name check (default: the address's host) */
  serverHostname?: string;
}

/** What a conflict resolver gets (client-conflict-resolution, zeo5-protocol §10.6). */
export interface ConflictInfoForResolver {
  oid: Oid;
  /** the serial currently committed */
  committedSerial: Tid;
  /** the serial this transaction started from */
  oldSerial: Tid;
  /** the state at oldSerial (null for a new object: z64) */
  oldData: Buffer | null;
  /** the state at committedSerial */
  committedData: Buffer;
  /** the state this transaction tried to store */
  newData: Buffer;
}

/** Returns the resolved state, or null when the conflict cannot be resolved. */
export type ConflictResolver = (c: ConflictInfoForResolver) => Buffer | null | Promise<Buffer | null>;

export interface ClientStorageOptions {
  /** server address(es): port number (127.0.0.1), Unix socket path, {host, port} or {path} */
  addresses: AddressLike | AddressLike[];
  /** storage name to register (default '1') */
  storage?: string;
  /** display name (default: the address list as Python prints it) */
  name?: string;
  /** persistent cache file, or null/undefined for a temporary cache */
  cachePath?: string | null;
  /** cache size in bytes (default 20 MiB) */
  cacheSize?: number;
  /** an already open cache (overrides cachePath/cacheSize); closed by close() */
  cache?: ClientCache;
  readOnly?: boolean;
  readOnlyFallback?: boolean;
  /** ClientStorage.open waits for the first connection (default true) */
  wait?: boolean;
  /** seconds a synchronous call (or open with wait) waits for a connection (default 30) */
  waitTimeout?: number;
  /** first reconnect delay in seconds (default 1) */
  minDisconnectPoll?: number;
  /** largest reconnect delay in seconds (default 30) */
  maxDisconnectPoll?: number;
  /** delay after a failed registration/verification in seconds (default 9, at least minDisconnectPoll) */
  registrationRetry?: number;
  /** label sent with set_client_label */
  clientLabel?: string | null;
  /** ping the server at every tpc_begin (zeo5-protocol §11.5) */
  serverSync?: boolean;
  /** TLS (absent: plain TCP/Unix) */
  tls?: ClientTlsOptions | null;
  /**
   * Encoding: 'auto' (default) mirrors the server's announcement as Python does; 'M' answers M5
   * even to a Z5 announcement (the server accepts the client's letter, §4.3); 'Z' speaks only Z5.
   */
  encoding?: 'auto' | EncodingLetter;
  /** application conflict resolution for servers in client-conflict-resolution mode */
  conflictResolver?: ConflictResolver;
  /** seconds allowed for connecting and for the handshake + register answer (default 30) */
  connectTimeout?: number;
  /** heartbeat period in ms (default 60000) */
  heartbeatInterval?: number;
  /** bound on invalidations queued during verification (default 100000) */
  maxQueuedInvalidations?: number;
  /** blob directory: the blob cache ('zeocache' layout), or the server's blob directory when sharedBlobDir */
  blobDir?: string | null;
  /** blobDir is the server's own blob directory (shared file system): blobs never travel */
  sharedBlobDir?: boolean;
  /** blob cache limit in bytes (null: unbounded; ignored with sharedBlobDir) */
  blobCacheSize?: number | null;
  /** percent of blobCacheSize downloaded between two size checks (below 100, default 10) */
  blobCacheSizeCheck?: number;
  logger?: Logger;
}

interface ServerConn {
  address: ServerAddress;
  conn: RpcConnection;
  readOnly: boolean;
  phase: 'registering' | 'verifying' | 'active' | 'closed';
  queued: Array<[Tid, Oid[]]>;
  overflow: boolean;
  /** onReply of this connection's loadBefore calls (one function per connection, not per call) */
  onLoadReply: (result: WireValue, msgid: WireValue) => void;
}

interface TxnState {
  txn: TransactionMetaData;
  txnid: number;
  sc: ServerConn;
  phase: 'begun' | 'voted';
  /** data written per oid (null: do not cache, e.g. deletions, restores, undo) */
  writes: Map<Oid, Buffer | null>;
  /** oids the server changed itself (vote result): never cached from our data */
  serverChanged: Set<Oid>;
  /** uploaded blob files (in the blob directory) to keep in the blob cache after tpc_finish */
  blobs: Array<{ oid: Oid; file: string }>;
  /** blob uploads of this transaction, one after the other (one upload at a time per connection) */
  uploading: Promise<void>;
  /** the first failed blob upload: the transaction cannot be voted (its record would lack the blob) */
  uploadFailed: Error | null;
}

/** Why a verification refused a server (cache newer than server). */
class VerifyError extends StorageError {
  override name = 'VerifyError';
}

/** Where a plain socket's received bytes go (see ClientStorage.plainSocket). */
interface SocketReader {
  conn: RpcConnection | null;
  early: Buffer[];
  earlyBytes: number;
}

/** The read buffer of a plain socket (one per connection; received bytes are copied out of it). */
const READ_BUFFER_BYTES = 64 * 1024;
/** Bytes a server may send before the client's connection object exists (the announcement is 6). */
const MAX_EARLY_BYTES = 1024 * 1024;

/** p64(maxtid): the tid argument of loads of current data (never written to) */
const MAXTID_BYTES = p64(maxtid);
/** swallows a prefetch error (the caller's later load reports it) */
const ignore = (): undefined => undefined;

const MAX_VOTE_ROUNDS = 9;
const MAX_WAITERS = 100000;
const UNDO_FETCH_LIMIT = 100000;
const KNOWN_HISTORY_KEYS = new Set(['tid', 'time', 'user_name', 'description', 'size', 'serial', 'version', 'extension']);
const KNOWN_UNDO_KEYS = new Set(['id', 'time', 'user_name', 'description', 'size', 'extension']);

let defaultLogger: Logger | undefined;
function getDefaultLogger(): Logger {
  defaultLogger ??= pino({ name: 'ZEO.ClientStorage', level: process.env['ZEO_TS_LOG_LEVEL'] ?? 'info' }, pino.destination({ dest: 2, sync: true }));
  return defaultLogger;
}

function pem(v: string | Buffer | undefined): string | Buffer | undefined {
  if (v === undefined) return undefined;
  if (Buffer.isBuffer(v)) return v;
  return v.includes('-----BEGIN') ? v : readFileSync(v);
}

function bytes(v: WireValue | undefined, what: string): Buffer {
  if (!isBytes(v)) throw new StorageError(`server sent a non-bytes ${what}: ${typeof v}`);
  return asBuffer(v);
}

function tidOf(v: WireValue | undefined, what: string): Tid {
  const b = bytes(v, what);
  if (b.length !== 8) throw new StorageError(`server sent a ${what} of ${b.length} bytes (expected 8)`);
  return u64(b);
}

function num(v: WireValue | undefined): number {
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return 0;
}

function toBuf(v: WireValue | undefined): Buffer {
  if (isBytes(v)) return asBuffer(v);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return Buffer.alloc(0);
}

/** Rebuild an extension pickle from the keys of a description map that are not standard. */
function extensionFrom(m: WireMap, known: Set<string>): Buffer {
  const e = m['extension'];
  if (isBytes(e)) return asBuffer(e);
  const ext: Record<string, unknown> = {};
  let n = 0;
  if (isWireMap(e)) for (const [k, v] of Object.entries(e)) ext[k] = unwire(v), n++;
  for (const [k, v] of Object.entries(m)) {
    if (known.has(k)) continue;
    ext[k] = unwire(v);
    n++;
  }
  if (!n) return Buffer.alloc(0);
  try {
    return encodeExtension(ext);
  } catch {
    return Buffer.alloc(0);
  }
}

/** Wire values to pickle values (floats differ in class; everything else is shared). */
function unwire(v: WireValue): unknown {
  if (v instanceof PyFloat) return v.value;
  if (Array.isArray(v)) return v.map((x) => unwire(x as WireValue));
  if (isWireMap(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = unwire(x);
    return o;
  }
  return v;
}

/** Pickle values (decoded extension) to wire values. */
function towire(v: unknown): WireValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'object' && v !== null && 'value' in v && typeof (v as { value: unknown }).value === 'number' && v.constructor?.name === 'PyFloat') {
    return new PyFloat((v as { value: number }).value);
  }
  if (Array.isArray(v)) return v.map(towire);
  if (v instanceof Map) {
    const o: WireMap = {};
    for (const [k, x] of v) o[String(k)] = towire(x);
    return o;
  }
  if (typeof v === 'object') {
    const o: WireMap = {};
    for (const [k, x] of Object.entries(v as object)) o[k] = towire(x);
    return o;
  }
  return String(v);
}

/** An undo id of FileStorage/MappingStorage: base64 of the tid. */
function tidFromUndoId(id: Buffer): Tid | null {
  const raw = Buffer.from(id.toString('latin1'), 'base64');
  return raw.length === 8 ? u64(raw) : null;
}

export class ClientStorage implements IBlobStorage {
  readonly addresses: ServerAddress[];
  readonly storageName: string;
  readonly log: Logger;
  readonly cache: ClientCache;
  /** the blob directory (cache or shared), when configured */
  readonly blobs: BlobCache | null;
  private readonly opts: Required<Pick<ClientStorageOptions, 'readOnly' | 'readOnlyFallback' | 'waitTimeout' | 'minDisconnectPoll' | 'maxDisconnectPoll' | 'registrationRetry' | 'serverSync' | 'maxQueuedInvalidations' | 'connectTimeout'>> & ClientStorageOptions;
  private readonly displayName: string;
  private active: ServerConn | null = null;
  private everConnected = false;
  private closing = false;
  private readonly conns = new Set<ServerConn>();
  private changeWaiters: Array<() => void> = [];
  private connectWaiters: Array<() => void> = [];
  private verifyChain: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<CommitListener>();
  private readonly cacheResetListeners = new Set<() => void>();
  private readonly connectionListeners = new Set<(connected: boolean) => void>();
  private info: Record<string, WireValue> = { length: 0, size: 0, name: 'ZEO Client', supportsUndo: 0, interfaces: [] };
  private oidPool: Oid[] = [];
  private oidRequest: Promise<void> | null = null;
  private current: TxnState | null = null;
  private lockHeld = false;
  private lockWaiters: Array<() => void> = [];
  private txnCounter = 0;
  private readonly loops: Promise<void>[] = [];
  /** sockets still connecting (destroyed by close) */
  private readonly connecting = new Set<net.Socket>();

  private constructor(options: ClientStorageOptions, cache: ClientCache) {
    this.addresses = normalizeAddresses(options.addresses);
    this.storageName = options.storage ?? '1';
    this.log = (options.logger ?? getDefaultLogger()).child({ storage: this.storageName });
    this.cache = cache;
    this.opts = {
      ...options,
      readOnly: options.readOnlyFallback ? false : options.readOnly ?? false,
      readOnlyFallback: options.readOnlyFallback ?? false,
      waitTimeout: options.waitTimeout ?? 30,
      minDisconnectPoll: options.minDisconnectPoll ?? 1,
      maxDisconnectPoll: options.maxDisconnectPoll ?? 30,
      registrationRetry: options.registrationRetry ?? 9,
      serverSync: options.serverSync ?? false,
      maxQueuedInvalidations: options.maxQueuedInvalidations ?? 100000,
      connectTimeout: options.connectTimeout ?? 30,
    };
    if (!(this.opts.minDisconnectPoll > 0) || this.opts.maxDisconnectPoll < this.opts.minDisconnectPoll) {
      throw new RangeError(`invalid disconnect poll range ${this.opts.minDisconnectPoll}..${this.opts.maxDisconnectPoll}`);
    }
    this.displayName = options.name || addressListRepr(this.addresses);
    this.blobs = options.blobDir
      ? new BlobCache({
          dir: options.blobDir,
          shared: options.sharedBlobDir ?? false,
          cacheSize: options.blobCacheSize ?? null,
          cacheSizeCheck: options.blobCacheSizeCheck ?? 10,
          logger: this.log.child({ name: 'ZEO.ClientStorage.blobs' }),
        })
      : null;
    // as the reference: a size check when the client starts
    if (this.blobs?.cacheSize != null) void this.blobs.checkSize();
  }

  /**
   * Open a client: open the cache, start connecting to every address and (unless `wait` is
   * false) wait up to `waitTimeout` seconds for a verified connection; ClientDisconnected after.
   */
  static async open(options: ClientStorageOptions): Promise<ClientStorage> {
    const cache = options.cache ?? (await ClientCache.open(options.cachePath ?? null, { size: options.cacheSize ?? 20 * 1024 * 1024, logger: (options.logger ?? getDefaultLogger()).child({ name: 'ZEO.cache' }) }));
    let s: ClientStorage;
    try {
      s = new ClientStorage(options, cache);
    } catch (e) {
      // bad options, or an unusable blob directory: do not leave the cache open
      if (!options.cache) await cache.close();
      throw e;
    }
    s.start();
    if (options.wait ?? true) {
      try {
        await s.waitConnected(s.opts.waitTimeout);
      } catch (e) {
        await s.close();
        throw e;
      }
    }
    return s;
  }

  // ------------------------------------------------------------------ connection management

  /** Is a verified connection in use? */
  isConnected(): boolean {
    return this.active !== null;
  }

  /** The address of the active connection, if any. */
  connectedAddress(): ServerAddress | null {
    return this.active?.address ?? null;
  }

  /** The encoding letter of the active connection. */
  protocol(): EncodingLetter | null {
    return this.active?.conn.letter ?? null;
  }

  /** Wait until connected; ClientDisconnected after `timeoutSeconds`. */
  async waitConnected(timeoutSeconds = this.opts.waitTimeout): Promise<void> {
    await this.activeConn(timeoutSeconds, true);
  }

  /** Listen for connection state changes (true: connected and verified). Returns an unsubscribe function. */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  /**
   * Listen for "drop every in-memory object cache" (ZODB invalidateCache): at every connection
   * and when a stale cache was dropped (client-cache §8). Returns an unsubscribe function.
   */
  onInvalidateCache(listener: () => void): () => void {
    this.cacheResetListeners.add(listener);
    return () => this.cacheResetListeners.delete(listener);
  }

  /** The info mapping (get_info merged with info messages, §13). */
  getInfo(): Record<string, WireValue> {
    return { ...this.info };
  }

  private start(): void {
    for (const a of this.addresses) this.loops.push(this.addressLoop(a));
  }

  private changed(): void {
    const w = this.changeWaiters;
    this.changeWaiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next state change, or after `ms` (a retry delay, not synchronisation). */
  private waitChange(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      if (this.changeWaiters.length >= MAX_WAITERS) throw new StorageError('too many waiters for a connection change');
      this.changeWaiters.push(done);
      if (ms !== undefined) timer = setTimeout(done, ms);
    });
  }

  private jitter(seconds: number): number {
    return Math.round(seconds * 1000 * (1 + Math.random() * 0.25));
  }

  private async addressLoop(address: ServerAddress): Promise<void> {
    let delay = this.opts.minDisconnectPoll;
    // bounded by close(): every iteration either waits for a change/delay or makes one attempt
    while (!this.closing) {
      const a = this.active;
      if (a) {
        if (a.address === address) {
          await a.conn.closed;
          delay = this.opts.minDisconnectPoll;
          continue; // reconnect at once after losing an established connection (§12.4)
        }
        if (!(a.readOnly && this.opts.readOnlyFallback)) {
          await this.waitChange();
          continue;
        }
      }
      const outcome = await this.attempt(address);
      if (this.closing) break;
      if (outcome === 'ok') {
        delay = this.opts.minDisconnectPoll;
        continue;
      }
      const wait = outcome === 'register-failed' ? Math.max(delay, this.opts.registrationRetry) : delay;
      await this.waitChange(this.jitter(wait));
      if (outcome !== 'not-needed') delay = Math.min(delay * 2, this.opts.maxDisconnectPoll);
    }
  }

  /**
   * A plain (non-TLS) socket that reads into one buffer and hands copies of the received bytes to
   * `reader.conn` (RpcConnection.feed), bypassing the stream machinery of 'data' events; bytes
   * that arrive before the connection object exists are kept for it (bounded by maxEarlyBytes).
   */
  private plainSocket(address: ServerAddress, reader: SocketReader): net.Socket {
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (n: number, buf: Uint8Array): boolean => {
        const chunk = Buffer.allocUnsafe(n);
        chunk.set(buf.subarray(0, n));
        const conn = reader.conn;
        if (conn) conn.feed(chunk);
        else {
          reader.early.push(chunk);
          reader.earlyBytes += n;
          if (reader.earlyBytes > MAX_EARLY_BYTES) sock.destroy(new ClientDisconnected(`${addressRepr(address)} sent ${reader.earlyBytes} bytes before the handshake`));
        }
        return true;
      },
    };
    const sock = 'path' in address ? net.connect({ path: address.path, onread }) : net.connect({ port: address.port, host: address.host, onread });
    return sock;
  }

  private connectSocket(address: ServerAddress, reader: SocketReader): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const t = this.opts.tls;
      let sock: net.Socket;
      const onError = (e: Error) => {
        sock.destroy();
        reject(e);
      };
      if (t) {
        const host = 'path' in address ? undefined : address.host;
        const servername = t.serverHostname ?? (host && !net.isIP(host) ? host : undefined);
        const base: tls.ConnectionOptions = {
          cert: pem(t.certificate),
          key: pem(t.key),
          passphrase: t.passphrase,
          ca: pem(t.authenticate),
          servername,
          rejectUnauthorized: true,
          checkServerIdentity: (hostname, cert) => {
            if (t.checkHostname === false) return undefined;
            return tls.checkServerIdentity(t.serverHostname ?? hostname, cert);
          },
        };
        sock = 'path' in address ? tls.connect({ ...base, path: address.path }) : tls.connect({ ...base, host: address.host, port: address.port });
        sock.once('secureConnect', () => {
          sock.off('error', onError);
          resolve(sock);
        });
      } else {
        sock = this.plainSocket(address, reader);
        sock.once('connect', () => {
          sock.off('error', onError);
          resolve(sock);
        });
      }
      sock.once('error', onError);
      this.connecting.add(sock);
      sock.once('close', () => {
        this.connecting.delete(sock);
        reject(new ClientDisconnected(`connection to ${addressRepr(address)} closed while connecting`)); // no-op once connected
      });
      sock.setTimeout(this.opts.connectTimeout * 1000, () => onError(new ClientDisconnected(`connect to ${addressRepr(address)} timed out`)));
    });
  }

  /** One connection attempt to `address`. */
  private async attempt(address: ServerAddress): Promise<'ok' | 'connect-failed' | 'register-failed' | 'not-needed'> {
    let sock: net.Socket;
    const reader: SocketReader = { conn: null, early: [], earlyBytes: 0 };
    try {
      sock = await this.connectSocket(address, reader);
    } catch (e) {
      this.log.debug({ address: addressRepr(address), err: (e as Error).message }, 'connection failed');
      return 'connect-failed';
    }
    sock.setTimeout(0);
    this.connecting.delete(sock);
    sock.setNoDelay(true);
    if (this.closing) {
      sock.destroy();
      return 'not-needed';
    }
    const enc = this.opts.encoding ?? 'auto';
    const sc: ServerConn = {
      address,
      conn: undefined as unknown as RpcConnection,
      readOnly: false,
      phase: 'registering',
      queued: [],
      overflow: false,
      onLoadReply: (res, msgid) => this.cacheLoaded(sc, res, msgid),
    };
    sc.conn = new RpcConnection(sock, {
      role: 'client',
      encodings: enc === 'auto' ? ['M', 'Z'] : [enc],
      codecs: clientCodecs,
      heartbeatInterval: this.opts.heartbeatInterval,
      logger: this.log,
      label: addressRepr(address),
      handler: (method, args) => this.serverCall(sc, method, args),
    });
    // plain sockets deliver their bytes through reader (see plainSocket); TLS ones as 'data' events
    reader.conn = sc.conn;
    for (const chunk of reader.early.splice(0)) sc.conn.feed(chunk);
    this.conns.add(sc);
    sc.conn.on('close', () => this.connClosed(sc));
    // a server that never announces or answers register (e.g. TLS vs plain): give up on it
    const stall = setTimeout(() => {
      if (sc.phase === 'registering') sc.conn.abort(new ClientDisconnected(`no ZEO handshake/register answer from ${addressRepr(address)} within ${this.opts.connectTimeout} s`));
    }, this.opts.connectTimeout * 1000);
    try {
      await sc.conn.ready;
      let last: WireValue;
      const wantRO = this.opts.readOnly;
      try {
        last = await sc.conn.call('register', [this.storageName, wantRO]);
        sc.readOnly = wantRO;
      } catch (e) {
        if (!(e instanceof ReadOnlyError) || !this.opts.readOnlyFallback) throw e;
        // read-only fallback (§12.2): register again on the same connection
        last = await sc.conn.call('register', [this.storageName, true]);
        sc.readOnly = true;
      }
      // serialise verifications (§12.3): one connection at a time decides and verifies
      clearTimeout(stall);
      const run = this.verifyChain.then(() => this.adopt(sc, last));
      this.verifyChain = run.then(() => undefined, () => undefined);
      return await run;
    } catch (e) {
      clearTimeout(stall);
      if (this.closing) {
        sc.conn.close();
        return 'not-needed';
      }
      const err = e as Error;
      if (err instanceof ClientDisconnected && !(err instanceof VerifyError)) {
        this.log.info({ address: addressRepr(address), err: err.message }, 'connection lost during registration');
        sc.conn.close();
        return 'connect-failed';
      }
      if (err instanceof VerifyError) this.log.fatal({ address: addressRepr(address) }, err.message);
      else this.log.error({ address: addressRepr(address), err: `${err.name}: ${err.message}` }, 'registration failed');
      sc.conn.close();
      return 'register-failed';
    }
  }

  /** Decide whether a registered connection becomes the active one; verify the cache if so. */
  private async adopt(sc: ServerConn, registerResult: WireValue): Promise<'ok' | 'not-needed'> {
    if (this.closing || sc.phase === 'closed') {
      sc.conn.close();
      return 'not-needed';
    }
    const cur = this.active;
    if (cur && (!cur.readOnly || sc.readOnly)) {
      sc.conn.close();
      return 'not-needed';
    }
    sc.phase = 'verifying';
    await this.verify(sc, registerResult);
    if (sc.phase !== 'verifying') throw new ClientDisconnected(`connection to ${addressRepr(sc.address)} closed during verification`);
    const old = this.active;
    if (old) {
      this.log.info({ from: addressRepr(old.address), to: addressRepr(sc.address) }, 'switching to a writable server');
      this.active = null;
      old.phase = 'closed';
      old.conn.close();
    }
    // make it active and apply the invalidations queued since register (§11.4 step 8), all at once
    sc.phase = 'active';
    this.active = sc;
    const verifiedTid = this.cache.getLastTid();
    for (const [tid, oids] of sc.queued.splice(0)) if (tid > verifiedTid) this.applyInvalidation(tid, oids);
    if (this.opts.clientLabel) sc.conn.callOneWay('set_client_label', [this.opts.clientLabel]);
    this.everConnected = true;
    this.log.info({ address: addressRepr(sc.address), readOnly: sc.readOnly, protocol: `${sc.conn.letter}5` }, `Connected to storage ${this.storageName}`);
    for (const l of this.cacheResetListeners) this.safe(() => l());
    for (const l of this.connectionListeners) this.safe(() => l(true));
    const w = this.connectWaiters;
    this.connectWaiters = [];
    for (const f of w) f();
    this.changed();
    return 'ok';
  }

  /** Cache verification, client-cache §8 / zeo5-protocol §11.4 steps 1–7 and get_info (step 9). */
  private async verify(sc: ServerConn, registerResult: WireValue): Promise<void> {
    const serverTid0 = registerResult === null || registerResult === undefined
      ? tidOf(await sc.conn.call('lastTransaction', []), 'lastTransaction')
      : tidOf(registerResult, 'register result');
    let serverTid = serverTid0;
    const cache = this.cache;
    const cacheTid = cache.getLastTid();
    if (cache.len === 0) {
      // empty cache: nothing to verify
    } else if (cacheTid === z64) {
      this.log.error('Non-empty cache w/o tid -- clearing');
      cache.clear();
      this.resetCaches();
    } else if (cacheTid > serverTid) {
      throw new VerifyError(
        `Client has seen newer transactions than server! The client cache (last tid ${cacheTid.toString(16).padStart(16, '0')}) is out of sync with ` +
          `${addressRepr(sc.address)} (last tid ${serverTid.toString(16).padStart(16, '0')}); check the server and remove the cache file${cache.path ? ` ${cache.path}` : ''}`,
      );
    } else if (cacheTid < serverTid) {
      const r = await sc.conn.call('getInvalidations', [p64(cacheTid)]);
      if (r === null || r === undefined) {
        this.log.fatal(`${this.displayName} dropping stale cache`);
        cache.clear();
        this.resetCaches();
      } else {
        const pair = r as WireValue[];
        const tid = tidOf(pair[0], 'getInvalidations tid');
        const oids = (pair[1] as WireValue[]).map((o) => tidOf(o, 'oid'));
        for (const oid of oids) cache.invalidate(oid, null);
        this.notify(tid, oids);
        serverTid = tid;
      }
    }
    if (serverTid < cache.getLastTid() && cache.len > 0) {
      // a quick verification answered with an older tid than the cache's: start over empty
      cache.clear();
    }
    cache.setLastTid(serverTid);
    if (sc.overflow) throw new ClientDisconnected('too many invalidations queued during verification');
    const info = await sc.conn.call('get_info', []);
    if (isWireMap(info)) this.info = { ...this.info, ...info };
  }

  private resetCaches(): void {
    for (const l of this.cacheResetListeners) this.safe(() => l());
  }

  private safe(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'listener failed');
    }
  }

  private connClosed(sc: ServerConn): void {
    this.conns.delete(sc);
    const wasActive = this.active === sc;
    sc.phase = 'closed';
    if (wasActive) {
      this.active = null;
      this.oidPool = [];
      if (!this.closing) {
        this.log.warn({ address: addressRepr(sc.address), reason: sc.conn.closeReason?.message }, `Disconnected from storage ${this.storageName}`);
      }
      for (const l of this.connectionListeners) this.safe(() => l(false));
    }
    this.changed();
  }

  /** Server → client one-way calls (§9). */
  private serverCall(sc: ServerConn, method: string, args: WireValue[]): undefined {
    switch (method) {
      case 'invalidateTransaction': {
        const tid = tidOf(args[0], 'invalidation tid');
        const oids = ((args[1] ?? []) as WireValue[]).map((o) => tidOf(o, 'oid'));
        if (sc.phase === 'active') this.applyInvalidation(tid, oids);
        else if (sc.phase !== 'closed') {
          if (sc.queued.length >= this.opts.maxQueuedInvalidations) sc.overflow = true;
          else sc.queued.push([tid, oids]);
        }
        return undefined;
      }
      case 'info':
        if (isWireMap(args[0]) && (sc.phase === 'active' || sc.phase === 'verifying')) this.info = { ...this.info, ...args[0] };
        return undefined;
      case 'receiveBlobStart':
      case 'receiveBlobChunk':
      case 'receiveBlobStop': {
        const b = this.blobs;
        if (!b || b.shared) {
          this.log.warn({ method }, 'blob download without a blob cache directory: ignored');
          return undefined;
        }
        const oid = tidOf(args[0], 'blob oid');
        const serial = tidOf(args[1], 'blob serial');
        if (method === 'receiveBlobStart') b.receiveStart(oid, serial);
        else if (method === 'receiveBlobChunk') b.receiveChunk(oid, serial, bytes(args[2], 'blob chunk'));
        else b.receiveStop(oid, serial);
        return undefined;
      }
      default:
        this.log.error({ method }, 'unknown server call ignored');
        return undefined;
    }
  }

  /** invalidateTransaction: invalidate in the cache, advance the last tid, notify (C-11). */
  private applyInvalidation(tid: Tid, oids: Oid[]): void {
    for (const oid of oids) {
      try {
        this.cache.invalidate(oid, tid);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'cache invalidation failed');
      }
    }
    if (tid > this.cache.getLastTid()) this.cache.setLastTid(tid);
    else this.log.warn({ tid: tid.toString(16) }, 'invalidation not newer than the last tid');
    this.notify(tid, oids);
  }

  private notify(tid: Tid, oids: Oid[]): void {
    for (const l of [...this.listeners]) this.safe(() => l(tid, oids));
  }

  /** The active connection, waiting up to `timeoutSeconds` for one. */
  private activeConn(timeoutSeconds = this.opts.waitTimeout, explicitWait = false): Promise<ServerConn> {
    if (this.active) return Promise.resolve(this.active);
    if (this.closing) return Promise.reject(new ClientDisconnected(`${this.displayName} is closed`));
    if (!(timeoutSeconds > 0) || (!explicitWait && !this.everConnected && this.opts.wait === false)) {
      return Promise.reject(new ClientDisconnected(this.everConnected ? `${this.displayName} disconnected` : `${this.displayName} never connected`));
    }
    if (this.connectWaiters.length >= MAX_WAITERS) return Promise.reject(new ClientDisconnected('too many callers waiting for a connection'));
    return new Promise<ServerConn>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        if (this.active) resolve(this.active);
        else reject(new ClientDisconnected(`${this.displayName} is closed`));
      };
      const timer = setTimeout(() => {
        const i = this.connectWaiters.indexOf(done);
        if (i >= 0) this.connectWaiters.splice(i, 1);
        reject(new ClientDisconnected(`${this.displayName}: no connection to a server within ${timeoutSeconds} s`));
      }, timeoutSeconds * 1000);
      this.connectWaiters.push(done);
    });
  }

  private async call(method: string, args: WireValue[]): Promise<WireValue> {
    const sc = await this.activeConn();
    return sc.conn.call(method, args);
  }

  // ------------------------------------------------------------------ IStorage: facts

  getName(): string {
    return `${this.displayName} (${this.active ? 'connected' : 'disconnected'})`;
  }

  sortKey(): string {
    return this.displayName;
  }

  getSize(): number {
    return num(this.info['size']);
  }

  len(): number {
    return num(this.info['length']);
  }

  isReadOnly(): boolean {
    if (this.opts.readOnly) return true;
    return this.active ? this.active.readOnly : false;
  }

  supportsUndo(): boolean {
    const v = this.info['supportsUndo'];
    return v === true || (typeof v === 'number' && v !== 0);
  }

  /** The cache's last tid (client-cache §7, C-29). */
  lastTransaction(): Tid {
    return this.cache.getLastTid();
  }

  // ------------------------------------------------------------------ reading

  load(oid: Oid): Promise<LoadResult> {
    // a cache hit answers without touching the network or an async frame (client-cache §7)
    const hit = this.cache.load(oid);
    if (hit) return Promise.resolve(hit);
    return this.loadMiss(oid);
  }

  /** A cache miss: one loadBefore round trip (one async frame, no closure per call). */
  private async loadMiss(oid: Oid): Promise<LoadResult> {
    const sc = this.active ?? (await this.activeConn());
    const key = [p64(oid), MAXTID_BYTES];
    const r = await sc.conn.call('loadBefore', key, { msgid: key, onReply: sc.onLoadReply });
    if (r === null) throw new POSKeyError(oid);
    const a = r as WireValue[];
    return { data: bytes(a[0], 'data'), tid: tidOf(a[1], 'start') };
  }

  async loadBefore(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null> {
    const hit = this.cache.loadBefore(oid, tid);
    if (hit) return { data: hit.data, start: hit.start, end: hit.end };
    return this.loadBeforeFromServer(oid, tid);
  }

  /** loadBefore on the server; the answer is cached by the connection's onLoadReply. */
  private async loadBeforeFromServer(oid: Oid, tid: Tid): Promise<LoadBeforeResult | null> {
    const sc = this.active ?? (await this.activeConn());
    const key = [p64(oid), tid === maxtid ? MAXTID_BYTES : p64(tid)];
    const r = await sc.conn.call('loadBefore', key, { msgid: key, onReply: sc.onLoadReply });
    if (r === null) return null;
    const [data, start, end] = r as WireValue[];
    return { data: bytes(data, 'data'), start: tidOf(start, 'start'), end: end === null ? null : tidOf(end, 'end') };
  }

  /**
   * Cache a loadBefore answer of `sc` (its msgid is [oid, tid]), in frame order: before any
   * later invalidation is processed (§5.7, §11.2).
   */
  private cacheLoaded(sc: ServerConn, res: WireValue, msgid: WireValue): void {
    if (res === null || this.active !== sc) return;
    const oid = u64((msgid as Buffer[])[0]!);
    const [data, start, end] = res as WireValue[];
    try {
      this.cache.store(oid, tidOf(start, 'start'), end === null ? null : tidOf(end, 'end'), bytes(data, 'data'));
    } catch (e) {
      this.log.warn({ oid: oid.toString(16), err: (e as Error).message }, 'could not cache a loaded revision');
    }
  }

  /**
   * Pipelined loads: ask the server for every oid the cache cannot answer as of `tid`
   * (default: current), all at once, and cache the answers. Errors (e.g. POSKeyError) of
   * single oids are ignored; the caller's later load reports them.
   */
  async prefetch(oids: Iterable<Oid>, tid: Tid = maxtid): Promise<void> {
    const tidBytes = tid === maxtid ? MAXTID_BYTES : p64(tid);
    let pending: Promise<unknown>[] = [];
    for (const oid of oids) {
      if (this.cache.loadBefore(oid, tid)) continue;
      const sc = this.active;
      if (sc) {
        // the call alone (no async frame per oid): onLoadReply caches the answer
        const key = [p64(oid), tidBytes];
        pending.push(sc.conn.call('loadBefore', key, { msgid: key, onReply: sc.onLoadReply }).catch(ignore));
      } else {
        // not connected: wait for a connection (or fail) as a load would
        pending.push(this.loadBeforeFromServer(oid, tid).catch(ignore));
      }
      if (pending.length >= 5000) {
        // bound in-flight calls
        await Promise.all(pending);
        pending = [];
      }
    }
    await Promise.all(pending);
  }

  async loadSerial(oid: Oid, serial: Tid): Promise<Buffer> {
    // always asked of the server: a pack may have removed the revision (as upstream)
    return bytes(await this.call('loadSerial', [p64(oid), p64(serial)]), 'data');
  }

  async getTid(oid: Oid): Promise<Tid> {
    return tidOf(await this.call('getTid', [p64(oid)]), 'tid');
  }

  async history(oid: Oid, size = 1): Promise<HistoryEntry[]> {
    const r = (await this.call('history', [p64(oid), size])) as WireValue[];
    return (r ?? []).map((e) => {
      const m = e as WireMap;
      const tid = tidOf(m['tid'], 'history tid');
      return {
        time: num(m['time']),
        tid,
        serial: isBytes(m['serial']) ? tidOf(m['serial'], 'serial') : tid,
        user_name: toBuf(m['user_name']),
        description: toBuf(m['description']),
        size: num(m['size']),
        extension: extensionFrom(m, KNOWN_HISTORY_KEYS),
      };
    });
  }

  // ------------------------------------------------------------------ two-phase commit

  async new_oid(): Promise<Oid> {
    if (this.isReadOnly()) throw new ReadOnlyError();
    // bounded: each round either pops an oid or fetches a batch of up to 100 (or fails)
    for (let round = 0; round < 100; round++) {
      const oid = this.oidPool.shift();
      if (oid !== undefined) return oid;
      if (!this.oidRequest) {
        this.oidRequest = (async () => {
          try {
            const r = (await this.call('new_oids', [])) as WireValue[];
            this.oidPool.push(...r.map((o) => tidOf(o, 'oid')));
          } finally {
            this.oidRequest = null;
          }
        })();
      }
      await this.oidRequest;
    }
    throw new StorageError('new_oid: could not get an oid from the server');
  }

  private async acquireTpcLock(): Promise<void> {
    if (!this.lockHeld) {
      this.lockHeld = true;
      return;
    }
    if (this.lockWaiters.length >= MAX_WAITERS) throw new StorageTransactionError('too many transactions waiting to begin');
    await new Promise<void>((resolve) => this.lockWaiters.push(resolve));
  }

  private releaseTpcLock(): void {
    const next = this.lockWaiters.shift();
    if (next) next();
    else this.lockHeld = false;
  }

  async tpc_begin(txn: TransactionMetaData, tid?: Tid, status?: string): Promise<void> {
    if (this.isReadOnly()) throw new ReadOnlyError();
    if (this.current?.txn === txn) throw new StorageTransactionError('Duplicate tpc_begin calls for same transaction');
    await this.acquireTpcLock();
    try {
      if (this.closing) throw new ClientDisconnected(`${this.displayName} is closed`);
      if (this.opts.serverSync) await this.call('ping', []);
      const sc = this.active;
      if (!sc) throw new ClientDisconnected(`${this.displayName} disconnected`);
      if (sc.readOnly) throw new ReadOnlyError();
      const txnid = ++this.txnCounter;
      let ext: WireValue = {};
      if (txn.extension.length) ext = towire(decodeExtension(txn.extension));
      sc.conn.callOneWay('tpc_begin', [txnid, txn.user, txn.description, ext, tid === undefined ? null : p64(tid), status ?? ' ']);
      this.current = { txn, txnid, sc, phase: 'begun', writes: new Map(), serverChanged: new Set(), blobs: [], uploading: Promise.resolve(), uploadFailed: null };
    } catch (e) {
      this.releaseTpcLock();
      throw e;
    }
  }

  /** The transaction state for txn, checked (StorageTransactionError / ClientDisconnected). */
  private check(txn: TransactionMetaData, what: string, phase: 'begun' | 'voted' | 'any' = 'begun'): TxnState {
    const t = this.current;
    if (!t || t.txn !== txn) throw new StorageTransactionError(`${what}: transaction not begun on this storage (or already finished)`);
    if (phase !== 'any' && t.phase !== phase) {
      throw new StorageTransactionError(`${what}: transaction is ${t.phase === 'voted' ? 'already voted' : 'not voted yet'}`);
    }
    if (t.sc !== this.active || t.sc.phase !== 'active') {
      throw new ClientDisconnected(`${what}: the connection of this transaction was lost`);
    }
    return t;
  }

  private oneWay(t: TxnState, method: string, args: WireValue[]): void {
    try {
      t.sc.conn.callOneWay(method, args);
    } catch (e) {
      throw e instanceof ClientDisconnected ? e : new ClientDisconnected(`${method}: ${(e as Error).message}`);
    }
  }

  async store(oid: Oid, serial: Tid, data: Buffer, txn: TransactionMetaData): Promise<void> {
    const t = this.check(txn, 'store');
    this.oneWay(t, 'storea', [p64(oid), p64(serial), data, t.txnid]);
    t.writes.set(oid, data);
  }

  async restore(oid: Oid, serial: Tid, data: Buffer | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    const t = this.check(txn, 'restore');
    this.oneWay(t, 'restorea', [p64(oid), p64(serial), data, prevTxn === null ? null : p64(prevTxn), t.txnid]);
    t.writes.set(oid, null);
  }

  async deleteObject(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    const t = this.check(txn, 'deleteObject');
    this.oneWay(t, 'deleteObject', [p64(oid), p64(serial), t.txnid]);
    t.writes.set(oid, null);
  }

  async checkCurrentSerialInTransaction(oid: Oid, serial: Tid, txn: TransactionMetaData): Promise<void> {
    const t = this.check(txn, 'checkCurrentSerialInTransaction');
    this.oneWay(t, 'checkCurrentSerialInTransaction', [p64(oid), p64(serial), t.txnid]);
  }

  async tpc_vote(txn: TransactionMetaData): Promise<Oid[] | undefined> {
    let t = this.check(txn, 'tpc_vote');
    await t.uploading;
    t = this.check(txn, 'tpc_vote');
    if (t.uploadFailed) throw new StorageTransactionError(`tpc_vote: a blob upload of this transaction failed (${t.uploadFailed.message}); abort it`);
    // bounded: at most MAX_VOTE_ROUNDS vote rounds with client conflict resolution (C-9)
    for (let round = 1; ; round++) {
      let r: WireValue;
      try {
        r = await t.sc.conn.call('vote', [t.txnid]);
      } catch (e) {
        if (e instanceof ConflictError && e.oid !== undefined) this.forget(e.oid);
        throw e;
      }
      const items = Array.isArray(r) ? (r as WireValue[]) : [];
      const conflicts = items.filter((x) => isWireMap(x)) as WireMap[];
      if (!conflicts.length) {
        const changed = items.filter((x) => isBytes(x)).map((x) => tidOf(x, 'oid'));
        for (const oid of changed) t.serverChanged.add(oid);
        t.phase = 'voted';
        return changed.length ? changed : undefined;
      }
      if (round >= MAX_VOTE_ROUNDS) throw this.conflictFrom(conflicts[0]!);
      for (const c of conflicts) {
        const oid = tidOf(c['oid'], 'conflict oid');
        const serials = c['serials'] as WireValue[];
        const committedSerial = tidOf(serials[0], 'committed serial');
        const oldSerial = tidOf(serials[1], 'old serial');
        const newData = bytes(c['data'], 'conflict data');
        const resolver = this.opts.conflictResolver;
        if (!resolver) throw this.conflictFrom(c);
        let resolved: Buffer | null = null;
        try {
          const committedData = await this.loadSerial(oid, committedSerial);
          const oldData = oldSerial === z64 ? null : await this.loadSerial(oid, oldSerial);
          resolved = await resolver({ oid, committedSerial, oldSerial, oldData, committedData, newData });
        } catch (e) {
          if (e instanceof ClientDisconnected) throw e;
          this.log.warn({ oid: oid.toString(16), err: (e as Error).message }, 'conflict resolution failed');
          resolved = null;
        }
        if (!resolved) throw this.conflictFrom(c);
        this.check(txn, 'tpc_vote');
        this.oneWay(t, 'storea', [p64(oid), p64(committedSerial), resolved, t.txnid]);
        t.writes.set(oid, resolved);
      }
    }
  }

  private conflictFrom(c: WireMap): ConflictError {
    const oid = tidOf(c['oid'], 'conflict oid');
    const serials = c['serials'] as WireValue[];
    this.forget(oid);
    return new ConflictError({ oid, serials: [tidOf(serials[0], 'serial'), tidOf(serials[1], 'serial')] });
  }

  /** A conflict error for an oid during vote: drop it from the cache (client-cache §7). */
  private forget(oid: Oid): void {
    try {
      this.cache.invalidate(oid, null);
    } catch {
      // a closed cache: nothing to forget
    }
  }

  async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    const t = this.check(txn, 'tpc_finish', 'voted');
    const sc = t.sc;
    try {
      const r = await sc.conn.call('tpc_finish', [t.txnid], {
        // update the cache and the last tid before any later frame (C-10, client-cache §7)
        onReply: (res) => {
          const tid = tidOf(res, 'tpc_finish tid');
          const oids = [...t.writes.keys(), ...[...t.serverChanged].filter((o) => !t.writes.has(o))];
          try {
            for (const oid of oids) this.cache.invalidate(oid, tid);
            for (const [oid, data] of t.writes) {
              if (data && data.length && !t.serverChanged.has(oid)) this.cache.store(oid, tid, null, data);
            }
            if (tid > this.cache.getLastTid()) this.cache.setLastTid(tid);
          } catch (e) {
            // the cache may be inconsistent now: reconnect, which verifies it (§10.8)
            this.log.error({ err: (e as Error).message }, 'cache update after tpc_finish failed; reconnecting');
            sc.conn.close();
          }
          this.notify(tid, oids);
        },
      });
      const tid = tidOf(r, 'tpc_finish tid');
      const b = this.blobs;
      if (b && !b.shared) for (const x of t.blobs.splice(0)) await b.commitUpload(x.oid, tid, x.file);
      return tid;
    } catch (e) {
      // outcome unknown: drop the connection so the cache is verified again (§10.8)
      if (!(e instanceof ClientDisconnected)) sc.conn.close();
      throw e;
    } finally {
      this.endTxn(t);
    }
  }

  async tpc_abort(txn: TransactionMetaData): Promise<void> {
    const t = this.current;
    if (!t || t.txn !== txn) return;
    try {
      if (t.sc.phase === 'active') await t.sc.conn.call('tpc_abort', [t.txnid]);
    } catch (e) {
      if (!(e instanceof ClientDisconnected)) this.log.warn({ err: (e as Error).message }, 'tpc_abort failed');
    } finally {
      this.endTxn(t);
    }
  }

  private endTxn(t: TxnState): void {
    // uploads not kept in the cache (abort, failure; in shared mode the server took them)
    for (const x of t.blobs.splice(0)) this.blobs?.discard(x.file);
    if (this.current !== t) return;
    this.current = null;
    this.releaseTpcLock();
  }

  // ------------------------------------------------------------------ blobs (IBlobStorage, §8.4)

  /**
   * Blob support (Python: IBlobStorage.providedBy): a blob directory is configured and the server's
   * storage advertised IBlobStorage in get_info (§13; false until the first connection).
   */
  supportsBlobs(): boolean {
    return this.blobs !== null && this.serverSupportsBlobs();
  }

  /** Whether the server's storage supports blobs (its get_info interfaces, §13). */
  serverSupportsBlobs(): boolean {
    const ifaces = this.info['interfaces'];
    return Array.isArray(ifaces) && ifaces.some((p) => Array.isArray(p) && p[1] === 'IBlobStorage');
  }

  private requireBlobs(what: string): BlobCache {
    if (!this.blobs) throw new Unsupported(`${what}: no blob cache directory is configured (blob-dir)`);
    return this.blobs;
  }

  temporaryDirectory(): string {
    return this.requireBlobs('temporaryDirectory').temporaryDirectory();
  }

  /**
   * `store` plus a blob (C-15): the file is moved into the blob directory at once, then `storea`
   * and either `storeBlobShared` (shared directory) or `storeBlobStart`, the file in chunks of at
   * most 59000 bytes (waiting for the socket to drain) and `storeBlobEnd`. After tpc_finish the
   * file becomes the cached blob of the new revision.
   */
  async storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void> {
    const b = this.requireBlobs('storeBlob');
    let t = this.check(txn, 'storeBlob');
    // the server would close the connection on storeBlobStart
    if (!this.serverSupportsBlobs()) throw new Unsupported(`storeBlob: the server's storage '${this.storageName}' does not support blobs`);
    const file = await b.adoptUpload(oid, serial, blobFilename);
    t.blobs.push({ oid, file });
    t = this.check(txn, 'storeBlob');
    const run = t.uploading.then(() => {
      if (t.uploadFailed) throw t.uploadFailed;
      return this.uploadBlob(b, t, oid, serial, data, file);
    });
    t.uploading = run.catch((e: Error) => {
      t.uploadFailed ??= e;
    });
    await run;
  }

  private async uploadBlob(b: BlobCache, t: TxnState, oid: Oid, serial: Tid, data: Buffer, file: string): Promise<void> {
    this.check(t.txn, 'storeBlob');
    const oidB = p64(oid);
    const serialB = p64(serial);
    this.oneWay(t, 'storea', [oidB, serialB, data, t.txnid]);
    t.writes.set(oid, data);
    if (b.shared) {
      this.oneWay(t, 'storeBlobShared', [oidB, serialB, data, basename(file), t.txnid]);
      return;
    }
    const fh = await openFile(file, 'r');
    try {
      this.oneWay(t, 'storeBlobStart', []);
      let pos = 0;
      // bounded: one read of at most 16 chunks (≈ 0.9 MB) per round, ends at end of file
      for (;;) {
        const buf = Buffer.allocUnsafe(UPLOAD_CHUNK_SIZE * 16);
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        this.check(t.txn, 'storeBlob');
        for (let off = 0; off < bytesRead; off += UPLOAD_CHUNK_SIZE) {
          this.oneWay(t, 'storeBlobChunk', [buf.subarray(off, Math.min(off + UPLOAD_CHUNK_SIZE, bytesRead))]);
        }
        if (!t.sc.conn.writable) await t.sc.conn.waitDrain();
      }
      this.check(t.txn, 'storeBlob');
      this.oneWay(t, 'storeBlobEnd', [oidB, serialB, data, t.txnid]);
    } finally {
      await fh.close();
    }
  }

  /** `restore` with a blob file is not part of ZEO 5 (no restoreBlob on the wire): only without a file. */
  async restoreBlob(oid: Oid, serial: Tid, data: Buffer | null, blobFilename: string | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    if (blobFilename !== null) throw new Unsupported('restoreBlob with a blob file: ZEO has no way to send it (the reference ClientStorage is not IBlobStorageRestoreable)');
    await this.restore(oid, serial, data, prevTxn, txn);
  }

  /**
   * The blob file of revision `serial` of oid (C-14): from the blob cache (its access time is
   * refreshed), else downloaded once with sendBlob (concurrent loads share the download); with a
   * shared blob directory, the server's file or POSKeyError.
   */
  async loadBlob(oid: Oid, serial: Tid): Promise<string> {
    const b = this.requireBlobs('loadBlob');
    const path = b.blobFilename(oid, serial);
    if (b.shared) {
      if (existsSync(path)) return path;
      throw new POSKeyError(oid, `No blob file at ${path}`);
    }
    if (existsSync(path)) {
      await b.touch(path);
      return path;
    }
    const k = `${oid}:${serial}`;
    let p = b.pendingLoads.get(k);
    if (!p) {
      p = this.downloadBlob(b, oid, serial).finally(() => b.pendingLoads.delete(k));
      b.pendingLoads.set(k, p);
    }
    return p;
  }

  private async downloadBlob(b: BlobCache, oid: Oid, serial: Tid): Promise<string> {
    const path = b.blobFilename(oid, serial);
    if (existsSync(path)) {
      await b.touch(path);
      return path;
    }
    const sc = await this.activeConn();
    b.expect(oid, serial);
    let failure: unknown = null;
    try {
      await sc.conn.call('sendBlob', [p64(oid), p64(serial)]);
    } catch (e) {
      failure = e;
    }
    const r = b.finishDownload(oid, serial);
    if (failure) throw failure;
    if (r.error) throw r.error;
    if (existsSync(path)) {
      await b.touch(path);
      return path;
    }
    throw new POSKeyError(oid, `No blob file for ${oid.toString(16)} at ${serial.toString(16)}`);
  }

  // ------------------------------------------------------------------ undo

  async undoLog(first = 0, last = -20, filter?: UndoFilter): Promise<UndoLogEntry[]> {
    if (!filter) return this.undoEntries(await this.call('undoLog', [first, last]));
    // a filter cannot travel: fetch a bounded log and filter here
    const all = (await this.undoEntries(await this.call('undoLog', [0, -UNDO_FETCH_LIMIT]))).filter(filter);
    return last < 0 ? all.slice(first, first - last) : all.slice(first, last);
  }

  async undoInfo(first = 0, last = -20, specification?: Record<string, Buffer | string>): Promise<UndoLogEntry[]> {
    return this.undoEntries(await this.call('undoInfo', [first, last, specification ?? null]));
  }

  private undoEntries(r: WireValue): UndoLogEntry[] {
    return ((r ?? []) as WireValue[]).map((e) => {
      const m = e as WireMap;
      const id = toBuf(m['id']);
      return {
        id,
        time: num(m['time']),
        user_name: toBuf(m['user_name']),
        description: toBuf(m['description']),
        extension: extensionFrom(m, KNOWN_UNDO_KEYS),
        tid: tidFromUndoId(id) ?? z64,
      };
    });
  }

  /**
   * Undo inside `txn` (sent as `undoa`). The oids returned are those of the undone transaction
   * (read with the iterator); the server's own list arrives with the vote.
   */
  async undo(transactionId: Buffer, txn: TransactionMetaData): Promise<Oid[]> {
    const t = this.check(txn, 'undo');
    this.oneWay(t, 'undoa', [transactionId, t.txnid]);
    const tid = tidFromUndoId(transactionId);
    const oids: Oid[] = [];
    if (tid !== null) {
      for await (const rec of this.iterator(tid, tid)) {
        for (const r of rec.records) if (!oids.includes(r.oid)) oids.push(r.oid);
      }
    }
    for (const oid of oids) if (!t.writes.has(oid)) t.writes.set(oid, null);
    return oids;
  }

  // ------------------------------------------------------------------ pack, iteration

  /** Pack on the server to time `t` and wait for it (allowed on read-only connections, §12.1). */
  async pack(t: number, _gc?: boolean): Promise<void> {
    await this.call('pack', [new PyFloat(t), true]);
    // Our cache may hold revisions the pack removed (non-current ones, or objects collected as
    // garbage): start it over (a deviation from upstream, which keeps them).
    if (!this.closing && !this.cache.closed) {
      const last = this.cache.getLastTid();
      this.cache.clear();
      this.cache.setLastTid(last);
      this.resetCaches();
    }
  }

  async *iterator(start?: Tid, stop?: Tid): AsyncIterable<TransactionRecord> {
    const sc = await this.activeConn();
    const iid = await sc.conn.call('iterator_start', [start === undefined ? null : p64(start), stop === undefined ? null : p64(stop)]);
    let done = false;
    try {
      // bounded by the server's data: each step is one transaction
      for (;;) {
        const t = (await sc.conn.call('iterator_next', [iid])) as WireValue[] | null;
        if (t === null) {
          done = true;
          return;
        }
        const tid = tidOf(t[0], 'iterator tid');
        const riid = await sc.conn.call('iterator_record_start', [iid, t[0]!]);
        const records: DataRecord[] = [];
        for (;;) {
          const r = (await sc.conn.call('iterator_record_next', [riid])) as WireValue[] | null;
          if (r === null) break;
          records.push({
            oid: tidOf(r[0], 'oid'),
            tid: tidOf(r[1], 'tid'),
            data: r[2] === null ? null : bytes(r[2], 'data'),
            data_txn: r[3] === null ? null : tidOf(r[3], 'data_txn'),
          });
        }
        let extension: Buffer = Buffer.alloc(0);
        if (isBytes(t[4])) extension = asBuffer(t[4]);
        else if (isWireMap(t[4]) && Object.keys(t[4]).length) extension = encodeExtension(unwire(t[4]) as Record<string, unknown>);
        yield { tid, status: typeof t[1] === 'string' ? t[1] : toBuf(t[1]).toString('latin1'), user: toBuf(t[2]), description: toBuf(t[3]), extension, records };
      }
    } finally {
      if (!done && sc.phase === 'active') {
        try {
          sc.conn.callOneWay('iterator_gc', [pyList([iid])]);
        } catch {
          // connection gone: its iterators went with it
        }
      }
    }
  }

  // ------------------------------------------------------------------ observation, lifecycle

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Round trip to the server (all invalidations sent before it are applied when it returns). */
  async sync(): Promise<void> {
    await this.call('ping', []);
  }

  /** server_status() of the storage (§8.1). */
  async serverStatus(): Promise<Record<string, WireValue>> {
    return (await this.call('server_status', [])) as Record<string, WireValue>;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const sock of this.connecting) sock.destroy();
    this.connecting.clear();
    const conns = [...this.conns];
    for (const sc of conns) sc.conn.close();
    this.active = null;
    const w = this.connectWaiters;
    this.connectWaiters = [];
    for (const f of w) f();
    this.changed();
    await Promise.all(conns.map((sc) => sc.conn.closed));
    await Promise.all(this.loops);
    for (const f of this.lockWaiters.splice(0)) f();
    await this.blobs?.sizeCheck;
    await this.cache.close();
  }
}
