/**
 * The pickle facts the tools print, from @zeo-ts/pickle (filestorage spec §4.3, §4.4).
 */
import { getPickleMetadata, referencesf } from '@zeo-ts/pickle';

/** module.class of a record as ZODB.utils.get_pickle_metadata gives it ("." when unknown). */
export function className(data: Uint8Array): string {
  try {
    const { module, name } = getPickleMetadata(data);
    return `${module}.${name}`;
  } catch {
    return '.';
  }
}

/** (module, name) pair, ('', '') when the class pickle cannot be read. */
export function classParts(data: Uint8Array): { module: string; name: string } {
  try {
    return getPickleMetadata(data);
  } catch {
    return { module: '', name: '' };
  }
}

/**
 * ZODB.serialize.get_refs: (oid, klass) for every strong reference, in encounter order. The
 * class is what noload leaves in the reference tuple, which for GLOBAL classes (everything ZODB
 * writes) is None; so klass is always null here.
 */
export function getRefs(data: Uint8Array): Array<[bigint, null]> {
  return referencesf(data).map((oid) => [oid, null]);
}
