/**
 * The zrs server: runzeo's command line and zeo.conf (via @zeo-ts/zeo-server's parser and
 * @zeo-ts/config), with `%import zc.zrs` storages (<zrs>, <primary>, <secondary>) opened by
 * @zeo-ts/zrs. Replication state is added to ruok / server_status and the text monitor.
 * Extra option: --admin ADDRESS, a line-based control socket (`status`, `promote NAME [ADDR]`).
 */
import net from 'node:net';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { ConfigError, datatypes, fileStorageFromPath, loadServerConfig, pyRepr, type ServedStorage, type SocketAddress } from '@zeo-ts/config';
import { StorageServer, serve, serveMonitor, pythonJson, type ListenAddress, type Listener } from '@zeo-ts/server';
import type { IStorage } from '@zeo-ts/storage';
import { parseArgs, UsageError, USAGE as RUNZEO_USAGE } from '@zeo-ts/zeo-server';
import { Primary, Secondary, openStorageSection, parseAddress, registerZrsConfig } from '@zeo-ts/zrs';

export const VERSION = 'zeo-ts zrs 0.1.0';

export const USAGE = RUNZEO_USAGE.replace(/runzeo/g, 'zrs').replace('Start the ZEO storage server.', 'Start a ZEO storage server whose storages may be ZRS primaries or secondaries (%import zc.zrs).') +
  `
ZRS options:
  --admin ADDRESS        control socket: send "status" or "promote NAME [LISTEN-ADDRESS]"

Other commands:
  zrs promote (--admin ADDRESS NAME [LISTEN-ADDRESS] | -C CONFIG [NAME])
`;

export interface ZrsIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signals?: { on(sig: string, fn: () => void): unknown; off(sig: string, fn: () => void): unknown };
  onListening?: (address: ListenAddress) => void;
}

function listenAddress(a: SocketAddress): ListenAddress {
  if (a.family === 'unix') return { path: a.path };
  return { host: a.host, port: a.port ?? 0 };
}

/** Replication status of a storage (null when it is not a ZRS storage). */
export function replicationOf(s: IStorage): Record<string, unknown> | null {
  if (s instanceof Primary || s instanceof Secondary) return s.replicationStatus();
  return null;
}

function monitorLines(server: StorageServer): string {
  const out: string[] = [];
  for (const [name, e] of server.storages) {
    const r = replicationOf(e.storage);
    if (!r) continue;
    out.push(`Replication of storage ${name}: ${r.role}${r.promoted ? ' (promoted)' : ''}`);
    if (r.role === 'secondary') {
      out.push(`  replicate-from: ${r['replicate-from']}  state: ${r.state}  protocol: ${r.protocol ?? '-'}`);
      out.push(`  last transaction: ${r['last-transaction']} (${r['last-transaction-time']})  applied: ${r['applied-transactions']}`);
      if (r.refused) out.push(`  REFUSED: ${(r.refused as { reason: string }).reason}`);
    } else {
      out.push(`  replicate-to: ${r.address}  ack-quorum: ${r['ack-quorum']}  degraded: ${r['ack-degraded']}  refusing commits: ${r['commits-refused']}`);
      for (const s of r.secondaries as Array<Record<string, unknown>>) {
        out.push(`  secondary ${s.peer} ${s.protocol}: sent ${s['sent-tid']} acked ${s['acked-tid'] ?? '-'} lag ${s['lag-transactions']} txns, ${s['lag-bytes']} bytes, ${s['lag-seconds']} s${s.paused ? ' (paused)' : ''}`);
      }
    }
    out.push('');
  }
  return out.join('\n');
}

/** Add replication state to ruok/server_status and the monitor (no hook exists in @zeo-ts/server). */
function decorate(server: StorageServer): void {
  for (const e of server.storages.values()) {
    const orig = e.status.bind(e);
    e.status = () => {
      const st = orig();
      const r = replicationOf(e.storage);
      return r ? { ...st, replication: r } : st;
    };
  }
  const report = server.monitorReport.bind(server);
  server.monitorReport = (now?: Date) => report(now) + monitorLines(server);
}

function takeAdmin(argv: string[]): { argv: string[]; admin: string | null } {
  const out: string[] = [];
  let admin: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--admin') admin = argv[++i] ?? null;
    else if (a.startsWith('--admin=')) admin = a.slice(8);
    else out.push(a);
  }
  return { argv: out, admin };
}

/** The admin socket: one command per line, one JSON answer per line. */
function serveAdmin(server: StorageServer, addr: ListenAddress, log: Logger): Promise<net.Server> {
  const srv = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > 4096) return void sock.destroy();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        void command(line).then(
          (r) => sock.write(JSON.stringify(r) + '\n'),
          (e) => sock.write(JSON.stringify({ ok: false, error: String((e as Error).message ?? e) }) + '\n'),
        );
      }
    });
  });
  async function command(line: string): Promise<Record<string, unknown>> {
    const [cmd, name, listen] = line.split(/\s+/);
    if (cmd === 'status') {
      const out: Record<string, unknown> = {};
      for (const [n, e] of server.storages) out[n] = replicationOf(e.storage);
      return { ok: true, status: out };
    }
    if (cmd === 'promote') {
      const e = server.storages.get(name ?? '1');
      if (!e) throw new Error(`no storage ${pyRepr(name ?? '1')}`);
      if (!(e.storage instanceof Secondary)) throw new Error(`storage ${pyRepr(name ?? '1')} is not a secondary`);
      await e.storage.promote(listen ? parseAddress(listen, 'bind') : null);
      log.warn(`storage ${pyRepr(name ?? '1')} promoted to primary by the admin socket`);
      return { ok: true, status: e.storage.replicationStatus() };
    }
    throw new Error(`unknown command ${JSON.stringify(cmd)} (status, promote NAME [ADDRESS])`);
  }
  return new Promise((res, rej) => {
    srv.once('error', rej);
    if ('path' in addr && existsSync(addr.path)) unlinkSync(addr.path);
    srv.listen('path' in addr ? { path: addr.path } : { host: addr.host, port: addr.port }, () => res(srv));
  });
}

export async function runZrsServer(argvIn: string[], io: ZrsIO): Promise<number> {
  registerZrsConfig();
  const { argv, admin } = takeAdmin(argvIn);
  let args;
  let storages: ServedStorage[] = [];
  let address: SocketAddress | null = null;
  let cfg = null;
  try {
    args = parseArgs(argv);
    if (args.help) {
      io.stdout(USAGE);
      return 0;
    }
    if (args.version) {
      io.stdout(`${VERSION}\n`);
      return 0;
    }
    if (args.configure !== null) cfg = loadServerConfig(args.configure, { overrides: args.overrides, env: io.env, cwd: io.cwd });
    address = cfg?.zeo.address ?? null;
    if (args.address !== null) address = datatypes.socketBindingAddress(args.address, { cwd: io.cwd });
    if (address === null) throw new UsageError('no server address specified; use -a or -C');
    storages = cfg?.storages ?? [];
    if (args.filenames.length) storages = args.filenames.map((f, i) => fileStorageFromPath(f, String(i + 1), { cwd: io.cwd }));
    if (storages.length === 0) throw new UsageError('no storages specified; use -f or -C');
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof Error) {
      io.stderr(`Error: ${e.message}\nFor help, use zrs -h\n`);
      return 2;
    }
    throw e;
  }
  const log = pino({ level: io.env.ZEO_TS_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination(2));
  const rlog = log.child({ name: 'zrs' });
  const opened = new Map<string, IStorage>();
  let server: StorageServer | null = null;
  let listener: Listener | null = null;
  let monitor: Listener | null = null;
  let adminSrv: net.Server | null = null;
  let wake: (() => void) | null = null;
  let stopSignal: string | null = null;
  const stopped = new Promise<void>((r) => (wake = r));
  const handlers: Array<[string, () => void]> = [];
  const stopOn = (sig: string) => () => {
    if (stopSignal) return;
    stopSignal = sig;
    rlog.info(`(${process.pid}) terminated by ${sig}`);
    wake?.();
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    const fn = stopOn(sig);
    io.signals?.on(sig, fn);
    handlers.push([sig, fn]);
  }
  let pidWritten: string | null = null;
  let status = 0;
  const z = cfg?.zeo;
  try {
    for (const s of storages) {
      rlog.info(`(${process.pid}) opening storage ${pyRepr(s.name)} using ${s.kind}`);
      opened.set(s.name, await openStorageSection(s, { logger: log, cwd: io.cwd }));
    }
    server = new StorageServer(opened, {
      read_only: z?.read_only ?? false,
      invalidation_queue_size: z?.invalidation_queue_size ?? 100,
      invalidation_age: z?.invalidation_age ?? null,
      transaction_timeout: args.timeout ?? z?.transaction_timeout ?? null,
      client_conflict_resolution: cfg ? z!.client_conflict_resolution : true,
      logger: log,
      version: VERSION,
    });
    decorate(server);
    const listenAt = listenAddress(address);
    if ('path' in listenAt && existsSync(listenAt.path)) unlinkSync(listenAt.path);
    listener = await serve(server, { address: listenAt, announce: (z?.msgpack ?? !!io.env.ZEO_MSGPACK) ? 'M' : 'Z', logger: log });
    const mon = args.monitor !== null ? datatypes.socketBindingAddress(args.monitor, { cwd: io.cwd }) : (z?.monitor_address ?? null);
    if (mon) monitor = await serveMonitor(server, listenAddress(mon), log);
    if (admin) adminSrv = await serveAdmin(server, listenAddress(datatypes.socketBindingAddress(admin, { cwd: io.cwd })), log);
    const pidFile = args.pidFile ?? z?.pid_filename ?? null;
    if (pidFile) {
      pidWritten = resolve(io.cwd, pidFile);
      writeFileSync(pidWritten, `${process.pid}\n`);
    }
    io.onListening?.(listener.address);
    const la = listener.address;
    rlog.info({ address: la, admin: adminSrv?.address() ?? null, monitor: monitor?.address ?? null }, `zrs ready: ZEO on ${'path' in la ? la.path : `${la.host}:${la.port}`}`);
    if (args.test) io.stdout('testing exit immediately\n');
    else await stopped;
    status = stopSignal === 'SIGHUP' ? 1 : 0;
  } catch (e) {
    io.stderr(`${(e as Error).stack ?? String(e)}\n`);
    rlog.error({ err: String(e) }, `startup or runtime failure: ${(e as Error).message}`);
    status = 1;
  } finally {
    await new Promise<void>((r) => (adminSrv ? adminSrv.close(() => r()) : r()));
    await monitor?.close().catch(() => undefined);
    await listener?.close().catch(() => undefined);
    if (server) await server.close();
    else for (const s of opened.values()) await s.close().catch(() => undefined);
    if (pidWritten && existsSync(pidWritten)) unlinkSync(pidWritten);
    for (const [sig, fn] of handlers) io.signals?.off(sig, fn);
  }
  return status;
}
