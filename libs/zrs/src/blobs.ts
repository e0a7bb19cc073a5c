/**
 * Blob replication (zrs spec §6.5, §6.10, §11.2, §11.4; §14 #4–#6, #22, #23, #36).
 *
 * zrs2.1: a record whose first pickle is `ZODB.blob.Blob` and whose blob file exists on the
 * primary is sent as B + data + ⌈size/65536⌉ blocks of 65536 bytes (the last shorter); otherwise
 * as S. The secondary writes the blocks to a temporary file in its storage's temporaryDirectory()
 * (`secondary*.blob`) and installs it with restoreBlob.
 *
 * Our native channel (native.ts) carries the same files as blob frames sent just before the
 * transaction frame they belong to: BlobBegin (oid, tid, size), BlobChunk × ⌈size/65536⌉,
 * BlobEnd (MD5 of the content). Their payloads start with the byte 0x7a (protobuf field 15,
 * length-delimited), a field number the native Frame message does not use, so the receiver tells
 * them apart before decoding a Frame.
 *
 * Blob files are streamed: at most one 64 KiB block is read or held at a time per connection
 * (the socket's high-water mark and the secondary's receive queue bound what is in flight).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { POSKeyError, isBlobRecord, isBlobStorage, p64, toHex, u64, type IBlobStorage, type IStorage, type Oid, type Tid } from '@zeo-ts/storage';

/** Bytes per blob block message (upstream's blob_block_size). */
export const BLOB_BLOCK = 1 << 16;

/** ⌈size / 65536⌉ (0 for an empty file, spec §13 #4). */
export function blobBlocks(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`blob size must be a non-negative integer, not ${size}`);
  return Math.ceil(size / BLOB_BLOCK);
}

/** The storage a Primary or Secondary wraps, when it keeps blobs (IBlobStorage with a blob directory). */
export function blobStorageOf(storage: IStorage): IBlobStorage | null {
  return isBlobStorage(storage) ? storage : null;
}

export interface BlobToSend {
  path: string;
  size: number;
}

/**
 * The committed blob file of a record, if it is a blob record of a blob storage and its file
 * exists (§14 #22, #23); null means "send it as S".
 */
export async function blobToSend(storage: IBlobStorage, r: { oid: Oid; tid: Tid; data: Buffer | null }): Promise<BlobToSend | null> {
  if (!r.data || !isBlobRecord(r.data)) return null;
  let path: string;
  try {
    path = await storage.loadBlob(r.oid, r.tid);
  } catch (e) {
    if (e instanceof POSKeyError) return null;
    throw e;
  }
  try {
    const st = await stat(path);
    return { path, size: st.size };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export class BlobSendError extends Error {
  override name = 'BlobSendError';
}

/**
 * Read `size` bytes of `path` as ⌈size/65536⌉ blocks, awaiting `each` for every block before
 * reading the next. A file that became shorter is an error (upstream: "Too much blob data",
 * §13 #3); bytes beyond `size` (a file that grew) are not sent.
 */
export async function streamBlob(path: string, size: number, each: (block: Buffer) => Promise<void>): Promise<void> {
  const blocks = blobBlocks(size);
  if (blocks === 0) return;
  const fh = await open(path, 'r');
  try {
    let pos = 0;
    for (let i = 0; i < blocks; i++) {
      const want = Math.min(BLOB_BLOCK, size - pos);
      const b = Buffer.allocUnsafe(want);
      let got = 0;
      for (let guard = 0; got < want && guard < want + 1; guard++) {
        const { bytesRead } = await fh.read(b, got, want - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < want) throw new BlobSendError(`blob file ${path} shrank while being sent: ${pos + got} of ${size} bytes (block ${i + 1} of ${blocks})`);
      pos += want;
      await each(b);
    }
  } finally {
    await fh.close();
  }
}

/** Names of the files IncomingBlob creates. */
const INCOMING_NAME = /^secondary[0-9a-f]{12}\.blob$/;

/**
 * Remove partial blob files a previous run of the secondary left in `dir` (a kill -9 in the
 * middle of a blob). Only names IncomingBlob makes are touched; call it before connecting.
 */
export function removeStaleIncoming(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!INCOMING_NAME.test(name)) continue;
    try {
      unlinkSync(join(dir, name));
      n++;
    } catch {
      /* gone already */
    }
  }
  return n;
}

/** A blob file being received on the secondary, in the storage's temporary directory. */
export class IncomingBlob {
  private written = 0;
  private readonly md5: Hash = createHash('md5');

  private constructor(
    readonly path: string,
    private fh: FileHandle | null,
    /** blocks (zrs2.1) or bytes (native) still expected */
    public remaining: number,
  ) {}

  /** Create `secondary<random>.blob` in `dir` (exclusive create). */
  static async create(dir: string, remaining: number): Promise<IncomingBlob> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const path = join(dir, `secondary${randomBytes(6).toString('hex')}.blob`);
      try {
        const fh = await open(path, 'wx', 0o600);
        return new IncomingBlob(path, fh, remaining);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    throw new Error(`cannot create a temporary blob file in ${dir}`);
  }

  get size(): number {
    return this.written;
  }

  async write(b: Buffer): Promise<void> {
    if (!this.fh) throw new Error(`blob file ${this.path} is closed`);
    let off = 0;
    for (let guard = 0; off < b.length && guard < b.length + 1; guard++) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off, this.written + off);
      off += bytesWritten;
    }
    this.written += b.length;
    this.md5.update(b);
  }

  /** Close the file; the caller hands `path` to restoreBlob (which takes ownership). */
  async close(): Promise<Buffer> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
    return this.md5.digest();
  }

  /** Remove a file that will not be installed (connection lost, error). Never throws. */
  async discard(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }
}

// ---- native blob frames (pure codec) -------------------------------------------------------------

/** First byte of every native blob frame. */
export const BLOB_FRAME_TAG = 0x7a;
const BEGIN = 1;
const CHUNK = 2;
const END = 3;

export type BlobFrame = { kind: 'blob-begin'; oid: Oid; tid: Tid; size: number } | { kind: 'blob-chunk'; data: Buffer } | { kind: 'blob-end'; md5: Buffer };

export function isBlobFrame(m: Buffer): boolean {
  return m.length >= 2 && m[0] === BLOB_FRAME_TAG;
}

export class BlobFrameError extends Error {
  override name = 'BlobFrameError';
}

export function encodeBlobBegin(oid: Oid, tid: Tid, size: number): Buffer {
  blobBlocks(size);
  const b = Buffer.allocUnsafe(2 + 8 + 8 + 8);
  b[0] = BLOB_FRAME_TAG;
  b[1] = BEGIN;
  p64(oid).copy(b, 2);
  p64(tid).copy(b, 10);
  b.writeBigUInt64BE(BigInt(size), 18);
  return b;
}

/** Header of a chunk frame (the chunk bytes follow; send both parts as one sized message). */
export function blobChunkHeader(): Buffer {
  return Buffer.from([BLOB_FRAME_TAG, CHUNK]);
}

export function encodeBlobEnd(md5: Buffer): Buffer {
  if (md5.length !== 16) throw new RangeError('blob-end: MD5 must be 16 bytes');
  return Buffer.concat([Buffer.from([BLOB_FRAME_TAG, END]), md5]);
}

export function decodeBlobFrame(m: Buffer): BlobFrame {
  if (!isBlobFrame(m)) throw new BlobFrameError(`not a blob frame (first byte ${m[0]})`);
  switch (m[1]) {
    case BEGIN: {
      if (m.length !== 26) throw new BlobFrameError(`blob-begin frame of ${m.length} bytes (expected 26)`);
      const size = m.readBigUInt64BE(18);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new BlobFrameError(`blob-begin: size ${size} too large`);
      return { kind: 'blob-begin', oid: u64(m.subarray(2, 10)), tid: u64(m.subarray(10, 18)), size: Number(size) };
    }
    case CHUNK:
      if (m.length - 2 > BLOB_BLOCK) throw new BlobFrameError(`blob chunk of ${m.length - 2} bytes (at most ${BLOB_BLOCK})`);
      return { kind: 'blob-chunk', data: m.subarray(2) };
    case END:
      if (m.length !== 18) throw new BlobFrameError(`blob-end frame of ${m.length} bytes (expected 18)`);
      return { kind: 'blob-end', md5: m.subarray(2) };
    default:
      throw new BlobFrameError(`unknown blob frame type ${m[1]}`);
  }
}

/**
 * The secondary's side of native blob frames: files arrive before the transaction frame that
 * holds their records; they wait here (at most `maxPending`) until that transaction is applied.
 */
export class NativeBlobReceiver {
  private current: { blob: IncomingBlob; oid: Oid; tid: Tid; size: number } | null = null;
  private readonly ready = new Map<string, string>();

  constructor(
    private readonly storage: IBlobStorage,
    private readonly maxPending = 100_000,
  ) {}

  async handle(f: BlobFrame): Promise<void> {
    switch (f.kind) {
      case 'blob-begin':
        if (this.current) throw new BlobFrameError(`blob-begin for ${toHex(f.oid)} while the blob of ${toHex(this.current.oid)} is incomplete`);
        if (this.ready.size >= this.maxPending) throw new BlobFrameError(`more than ${this.maxPending} blob files before their transaction`);
        this.current = { blob: await IncomingBlob.create(this.storage.temporaryDirectory(), f.size), oid: f.oid, tid: f.tid, size: f.size };
        return;
      case 'blob-chunk': {
        const c = this.current;
        if (!c) throw new BlobFrameError('blob chunk outside a blob');
        if (c.blob.size + f.data.length > c.size) throw new BlobFrameError(`blob of ${toHex(c.oid)}@${toHex(c.tid)}: more than the announced ${c.size} bytes`);
        await c.blob.write(f.data);
        return;
      }
      case 'blob-end': {
        const c = this.current;
        if (!c) throw new BlobFrameError('blob-end outside a blob');
        this.current = null;
        if (c.blob.size !== c.size) {
          await c.blob.discard();
          throw new BlobFrameError(`blob of ${toHex(c.oid)}@${toHex(c.tid)}: ${c.blob.size} bytes received, ${c.size} announced`);
        }
        const md5 = await c.blob.close();
        if (!md5.equals(f.md5)) {
          await c.blob.discard();
          throw new BlobFrameError(`blob of ${toHex(c.oid)}@${toHex(c.tid)}: MD5 mismatch`);
        }
        const key = `${c.oid}:${c.tid}`;
        const old = this.ready.get(key);
        if (old) await unlink(old).catch(() => undefined);
        this.ready.set(key, c.blob.path);
        return;
      }
    }
  }

  /** The received file of (oid, tid), handed over (the caller installs it with restoreBlob). */
  take(oid: Oid, tid: Tid): string | null {
    const key = `${oid}:${tid}`;
    const p = this.ready.get(key) ?? null;
    if (p) this.ready.delete(key);
    return p;
  }

  get pending(): number {
    return this.ready.size + (this.current ? 1 : 0);
  }

  /** Remove every file not installed (after a transaction, or when the connection is lost). */
  async discard(): Promise<void> {
    const c = this.current;
    this.current = null;
    await c?.blob.discard();
    const files = [...this.ready.values()];
    this.ready.clear();
    for (const f of files) await unlink(f).catch(() => undefined);
  }
}

/** Send one blob file as native frames through `send` (one sized message per frame). */
export async function sendNativeBlob(oid: Oid, tid: Tid, b: BlobToSend, send: (payload: Buffer[]) => Promise<void>): Promise<void> {
  await send([encodeBlobBegin(oid, tid, b.size)]);
  const md5 = createHash('md5');
  await streamBlob(b.path, b.size, async (block) => {
    md5.update(block);
    await send([blobChunkHeader(), block]);
  });
  await send([encodeBlobEnd(md5.digest())]);
}
