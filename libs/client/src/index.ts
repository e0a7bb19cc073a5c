/**
 * @zeo-ts/client — the ZEO ClientStorage (zeo5-protocol §4–§12, client-cache §7–§8).
 *
 *   const s = await ClientStorage.open({ addresses: [{ host: '127.0.0.1', port: 8100 }], cachePath: 'c.zec' });
 *   const { data, tid } = await s.load(0n);
 *   s.onCommit((tid, oids) => ...);          // own commits and other clients' invalidations
 *   await s.prefetch([1n, 2n, 3n]);          // pipelined loadBefore
 *   await s.close();
 *
 * Blobs (IBlobStorage) with `blobDir` (a 'zeocache' blob cache, optionally bounded by
 * `blobCacheSize`) or `blobDir` + `sharedBlobDir` (the server's own blob directory):
 *   await s.storeBlob(oid, serial, data, fileInTemporaryDirectory, txn);  // C-15
 *   const path = await s.loadBlob(oid, serial);                            // cached or sendBlob (C-14)
 *
 * Or from configuration: `await openClientFromConfig('<zeoclient>\n server 8100\n</zeoclient>\n')`.
 */
export {
  ClientStorage,
  type ClientStorageOptions,
  type ClientTlsOptions,
  type ConflictResolver,
  type ConflictInfoForResolver,
} from './client-storage.ts';
export { normalizeAddress, normalizeAddresses, addressRepr, addressListRepr, type ServerAddress, type AddressLike } from './address.ts';
export { storageOptionsFromConfig, openClientFromConfig } from './config.ts';
export { ClientZ5Codec, clientCodecs } from './z5-client.ts';
export { BlobCache, ZEOCACHE_BUCKETS, UPLOAD_CHUNK_SIZE, type BlobCacheOptions } from './blob-cache.ts';
