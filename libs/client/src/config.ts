/**
 * ClientStorage from a `<zeoclient>` / `<clientstorage>` section (operations §4) through
 * @zeo-ts/config.
 */
import { clientOptions, loadClientConfig, type ClientOptions, type ConfigSource, type LoadOptions } from '@zeo-ts/config';
import type { ServerAddress } from './address.ts';
import { ClientStorage, type ClientStorageOptions } from './client-storage.ts';

/** Map normalised client settings (ClientOptions of @zeo-ts/config) to ClientStorage options. */
export function storageOptionsFromConfig(c: ClientOptions, extra: Partial<ClientStorageOptions> = {}): ClientStorageOptions {
  const addresses: ServerAddress[] = c.servers.map((a) =>
    a.family === 'unix' ? { path: a.path } : { host: a.host === '' ? '127.0.0.1' : a.host, port: a.port ?? 0 },
  );
  for (const a of addresses) if ('port' in a && !a.port) throw new RangeError(`server address without a port in ${c.pos.url}:${c.pos.line}`);
  return {
    addresses,
    storage: c.storage,
    name: c.name || undefined,
    cacheSize: c.cache_size,
    cachePath: c.cache_path,
    readOnly: c.read_only,
    readOnlyFallback: c.read_only_fallback,
    wait: c.wait,
    waitTimeout: c.wait_timeout,
    serverSync: c.server_sync,
    clientLabel: c.client_label,
    blobDir: c.blob_dir,
    sharedBlobDir: c.shared_blob_dir,
    blobCacheSize: c.blob_cache_size,
    blobCacheSizeCheck: c.blob_cache_size_check,
    tls: c.ssl
      ? {
          certificate: c.ssl.certificate,
          key: c.ssl.key ?? undefined,
          authenticate: c.ssl.authenticate ?? undefined,
          checkHostname: c.ssl.check_hostname,
          serverHostname: c.ssl.server_hostname ?? undefined,
        }
      : null,
    ...extra,
  };
}

/**
 * Open a ClientStorage from configuration text or a file (a `<zeoclient>`/`<clientstorage>`
 * section, alone or inside `<zodb>`). Throws ConfigError for bad configuration.
 */
export async function openClientFromConfig(source: ConfigSource, extra: Partial<ClientStorageOptions> = {}, load: LoadOptions = {}): Promise<ClientStorage> {
  const cfg = loadClientConfig(source, load);
  if (!cfg.client) throw new TypeError(`${cfg.url}: the configuration's storage is not a ZEO client (<zeoclient> or <clientstorage>)`);
  return ClientStorage.open(storageOptionsFromConfig(cfg.client, extra));
}

export { clientOptions };
