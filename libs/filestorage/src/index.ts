/**
 * @zeo-ts/filestorage — ZODB FileStorage (FS30), byte-compatible with Python ZODB.
 *
 *  - format.ts: pure record codecs (constants, transaction header, data record, undo ids)
 *  - file-reader.ts: positional reading/walking of a data file with clear errors
 *  - errors.ts: FileStorageError and friends (file + byte position in messages)
 */
export * from './errors.ts';
export * from './format.ts';
export * from './file-reader.ts';
