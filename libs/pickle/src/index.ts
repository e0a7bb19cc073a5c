/**
 * @zeo-ts/pickle — pure pickle codec (bytes in, values out).
 *
 * THE SIGNATURES BELOW ARE THE AGREED PUBLIC API; the implementation is in progress.
 * Other packages (storage, filestorage, fs-tools, wire) code against these names.
 */

/** All oids referenced by one ZODB object record (class pickle followed by state pickle). filestorage spec §4.3. */
export function referencesf(data: Uint8Array, out: bigint[] = []): bigint[] {
  void data;
  void out;
  throw new Error('referencesf: not implemented yet');
}

/** The (module, class name) of a ZODB object record, as ZODB.utils.get_pickle_metadata. filestorage spec §4.4. */
export function getPickleMetadata(data: Uint8Array): { module: string; name: string } {
  void data;
  throw new Error('getPickleMetadata: not implemented yet');
}

/** Decode a transaction extension (empty, or a pickled dict) into a plain object. filestorage spec §3.3. */
export function decodeExtension(ext: Uint8Array): Record<string, unknown> {
  if (ext.length === 0) return {};
  throw new Error('decodeExtension: not implemented yet');
}

/** Encode a transaction extension exactly as Python ZODB does (empty for {}). filestorage spec §3.3. */
export function encodeExtension(ext: Record<string, unknown>): Buffer {
  if (Object.keys(ext).length === 0) return Buffer.alloc(0);
  throw new Error('encodeExtension: not implemented yet');
}
