/**
 * @zeo-ts/filestorage — ZODB FileStorage (FS30), byte-compatible with Python ZODB; Python 2's FS21
 * files open read-only.
 *
 *  - format.ts: pure record codecs (constants, transaction header, data record, undo ids)
 *  - file-reader.ts: positional reading/walking of a data file with clear errors
 *  - errors.ts: FileStorageError and friends (file + byte position in messages)
 *  - fsindex.ts: compact oid → position hash index
 *  - index-file.ts: Data.fs.index codec (Python's fsIndex format)
 *  - lockfile.ts: Data.fs.lock (flock, " <pid>\n")
 *  - storage.ts: the FileStorage class (IStorage)
 *  - pack.ts: pack with GC (and the blob files it frees)
 *  - config.ts: opening <filestorage> / <blobstorage> sections of zeo.conf
 */
export * from './errors.ts';
export * from './format.ts';
export * from './file-reader.ts';
export * from './fsindex.ts';
export * from './index-file.ts';
export * from './lockfile.ts';
export { FileStorage, CommitLock, ChunkReader, type FileStorageOptions, type FileUndoLogEntry, type FileDataRecord, type FileTransactionRecord } from './storage.ts';
export { packStorage } from './pack.ts';
export { appendRawTransactions, internalsOf as rawAppendInternalsOf, lastAppendedTid, syncRawAppends, unsyncedRawBytes, RawAppendError, MAX_RAW_SEGMENT, type RawAppendResult, type RawAppendInternals } from './raw-append.ts';
export { removeBlobsTaggedDuringPack } from './pack.ts';
export { fileStorageArgs, openFileStorageSection, type StorageSectionLike, type OpenSectionContext } from './config.ts';
