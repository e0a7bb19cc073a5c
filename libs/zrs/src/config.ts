/**
 * `%import zc.zrs` (zrs spec §3.1, §3.2): the <zrs> section type, and the legacy <primary> /
 * <secondary> sections, registered with @zeo-ts/config; and opening them as storages.
 *
 * Extra keys of ours (all optional, upstream defaults kept; docs/zrs-configuration.md):
 * check-checksums (true), reconnect-delay (60 s, fixed like upstream), reconnect-max-delay (none:
 * no backoff; when set, the delay doubles after each consecutive failure up to it), native (auto),
 * ack-quorum (0), ack-timeout (10 s), ack-timeout-policy (refuse | async).
 */
import { resolve } from 'node:path';
import { registerImport, STORAGE_ABSTRACT, ValueConversionError, defaultStorageConvert, isRegisteredImport, type SectionTypeDef, type SocketAddress, type StorageSection, type KeyDef } from '@zeo-ts/config';
import { FileStorage, openFileStorageSection } from '@zeo-ts/filestorage';
import { MappingStorage, type IStorage } from '@zeo-ts/storage';
import type { Logger } from 'pino';
import { Primary } from './primary.ts';
import { Secondary } from './secondary.ts';
import { sameAddress, type ZrsAddress } from './address.ts';

const OUR_KEYS: KeyDef[] = [
  { name: 'keep-alive-delay', datatype: 'integer', default: '0' },
  { name: 'check-checksums', datatype: 'boolean', default: 'true' },
  { name: 'reconnect-delay', datatype: 'float', default: '60' },
  { name: 'reconnect-max-delay', datatype: 'float' },
  { name: 'native', default: 'auto' },
  { name: 'ack-quorum', datatype: 'integer', default: '0' },
  { name: 'ack-timeout', datatype: 'float', default: '10' },
  { name: 'ack-timeout-policy', default: 'refuse' },
];

/** Longest reconnect delay we accept (one day): beyond that a secondary would look dead. */
export const MAX_RECONNECT_DELAY = 86400;

function checkDelay(key: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_RECONNECT_DELAY) {
    throw new ValueConversionError(`${key} must be a number of seconds greater than 0 and at most ${MAX_RECONNECT_DELAY}, not ${JSON.stringify(v)}`);
  }
}

function checkOurs(o: Record<string, unknown>): void {
  checkDelay('reconnect-delay', o.reconnect_delay);
  if (o.reconnect_max_delay !== null && o.reconnect_max_delay !== undefined) {
    checkDelay('reconnect-max-delay', o.reconnect_max_delay);
    if ((o.reconnect_max_delay as number) < (o.reconnect_delay as number)) {
      throw new ValueConversionError(`reconnect-max-delay (${o.reconnect_max_delay}) must not be less than reconnect-delay (${o.reconnect_delay})`);
    }
  }
  if ((o.keep_alive_delay as number) < 0) throw new ValueConversionError(`keep-alive-delay must not be negative, not ${o.keep_alive_delay}`);
  if (!['auto', 'never', 'always'].includes(String(o.native))) throw new ValueConversionError(`native must be auto, never or always, not ${JSON.stringify(o.native)}`);
  if (!['refuse', 'async'].includes(String(o.ack_timeout_policy))) throw new ValueConversionError(`ack-timeout-policy must be refuse or async, not ${JSON.stringify(o.ack_timeout_policy)}`);
  if ((o.ack_quorum as number) < 0) throw new ValueConversionError('ack-quorum must not be negative');
}

export const zrsType: SectionTypeDef = {
  name: 'zrs',
  implements: [STORAGE_ABSTRACT],
  kind: 'ZRS',
  keys: [{ name: 'replicate-to', datatype: 'socket-binding-address' }, { name: 'replicate-from', datatype: 'socket-connection-address' }, ...OUR_KEYS],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base', required: true }],
  convert: (s) => {
    const st = defaultStorageConvert(zrsType)(s);
    const o = st.options;
    const to = o.replicate_to as SocketAddress | null;
    const from = o.replicate_from as SocketAddress | null;
    if (!to && !from) throw new ValueConversionError('You must specify replicate-to and/or replicate-from.');
    if (to && from && sameAddress(toZrsAddress(to), toZrsAddress(from))) throw new ValueConversionError('Values for replicate-to and replicate-from must be different.');
    checkOurs(o);
    return st;
  },
};

const LEGACY_STORAGE_KEYS: KeyDef[] = [{ name: 'filestorage-path' }, { name: 'blob-dir' }];

export const legacyPrimaryType: SectionTypeDef = {
  name: 'primary',
  implements: [STORAGE_ABSTRACT],
  kind: 'ZRS',
  keys: [{ name: 'replicate-to', datatype: 'socket-binding-address' }, { name: 'address', datatype: 'socket-binding-address' }, ...LEGACY_STORAGE_KEYS, ...OUR_KEYS],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base' }],
  convert: (s) => {
    const st = defaultStorageConvert(legacyPrimaryType)(s);
    const o = st.options;
    o.replicate_to = o.replicate_to ?? o.address ?? null;
    if (!o.replicate_to) throw new ValueConversionError('<primary> needs replicate-to (or address)');
    if (!o.base && !o.filestorage_path) throw new ValueConversionError('<primary> needs a storage section or filestorage-path');
    o.replicate_from = null;
    checkOurs(o);
    return st;
  },
};

export const legacySecondaryType: SectionTypeDef = {
  name: 'secondary',
  implements: [STORAGE_ABSTRACT],
  kind: 'ZRS',
  keys: [{ name: 'replicate-from', datatype: 'socket-connection-address' }, { name: 'address', datatype: 'socket-connection-address' }, { name: 'replicate-to', datatype: 'socket-binding-address' }, ...LEGACY_STORAGE_KEYS, ...OUR_KEYS],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base' }],
  convert: (s) => {
    const st = defaultStorageConvert(legacySecondaryType)(s);
    const o = st.options;
    o.replicate_from = o.replicate_from ?? o.address ?? null;
    if (!o.replicate_from) throw new ValueConversionError('<secondary> needs replicate-from (or address)');
    if (!o.base && !o.filestorage_path) throw new ValueConversionError('<secondary> needs a storage section or filestorage-path');
    checkOurs(o);
    return st;
  },
};

/** Make `%import zc.zrs` known to the configuration loader (idempotent). */
export function registerZrsConfig(): void {
  if (registered) return;
  registered = true;
  if (isRegisteredImport('zc.zrs')) return;
  registerImport('zc.zrs', [zrsType, legacyPrimaryType, legacySecondaryType]);
}
let registered = false;

export function toZrsAddress(a: SocketAddress): ZrsAddress {
  if (a.family === 'unix') return a.path;
  return { host: a.host, port: a.port ?? 0 };
}

export interface OpenOptions {
  logger?: Logger;
  /** open plain storages the caller knows (filestorage, mappingstorage are built in) */
  openOther?: (s: StorageSection) => Promise<IStorage>;
  /** ZEO server read-only flag */
  readOnly?: boolean;
  /** directory relative storage paths are resolved against (default: the process's) */
  cwd?: string;
}

/** Open a storage section: filestorage, mappingstorage, zrs, primary, secondary (others via openOther). */
export async function openStorageSection(s: StorageSection, opts: OpenOptions = {}): Promise<IStorage> {
  const o = s.options;
  switch (s.type) {
    case 'filestorage':
    case 'blobstorage':
      // blob-dir honoured: a blob-enabled primary speaks zrs2.1 only, a blob-enabled secondary announces it (§6.1, §6.2)
      return openFileStorageSection(s, { logger: opts.logger, cwd: opts.cwd });
    case 'mappingstorage':
      return new MappingStorage({ name: (o.name as string) ?? 'Mapping Storage' });
    case 'zrs':
    case 'primary':
    case 'secondary':
      return openZrs(s, opts);
    default:
      if (opts.openOther) return opts.openOther(s);
      throw new Error(`storage '${s.name}': <${s.type}> (${s.kind}) storages are not supported`);
  }
}

/** §3.1 construction order: open the base, wrap in a Primary (replicate-to), then a Secondary (replicate-from). */
export async function openZrs(s: StorageSection, opts: OpenOptions = {}): Promise<Primary | Secondary> {
  const o = s.options;
  let base: IStorage;
  if (o.base) base = await openStorageSection(o.base as StorageSection, opts);
  else {
    // the legacy <primary>/<secondary> sections name the file directly; relative to the server's directory
    const cwd = opts.cwd ?? process.cwd();
    base = new FileStorage(resolve(cwd, o.filestorage_path as string), {
      name: o.filestorage_path as string,
      logger: opts.logger,
      ...(o.blob_dir ? { blobDir: resolve(cwd, o.blob_dir as string) } : {}),
    });
  }
  const to = o.replicate_to as SocketAddress | null;
  const from = o.replicate_from as SocketAddress | null;
  let inner: IStorage = base;
  if (to) {
    if (!(base instanceof FileStorage)) throw new Error(`storage '${s.name}': a ZRS primary needs a FileStorage, not ${base.constructor.name}`);
    const p = new Primary(base, toZrsAddress(to), {
      logger: opts.logger,
      ackQuorum: o.ack_quorum as number,
      ackTimeout: (o.ack_timeout as number) * 1000,
      ackTimeoutPolicy: o.ack_timeout_policy as 'refuse' | 'async',
    });
    await p.listening;
    inner = p;
  }
  if (!from) return inner as Primary;
  return new Secondary(inner, toZrsAddress(from), {
    logger: opts.logger,
    keepAliveDelay: o.keep_alive_delay as number,
    checkChecksums: o.check_checksums as boolean,
    reconnectDelay: o.reconnect_delay as number,
    maxReconnectDelay: (o.reconnect_max_delay as number | null) ?? undefined,
    native: o.native as 'auto' | 'never' | 'always',
  });
}
