/**
 * Sockets for the server core: TCP, Unix-domain and TLS listeners whose connections speak ZEO 5
 * through @zeo-ts/wire's RpcConnection (handshake, framing, codecs, back-pressure), each bound to
 * one `ZEOSession` of a `StorageServer` once its handshake is done.
 *
 * The session writes its own replies (to keep the output order of §5.7/§11.2), so the
 * RpcConnection handler only feeds messages in and returns REPLY_LATER (never answers by itself).
 */
import net from 'node:net';
import tls from 'node:tls';
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  RpcConnection,
  ProtocolError,
  PythonError,
  PyFloat as WirePyFloat,
  pyList as wirePyList,
  REPLY_LATER,
  availableEncodings,
  type EncodingLetter,
  type WireValue,
} from '@zeo-ts/wire';
import { PyBuiltinError } from './errors.ts';
import type { StorageServer } from './server.ts';
import type { ClientChannel, ZEOSession } from './session.ts';
import { PyFloat, PyListValue } from './values.ts';

export type ListenAddress = { host: string; port: number } | { path: string };

export interface TlsOptions {
  /** PEM certificate chain (text or file path) */
  cert: string | Buffer;
  /** PEM private key (text or file path); may be inside cert */
  key?: string | Buffer;
  passphrase?: string;
  /**
   * Trust anchors for client certificates: PEM text/Buffer, a PEM file, a directory of PEM files,
   * or 'DYNAMIC' for the system store (operations §3.3).
   */
  authenticate: string | Buffer;
  /** require and verify client certificates (default true, as the reference) */
  requireClientCert?: boolean;
}

export interface ServeOptions {
  address: ListenAddress;
  /** the letter announced in the handshake (zeo5-protocol §4.1); default 'Z' when available, else 'M' */
  announce?: EncodingLetter;
  tls?: TlsOptions;
  /** maximum frame payload (default 256 MiB) */
  maxFrame?: number;
  /** maximum simultaneous connections (default 10000) */
  maxConnections?: number;
  logger?: Logger;
}

export interface Listener {
  /** the bound address: { host, port } (the real port when 0 was asked) or { path } */
  readonly address: ListenAddress;
  /** stop accepting, close every connection (their transactions are aborted) */
  close(): Promise<void>;
  /** open sockets (handshaken or not) */
  readonly connectionCount: number;
}

/** Convert the core's logical values to the wire value model. */
export function toWire(v: unknown): WireValue {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return v; // the common case: oids, tids, records
  if (Array.isArray(v) && isPlainTuple(v)) return v as WireValue[]; // e.g. loadBefore's (data, start, end)
  if (v instanceof PyFloat) return new WirePyFloat(v.value);
  if (v instanceof PyListValue) return wirePyList(v.items.map(toWire));
  if (Array.isArray(v)) return v.map(toWire);
  if (v instanceof Uint8Array) return v;
  if (v instanceof Map) {
    const o: Record<string, WireValue> = {};
    for (const [k, x] of v) o[String(k)] = toWire(x);
    return o;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o: Record<string, WireValue> = {};
    for (const k of Object.keys(v as object)) o[k] = toWire((v as Record<string, unknown>)[k]);
    return o;
  }
  return v as WireValue;
}

/** A tuple of bytes/None/str/number only: the same in both value models, no copy needed. */
function isPlainTuple(a: unknown[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x === null || x instanceof Uint8Array || typeof x === 'string' || typeof x === 'boolean') continue;
    if (typeof x === 'number' && Number.isInteger(x)) continue;
    return false;
  }
  return true;
}

function wireError(err: Error): Error {
  if (err instanceof PyBuiltinError) return new PythonError(err.pythonClass, err.args.map(toWire));
  return err;
}

/** Plain JSON-able status (floats as numbers) for the ruok document. */
function plainStatus(server: StorageServer): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, st] of Object.entries(server.ruok())) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(st)) o[k] = v instanceof PyFloat ? v.value : v;
    out[name] = o;
  }
  return out;
}

function readPem(v: string | Buffer, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v.includes('-----BEGIN')) return Buffer.from(v);
  try {
    return readFileSync(v);
  } catch (err) {
    throw new Error(`cannot read TLS ${what} file '${v}': ${(err as Error).message}`);
  }
}

/** The CA material of `authenticate` (operations §3.3 rule 3). */
export function loadTrustAnchors(auth: string | Buffer): Buffer[] | string[] {
  if (Buffer.isBuffer(auth)) return [auth];
  if (auth === 'DYNAMIC') return [...tls.rootCertificates];
  if (auth.includes('-----BEGIN')) return [Buffer.from(auth)];
  if (!existsSync(auth)) throw new Error(`TLS authenticate path '${auth}' does not exist`);
  if (statSync(auth).isDirectory()) {
    const out: Buffer[] = [];
    for (const f of readdirSync(auth).sort()) {
      const p = join(auth, f);
      if (!statSync(p).isFile()) continue;
      const b = readFileSync(p);
      if (b.includes('-----BEGIN CERTIFICATE-----')) out.push(b);
    }
    if (out.length === 0) throw new Error(`TLS authenticate directory '${auth}' holds no PEM certificates`);
    return out;
  }
  return [readFileSync(auth)];
}

/** one-entry cache of the wire form of the last server→client call's arguments (fan-out) */
let lastCallArgs: unknown[] | null = null;
let lastCallWire: WireValue[] = [];

class SessionChannel implements ClientChannel {
  constructor(
    readonly conn: RpcConnection,
    readonly peer: string,
  ) {}
  reply(msgid: unknown, value: unknown): void {
    this.conn.sendReply(msgid as WireValue, toWire(value));
  }
  error(msgid: unknown, err: Error): void {
    this.conn.sendError(msgid as WireValue, wireError(err));
  }
  call(name: string, args: unknown[]): void {
    // an invalidation goes to every other connection with the same argument array: convert once
    if (args !== lastCallArgs) {
      lastCallArgs = args;
      lastCallWire = args.map(toWire);
    }
    this.conn.callOneWay(name, lastCallWire);
  }
  get writable(): boolean {
    return this.conn.writable;
  }
  waitDrain(): Promise<void> {
    return this.conn.waitDrain();
  }
  close(reason: string): void {
    if (reason === 'server shutting down') this.conn.close();
    else this.conn.abort(new ProtocolError(reason));
  }
}

/** Listen on `options.address` and serve `server`'s storages. */
export async function serve(server: StorageServer, options: ServeOptions): Promise<Listener> {
  const log = (options.logger ?? pino({ level: 'silent' })).child({ name: 'ZEO.asyncio.server' });
  const encodings = availableEncodings();
  const announce: EncodingLetter = options.announce ?? (encodings.includes('Z') ? 'Z' : 'M');
  if (!encodings.includes(announce)) throw new Error(`encoding ${announce}5 is not available (have ${encodings.join(', ')})`);
  const maxConnections = options.maxConnections ?? 10000;
  const sockets = new Set<net.Socket>();
  const closers = new Set<Promise<unknown>>();

  const onSocket = (socket: net.Socket) => {
    if (sockets.size >= maxConnections) {
      log.warn(`refusing connection: ${sockets.size} connections open (maximum ${maxConnections})`);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const peer = 'path' in options.address ? options.address.path : `${socket.remoteAddress}:${socket.remotePort}`;
    let session: ZEOSession | null = null;
    let paused = false;
    const conn = new RpcConnection(socket, {
      role: 'server',
      announce,
      encodings,
      maxFrame: options.maxFrame,
      logger: log,
      label: peer,
      ruok: () => plainStatus(server),
      handler: (method, args, call) => {
        if (!session) throw new ProtocolError('call before handshake');
        session.handle(call.msgid, call.oneWay, method, args);
        // back-pressure: stop reading while too many replies are owed (bounded memory)
        const s = session;
        if (!paused && s.backlog > server.options.max_backlog) {
          paused = true;
          socket.pause();
          void s.whenBacklogBelow(server.options.max_backlog >> 1).then(() => {
            paused = false;
            if (!socket.destroyed) socket.resume();
          });
        }
        // the session answers through the channel (in its own output order); RpcConnection must
        // not reply, and no promise is created per call
        return call.oneWay ? undefined : REPLY_LATER;
      },
    });
    conn.on('handshake', (letter: EncodingLetter) => {
      log.info(`received handshake '${letter}5'`);
      if (server.isClosed) {
        conn.close();
        return;
      }
      session = server.newSession(new SessionChannel(conn, peer));
    });
    const done = conn.closed.then(() => {
      sockets.delete(socket);
      const s = session;
      if (s) {
        const p = s.connectionLost();
        closers.add(p);
        return p.finally(() => closers.delete(p));
      }
      return undefined;
    });
    closers.add(done);
    void done.finally(() => closers.delete(done));
  };

  let netServer: net.Server;
  if (options.tls) {
    const t = options.tls;
    netServer = tls.createServer(
      {
        cert: readPem(t.cert, 'certificate'),
        key: t.key === undefined ? undefined : readPem(t.key, 'key'),
        passphrase: t.passphrase,
        ca: loadTrustAnchors(t.authenticate),
        requestCert: t.requireClientCert ?? true,
        rejectUnauthorized: t.requireClientCert ?? true,
      },
      onSocket,
    );
    netServer.on('tlsClientError', (err) => log.info(`TLS handshake failed: ${err.message}`));
  } else {
    netServer = net.createServer(onSocket);
  }
  netServer.maxConnections = maxConnections + 1;

  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    const done = () => {
      netServer.off('error', reject);
      resolve();
    };
    if ('path' in options.address) netServer.listen(options.address.path, done);
    else netServer.listen(options.address.port, options.address.host || undefined, done);
  });
  netServer.on('error', (err) => log.error({ err }, 'listener error'));

  let bound: ListenAddress;
  if ('path' in options.address) {
    bound = { path: options.address.path };
  } else {
    const a = netServer.address() as net.AddressInfo;
    bound = { host: options.address.host, port: a.port };
  }
  log.info({ address: bound }, `listening on ${'path' in bound ? bound.path : `('${bound.host}', ${bound.port})`}`);

  let closing: Promise<void> | null = null;
  return {
    address: bound,
    get connectionCount() {
      return sockets.size;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          netServer.close(() => resolve());
          // connections that never completed a handshake have no session to close them
          for (const s of sockets) if (!s.destroyed) s.end();
          setImmediate(() => {
            for (const s of sockets) s.destroy();
          });
        });
        await Promise.allSettled([...closers]);
        if ('path' in bound && existsSync(bound.path)) {
          try {
            unlinkSync(bound.path);
          } catch {
            /* already gone */
          }
        }
      })();
      return closing;
    },
  };
}
