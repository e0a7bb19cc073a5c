/**
 * runzeo: the ZEO storage server process (operations §5): command line and zeo.conf, pino JSON
 * logs, startup/shutdown sequence, signals, exit statuses, PID file, ruok and the legacy monitor.
 */
import net from 'node:net';
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino, { type Logger, type DestinationStream } from 'pino';
import {
  ConfigError,
  datatypes,
  fileStorageFromPath,
  formatAddress,
  getProvider,
  loadInstalledPlugins,
  loadServerConfig,
  OVERRIDES_WITHOUT_CONFIG,
  parseSource,
  type ConfigNode,
  pyRepr,
  type EventLogConfig,
  type ServedStorage,
  type ServerConfig,
  type SocketAddress,
  type StorageOpener,
} from '@zeo-ts/config';
import { openFileStorageSection } from '@zeo-ts/filestorage';
import { MappingStorage, type IStorage } from '@zeo-ts/storage';
import { StorageServer, serve, serveMonitor, type ListenAddress, type Listener } from '@zeo-ts/server';
import { parseArgs, UsageError, USAGE, type RunzeoArgs } from './options.ts';

export const VERSION = 'zeo-ts runzeo 0.1.0';
const PROGRAM = 'runzeo';

/** Where runzeo writes; tests may pass their own. */
export interface RunzeoIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** where signals come from (process, or an EventEmitter in tests) */
  signals?: { on(sig: string, fn: () => void): unknown; off(sig: string, fn: () => void): unknown };
  /** told the bound address once the server listens (tests) */
  onListening?: (address: ListenAddress) => void;
}

interface Effective {
  address: SocketAddress;
  storages: ServedStorage[];
  readOnly: boolean;
  invalidationQueueSize: number;
  invalidationAge: number | null;
  transactionTimeout: number | null;
  pidFile: string | null;
  clientConflictResolution: boolean;
  msgpack: boolean;
  monitor: SocketAddress | null;
  ssl: ServerConfig['zeo']['ssl'];
  eventlog: EventLogConfig | null;
  warnings: string[];
}

function usageError(io: RunzeoIO, msg: string): number {
  io.stderr(`Error: ${msg}\nFor help, use ${PROGRAM} -h\n`);
  return 2;
}

function bindingAddress(s: string, opt: string, io: RunzeoIO): SocketAddress {
  try {
    return datatypes.socketBindingAddress(s, { cwd: io.cwd });
  } catch (e) {
    throw new UsageError(`invalid value for ${opt} '${s}': ${(e as Error).message}`);
  }
}

/** Command line + configuration → effective settings (operations §5.1 precedence). */
function effective(args: RunzeoArgs, io: RunzeoIO): Effective {
  let cfg: ServerConfig | null = null;
  if (args.configure !== null) {
    cfg = loadServerConfig(args.configure, { overrides: args.overrides, env: io.env, cwd: io.cwd });
  } else if (args.overrides.length) {
    throw new UsageError(OVERRIDES_WITHOUT_CONFIG);
  }
  let address: SocketAddress | null = cfg?.zeo.address ?? null;
  if (args.address !== null) address = bindingAddress(args.address, '-a', io);
  if (address === null) throw new UsageError('no server address specified; use -a or -C');
  let storages: ServedStorage[] = cfg?.storages ?? [];
  if (args.filenames.length) {
    storages = args.filenames.map((f, i) => {
      try {
        return fileStorageFromPath(f, String(i + 1), { cwd: io.cwd });
      } catch (e) {
        if (e instanceof ConfigError) throw new UsageError(`invalid value for -f '${f}': ${e.reason}`);
        throw e;
      }
    });
  }
  if (storages.length === 0) throw new UsageError('no storages specified; use -f or -C');
  const z = cfg?.zeo;
  let monitor: SocketAddress | null = z?.monitor_address ?? null;
  if (args.monitor !== null) monitor = bindingAddress(args.monitor, '-m', io);
  const pidFile =
    args.pidFile ?? z?.pid_filename ?? (io.env.INSTANCE_HOME ? join(io.env.INSTANCE_HOME, 'var', 'ZEO.pid') : null);
  return {
    address,
    storages,
    readOnly: z?.read_only ?? false,
    invalidationQueueSize: z?.invalidation_queue_size ?? 100,
    invalidationAge: z?.invalidation_age ?? null,
    transactionTimeout: args.timeout ?? z?.transaction_timeout ?? null,
    pidFile,
    // This server cannot run Python conflict resolution (it only merges BTrees.Length itself), so
    // unless the configuration says otherwise it leaves resolution to clients (zeo5-protocol §10.6
    // RECOMMENDED; upstream's default is false).
    clientConflictResolution: cfg && ccrGiven(args, io) ? z!.client_conflict_resolution : true,
    msgpack: z?.msgpack ?? !!io.env.ZEO_MSGPACK,
    monitor,
    ssl: z?.ssl ?? null,
    eventlog: cfg?.eventlog ?? null,
    warnings: cfg?.warnings ?? [],
  };
}

/** Did the configuration file (or a -X override) set client-conflict-resolution explicitly? */
function ccrGiven(args: RunzeoArgs, io: RunzeoIO): boolean {
  if (args.overrides.some((o) => /^zeo\/client-conflict-resolution=/i.test(o.trim()))) return true;
  const tree = parseSource(args.configure!, { env: io.env, cwd: io.cwd });
  const visit = (nodes: ConfigNode[], inZeo: boolean): boolean =>
    nodes.some((n) =>
      n.kind === 'key'
        ? inZeo && n.key.toLowerCase() === 'client-conflict-resolution'
        : n.kind === 'section'
          ? visit(n.children, n.type === 'zeo')
          : false,
    );
  return visit(tree.children, false);
}

// ---------------------------------------------------------------------------------------
// logging

const LEVEL_NAMES: Record<string, string> = { trace: 'BLATHER', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };

function pinoLevel(pyLevel: number): pino.LevelWithSilent {
  if (pyLevel <= 5) return 'trace';
  if (pyLevel <= 10) return 'debug';
  if (pyLevel <= 20) return 'info';
  if (pyLevel <= 30) return 'warn';
  if (pyLevel <= 40) return 'error';
  return 'fatal';
}

interface Logging {
  log: Logger;
  /** reopen log files (SIGUSR2); false when no <eventlog> is configured */
  reopen: (() => void) | null;
  flush: () => void;
}

function setupLogging(ev: EventLogConfig | null, io: RunzeoIO): Logging {
  const base: pino.LoggerOptions = {
    base: { pid: process.pid },
    messageKey: 'msg',
    formatters: { level: (label) => ({ level: LEVEL_NAMES[label] ?? label.toUpperCase() }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (!ev) {
    const log = pino({ ...base, level: io.env.ZEO_TS_LOG_LEVEL ?? 'info' }, pino.destination({ fd: 2, sync: true }));
    return { log, reopen: null, flush: () => undefined };
  }
  const files: Array<ReturnType<typeof pino.destination>> = [];
  const streams: Array<{ level: pino.Level; stream: DestinationStream }> = [];
  for (const h of ev.handlers) {
    const level = pinoLevel(Math.max(ev.level, h.level)) as pino.Level;
    if (h.type === 'logfile') {
      let dest;
      if (h.stream === 'stdout') dest = pino.destination({ fd: 1, sync: true });
      else if (h.stream === 'stderr') dest = pino.destination({ fd: 2, sync: true });
      else {
        dest = pino.destination({ dest: resolve(io.cwd, h.path), sync: true, mkdir: false });
        files.push(dest);
      }
      streams.push({ level, stream: dest });
    } else {
      // syslog and others: not supported by this build; log to stderr instead, said once
      streams.push({ level, stream: pino.destination({ fd: 2, sync: true }) });
    }
  }
  const minLevel = streams.length ? pinoLevel(ev.level) : 'silent';
  const log = streams.length ? pino({ ...base, level: minLevel }, pino.multistream(streams)) : pino({ ...base, level: 'silent' });
  return {
    log,
    reopen: () => {
      for (const f of files) f.reopen();
    },
    flush: () => {
      for (const f of files) f.flushSync?.();
    },
  };
}

// ---------------------------------------------------------------------------------------
// storages

async function openStorage(s: ServedStorage, readOnlyServer: boolean, cwd: string, logger: Logger): Promise<IStorage> {
  const o = s.options as Record<string, unknown>;
  switch (s.type) {
    case 'filestorage':
      // relative paths (path, blob-dir) are relative to the server's working directory; the display name is the path as given
      return openFileStorageSection(s, { cwd, logger });
    case 'mappingstorage':
      return new MappingStorage({ name: (o.name as string) ?? 'Mapping Storage' });
    default: {
      // storage types added by plugins (ZRS, ...) register how they are opened
      const opener = getProvider<StorageOpener>('storage-opener', s.type);
      if (opener) return (await opener(s, { cwd, readOnlyServer, logger })) as IStorage;
      throw new Error(`storage '${s.name}': <${s.type}> (${s.kind}) storages are not supported by this server`);
    }
  }
}

function listenAddress(a: SocketAddress): ListenAddress {
  if (a.family === 'unix') return { path: a.path };
  return { host: a.host, port: a.port ?? 0 };
}

/** Is someone serving there already? (operations §5.2 step 3) */
function probe(a: SocketAddress): Promise<boolean> {
  if (a.family === 'unix') {
    if (!existsSync(a.path)) return Promise.resolve(false);
  } else if (a.port === null || a.port === 0) {
    return Promise.resolve(false);
  }
  return new Promise((res) => {
    const s =
      a.family === 'unix'
        ? net.connect(a.path)
        : net.connect(a.port!, a.host === '' || a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host);
    const done = (v: boolean) => {
      s.destroy();
      res(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(5000, () => done(false));
  });
}

// ---------------------------------------------------------------------------------------
// main

export async function runzeo(argv: string[], io: RunzeoIO): Promise<number> {
  let args: RunzeoArgs;
  let eff: Effective;
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
    // Storage types from installed plugins (e.g. `%import zc.zrs`) must be known before the
    // configuration file is matched against the schema.
    if (args.configure !== null) await loadInstalledPlugins();
    eff = effective(args, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) return usageError(io, e.message);
    throw e;
  }

  const logging = setupLogging(eff.eventlog, io);
  const log = logging.log;
  const rlog = log.child({ name: 'ZEO.runzeo' });
  const pid = process.pid;
  for (const w of eff.warnings) rlog.warn(w);
  if (eff.monitor) rlog.warn('the legacy monitor server (monitor-address / -m) is deprecated; use the ruok probe or server_status');

  if (await probe(eff.address)) {
    return usageError(io, `address ${formatAddress(eff.address)} already in use`);
  }
  const listenAt = listenAddress(eff.address);
  if ('path' in listenAt && existsSync(listenAt.path)) unlinkSync(listenAt.path);

  // PID file (§5.7): not for read-only servers
  let pidWritten: string | null = null;
  if (eff.pidFile && !eff.readOnly) {
    const p = resolve(io.cwd, eff.pidFile);
    try {
      writeFileSync(p, `${pid}\n`);
      pidWritten = p;
      rlog.info(`(${pid}) created PID file ${pyRepr(eff.pidFile)}`);
    } catch {
      rlog.error(`PID file ${pyRepr(eff.pidFile)} cannot be opened`);
    }
  }

  const opened = new Map<string, IStorage>();
  let server: StorageServer | null = null;
  let listener: Listener | null = null;
  let monitor: Listener | null = null;
  let stopSignal: string | null = null;
  let wake: (() => void) | null = null;
  const stopped = new Promise<void>((r) => (wake = r));
  const proc = io.signals;
  const handlers: Array<[string, () => void]> = [];
  const on = (sig: string, fn: () => void) => {
    if (!proc) return;
    proc.on(sig, fn);
    handlers.push([sig, fn]);
  };
  const stopOn = (sig: string) => () => {
    if (stopSignal) return;
    stopSignal = sig;
    rlog.info(sig === 'SIGHUP' ? `(${pid}) restarted by SIGHUP` : `(${pid}) terminated by ${sig}`);
    wake?.();
  };
  on('SIGTERM', stopOn('SIGTERM'));
  on('SIGINT', stopOn('SIGINT'));
  on('SIGHUP', stopOn('SIGHUP'));
  on('SIGUSR2', () => {
    if (logging.reopen) {
      logging.reopen();
      rlog.info(`(${pid}) Log files reopened successfully`);
    } else {
      rlog.warn(`(${pid}) received SIGUSR2, but it was not handled!`);
    }
  });
  on('SIGXFSZ', () => undefined);

  let status = 0;
  try {
    for (const s of eff.storages) {
      rlog.info(`(${pid}) opening storage ${pyRepr(s.name)} using ${s.kind}`);
      opened.set(s.name, await openStorage(s, eff.readOnly, io.cwd, log));
    }
    server = new StorageServer(opened, {
      read_only: eff.readOnly,
      invalidation_queue_size: eff.invalidationQueueSize,
      invalidation_age: eff.invalidationAge,
      transaction_timeout: eff.transactionTimeout,
      client_conflict_resolution: eff.clientConflictResolution,
      logger: log,
      version: VERSION,
    });
    let tlsOpts;
    if (eff.ssl) {
      let passphrase: string | undefined;
      if (eff.ssl.password_function) {
        const fn = getProvider<() => string>('password-function', eff.ssl.password_function);
        passphrase = fn?.();
      }
      tlsOpts = {
        cert: eff.ssl.certificate,
        key: eff.ssl.key ?? undefined,
        passphrase,
        authenticate: eff.ssl.authenticate,
      };
    }
    listener = await serve(server, { address: listenAt, announce: eff.msgpack ? 'M' : 'Z', tls: tlsOpts, logger: log });
    if (eff.monitor) monitor = await serveMonitor(server, listenAddress(eff.monitor), log);
    io.onListening?.(listener.address);
    if (args.test) {
      io.stdout('testing exit immediately\n');
    } else {
      await stopped;
    }
    status = stopSignal === 'SIGHUP' ? 1 : 0;
  } catch (e) {
    io.stderr(`${(e as Error).stack ?? String(e)}\n`);
    rlog.error({ err: e }, `startup or runtime failure: ${(e as Error).message}`);
    status = 1;
  } finally {
    // teardown (§5.2): stop accepting, close connections, close storages, remove files
    try {
      await monitor?.close();
      await listener?.close();
    } catch (e) {
      rlog.error({ err: e }, 'error while closing the listener');
    }
    if (server) {
      await server.close();
    } else {
      for (const [name, s] of opened) {
        log.child({ name: 'ZEO.StorageServer' }).info(`closing storage ${pyRepr(name)}`);
        await s.close().catch(() => undefined);
      }
    }
    if ('path' in listenAt && existsSync(listenAt.path)) {
      try {
        unlinkSync(listenAt.path);
      } catch {
        /* gone */
      }
    }
    if (pidWritten && existsSync(pidWritten)) {
      try {
        unlinkSync(pidWritten);
        rlog.info(`(${pid}) removed PID file ${pyRepr(eff.pidFile!)}`);
      } catch {
        rlog.error(`PID file ${pyRepr(eff.pidFile!)} could not be removed`);
      }
    }
    for (const [sig, fn] of handlers) proc?.off(sig, fn);
    logging.flush();
  }
  return status;
}

/** For `npm start`: make sure a directory exists. */
export function ensureDir(p: string): void {
  if (!existsSync(p)) mkdirSync(p, { recursive: true });
}

