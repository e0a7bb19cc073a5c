/**
 * Named providers that configuration keys refer to by name where upstream imports a Python
 * object by dotted name: `<ssl> password-function` (§3.3 #7), `<filestorage> packer` (§3.4.1)
 * and log `formatter` (§3.5.2). The embedding application registers them; the loaders report
 * an unknown name as a configuration error.
 */
import { pyRepr } from './errors.ts';

export type ProviderKind = 'password-function' | 'packer' | 'formatter' | 'storage-opener';

/**
 * A 'storage-opener' provider, registered under a storage section type name (e.g. 'zrs'),
 * opens that section for a server. The result is an IStorage of @zeo-ts/storage; config does
 * not depend on that package, so it is typed loosely here.
 */
export type StorageOpener = (section: unknown, context: StorageOpenContext) => Promise<unknown>;
export interface StorageOpenContext {
  /** the server's working directory, for relative paths */
  cwd: string;
  /** the server is read-only as a whole */
  readOnlyServer: boolean;
  /** a pino logger */
  logger?: unknown;
}

const providers = new Map<ProviderKind, Map<string, unknown>>();

export function registerProvider(kind: ProviderKind, name: string, value: unknown): void {
  let m = providers.get(kind);
  if (!m) providers.set(kind, (m = new Map()));
  if (m.has(name)) throw new Error(`${kind} provider already registered: ${pyRepr(name)}`);
  m.set(name, value);
}

export function getProvider<T = unknown>(kind: ProviderKind, name: string): T | undefined {
  return providers.get(kind)?.get(name) as T | undefined;
}

export function hasProvider(kind: ProviderKind, name: string): boolean {
  return providers.get(kind)?.has(name) ?? false;
}

/** Remove a provider (tests, plugin unloading). */
export function unregisterProvider(kind: ProviderKind, name: string): boolean {
  return providers.get(kind)?.delete(name) ?? false;
}
