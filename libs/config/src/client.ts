/**
 * Client configuration (operations spec §4): `<zeoclient>`, `<clientstorage>` (after
 * `%import ZEO`), the client `<ssl>` and the `<zodb>` database section.
 */
import { join } from 'node:path';
import { ConfigError, pyRepr, type SourcePos } from './errors.ts';
import { formatAddress, type SocketAddress } from './datatypes.ts';
import { loadConfig, type ConfigSource, type LoadOptions } from './load.ts';
import { STORAGE_ABSTRACT, type StorageSection } from './matcher.ts';
import type { SchemaDef } from './schema.ts';
import { hasProvider } from './providers.ts';
import { DATABASE_ABSTRACT, ZODB_COMPONENT, type ZodbDatabaseConfig } from './components/zodb.ts';

/** Client `<ssl>` (§4.5). */
export interface ClientSslConfig {
  certificate: string;
  key: string | null;
  password_function: string | null;
  /** Trust anchors for the server certificate; null = system trust store. */
  authenticate: string | null;
  check_hostname: boolean;
  /** null = the host of the address. */
  server_hostname: string | null;
}

/** The settings of a ZEO client, the same for `<zeoclient>` and `<clientstorage>` (§4.3). */
export interface ClientOptions {
  type: 'zeoclient' | 'clientstorage';
  servers: SocketAddress[];
  storage: string;
  cache_size: number;
  /** Persistent cache file, or null for a transient cache. */
  cache_path: string | null;
  /** Display name; '' = derived from the addresses. */
  name: string;
  blob_dir: string | null;
  shared_blob_dir: boolean;
  blob_cache_size: number | null;
  /** Percent of blob_cache_size (below 100). */
  blob_cache_size_check: number;
  /** Bytes downloaded between blob-cache cleanups (blob_cache_size × check / 100), or null. */
  blob_cache_check_bytes: number | null;
  read_only: boolean;
  read_only_fallback: boolean;
  server_sync: boolean;
  /** Block in the constructor until connected (always true for <clientstorage>). */
  wait: boolean;
  /** Seconds (30 for <zeoclient>). */
  wait_timeout: number;
  client_label: string | null;
  ssl: ClientSslConfig | null;
  /** Things to log at WARNING (legacy credentials). */
  warnings: string[];
  pos: SourcePos;
}

export interface ClientConfig {
  url: string;
  /** `<zodb>` sections in file order (a multi-database; the first is the main one). */
  databases: ZodbDatabaseConfig[];
  /** A top-level storage section, if the file has one instead of `<zodb>`. */
  storage: StorageSection | null;
  /** The ZEO client settings of `storage` (or of the first database's storage) when it is a ZEO client. */
  client: ClientOptions | null;
  warnings: string[];
  components: string[];
}

/** The client-file schema: `<zodb>` sections and/or one storage section (ZODB config.xml / storage.xml). */
export function clientSchema(): SchemaDef {
  return {
    name: 'zodb-client',
    components: [ZODB_COMPONENT],
    sections: [
      { type: DATABASE_ABSTRACT, name: '*', multi: true, attribute: 'databases' },
      { type: STORAGE_ABSTRACT, name: '*', attribute: 'storage' },
    ],
  };
}

/** The display name of a client without `name`: the Python repr of its address list (§4.3), e.g. `[('127.0.0.1', 8100)]`. */
export function defaultClientName(servers: SocketAddress[]): string {
  return `[${servers.map((a) => formatAddress(a)).join(', ')}]`;
}

/** Is this storage section a ZEO client (`<zeoclient>` or `<clientstorage>`)? */
export function isClientStorage(s: StorageSection): boolean {
  return s.type === 'zeoclient' || s.type === 'clientstorage';
}

/** Normalize a `<zeoclient>` or `<clientstorage>` section into ClientOptions (§4.3). */
export function clientOptions(s: StorageSection, opts: { cwd?: string } = {}): ClientOptions {
  if (!isClientStorage(s)) throw new TypeError(`not a ZEO client section: <${s.type}>`);
  const o = s.options;
  const zeoclient = s.type === 'zeoclient';
  const storage = o['storage'] as string;
  let cachePath: string | null;
  if (zeoclient) {
    const client = o['client'] as string | null;
    cachePath = client ? join((o['var'] as string | null) ?? opts.cwd ?? process.cwd(), `${client}-${storage}.zec`) : null;
  } else {
    cachePath = (o['cache_path'] as string | null) ?? null;
  }
  const warnings: string[] = [];
  if (zeoclient) {
    for (const k of ['username', 'password', 'realm']) {
      if (o[k] !== null) warnings.push(`${k} is ignored: ZEO digest authentication is not supported (use <clientstorage> with <ssl>)`);
    }
  }
  const check = o['blob_cache_size_check'] as number;
  if (check >= 100) throw new ConfigError(`blob-cache-size-check must be less than 100 (percent), got ${check}`, s.pos, { key: 'blob-cache-size-check' });
  const blobCacheSize = (o['blob_cache_size'] as number | null) ?? null;
  const servers = o['server'] as SocketAddress[];
  let ssl: ClientSslConfig | null = null;
  const sslSection = (o['ssl'] as { values: Record<string, unknown>; pos: SourcePos } | null | undefined) ?? null;
  if (sslSection) {
    const v = sslSection.values;
    ssl = {
      certificate: v['certificate'] as string,
      key: v['key'] as string | null,
      password_function: v['password_function'] as string | null,
      authenticate: v['authenticate'] as string | null,
      check_hostname: v['check_hostname'] as boolean,
      server_hostname: v['server_hostname'] as string | null,
    };
    if (ssl.password_function !== null && !hasProvider('password-function', ssl.password_function)) {
      throw new ConfigError(`password-function ${pyRepr(ssl.password_function)} is not a registered passphrase provider`, sslSection.pos, {
        key: 'password-function',
      });
    }
    if (ssl.check_hostname && ssl.server_hostname === null && servers.some((a) => a.family === 'unix')) {
      throw new ConfigError('server-hostname must be given for TLS over a Unix socket while check-hostname is true', sslSection.pos, {
        key: 'server-hostname',
      });
    }
  }
  return {
    type: zeoclient ? 'zeoclient' : 'clientstorage',
    servers,
    storage,
    cache_size: o['cache_size'] as number,
    cache_path: cachePath,
    name: o['name'] as string,
    blob_dir: (o['blob_dir'] as string | null) || null,
    shared_blob_dir: o['shared_blob_dir'] as boolean,
    blob_cache_size: blobCacheSize,
    blob_cache_size_check: check,
    blob_cache_check_bytes: blobCacheSize === null ? null : Math.floor((blobCacheSize * check) / 100),
    read_only: o['read_only'] as boolean,
    read_only_fallback: o['read_only_fallback'] as boolean,
    server_sync: zeoclient ? false : (o['server_sync'] as boolean),
    wait: zeoclient ? (o['wait'] as boolean) : true,
    wait_timeout: zeoclient ? 30 : (o['wait_timeout'] as number),
    client_label: (o['client_label'] as string | null) ?? null,
    ssl,
    warnings,
    pos: s.pos,
  };
}

/**
 * Load a client configuration file: `<zodb>` section(s) and/or one storage section such as
 * `<zeoclient>` or (after `%import ZEO`) `<clientstorage>`. Throws ConfigError.
 */
export function loadClientConfig(source: ConfigSource, opts: LoadOptions = {}): ClientConfig {
  const { top, components, tree } = loadConfig(source, clientSchema(), opts);
  const databases = top.values['databases'] as ZodbDatabaseConfig[];
  const storage = (top.values['storage'] as StorageSection | null) ?? null;
  if (databases.length === 0 && storage === null) {
    throw new ConfigError(`no values for section type ${pyRepr(DATABASE_ABSTRACT)} or ${pyRepr(STORAGE_ABSTRACT)}; 1 required`, {
      url: tree.url,
      line: 0,
    });
  }
  const main = storage ?? databases[0]!.storage;
  const client = isClientStorage(main) ? clientOptions(main, { cwd: opts.cwd }) : null;
  for (const db of databases) if (db.storage !== main && isClientStorage(db.storage)) clientOptions(db.storage, { cwd: opts.cwd });
  return { url: tree.url, databases, storage, client, warnings: client ? [...client.warnings] : [], components };
}
