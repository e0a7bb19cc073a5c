/**
 * FileStorage pack (spec §10.3): build Data.fs.pack holding, for transactions up to the pack
 * time, only the revisions reachable at the pack time (self-contained, in 'p' transactions), then
 * every later transaction with backpointers re-targeted; swap it in under the commit lock.
 *
 * Commits continue while phases A–C run (they only append beyond the pack's end position).
 * Phase D holds the commit lock except while copying each transaction, like Python.
 * Memory: the pack-time index (oid → position), the reachable index and the output index; no
 * object data is kept beyond one transaction.
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  BLOB_SUFFIX,
  LAYOUT_MARKER,
  POSKeyError,
  ReadOnlyError,
  TimeStamp,
  isBlobRecord,
  oidRepr,
  p64,
  removeCommitted,
  removeCommittedDir,
  type BlobDirectory,
  type Oid,
  type Tid,
} from '@zeo-ts/storage';
import { CorruptedError, FileStorageError, PackError } from './errors.ts';
import { BlockCache, FileReader, type TxnHeaderAt } from './file-reader.ts';
import { BACKPOINTER_RECORD_LEN, DATA_HDR_LEN, MAGIC_FS30, MAGIC_LEN, STATUS_CHECKPOINT, STATUS_PACKED, decodeDataHeader, encodeDataRecord, p64pos, writePos } from './format.ts';
import { FsIndex } from './fsindex.ts';
import type { FileStorage } from './storage.ts';

type RefFinder = (data: Buffer) => bigint[];

async function defaultReferencesf(): Promise<RefFinder> {
  const mod = await import('@zeo-ts/pickle');
  return (data: Buffer) => mod.referencesf(data);
}

function yieldToLoop(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

const VISIT_INDEX = 0;
const VISIT_BACKPOINTERS = 1;
type Visit = typeof VISIT_INDEX | typeof VISIT_BACKPOINTERS;

/** Pack `storage` at time `t` (seconds since the epoch). */
export async function packStorage(storage: FileStorage, t: number, gc: boolean): Promise<void> {
  const inner = storage.packInternals();
  if (inner.readOnly) throw new ReadOnlyError();
  const packtid = TimeStamp.fromTime(t).raw;
  if (packtid === 0n) throw new FileStorageError('Invalid pack time');
  if (storage.len() === 0) return;
  if (storage.packing) throw new FileStorageError('Already packing');
  storage.packing = true;
  const log = storage.log;
  const oldPath = storage.path + '.old';
  const packPath = storage.path + '.pack';
  let haveLock = false;
  // blobMode 'proxy' packs the blob files afterwards, as ZODB.blob.BlobStorage does
  const blobs = storage.blobMode === 'native' ? storage.blobs : null;
  let removedFd: number | null = null;
  try {
    if (existsSync(oldPath)) unlinkSync(oldPath);
    if (blobs) {
      // B.old of the previous pack goes; unreachable blob revisions are listed in B/.removed
      // while copying (spec §13). As Python, a pack that ends early leaves that list behind.
      if (existsSync(blobs.dir + '.old')) removeCommittedDir(blobs.dir + '.old');
      removedFd = openSync(join(blobs.dir, '.removed'), 'w');
    }
    const refs: RefFinder = inner.referencesf ?? (gc ? await defaultReferencesf() : () => []);
    const packer = new Packer(storage.path, packPath, inner.pos(), packtid, gc, refs, log, () => inner.pos(), storage.len());
    packer.removedFd = removedFd;
    let result: { size: number; index: FsIndex } | null;
    try {
      result = await packer.run(
        async () => {
          await inner.commitLock.acquire();
          haveLock = true;
        },
        () => {
          inner.commitLock.release();
          haveLock = false;
        },
        () => inner.pos(),
      );
    } catch (e) {
      packer.abandon();
      throw e;
    } finally {
      packer.close();
      if (removedFd !== null) {
        closeSync(removedFd);
        removedFd = null;
      }
    }
    if (!result) return;
    if (inner.closed()) {
      if (existsSync(packPath)) unlinkSync(packPath);
      throw new FileStorageError(`${storage.path} was closed while packing; pack abandoned`);
    }
    inner.swap(packPath, result.index, result.size);
    log.info({ size: result.size }, 'pack finished');
    if (blobs) {
      // Python releases the commit lock first; here the (synchronous) file moves run while it is
      // still held, so no transaction in progress can have a file in a directory being moved.
      // An oid listed as garbage that has records after the pack (it was written again after
      // the pack time) keeps its newer files: only revisions up to the pack time move.
      removeBlobsTaggedDuringPack(blobs, inner.keepOld, log, (oid) => storage.index.get(oid) !== 0, packtid);
    }
  } finally {
    if (removedFd !== null) closeSync(removedFd);
    if (haveLock) inner.commitLock.release();
    storage.packing = false;
  }
  if (!inner.keepOld && existsSync(oldPath)) unlinkSync(oldPath);
}

/**
 * After the pack's file swap: move (pack-keep-old) or delete the oid directories and revision
 * files listed in B/.removed, remove directories left empty, delete the list; with keep-old,
 * hard-link every remaining blob file into B.old so that it mirrors Data.fs.old (spec §13).
 */
export function removeBlobsTaggedDuringPack(
  blobs: BlobDirectory,
  keepOld: boolean,
  log: FileStorage['log'],
  stillExists: (oid: Oid) => boolean = () => false,
  packtid: Tid = 0xffffffffffffffffn,
): void {
  const base = blobs.dir;
  const old = base + '.old';
  const removedPath = join(base, '.removed');
  /** remove the directory holding `path` while it is empty, then its parents, never B itself */
  const removeEmptyParents = (path: string) => {
    let d = dirname(path);
    for (let i = 0; i < 64 && d.length > base.length && d.startsWith(base); i++) {
      if (readdirSync(d).length) return;
      rmdirSync(d);
      d = dirname(d);
    }
  };
  const moveToOld = (path: string) => {
    const dest = old + path.slice(base.length);
    mkdirSync(dirname(dest), { recursive: true });
    renameSync(path, dest);
  };
  if (keepOld) {
    mkdirSync(old);
    linkSync(join(base, LAYOUT_MARKER), join(old, LAYOUT_MARKER));
  }
  const text = readFileSync(removedPath, 'latin1');
  let files = 0;
  let dirs = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (!/^[0-9a-f]+$/.test(line) || (line.length !== 16 && line.length !== 32)) throw new FileStorageError(`bad record ${JSON.stringify(line)} in ${removedPath}`);
    const oid = BigInt('0x' + line.slice(0, 16));
    if (line.length === 16) {
      const path = blobs.oidPath(oid);
      if (!existsSync(path)) continue;
      if (stillExists(oid)) {
        // never lose the file of a committed record: move only the revisions up to the pack time
        for (const tid of blobs.tidsOf(oid)) {
          if (tid > packtid) continue;
          const f = blobs.blobFilename(oid, tid);
          if (keepOld) moveToOld(f);
          else removeCommitted(f);
          files++;
        }
        log.warn({ oid: oidRepr(oid) }, 'pack: an object unreachable at the pack time was written later; its newer blob files stay');
        continue;
      }
      if (keepOld) moveToOld(path);
      else removeCommittedDir(path);
      dirs++;
      removeEmptyParents(path);
    } else {
      const path = blobs.blobFilename(oid, BigInt('0x' + line.slice(16)));
      if (!existsSync(path)) continue;
      if (keepOld) moveToOld(path);
      else removeCommitted(path);
      files++;
      removeEmptyParents(path);
    }
  }
  unlinkSync(removedPath);
  let linked = 0;
  if (keepOld) {
    const stack = [base];
    for (let guard = 0; stack.length; guard++) {
      if (guard > 1e9) throw new FileStorageError(`walk of ${base} does not end`);
      const d = stack.pop()!;
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        const st = statSync(p);
        if (st.isDirectory()) stack.push(p);
        else if (n.endsWith(BLOB_SUFFIX)) {
          const dest = old + p.slice(base.length);
          mkdirSync(dirname(dest), { recursive: true });
          linkSync(p, dest);
          linked++;
        }
      }
    }
  }
  log.info({ blobDir: base, removedFiles: files, removedOids: dirs, keptInOld: linked }, 'pack: blob files handled');
}

/**
 * Pack of the blob files as ZODB.blob.BlobStorage does it after packing its (undoing) base
 * storage (blobMode 'proxy'): every blob file whose revision `loadSerial` no longer finds is
 * removed, then oid directories left empty. Call with the commit lock held.
 */
export function packBlobsLikeProxy(blobs: BlobDirectory, loadSerial: (oid: Oid, tid: Tid) => unknown, log: FileStorage['log']): void {
  let removed = 0;
  const oidDirs = [...blobs.listOids()];
  for (const [oid, dir] of oidDirs) {
    for (const n of readdirSync(dir)) {
      const split = blobs.splitBlobFilename(join(dir, n));
      if (split === null) continue;
      try {
        loadSerial(oid, split.tid);
      } catch (e) {
        if (!(e instanceof POSKeyError)) throw e;
        removeCommitted(join(dir, n));
        removed++;
      }
    }
    if (readdirSync(dir).length === 0) removeCommittedDir(dir);
  }
  log.info({ blobDir: blobs.dir, removedFiles: removed }, 'pack: blob files of vanished revisions removed');
}

class Packer {
  /** B/.removed, when the storage has blobs */
  removedFd: number | null = null;
  private readonly input: FileReader;
  private outFd: number | null = null;
  private out: FileReader | null = null;
  private outPos = 0;
  /** oid -> current record position at the pack time (phase A) */
  private cur: FsIndex;
  private reachable: FsIndex;
  private readonly reachEx = new Map<Oid, number[]>();
  private packpos = MAGIC_LEN;
  /** output index */
  readonly index: FsIndex;

  constructor(
    private readonly path: string,
    private readonly packPath: string,
    private readonly eof: number,
    private readonly packtid: Tid,
    private readonly gc: boolean,
    private readonly referencesf: RefFinder,
    private readonly log: FileStorage['log'],
    committedEnd: () => number,
    expectedObjects = 1024,
  ) {
    // phase A/B tables sized for the storage's object count up front (no rehashing while they
    // fill); the output index grows as it fills, after `cur` is released (lower peak memory)
    this.cur = new FsIndex(expectedObjects);
    this.reachable = gc ? new FsIndex(expectedObjects) : this.cur;
    this.index = new FsIndex();
    this.input = FileReader.open(path);
    // sequential phases read each block once; data below the committed end never changes
    this.input.useCache(new BlockCache(32 * 1024 * 1024, 65536), committedEnd);
  }

  private inputClosed = false;

  close(): void {
    if (!this.inputClosed) {
      this.inputClosed = true;
      this.input.close();
    }
    if (this.outFd !== null) {
      closeSync(this.outFd);
      this.outFd = null;
    }
  }

  /** remove the partial output (pack failed) */
  abandon(): void {
    this.close();
    try {
      if (existsSync(this.packPath)) unlinkSync(this.packPath);
    } catch {
      // best effort
    }
  }

  private fail(pos: number, what: string): never {
    throw new CorruptedError(this.path, pos, what);
  }

  /** strict transaction checks of the packer (spec §10.3 A) */
  private checkedTxn(pos: number, ltid: Tid): TxnHeaderAt {
    const h = this.input.readTxnHeader(pos);
    if (h.tid <= ltid) this.fail(pos, `time-stamp reduction: ${h.tid.toString(16)} <= ${ltid.toString(16)}`);
    if (h.status === STATUS_CHECKPOINT) this.fail(pos, 'transaction with checkpoint flag set');
    if (!' pu'.includes(h.status)) this.fail(pos, `invalid transaction status: ${JSON.stringify(h.status)}`);
    if (h.end + 8 > this.eof) this.fail(pos, 'transaction extends past the end of the data');
    return h;
  }

  /**
   * Records of a transaction with the packer's checks; visits each: `VISIT_INDEX` records it in
   * the pack-time index (phase A), `VISIT_BACKPOINTERS` notes backpointers into the packed part
   * (phase B). A mode rather than a callback: no closure is created per transaction.
   */
  private eachRecord(h: TxnHeaderAt, visit: Visit, extraRoots: Array<[Oid, number]> | null): void {
    let pos = h.pos + h.hlen;
    while (pos < h.end) {
      const d = this.input.readDataHeader(pos);
      if (d.tloc !== h.pos) this.fail(pos, `data record tloc ${d.tloc} != transaction position ${h.pos}`);
      if (d.prev >= pos) this.fail(pos, `invalid previous pointer ${d.prev}`);
      let back = 0;
      if (d.plen === 0) {
        back = this.input.readPosAt(pos + DATA_HDR_LEN, 'backpointer');
        if (back >= pos) this.fail(pos, `invalid backpointer ${back}`);
      }
      const len = d.plen > 0 ? DATA_HDR_LEN + d.plen : BACKPOINTER_RECORD_LEN;
      if (pos + len > h.end) this.fail(pos, 'data record exceeds transaction record');
      if (visit === VISIT_INDEX) this.visitIndex(d.oid, pos, d.plen, back);
      else this.visitBackpointer(d.oid, back, extraRoots!);
      pos += len;
    }
    if (pos !== h.end) this.fail(h.pos, "data records don't add up");
    const rtl = this.input.readPosAt(h.end, 'redundant transaction length');
    if (rtl !== h.tlen) this.fail(h.end, `redundant transaction length does not match initial transaction length: ${rtl} != ${h.tlen}`);
  }

  /** Phase A, one record: the pack-time index follows it. */
  private visitIndex(oid: Oid, rpos: number, plen: number, back: number): void {
    if (plen > 0 || back !== 0) this.cur.set(oid, rpos);
    else this.cur.delete(oid);
  }

  /** Phase B, one record after the pack time: a backpointer into the packed part keeps its target. */
  private visitBackpointer(oid: Oid, back: number, extraRoots: Array<[Oid, number]>): void {
    if (back !== 0 && back < this.packpos) {
      if (this.reachable.has(oid)) {
        let l = this.reachEx.get(oid);
        if (!l) this.reachEx.set(oid, (l = []));
        if (!l.includes(back)) {
          l.push(back);
          extraRoots.push([oid, back]);
        }
      } else this.reachable.set(oid, back);
    }
  }

  /** Phase A: the index at pack time. Returns false for a redundant pack. */
  private async buildPackIndex(): Promise<boolean> {
    let pos = MAGIC_LEN;
    let ltid = 0n;
    let unpacked = false;
    let lastHeader: TxnHeaderAt | null = null;
    while (pos < this.eof) {
      const th = this.input.readTxnHeader(pos);
      if (th.tid > this.packtid) break;
      const h = this.checkedTxn(pos, ltid);
      ltid = h.tid;
      lastHeader = h;
      if (h.status !== STATUS_PACKED) unpacked = true;
      this.eachRecord(h, VISIT_INDEX, null);
      pos = h.end + 8;
      await this.maybeYield();
    }
    this.packpos = pos;
    if (unpacked || lastHeader === null) return true;
    const next = pos < this.eof ? this.input.readTxnHeader(pos) : lastHeader;
    if (next.status === STATUS_PACKED) {
      this.log.info('The database has already been packed to a later time or no changes have been made since the last pack');
      return false;
    }
    return true;
  }

  private resolvedData(oid: Oid, pos: number): Buffer | null {
    const r = this.input.readRecord(pos);
    if (r.oid !== oid) this.fail(pos, `record oid ${oidRepr(r.oid)} != expected ${oidRepr(oid)}`);
    if (r.data) return r.data;
    if (r.back === 0) return null;
    try {
      return this.input.loadBack(oid, r.back).data;
    } catch (e) {
      if (e instanceof POSKeyError) return null;
      throw e;
    }
  }

  private findrefs(oid: Oid, pos: number): bigint[] {
    const d = this.resolvedData(oid, pos);
    return d ? this.referencesf(d) : [];
  }

  private steps = 0;

  /** Let other work (commits, reads) run now and then during the long synchronous phases. */
  private async maybeYield(): Promise<void> {
    if (++this.steps % 2000 === 0) await yieldToLoop();
  }

  private async mark(roots: bigint[]): Promise<void> {
    const todo = [...roots];
    let steps = 0;
    while (todo.length) {
      if (++steps > 1e10) throw new PackError('reachability walk does not end');
      await this.maybeYield();
      const oid = todo.pop()!;
      if (this.reachable.has(oid)) continue;
      const pos = this.cur.get(oid);
      if (pos === 0) {
        if (oid === 0n && this.cur.size === 0) continue;
        throw new POSKeyError(oid, `${oidRepr(oid)} (dangling reference found while packing ${this.path})`);
      }
      this.reachable.set(oid, pos);
      for (const r of this.findrefs(oid, pos)) if (!this.reachable.has(r)) todo.push(r);
    }
  }

  /** Phase B (gc only). */
  private async findReachable(): Promise<void> {
    if (!this.gc) {
      this.reachable = this.cur;
      return;
    }
    await this.mark([0n]);
    const extraRoots: Array<[Oid, number]> = [];
    let pos = this.packpos;
    let ltid = 0n;
    while (pos < this.eof) {
      const h = this.checkedTxn(pos, ltid);
      ltid = h.tid;
      this.eachRecord(h, VISIT_BACKPOINTERS, extraRoots);
      pos = h.end + 8;
      await this.maybeYield();
    }
    for (const [oid, p] of extraRoots) await this.mark(this.findrefs(oid, p));
    this.cur = new FsIndex(0);
  }

  private isReachable(oid: Oid, pos: number): boolean {
    const r = this.reachable.get(oid);
    if (r === 0) return false;
    if (r === pos) return true;
    return this.reachEx.get(oid)?.includes(pos) ?? false;
  }

  private write(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const n = writeSync(this.outFd!, buf, off, buf.length - off, this.outPos + off);
      if (n <= 0) throw new FileStorageError(`${this.packPath}: write failed at ${this.outPos + off}`);
      off += n;
    }
    this.outPos += buf.length;
  }

  /** Phase C: copy reachable records of transactions before packpos. */
  private async copyToPacktime(): Promise<void> {
    let pos = MAGIC_LEN;
    let n = 0;
    while (pos < this.packpos) {
      const h = this.input.readTxnHeader(pos);
      const meta = this.input.readTxnMeta(h);
      const parts: Buffer[] = [];
      const newTpos = this.outPos;
      let len = 0;
      let rpos = pos + h.hlen;
      const pendingIndex: Array<[Oid, number]> = [];
      while (rpos < h.end) {
        // the header alone decides; only reachable records' data is read (phase A checked them)
        const dh = this.input.readDataHeader(rpos);
        const here = rpos;
        rpos += dh.plen > 0 ? DATA_HDR_LEN + dh.plen : BACKPOINTER_RECORD_LEN;
        if (!this.isReachable(dh.oid, here)) {
          if (this.removedFd !== null) this.noteRemovedBlob(dh.oid, dh.tid, here);
          continue;
        }
        const r = this.input.readRecord(here);
        if (parts.length === 0) {
          const hdr = this.input.readExact(pos, h.hlen, 'transaction header');
          hdr[16] = STATUS_PACKED.charCodeAt(0);
          parts.push(hdr);
          len += hdr.length;
        }
        let data = r.data;
        if (!data && r.back !== 0) {
          try {
            data = this.input.loadBack(r.oid, r.back).data;
          } catch (e) {
            if (!(e instanceof POSKeyError)) throw e;
            data = null;
          }
        }
        const rec = encodeDataRecord(r.oid, r.tid, 0, newTpos, data && data.length ? data : null, 0);
        pendingIndex.push([r.oid, newTpos + len]);
        parts.push(rec);
        len += rec.length;
      }
      void meta;
      if (parts.length) {
        writePos(parts[0]!, len, 8);
        parts.push(p64pos(len));
        this.write(Buffer.concat(parts));
        for (const [oid, p] of pendingIndex) this.index.set(oid, p);
      }
      const rtl = this.input.readPosAt(h.end, 'redundant transaction length');
      if (rtl !== h.tlen) this.fail(h.end, `redundant transaction length does not match initial transaction length: ${rtl} != ${h.tlen}`);
      pos = h.end + 8;
      if (++n % 1000 === 0) this.log.info({ pos, packpos: this.packpos, out: this.outPos }, 'pack: copying to pack time');
      await this.maybeYield();
    }
  }

  /**
   * A skipped record: when its data (through backpointers) is a blob record, list it in
   * B/.removed: the oid alone when it is unreachable, else oid+tid, unless the reachable record
   * has the same tid (a duplicate record of one revision).
   */
  private noteRemovedBlob(oid: Oid, tid: Tid, pos: number): void {
    if (!isBlobRecord(this.resolvedData(oid, pos))) return;
    const rpos = this.reachable.get(oid);
    if (rpos !== 0 && this.input.readDataHeader(rpos).tid === tid) return;
    const line = rpos === 0 ? p64(oid).toString('hex') : Buffer.concat([p64(oid), p64(tid)]).toString('hex');
    const b = Buffer.from(line + '\n', 'latin1');
    let off = 0;
    while (off < b.length) {
      const n = writeSync(this.removedFd!, b, off, b.length - off);
      if (n <= 0) throw new FileStorageError('write of .removed failed');
      off += n;
    }
  }

  /** PackCopier._txn_find + first-record _data_find in the output. */
  private resolveBackpointer(prevTid: Tid, oid: Oid, data: Buffer | null, curTpos: number): number {
    const out = this.out!;
    let pos = curTpos;
    let found: TxnHeaderAt | null = null;
    while (pos > MAGIC_LEN) {
      const h = out.txnBefore(pos);
      if (!h) break;
      if (h.tid === prevTid) {
        found = h;
        break;
      }
      pos = h.pos;
    }
    if (!found) throw new PackError('Invalid backpointer transaction id');
    let rpos = found.pos + found.hlen;
    while (rpos < found.end) {
      const d = out.readDataHeader(rpos);
      if (d.oid === oid) {
        if (d.plen === 0) return rpos;
        if (data === null || d.plen !== data.length) {
          this.log.error(`Mismatch between data and backpointer at ${rpos}`);
          return 0;
        }
        const have = out.readExact(rpos + DATA_HDR_LEN, d.plen, 'record data');
        return have.equals(data) ? rpos : 0;
      }
      rpos += d.plen > 0 ? DATA_HDR_LEN + d.plen : BACKPOINTER_RECORD_LEN;
    }
    return 0;
  }

  /** Phase D, one transaction: copy with re-targeted backpointers. */
  private copyOne(ipos: number): number {
    const h = this.input.readTxn(ipos, Number.MAX_SAFE_INTEGER);
    const hdr = this.input.readExact(ipos, h.hlen, 'transaction header');
    const tpos = this.outPos;
    const parts: Buffer[] = [hdr];
    let len = hdr.length;
    const tindex: Array<[Oid, number]> = [];
    const tmap = new Map<Oid, number>();
    // write the header first so backpointer searches see a consistent output
    let rpos = ipos + h.hlen;
    while (rpos < h.end) {
      const r = this.input.readRecord(rpos);
      if (r.tloc !== ipos) this.fail(rpos, `data record tloc ${r.tloc} != transaction position ${ipos}`);
      rpos = r.next;
      let data = r.data;
      let prevTid: Tid | null = null;
      if (!data && r.back !== 0) {
        try {
          data = this.input.loadBack(r.oid, r.back).data;
        } catch (e) {
          if (!(e instanceof POSKeyError)) throw e;
          data = null;
        }
        const bh = this.input.readDataHeader(r.back);
        prevTid = bh.tid;
      }
      let back = 0;
      if (prevTid !== null) back = this.resolveBackpointer(prevTid, r.oid, data, tpos);
      const prev = this.index.get(r.oid);
      const here = tpos + len;
      const rec = back !== 0 ? encodeDataRecord(r.oid, r.tid, prev, tpos, null, back) : encodeDataRecord(r.oid, r.tid, prev, tpos, data, 0);
      parts.push(rec);
      len += rec.length;
      tindex.push([r.oid, here]);
      tmap.set(r.oid, here);
    }
    if (len !== h.tlen) throw new PackError(`copied transaction at ${ipos} has length ${len} != original ${h.tlen} (unresolvable backpointer)`);
    parts.push(p64pos(len));
    this.write(Buffer.concat(parts));
    for (const [oid, p] of tindex) this.index.set(oid, p);
    return h.end + 8;
  }

  /**
   * Run the pack. Returns null when nothing is to be done (redundant pack or nothing freed);
   * otherwise returns with the commit lock held (acquired through `lock`).
   */
  async run(lock: () => Promise<void>, unlock: () => void, committedEnd: () => number): Promise<{ size: number; index: FsIndex } | null> {
    if (!(await this.buildPackIndex())) return null;
    this.log.info({ packpos: this.packpos, eof: this.eof }, 'pack: index at pack time built');
    await this.findReachable();
    this.log.info({ reachable: this.reachable.size }, 'pack: reachability computed');
    this.outFd = openSync(this.packPath, 'w+');
    this.out = new FileReader(this.outFd, this.packPath);
    this.outPos = 0;
    this.write(MAGIC_FS30);
    await this.copyToPacktime();
    if (this.outPos === this.packpos) {
      this.log.info('pack: nothing to free');
      this.abandon();
      return null;
    }
    await lock();
    let ipos = this.packpos;
    let n = 0;
    while (ipos < committedEnd()) {
      unlock();
      try {
        ipos = this.copyOne(ipos);
      } finally {
        await lock();
      }
      if (++n % 1000 === 0) this.log.info({ ipos, out: this.outPos }, 'pack: copying after pack time');
    }
    fsyncSync(this.outFd);
    closeSync(this.outFd);
    this.outFd = null;
    return { size: this.outPos, index: this.index };
  }
}

// Kept for tools: decode a data header from raw bytes (re-export convenience).
export { decodeDataHeader };
