/**
 * A small IBlobStorage for tests of the server and clients that must not depend on FileStorage: a
 * MappingStorage whose blobs live in a ZODB 'bushy' blob directory (`<dir>/0x00/…/0x01/<tid>.blob`,
 * `.layout`, `tmp/`), so shared-blob-dir clients can read it directly.
 */
import { existsSync, renameSync, rmSync, unlinkSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import {
  BlobDirectory,
  MappingStorage,
  POSKeyError,
  StorageError,
  type IBlobStorage,
  type MappingStorageOptions,
  type Oid,
  type Tid,
  type TransactionMetaData,
} from '@zeo-ts/storage';

export class DirBlobStorage extends MappingStorage implements IBlobStorage {
  private pendingBlobs = new Map<TransactionMetaData, Array<{ oid: Oid; file: string }>>();
  readonly blobs: BlobDirectory;

  constructor(
    readonly blobDir: string,
    options: MappingStorageOptions = {},
  ) {
    super(options);
    this.blobs = new BlobDirectory(blobDir, { layout: 'bushy' });
  }

  supportsBlobs(): boolean {
    return true;
  }

  temporaryDirectory(): string {
    return this.blobs.tempDir;
  }

  /** the committed file name of revision `serial` of `oid` */
  blobFilename(oid: Oid, serial: Tid): string {
    return this.blobs.blobFilename(oid, serial);
  }

  async storeBlob(oid: Oid, serial: Tid, data: Buffer, blobFilename: string, txn: TransactionMetaData): Promise<void> {
    await this.store(oid, serial, data, txn);
    this.takeBlob(oid, blobFilename, txn);
  }

  async restoreBlob(oid: Oid, serial: Tid, data: Buffer | null, blobFilename: string | null, prevTxn: Tid | null, txn: TransactionMetaData): Promise<void> {
    await this.restore(oid, serial, data, prevTxn, txn);
    if (blobFilename !== null) this.takeBlob(oid, blobFilename, txn);
  }

  private takeBlob(oid: Oid, file: string, txn: TransactionMetaData): void {
    if (!existsSync(file)) throw new StorageError(`storeBlob: no blob file ${file}`);
    const dir = this.blobs.oidPath(oid, true);
    const pending = join(dir, `pending-${process.pid}-${Math.random().toString(36).slice(2)}.tmp`);
    renameSync(file, pending);
    let list = this.pendingBlobs.get(txn);
    if (!list) this.pendingBlobs.set(txn, (list = []));
    list.push({ oid, file: pending });
  }

  override async tpc_finish(txn: TransactionMetaData): Promise<Tid> {
    const list = this.pendingBlobs.get(txn) ?? [];
    this.pendingBlobs.delete(txn);
    const tid = await super.tpc_finish(txn);
    for (const b of list) {
      const target = this.blobFilename(b.oid, tid);
      renameSync(b.file, target);
      chmodSync(target, 0o444);
    }
    return tid;
  }

  override async tpc_abort(txn: TransactionMetaData): Promise<void> {
    for (const b of this.pendingBlobs.get(txn) ?? []) {
      try {
        unlinkSync(b.file);
      } catch {
        /* gone */
      }
    }
    this.pendingBlobs.delete(txn);
    await super.tpc_abort(txn);
  }

  async loadBlob(oid: Oid, serial: Tid): Promise<string> {
    const f = this.blobFilename(oid, serial);
    if (!existsSync(f)) throw new POSKeyError(oid, `No blob file at ${f}`);
    return f;
  }

  /** remove the whole blob directory (tests) */
  destroy(): void {
    rmSync(this.blobDir, { recursive: true, force: true });
  }
}
