/**
 * FileStorage-specific errors (Python: ZODB.FileStorage.FileStorage and .format). Each file error
 * names the file and the byte position where the problem was found.
 */
import { StorageError, StorageSystemError } from '@zeo-ts/storage';

/** Base of FileStorage errors. Python: ZODB.FileStorage.FileStorage.FileStorageError. */
export class FileStorageError extends StorageError {
  override readonly pythonClass: string = 'ZODB.FileStorage.FileStorage.FileStorageError';
  override name = 'FileStorageError';
}

/** The file is not a FileStorage (bad magic, bad start position). */
export class FileStorageFormatError extends FileStorageError {
  override readonly pythonClass: string = 'ZODB.FileStorage.FileStorage.FileStorageFormatError';
  override name = 'FileStorageFormatError';
  readonly file: string;
  readonly pos: number;
  constructor(file: string, pos: number, what: string) {
    super(`${file}: ${what} at ${pos}`);
    this.file = file;
    this.pos = pos;
  }
}

/** Damaged bytes found while reading (pack, tools, reads). Python: ZODB.FileStorage.format.CorruptedError. */
export class CorruptedError extends FileStorageError {
  override readonly pythonClass: string = 'ZODB.FileStorage.format.CorruptedError';
  override name = 'CorruptedError';
  readonly file: string;
  readonly pos: number;
  constructor(file: string, pos: number, what: string) {
    super(`${file}: ${what} at ${pos}`);
    this.file = file;
    this.pos = pos;
  }
}

/** A data record is damaged or is not what the caller expected (wrong oid, short read). */
export class CorruptedDataError extends CorruptedError {
  override readonly pythonClass: string = 'ZODB.FileStorage.format.CorruptedDataError';
  override name = 'CorruptedDataError';
}

/** A transaction record inside the file is damaged (open scan). */
export class CorruptedTransactionError extends CorruptedError {
  override readonly pythonClass: string = 'ZODB.FileStorage.FileStorage.CorruptedTransactionError';
  override name = 'CorruptedTransactionError';
}

/** Pack could not proceed (e.g. a backpointer names a transaction that is not in the output). */
export class PackError extends FileStorageError {
  override readonly pythonClass: string = 'ZODB.FileStorage.FileStorage.PackError';
  override name = 'PackError';
}

/** The storage quota was exceeded. */
export class FileStorageQuotaError extends StorageSystemError {
  override readonly pythonClass: string = 'ZODB.FileStorage.FileStorage.FileStorageQuotaError';
  override name = 'FileStorageQuotaError';
}

/** Another process holds the storage's lock file. Python: zc.lockfile.LockError. */
export class LockError extends FileStorageError {
  override readonly pythonClass: string = 'zc.lockfile.LockError';
  override name = 'LockError';
}
