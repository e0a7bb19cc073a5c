/**
 * The server configuration file, zeo.conf (operations spec §3), as typed values.
 */
import { ConfigError, pyRepr, ValueConversionError, type SourcePos } from './errors.ts';
import { existingDirpath, type SocketAddress } from './datatypes.ts';
import { loadConfig, type ConfigSource, type LoadOptions } from './load.ts';
import { STORAGE_ABSTRACT, type StorageSection } from './matcher.ts';
import type { SchemaDef } from './schema.ts';
import { clientOptions, isClientStorage } from './client.ts';
import { hasProvider } from './providers.ts';
import type { EventLogConfig, LogHandlerConfig } from './components/logger.ts';
import type { RunnerConfig } from './components/zdaemon.ts';
import type { FileStorageOptions } from './components/zodb.ts';
import { ZODB_COMPONENT } from './components/zodb.ts';
import { ZEO_SERVER_COMPONENT } from './components/zeo.ts';
import { LOGGER_COMPONENT } from './components/logger.ts';
import { ZDAEMON_COMPONENT } from './components/zdaemon.ts';

/** `<ssl>` inside `<zeo>` (§3.3). */
export interface ServerSslConfig {
  certificate: string;
  key: string | null;
  password_function: string | null;
  /** A PEM file, a CA directory, or 'DYNAMIC' (system trust store). */
  authenticate: string;
}

/** `<zeo>` (§3.2), every key with its default. */
export interface ZeoConfig {
  address: SocketAddress;
  read_only: boolean;
  invalidation_queue_size: number;
  invalidation_age: number | null;
  /** Seconds; null = no timeout (Appendix A #1). */
  transaction_timeout: number | null;
  pid_filename: string | null;
  client_conflict_resolution: boolean;
  /** null when absent: then a non-empty ZEO_MSGPACK environment variable enables msgpack (§3.2). */
  msgpack: boolean | null;
  /** [L] the legacy text monitor (§6.4). */
  monitor_address: SocketAddress | null;
  /** [L] accepted, warned, ignored (a protocol is refused while loading). */
  authentication_database: string | null;
  authentication_realm: string | null;
  /** [L] accepted, no effect. */
  drop_cache_rather_verify: boolean;
  ssl: ServerSslConfig | null;
  pos: SourcePos;
}

/** A storage to serve: the section with its final storage name (§3.1). */
export interface ServedStorage extends StorageSection {
  name: string;
}

export interface ServerConfig {
  /** URL of the configuration file (or `<string>`). */
  url: string;
  zeo: ZeoConfig;
  /** Storages in file order, names resolved (an unnamed one is '1'). */
  storages: ServedStorage[];
  /** null when there is no `<eventlog>` (log INFO to stderr, §3.5.1). */
  eventlog: EventLogConfig | null;
  /** The zdaemon settings, validated; ignored by runzeo (§3.6). */
  runner: RunnerConfig | null;
  /** Things to log at WARNING once logging is up (e.g. legacy authentication keys). */
  warnings: string[];
  /** Components in force (initial ones and %import-ed). */
  components: string[];
}

export interface ServerLoadOptions extends LoadOptions {
  /**
   * The controller schema (zeoctl, §8.6): `<runner>` required and storage sections must be
   * named. Default false (runzeo's schema).
   */
  controller?: boolean;
}

/** The runzeo schema (ZEO schema.xml) or, with `controller`, the zeoctl one. */
export function serverSchema(controller = false): SchemaDef {
  return {
    name: controller ? 'zeoctl' : 'zeo',
    components: [ZODB_COMPONENT, ZEO_SERVER_COMPONENT, LOGGER_COMPONENT, ZDAEMON_COMPONENT],
    sections: [
      { type: 'zeo', name: '*', required: true, attribute: 'zeo' },
      { type: 'runner', name: '*', required: controller, attribute: 'runner' },
      { type: STORAGE_ABSTRACT, name: controller ? '+' : '*', multi: true, required: true, attribute: 'storages' },
      { type: 'eventlog', name: '*', attribute: 'eventlog' },
    ],
  };
}

const UNSUPPORTED_HANDLERS = new Set(['http-logger', 'email-notifier', 'win32-eventlog']);

/**
 * Load and validate a server configuration (zeo.conf). `source` is a path / file: URL, or
 * `{ text }`. Throws ConfigError (runzeo prints `Error: <message>` and exits 2).
 */
export function loadServerConfig(source: ConfigSource, opts: ServerLoadOptions = {}): ServerConfig {
  const { top, components, tree } = loadConfig(source, serverSchema(opts.controller ?? false), opts);
  const warnings: string[] = [];

  // <zeo>
  const zs = top.values['zeo'] as { values: Record<string, unknown>; pos: SourcePos };
  const z = zs.values;
  if (z['authentication_protocol'] !== null) {
    // [D] never start an unauthenticated server for a file that asked for authentication (§3.2).
    throw new ConfigError(
      `authentication-protocol ${pyRepr(String(z['authentication_protocol']))} is not supported: ZEO digest ` +
        `authentication was removed; use an <ssl> section with authenticate (TLS client certificates) instead`,
      zs.pos,
      { key: 'authentication-protocol' },
    );
  }
  for (const k of ['authentication_database', 'authentication_realm']) {
    if (z[k] !== null) {
      warnings.push(`${k.replace(/_/g, '-')} is ignored: digest authentication is not supported (use <ssl> with authenticate)`);
    }
  }
  if (z['monitor_address'] !== null) {
    warnings.push('monitor-address is deprecated (removed in ZEO 5); use the ruok probe / server_status instead');
  }
  const sslSection = z['ssl'] as { values: Record<string, unknown>; pos: SourcePos } | null;
  let ssl: ServerSslConfig | null = null;
  if (sslSection) {
    const sv = sslSection.values;
    ssl = {
      certificate: sv['certificate'] as string,
      key: sv['key'] as string | null,
      password_function: sv['password_function'] as string | null,
      authenticate: sv['authenticate'] as string,
    };
    if (ssl.password_function !== null && !hasProvider('password-function', ssl.password_function)) {
      throw new ConfigError(
        `password-function ${pyRepr(ssl.password_function)} is not a registered passphrase provider`,
        sslSection.pos,
        { key: 'password-function' },
      );
    }
  }
  const zeo: ZeoConfig = {
    address: z['address'] as SocketAddress,
    read_only: z['read_only'] as boolean,
    invalidation_queue_size: z['invalidation_queue_size'] as number,
    invalidation_age: z['invalidation_age'] as number | null,
    transaction_timeout: z['transaction_timeout'] as number | null,
    pid_filename: z['pid_filename'] as string | null,
    client_conflict_resolution: z['client_conflict_resolution'] as boolean,
    msgpack: z['msgpack'] as boolean | null,
    monitor_address: z['monitor_address'] as SocketAddress | null,
    authentication_database: z['authentication_database'] as string | null,
    authentication_realm: z['authentication_realm'] as string | null,
    drop_cache_rather_verify: z['drop_cache_rather_verify'] as boolean,
    ssl,
    pos: zs.pos,
  };

  // storages (§3.1)
  const sections = top.values['storages'] as StorageSection[];
  const unnamed = sections.filter((s) => s.name === null);
  if (unnamed.length > 1) throw new ConfigError('No more than one storage may be unnamed.', unnamed[1]!.pos);
  if (unnamed.length === 1 && sections.some((s) => s.name === '1')) {
    throw new ConfigError("Can't have an unnamed storage and a storage named 1.", unnamed[0]!.pos);
  }
  const storages: ServedStorage[] = sections.map((s) => ({ ...s, name: s.name ?? '1' }));
  for (const s of storages) checkStorageProviders(s);

  // <eventlog>
  const eventlog = (top.values['eventlog'] as EventLogConfig | null) ?? null;
  if (eventlog) checkHandlers(eventlog.handlers);
  const runner = (top.values['runner'] as RunnerConfig | null) ?? null;
  if (runner?.eventlog) checkHandlers(runner.eventlog.handlers);

  return { url: tree.url, zeo, storages, eventlog, runner, warnings, components };
}

function checkStorageProviders(s: StorageSection): void {
  if (isClientStorage(s)) clientOptions(s); // validates ssl / blob settings of fan-out backends
  if (s.type === 'filestorage') {
    const o = s.options as unknown as FileStorageOptions;
    if (o.packer !== null && !hasProvider('packer', o.packer)) {
      throw new ConfigError(`packer ${pyRepr(o.packer)} is not a registered pack implementation`, s.pos, { key: 'packer' });
    }
  }
  for (const v of Object.values(s.options)) {
    if (isStorageSection(v)) checkStorageProviders(v);
  }
}

function isStorageSection(v: unknown): v is StorageSection {
  return typeof v === 'object' && v !== null && 'kind' in v && 'options' in v && 'type' in v;
}

function checkHandlers(handlers: LogHandlerConfig[]): void {
  for (const h of handlers) {
    const pos = h.pos;
    if (UNSUPPORTED_HANDLERS.has(h.type)) {
      throw new ConfigError(`<${h.type}> log handlers are not supported by this server; use <logfile> or <syslog>`, pos);
    }
    if (h.formatter !== null && !hasProvider('formatter', h.formatter)) {
      throw new ConfigError(`formatter ${pyRepr(h.formatter)} is not a registered log formatter`, pos, { key: 'formatter' });
    }
  }
}

/** The storage runzeo's `-f PATH` adds: `<filestorage N>` with only `path` set (§5.1). */
export function fileStorageFromPath(path: string, name: string, opts: { cwd?: string } = {}): ServedStorage {
  const pos: SourcePos = { url: `command-line option -f ${path}`, line: 0 };
  try {
    path = existingDirpath(path, { cwd: opts.cwd });
  } catch (e) {
    if (e instanceof ValueConversionError) throw new ConfigError(e.message, pos, { key: 'path', style: 'conversion' });
    throw e;
  }
  const options: FileStorageOptions = {
    path,
    create: false,
    read_only: false,
    quota: null,
    pack_gc: true,
    pack_keep_old: true,
    packer: null,
    blob_dir: null,
  };
  return {
    type: 'filestorage',
    name,
    kind: 'FileStorage',
    options: options as unknown as Record<string, unknown>,
    given: new Set(['path']),
    pos,
  };
}

/** runzeo's message for `-X` given without `-C` (§2.9). */
export const OVERRIDES_WITHOUT_CONFIG = 'configuration overrides (-X) cannot be used without a configuration file';

/** msgpack in force (§3.2): the key when given, else a non-empty ZEO_MSGPACK. */
export function effectiveMsgpack(zeo: Pick<ZeoConfig, 'msgpack'>, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (zeo.msgpack !== null) return zeo.msgpack;
  return Boolean(env['ZEO_MSGPACK']);
}

/**
 * The PID file to write (§5.7): `--pid-file`, else `pid-filename`, else
 * `$INSTANCE_HOME/var/ZEO.pid` when INSTANCE_HOME is set, else none. A read-only server writes none.
 */
export function effectivePidFile(
  zeo: Pick<ZeoConfig, 'pid_filename' | 'read_only'>,
  opts: { pidFileOption?: string | null; env?: Readonly<Record<string, string | undefined>> } = {},
): string | null {
  if (zeo.read_only) return null;
  if (opts.pidFileOption) return opts.pidFileOption;
  if (zeo.pid_filename) return zeo.pid_filename;
  const home = (opts.env ?? process.env)['INSTANCE_HOME'];
  return home ? `${home.replace(/\/+$/, '')}/var/ZEO.pid` : null;
}
