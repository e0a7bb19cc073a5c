/**
 * Server side of the blob methods (zeo5-protocol §8.4): the per-connection upload file of
 * storeBlobStart/Chunk/End, the blob records of a transaction, the sendBlob download stream, and
 * the shared-blob-dir file names.
 *
 * Uploads are written with synchronous writes of at most one wire chunk each (59000 bytes from the
 * reference client): the data never queues in memory, and a failing disk fails the call that
 * brought the chunk (the connection closes and the partial file is removed).
 */
import { closeSync, copyFileSync, linkSync, openSync, unlinkSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, sep } from 'node:path';
import {
  POSKeyError,
  StorageError,
  autoLayoutSelect,
  getBlobLayout,
  isBlobStorage,
  u64,
  type IBlobStorage,
  type IStorage,
  type Oid,
} from '@zeo-ts/storage';
import { withWireState } from '@zeo-ts/wire';
import { PyBuiltinError } from './errors.ts';

/** Bytes per receiveBlobChunk (the reference server's read size). */
export const BLOB_CHUNK_SIZE = 59000;

/** The storage as an IBlobStorage, or the StorageError every blob method of a blob-less storage raises. */
export function blobStorageOf(storage: IStorage, storageName: string | undefined, method: string): IBlobStorage {
  if (!isBlobStorage(storage)) {
    throw new StorageError(`${method}: blobs are not supported by this server (storage '${storageName}' has no blob directory)`);
  }
  return storage;
}

/** A blob upload in progress on one connection (storeBlobStart … storeBlobEnd). */
export class BlobUpload {
  bytes = 0;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly maxBytes: number,
  ) {
    this.fd = fd;
  }

  /** Create a new upload file (mode 0600) in `dir` (the storage's temporaryDirectory()). */
  static create(dir: string, maxBytes: number): BlobUpload {
    for (let attempt = 0; ; attempt++) {
      const path = join(dir, `zeo-upload-${randomBytes(8).toString('hex')}.tmp`);
      try {
        return new BlobUpload(path, openSync(path, 'wx', 0o600), maxBytes);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' && attempt < 10) continue;
        throw new StorageError(`storeBlobStart: cannot create a blob upload file in ${dir}: ${(err as Error).message}`);
      }
    }
  }

  /** Append one chunk (all of it, or a StorageError naming the file and offset). */
  write(chunk: Buffer): void {
    if (this.fd === null) throw new StorageError(`storeBlobChunk: upload file ${this.path} is closed`);
    if (this.bytes + chunk.length > this.maxBytes) {
      throw new StorageError(`storeBlobChunk: blob upload ${this.path} exceeds ${this.maxBytes} bytes (max_blob_bytes)`);
    }
    let off = 0;
    while (off < chunk.length) {
      let n: number;
      try {
        n = writeSync(this.fd, chunk, off, chunk.length - off, this.bytes + off);
      } catch (err) {
        throw new StorageError(`storeBlobChunk: cannot write blob upload file ${this.path} at offset ${this.bytes + off}: ${(err as Error).message}`);
      }
      if (n <= 0) throw new StorageError(`storeBlobChunk: short write to ${this.path} at offset ${this.bytes + off}`);
      off += n;
    }
    this.bytes += chunk.length;
  }

  /** Close the file, keeping it (storeBlobEnd). */
  finish(): string {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      try {
        closeSync(fd);
      } catch (err) {
        removeQuietly(this.path);
        throw new StorageError(`storeBlobEnd: cannot close blob upload file ${this.path}: ${(err as Error).message}`);
      }
    }
    return this.path;
  }

  /** Close and remove the file (abort, disconnect, errors). */
  discard(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
    removeQuietly(this.path);
  }
}

/** One blob record of a transaction: stored with storeBlob at vote. */
export interface BlobRecord {
  oid: Buffer;
  serial: Buffer;
  data: Buffer;
  /** the uploaded (or shared-directory) file; kept until the transaction ends */
  file: string;
}

/**
 * A file the storage may take: a hard link to `file` beside it (a copy where links are not
 * possible), so that the upload survives a vote round that the storage aborts (ccr re-votes,
 * zeo5-protocol §10.6: unlike the reference, blobs are kept until the transaction ends).
 */
export function workingCopy(file: string, n: number): string {
  const target = `${file}-${n}`;
  removeQuietly(target);
  try {
    linkSync(file, target);
  } catch {
    try {
      copyFileSync(file, target);
    } catch (err) {
      throw new StorageError(`cannot prepare blob file ${file} for storing: ${(err as Error).message}`);
    }
  }
  return target;
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone already (moved by the storage) or never created */
  }
}

/** POSKeyError whose Python args are `(message, oid, serial)`, as the reference's loadBlob raises (§6.4). */
export class BlobKeyError extends POSKeyError {
  constructor(
    message: string,
    readonly oidBytes: Buffer,
    readonly serialBytes: Buffer,
  ) {
    super(u64(oidBytes), message, oidBytes);
    // the transport encodes POSKeyErrors by their key unless told the state
    withWireState(this, [message, oidBytes, serialBytes]);
  }
  override pythonArgs(): unknown[] {
    return [this.message, this.oidBytes, this.serialBytes];
  }
}

/** sendBlob's result: the open blob file, streamed before the nil reply (see ZEOSession). */
export class BlobSend {
  constructor(
    readonly oid: Buffer,
    readonly serial: Buffer,
    readonly path: string,
    readonly fh: FileHandle,
  ) {}
}

/**
 * The checks of storeBlobShared's file name (S-34): a bare name (no path separator) ending in
 * `.tmp` or `.tmp` plus one character; else builtins.ValueError (the connection closes).
 */
export function checkSharedBlobName(name: string): void {
  if (name.includes('/') || name.includes(sep) || name.includes('\0') || !(name.endsWith('.tmp') || name.slice(0, -1).endsWith('.tmp'))) {
    throw new PyBuiltinError('ValueError', [name]);
  }
}

/**
 * The file `name` inside oid's directory of the storage's blob directory (storeBlobShared): the
 * storage's own BlobDirectory when it has one (FileStorage's `blobs`), else the directory holding
 * its temporaryDirectory() (ZODB puts `tmp/` inside the blob directory) in the layout of its
 * `.layout` marker.
 */
export function sharedBlobPath(s: IBlobStorage, oid: Buffer, name: string): string {
  const own = (s as unknown as { blobs?: { oidPath?: (oid: Oid) => string } }).blobs;
  if (own && typeof own.oidPath === 'function') return join(own.oidPath(u64(oid)), name);
  const dir = dirname(s.temporaryDirectory());
  return join(dir, getBlobLayout(autoLayoutSelect(dir), dir).oidToPath(u64(oid)), name);
}
