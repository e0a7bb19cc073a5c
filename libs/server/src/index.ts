/**
 * @zeo-ts/server — the ZEO 5 storage server.
 *
 *   const server = new StorageServer({ '1': storage }, { client_conflict_resolution: true });
 *   const listener = await serve(server, { address: { host: '127.0.0.1', port: 0 }, announce: 'M' });
 *   ...
 *   await listener.close();   // stops accepting, closes connections
 *   await server.close();     // aborts transactions, closes storages
 *
 * The core (`StorageServer`, `ZEOSession`) is transport-independent; `serve()` connects it to TCP,
 * Unix-domain or TLS sockets through @zeo-ts/wire.
 */
export { StorageServer, StorageEntry, type StorageServerOptions, type InvalidationEntry } from './server.ts';
export { ZEOSession, FinishResult, REGISTERED_METHODS, invalidationArgs, type ClientChannel } from './session.ts';
export { CommitLock } from './lock.ts';
export { StorageStats, ctime, statusMap, pythonJson, monitorReport } from './stats.ts';
export { PyBuiltinError, OidKeyError, TxnMismatchError, ProtocolViolation } from './errors.ts';
export { PyFloat, PyListValue, pyFloat, pyList } from './values.ts';
export { serve, toWire, loadTrustAnchors, type ServeOptions, type Listener, type ListenAddress, type TlsOptions } from './net.ts';
export { serveMonitor } from './monitor.ts';
export { BLOB_CHUNK_SIZE, BlobKeyError, checkSharedBlobName, sharedBlobPath } from './blobs.ts';
