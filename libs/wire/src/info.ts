/**
 * The info mapping of `get_info` and `info` (zeo5-protocol §13). Pure helpers for servers
 * (build the map with exactly the advertised capabilities, S-31) and clients (defaults, merging,
 * reading capabilities back, C-5).
 */
import type { WireMap, WireValue } from './values.ts';

/** Capabilities a storage can advertise through `interfaces` (§13). */
export interface StorageCapabilities {
  /** restorea (IStorageRestoreable) */
  restore?: boolean;
  /** iterator_* (IStorageIteration) */
  iteration?: boolean;
  /** undoLog / undoInfo / undoa (IStorageUndoable); also sets supportsUndo */
  undo?: boolean;
  /** record_iternext (IStorageCurrentRecordIteration); also sets supports_record_iternext */
  recordIteration?: boolean;
  /** deleteObject (IExternalGC) */
  externalGC?: boolean;
  /** sendBlob / storeBlob* (IBlobStorage) */
  blobs?: boolean;
  /** blobs restorable (IBlobStorageRestoreable; with blobs and restore) */
  blobRestore?: boolean;
}

/**
 * The `interfaces` value: a tuple of (module, name) 2-tuples in the order the reference
 * FileStorage reports them, ending with IStorage and zope.interface.Interface.
 */
export function interfacePairs(cap: StorageCapabilities): [string, string][] {
  const z = 'ZODB.interfaces';
  const out: [string, string][] = [];
  if (cap.blobs && cap.blobRestore) out.push([z, 'IBlobStorageRestoreable']);
  if (cap.blobs) out.push([z, 'IBlobStorage']);
  if (cap.restore) out.push([z, 'IStorageRestoreable']);
  if (cap.iteration) out.push([z, 'IStorageIteration']);
  if (cap.undo) out.push([z, 'IStorageUndoable']);
  if (cap.recordIteration) out.push([z, 'IStorageCurrentRecordIteration']);
  if (cap.externalGC) out.push([z, 'IExternalGC']);
  out.push([z, 'IStorage']);
  out.push(['zope.interface', 'Interface']);
  return out;
}

/**
 * The `get_info` reply (§13): length, size, name, supportsUndo, supports_record_iternext,
 * interfaces — in the reference's key order.
 */
export function infoMap(facts: { length: number; size: number; name: string }, cap: StorageCapabilities): WireMap {
  return {
    length: facts.length,
    size: facts.size,
    name: facts.name,
    supportsUndo: !!cap.undo,
    supports_record_iternext: !!cap.recordIteration,
    interfaces: interfacePairs(cap),
  };
}

/** What a reference client starts from before merging get_info and info messages (§13). */
export function clientInfoDefaults(): WireMap {
  return { length: 0, size: 0, name: 'ZEO Client', supportsUndo: 0, interfaces: [] };
}

/** Merge an `info` update (or the get_info reply) into a client's info copy, in place. */
export function mergeInfo(into: WireMap, update: WireValue): WireMap {
  if (update && typeof update === 'object' && !Array.isArray(update) && !(update instanceof Uint8Array)) {
    for (const [k, v] of Object.entries(update as WireMap)) into[k] = v;
  }
  return into;
}

/** The capabilities a client may enable from an info map (the six pairs the reference checks). */
export function capabilitiesFromInfo(info: WireMap): StorageCapabilities {
  const pairs = new Set<string>();
  const ifs = info['interfaces'];
  if (Array.isArray(ifs)) {
    for (const p of ifs) if (Array.isArray(p) && p.length === 2) pairs.add(`${String(p[0])}.${String(p[1])}`);
  }
  const has = (n: string) => pairs.has(`ZODB.interfaces.${n}`);
  return {
    restore: has('IStorageRestoreable'),
    iteration: has('IStorageIteration'),
    undo: has('IStorageUndoable'),
    recordIteration: has('IStorageCurrentRecordIteration'),
    externalGC: has('IExternalGC'),
    blobs: has('IBlobStorage'),
    blobRestore: has('IBlobStorageRestoreable'),
  };
}
