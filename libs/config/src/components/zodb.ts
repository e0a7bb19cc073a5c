/**
 * ZODB's section types (operations spec §3.4, §4.1, §4.7): the storages implementing
 * 'zodb.storage' and the `<zodb>` database section. Component name: 'ZODB'.
 */
import { ConfigError } from '../errors.ts';
import { defaultStorageConvert, STORAGE_ABSTRACT, type ConfigSection, type StorageSection } from '../matcher.ts';
import type { SectionTypeDef } from '../schema.ts';
import type { SocketAddress } from '../datatypes.ts';

export const DATABASE_ABSTRACT = 'zodb.database';

// ---------------------------------------------------------------- typed options

/** `<filestorage>` options (§3.4.1). */
export interface FileStorageOptions {
  path: string;
  create: boolean;
  read_only: boolean;
  quota: number | null;
  pack_gc: boolean;
  pack_keep_old: boolean;
  packer: string | null;
  /** null when absent or empty (no blob support). */
  blob_dir: string | null;
}

/** `<mappingstorage>` options (§3.4.2). */
export interface MappingStorageOptions {
  name: string;
}

/** `<demostorage>` options (§3.4.3): the nested storages sorted into base and changes. */
export interface DemoStorageOptions {
  name: string | null;
  base: StorageSection | null;
  changes: StorageSection | null;
}

/** `<blobstorage>` options (§3.4.4). */
export interface BlobStorageOptions {
  blob_dir: string;
  base: StorageSection | null;
}

/** `<zeoclient>` options exactly as configured (§4.1); see clientOptions() for the normalized view. */
export interface ZeoClientSectionOptions {
  server: SocketAddress[];
  storage: string;
  cache_size: number;
  name: string;
  client: string | null;
  var: string | null;
  min_disconnect_poll: number;
  max_disconnect_poll: number;
  wait: boolean;
  read_only: boolean;
  read_only_fallback: boolean;
  drop_cache_rather_verify: boolean;
  blob_dir: string | null;
  shared_blob_dir: boolean;
  blob_cache_size: number | null;
  blob_cache_size_check: number;
  username: string | null;
  password: string | null;
  realm: string | null;
  client_label: string | null;
}

/** `<zodb>` (§4.7). */
export interface ZodbDatabaseConfig {
  /** Section name (lowercase) or null. */
  name: string | null;
  storage: StorageSection;
  cache_size: number;
  cache_size_bytes: number;
  large_record_size: number;
  pool_size: number;
  pool_timeout: number | null;
  historical_pool_size: number;
  historical_cache_size: number;
  historical_cache_size_bytes: number;
  historical_timeout: number;
  /** `database-name`, defaulting to the section name (or 'unnamed'). */
  database_name: string;
  allow_implicit_cross_references: boolean | null;
  class_factory: string | null;
  pos: ConfigSection['pos'];
}

// ---------------------------------------------------------------- types

export const filestorageType: SectionTypeDef = {
  name: 'filestorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'FileStorage',
  keys: [
    { name: 'path', datatype: 'existing-dirpath', required: true },
    { name: 'blob-dir', datatype: 'existing-dirpath' },
    // Upstream has no default (None); None and false behave the same.
    { name: 'create', datatype: 'boolean', default: 'false' },
    { name: 'read-only', datatype: 'boolean', default: 'false' },
    { name: 'quota', datatype: 'byte-size' },
    { name: 'packer' },
    { name: 'pack-gc', datatype: 'boolean', default: 'true' },
    { name: 'pack-keep-old', datatype: 'boolean', default: 'true' },
  ],
  convert: (s) => {
    const st = defaultStorageConvert(filestorageType)(s);
    if (st.options['blob_dir'] === '') st.options['blob_dir'] = null;
    return st;
  },
};

export const mappingstorageType: SectionTypeDef = {
  name: 'mappingstorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'MappingStorage',
  keys: [{ name: 'name', default: 'Mapping Storage' }],
};

export const demostorageType: SectionTypeDef = {
  name: 'demostorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'DemoStorage',
  keys: [{ name: 'name' }],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', multi: true, attribute: 'factories' }],
  convert: (s) => {
    const factories = s.values['factories'] as StorageSection[];
    let base: StorageSection | null = null;
    let changes: StorageSection | null = null;
    for (const f of factories) {
      if (f.name === 'changes') changes = f;
      else if (base === null) base = f;
      // [D] upstream fails only when opening (exit 1); we report it while loading (§3.4.3).
      else throw new ConfigError('Too many base storages defined!', f.pos);
    }
    const st = defaultStorageConvert(demostorageType)(s);
    const opts: DemoStorageOptions = { name: (s.values['name'] as string | null) ?? null, base, changes };
    return { ...st, options: opts as unknown as Record<string, unknown> };
  },
};

export const blobstorageType: SectionTypeDef = {
  name: 'blobstorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'BlobStorage',
  keys: [{ name: 'blob-dir', required: true }],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base' }],
};

const bdbKeys = [
  { name: 'envdir', required: true },
  { name: 'interval', datatype: 'time-interval', default: '2m' },
  { name: 'kbyte', datatype: 'integer', default: '0' },
  { name: 'min', datatype: 'integer', default: '0' },
  { name: 'logdir' },
  { name: 'cachesize', datatype: 'byte-size', default: '128MB' },
  { name: 'frequency', datatype: 'time-interval', default: '0' },
  { name: 'packtime', datatype: 'time-interval', default: '4h' },
  { name: 'gcpack', datatype: 'integer', default: '0' },
  { name: 'read-only', datatype: 'boolean', default: 'off' },
];

function obsoleteBdb(type: string): (s: ConfigSection) => never {
  // Parsed (keys validated first), then refused: the implementation no longer exists (§3.4.6).
  return (s) => {
    throw new ConfigError(
      `<${type}> (a Berkeley DB storage) is obsolete and not supported: its implementation no longer exists; ` +
        `convert the data to a <filestorage>`,
      s.pos,
    );
  };
}

export const fullstorageType: SectionTypeDef = {
  name: 'fullstorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'BDBFullStorage',
  keys: bdbKeys,
  convert: obsoleteBdb('fullstorage'),
};

export const minimalstorageType: SectionTypeDef = {
  name: 'minimalstorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'BDBMinimalStorage',
  keys: bdbKeys,
  convert: obsoleteBdb('minimalstorage'),
};

export const zeoclientType: SectionTypeDef = {
  name: 'zeoclient',
  implements: [STORAGE_ABSTRACT],
  kind: 'ZEOClient',
  keys: [
    { name: 'server', datatype: 'socket-connection-address', multi: true, required: true },
    { name: 'blob-dir' },
    { name: 'shared-blob-dir', datatype: 'boolean', default: 'no' },
    { name: 'blob-cache-size', datatype: 'byte-size' },
    // Upstream: no schema default; ClientStorage's default is 10.
    { name: 'blob-cache-size-check', datatype: 'integer', default: '10' },
    { name: 'storage', default: '1' },
    { name: 'cache-size', datatype: 'byte-size', default: '20MB' },
    { name: 'name', default: '' },
    { name: 'client' },
    { name: 'var' },
    { name: 'min-disconnect-poll', datatype: 'integer', default: '5' },
    { name: 'max-disconnect-poll', datatype: 'integer', default: '300' },
    { name: 'wait', datatype: 'boolean', default: 'on' },
    { name: 'read-only', datatype: 'boolean', default: 'off' },
    { name: 'read-only-fallback', datatype: 'boolean', default: 'off' },
    { name: 'username' },
    { name: 'password' },
    { name: 'realm' },
    { name: 'drop-cache-rather-verify', datatype: 'boolean', default: 'off' },
    { name: 'client-label' },
  ],
};

export const zodbType: SectionTypeDef = {
  name: 'zodb',
  implements: [DATABASE_ABSTRACT],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'storage', required: true }],
  keys: [
    { name: 'cache-size', datatype: 'integer', default: '5000' },
    { name: 'cache-size-bytes', datatype: 'byte-size', default: '0' },
    { name: 'large-record-size', datatype: 'byte-size', default: '16MB' },
    { name: 'pool-size', datatype: 'integer', default: '7' },
    { name: 'pool-timeout', datatype: 'time-interval' },
    { name: 'historical-pool-size', datatype: 'integer', default: '3' },
    { name: 'historical-cache-size', datatype: 'integer', default: '1000' },
    { name: 'historical-cache-size-bytes', datatype: 'byte-size', default: '0' },
    { name: 'historical-timeout', datatype: 'time-interval', default: '5m' },
    { name: 'database-name' },
    { name: 'allow-implicit-cross-references', datatype: 'boolean' },
    { name: 'class-factory', datatype: 'dotted-name' },
  ],
  convert: (s): ZodbDatabaseConfig => {
    const v = s.values;
    return {
      name: s.name,
      storage: v['storage'] as StorageSection,
      cache_size: v['cache_size'] as number,
      cache_size_bytes: v['cache_size_bytes'] as number,
      large_record_size: v['large_record_size'] as number,
      pool_size: v['pool_size'] as number,
      pool_timeout: v['pool_timeout'] as number | null,
      historical_pool_size: v['historical_pool_size'] as number,
      historical_cache_size: v['historical_cache_size'] as number,
      historical_cache_size_bytes: v['historical_cache_size_bytes'] as number,
      historical_timeout: v['historical_timeout'] as number,
      database_name: (v['database_name'] as string | null) ?? s.name ?? 'unnamed',
      allow_implicit_cross_references: v['allow_implicit_cross_references'] as boolean | null,
      class_factory: v['class_factory'] as string | null,
      pos: s.pos,
    };
  },
};

export const ZODB_COMPONENT = 'ZODB';

export const zodbComponent = {
  abstracts: [STORAGE_ABSTRACT, DATABASE_ABSTRACT],
  types: [
    filestorageType,
    mappingstorageType,
    demostorageType,
    blobstorageType,
    fullstorageType,
    minimalstorageType,
    zeoclientType,
    zodbType,
  ],
};

/** The options of a storage section as the type of its section (throws TypeError on a mismatch). */
export function storageOptions(s: StorageSection, type: 'filestorage'): FileStorageOptions;
export function storageOptions(s: StorageSection, type: 'mappingstorage'): MappingStorageOptions;
export function storageOptions(s: StorageSection, type: 'demostorage'): DemoStorageOptions;
export function storageOptions(s: StorageSection, type: 'blobstorage'): BlobStorageOptions;
export function storageOptions(s: StorageSection, type: 'zeoclient'): ZeoClientSectionOptions;
export function storageOptions(s: StorageSection, type: string): Record<string, unknown>;
export function storageOptions(s: StorageSection, type: string): unknown {
  if (s.type !== type) throw new TypeError(`storage ${s.name ?? '(unnamed)'} is a <${s.type}> section, not <${type}>`);
  return s.options;
}
