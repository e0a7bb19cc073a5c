/**
 * ZEO's section types: the server's `<zeo>` with its `<ssl>` (operations spec §3.2, §3.3,
 * component 'zeo-ts.server', always part of the server schema) and the client's
 * `<clientstorage>` with its own `<ssl>` (§4.2, §4.5, component 'ZEO', loaded by `%import ZEO`).
 *
 * The two `<ssl>` types are private to their parent section, so `%import ZEO` in a server
 * configuration works ([D] §2.5; upstream fails with `type name cannot be redefined: 'ssl'`).
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pyRepr, ValueConversionError } from '../errors.ts';
import { STORAGE_ABSTRACT } from '../matcher.ts';
import type { Datatype } from '../datatypes.ts';
import type { SectionTypeDef } from '../schema.ts';
import { expandUser, pathExists } from '../source.ts';
import { ZODB_COMPONENT } from './zodb.ts';

/** Server `<ssl> authenticate`: a file, a directory, or `DYNAMIC` (§3.3 #3, #8). */
const sslAuthenticate: Datatype<string> = (v, ctx) => {
  if (v === 'DYNAMIC') return v;
  const nv = expandUser(v);
  const p = isAbsolute(nv) ? nv : resolvePath(ctx.cwd ?? process.cwd(), nv);
  // [D] upstream crashes with a traceback (exit 1) when building the TLS context.
  if (!pathExists(p)) {
    throw new ValueConversionError(`authenticate names no existing file or directory: ${pyRepr(v)} (use a PEM file, a CA directory or DYNAMIC)`);
  }
  return nv;
};

export const serverSslType: SectionTypeDef = {
  name: 'ssl',
  keys: [
    { name: 'certificate', datatype: 'existing-dirpath', required: true },
    { name: 'key', datatype: 'existing-dirpath' },
    { name: 'password-function' },
    { name: 'authenticate', datatype: sslAuthenticate, required: true },
  ],
};

export const zeoType: SectionTypeDef = {
  name: 'zeo',
  sections: [{ type: serverSslType, name: '*', attribute: 'ssl' }],
  keys: [
    { name: 'address', datatype: 'socket-binding-address', required: true },
    { name: 'read-only', datatype: 'boolean', default: 'false' },
    { name: 'invalidation-queue-size', datatype: 'integer', default: '100' },
    { name: 'invalidation-age', datatype: 'float' },
    // No default: docs/server.rst claims 30 s, the code has none (Appendix A #1).
    { name: 'transaction-timeout', datatype: 'integer' },
    { name: 'pid-filename', datatype: 'existing-dirpath' },
    { name: 'client-conflict-resolution', datatype: 'boolean', default: 'false' },
    { name: 'msgpack', datatype: 'boolean' },
    // [L] keys of ZEO 3/4 (§3.7)
    { name: 'monitor-address', datatype: 'socket-binding-address' },
    { name: 'authentication-protocol' },
    { name: 'authentication-database' },
    { name: 'authentication-realm' },
    { name: 'drop-cache-rather-verify', datatype: 'boolean', default: 'false' },
  ],
};

export const clientSslType: SectionTypeDef = {
  name: 'ssl',
  keys: [
    { name: 'certificate', datatype: 'existing-dirpath', required: true },
    { name: 'key', datatype: 'existing-dirpath' },
    { name: 'password-function' },
    { name: 'authenticate', datatype: 'existing-dirpath' },
    { name: 'check-hostname', datatype: 'boolean', default: 'true' },
    { name: 'server-hostname' },
  ],
};

export const clientstorageType: SectionTypeDef = {
  name: 'clientstorage',
  implements: [STORAGE_ABSTRACT],
  kind: 'ClientStorageConfig',
  sections: [{ type: clientSslType, name: '*', attribute: 'ssl' }],
  keys: [
    { name: 'server', datatype: 'socket-connection-address', multi: true, required: true },
    { name: 'cache-size', datatype: 'byte-size', default: '20MB' },
    { name: 'cache-path' },
    { name: 'blob-dir' },
    { name: 'shared-blob-dir', datatype: 'boolean', default: 'no' },
    { name: 'blob-cache-size', datatype: 'byte-size' },
    { name: 'blob-cache-size-check', datatype: 'integer', default: '10' },
    { name: 'read-only', datatype: 'boolean', default: 'off' },
    { name: 'read-only-fallback', datatype: 'boolean', default: 'off' },
    { name: 'server-sync', datatype: 'boolean', default: 'off' },
    { name: 'wait-timeout', datatype: 'integer', default: '30' },
    { name: 'client-label' },
    { name: 'storage', default: '1' },
    { name: 'name', default: '' },
  ],
};

export const ZEO_COMPONENT = 'ZEO';
export const ZEO_SERVER_COMPONENT = 'zeo-ts.server';

export const zeoClientComponent = { imports: [ZODB_COMPONENT], types: [clientstorageType] };
export const zeoServerComponent = { types: [zeoType] };
