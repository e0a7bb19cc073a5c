/**
 * The client's blob directory (zeo5-protocol §8.4, operations §4 blob settings):
 *
 *  - a private blob cache in ZEO's 'zeocache' layout, shared with Python ZEO clients on the same
 *    machine: `<dir>/.layout` = `zeocache`, blob (oid, tid) in `<dir>/<oid % 997>/<oid div 997>.<tid hex>.blob`,
 *    downloads written to `<blob>.dl` and renamed on receiveBlobStop, read-only files, access
 *    times set on every use, and the size check that removes least recently used blobs;
 *  - or the server's own blob directory (`shared-blob-dir`), in its 'bushy' or 'lawn' layout,
 *    read directly and never downloaded.
 *
 * Locking is per process: two loads of the same blob share one download. Unlike the reference
 * (zc.lockfile `.lock` files), other processes sharing the directory are not excluded.
 */
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readdir, stat, unlink, utimes, copyFile, rename, chmod } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { StorageError, autoLayoutSelect, getBlobLayout, p64, tidRepr, type BlobLayout, type Oid, type Tid } from '@zeo-ts/storage';

/** The reference's bucket count of the 'zeocache' layout. */
export const ZEOCACHE_BUCKETS = 997n;
/** Bytes per storeBlobChunk (the reference client's read size). */
export const UPLOAD_CHUNK_SIZE = 59000;

export interface BlobCacheOptions {
  dir: string;
  /** `dir` is the server's blob directory (no downloads, uploads by name) */
  shared: boolean;
  /** bytes; null = unbounded */
  cacheSize: number | null;
  /** percent of cacheSize downloaded between size checks (below 100), default 10 */
  cacheSizeCheck: number;
  logger: Logger;
}


/** One download in progress (receiveBlobStart … receiveBlobStop). */
interface Download {
  path: string;
  fd: number | null;
  bytes: number;
  done: boolean;
  error: Error | null;
}

export class BlobCache {
  readonly dir: string;
  readonly shared: boolean;
  readonly layout: string;
  /** the server's layout in shared mode */
  private readonly sharedLayout: BlobLayout | null = null;
  readonly cacheSize: number | null;
  /** bytes downloaded between two size checks, or null */
  readonly checkBytes: number | null;
  private readonly log: Logger;
  /** bytes added to the cache since the last size check */
  private loadedSinceCheck = 0;
  private checking: Promise<void> | null = null;
  private checkAgain = false;
  private readonly downloads = new Map<string, Download>();
  /** loads of the same blob share one sendBlob */
  readonly pendingLoads = new Map<string, Promise<string>>();
  /** sendBlob downloads started (statistics, tests) */
  downloadCount = 0;

  constructor(options: BlobCacheOptions) {
    this.dir = resolve(options.dir);
    this.shared = options.shared;
    this.log = options.logger;
    if (options.cacheSizeCheck >= 100 || options.cacheSizeCheck < 0) throw new RangeError(`blob cache size check must be a percentage below 100, got ${options.cacheSizeCheck}`);
    this.cacheSize = this.shared ? null : options.cacheSize;
    this.checkBytes = this.cacheSize === null ? null : Math.floor((this.cacheSize * options.cacheSizeCheck) / 100);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const marker = join(this.dir, '.layout');
    if (this.shared) {
      this.layout = autoLayoutSelect(this.dir);
      if (this.layout !== 'bushy' && this.layout !== 'lawn') {
        throw new StorageError(`shared blob directory ${this.dir} has layout '${this.layout}' (expected bushy or lawn)`);
      }
      this.sharedLayout = getBlobLayout(this.layout, this.dir);
      // as ZODB's FilesystemHelper.create: a directory without a marker gets one
      if (!existsSync(marker)) writeFileSync(marker, this.layout);
    } else {
      this.layout = 'zeocache';
      if (existsSync(marker)) {
        const found = readFileSync(marker, 'utf8').trim();
        if (found !== 'zeocache') {
          throw new StorageError(`blob cache directory ${this.dir} has layout '${found}' (a ZEO client blob cache has 'zeocache'; is it a server's blob directory? then set shared-blob-dir)`);
        }
      } else {
        writeFileSync(marker, 'zeocache');
      }
    }
    mkdirSync(this.temporaryDirectory(), { recursive: true, mode: 0o700 });
  }

  temporaryDirectory(): string {
    return join(this.dir, 'tmp');
  }

  /** The directory of oid's blobs. */
  oidDirectory(oid: Oid): string {
    if (this.sharedLayout) return join(this.dir, this.sharedLayout.oidToPath(oid));
    return join(this.dir, String(oid % ZEOCACHE_BUCKETS));
  }

  /** The committed file of revision `serial` of oid. */
  blobFilename(oid: Oid, serial: Tid): string {
    if (this.layout === 'zeocache') return join(this.oidDirectory(oid), `${oid / ZEOCACHE_BUCKETS}.${p64(serial).toString('hex')}.blob`);
    return join(this.oidDirectory(oid), `${tidRepr(serial)}.blob`);
  }

  /**
   * Take an uncommitted blob file for a store: move it (copy across file systems) to a fresh
   * `<serial>….tmp-` name in the oid's directory, as the reference does (in shared mode that is
   * the name the server is given).
   */
  async adoptUpload(oid: Oid, serial: Tid, file: string): Promise<string> {
    const d = this.oidDirectory(oid);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const target = join(d, `${tidRepr(serial)}${randomBytes(6).toString('hex')}.tmp-`);
    try {
      await rename(file, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw new StorageError(`storeBlob: cannot move ${file} to ${target}: ${(err as Error).message}`);
      await copyFile(file, target);
      await unlink(file);
    }
    return target;
  }

  /** After tpc_finish: the uploaded file becomes the cached blob of (oid, tid). */
  async commitUpload(oid: Oid, tid: Tid, file: string): Promise<void> {
    const target = this.blobFilename(oid, tid);
    mkdirSync(this.oidDirectory(oid), { recursive: true, mode: 0o700 });
    try {
      await rename(file, target);
      await chmod(target, 0o444);
      const st = await stat(target);
      this.added(st.size);
    } catch (err) {
      this.log.warn({ file, target, err: (err as Error).message }, 'cannot keep an uploaded blob in the blob cache');
      removeQuietly(file);
    }
  }

  /** Mark a cached blob as used (its access time orders the size check). */
  async touch(path: string): Promise<void> {
    try {
      const st = await stat(path);
      await utimes(path, new Date(), st.mtime);
    } catch {
      // best effort, as the reference
    }
  }

  // ---------------------------------------------------------------- downloads (receiveBlob*)

  private key(oid: Oid, serial: Tid): string {
    return `${oid}:${serial}`;
  }

  /** A download of (oid, serial) is expected: receiveBlob* for it will be accepted. */
  expect(oid: Oid, serial: Tid): void {
    const path = this.blobFilename(oid, serial);
    mkdirSync(this.oidDirectory(oid), { recursive: true, mode: 0o700 });
    this.downloadCount++;
    this.downloads.set(this.key(oid, serial), { path, fd: null, bytes: 0, done: false, error: null });
  }

  /** The download of (oid, serial) ended (reply, error or disconnect): the file, or why not. */
  finishDownload(oid: Oid, serial: Tid): { path: string; error: Error | null; done: boolean } {
    const k = this.key(oid, serial);
    const d = this.downloads.get(k);
    this.downloads.delete(k);
    if (!d) return { path: this.blobFilename(oid, serial), error: null, done: false };
    if (d.fd !== null) {
      try {
        closeSync(d.fd);
      } catch {
        /* closed */
      }
      d.fd = null;
    }
    if (!d.done) removeQuietly(`${d.path}.dl`);
    return { path: d.path, error: d.error, done: d.done };
  }

  receiveStart(oid: Oid, serial: Tid): void {
    const d = this.downloads.get(this.key(oid, serial));
    if (!d) {
      this.log.warn({ oid: oid.toString(16), serial: serial.toString(16) }, 'receiveBlobStart for a blob not requested: ignored');
      return;
    }
    try {
      d.fd = openSync(`${d.path}.dl`, 'w', 0o600);
    } catch (err) {
      d.error = new StorageError(`cannot create blob download file ${d.path}.dl: ${(err as Error).message}`);
    }
  }

  receiveChunk(oid: Oid, serial: Tid, chunk: Buffer): void {
    const d = this.downloads.get(this.key(oid, serial));
    if (!d || d.error || d.fd === null) return;
    try {
      let off = 0;
      while (off < chunk.length) off += writeSync(d.fd, chunk, off, chunk.length - off, d.bytes + off);
      d.bytes += chunk.length;
    } catch (err) {
      d.error = new StorageError(`cannot write blob download file ${d.path}.dl at offset ${d.bytes}: ${(err as Error).message}`);
    }
  }

  receiveStop(oid: Oid, serial: Tid): void {
    const d = this.downloads.get(this.key(oid, serial));
    if (!d || d.error || d.fd === null) return;
    try {
      closeSync(d.fd);
      d.fd = null;
      renameSync(`${d.path}.dl`, d.path);
      chmodSync(d.path, 0o444);
      d.done = true;
    } catch (err) {
      d.error = new StorageError(`cannot finish blob download ${d.path}: ${(err as Error).message}`);
      return;
    }
    this.added(d.bytes);
  }

  // ---------------------------------------------------------------- size check

  private added(bytes: number): void {
    if (this.checkBytes === null) return;
    this.loadedSinceCheck += bytes;
    if (this.loadedSinceCheck >= this.checkBytes) this.checkSize();
  }

  /**
   * Start a size check unless one is running (then it runs once more afterwards): removes least
   * recently used blobs until the cache holds at most `cacheSize - checkBytes` bytes.
   */
  checkSize(): Promise<void> {
    if (this.cacheSize === null || this.checkBytes === null) return Promise.resolve();
    this.loadedSinceCheck = 0;
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    const target = Math.max(this.cacheSize - this.checkBytes, 0);
    this.checking = (async () => {
      try {
        // bounded: at most one extra round per request made during a round
        for (let round = 0; round < 100; round++) {
          this.checkAgain = false;
          await this.shrinkTo(target);
          if (!this.checkAgain) break;
        }
      } catch (err) {
        this.log.error({ dir: this.dir, err: (err as Error).message }, 'blob cache size check failed');
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }

  /** The size check in progress, if any (close() waits for it). */
  get sizeCheck(): Promise<void> | null {
    return this.checking;
  }

  /** Total bytes of the cached blobs (the files the size check counts). */
  async cachedBytes(): Promise<number> {
    let n = 0;
    for (const f of await this.cachedFiles()) n += f.size;
    return n;
  }

  private async cachedFiles(): Promise<Array<{ path: string; size: number; atime: number }>> {
    const out: Array<{ path: string; size: number; atime: number }> = [];
    let buckets: string[];
    try {
      buckets = await readdir(this.dir);
    } catch {
      return out;
    }
    for (const b of buckets) {
      if (!/^\d+$/.test(b)) continue;
      let names: string[];
      try {
        names = await readdir(join(this.dir, b));
      } catch {
        continue; // not a directory, or removed meanwhile
      }
      for (const n of names) {
        if (!n.endsWith('.blob')) continue;
        const p = join(this.dir, b, n);
        try {
          const st = await stat(p);
          if (st.isFile()) out.push({ path: p, size: st.size, atime: st.atimeMs });
        } catch {
          /* removed meanwhile */
        }
      }
    }
    return out;
  }

  private async shrinkTo(target: number): Promise<void> {
    const files = await this.cachedFiles();
    let size = 0;
    for (const f of files) size += f.size;
    this.log.debug({ size, target }, 'blob cache size');
    if (size <= target) return;
    const busy = new Set<string>();
    for (const d of this.downloads.values()) busy.add(d.path);
    files.sort((a, b) => a.atime - b.atime);
    let removed = 0;
    for (const f of files) {
      if (size <= target) break;
      if (busy.has(f.path)) continue;
      try {
        await unlink(f.path);
        size -= f.size;
        removed++;
      } catch {
        /* gone, or not removable: skip */
      }
    }
    this.log.info({ dir: this.dir, removed, size, target }, 'blob cache size check removed least recently used blobs');
  }

  /** Remove leftover temporary files of uploads (abort). */
  discard(file: string): void {
    removeQuietly(file);
  }

  /** Names in a directory (tests). */
  static list(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone */
  }
}
