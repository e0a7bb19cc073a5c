/**
 * Appending whole transactions given as the raw bytes of another FileStorage (ZRS raw mode).
 *
 * A replica whose data file is positionally identical to its primary's (same bytes up to the
 * replica's end) can take the primary's next transactions byte for byte: no decoding into
 * store/restore calls, one write per segment. Nothing is trusted: every transaction of a segment
 * is checked against this storage's own state before a byte is written —
 *  - the segment starts at this storage's committed end, and holds only whole transactions;
 *  - each transaction header: tid strictly increasing (above our last tid), status ' ', 'p' or
 *    'u', the header and metadata inside the transaction, the trailing length equal to tlen;
 *  - each data record (of a transaction not marked 'u', whose records the open scan ignores
 *    too, as this does): same tid as its transaction, tloc = the transaction's position, no
 *    version, its record inside the transaction, prev = our current position for that oid
 *    (the index, or an earlier record of the same segment), a backpointer (if any) naming a
 *    data record of the same oid earlier in our file or in the segment.
 * A segment that fails any check is refused whole (RawAppendError naming the file and the byte
 * position); segments before it in the same call stay appended.
 *
 * Durability: `sync: true` (the default) fdatasyncs before returning; with `sync: false` the
 * fdatasync (and the invalidations, which are published only once the data is durable, as
 * tpc_finish does) wait for `syncRawAppends`. Blob storages must not use raw mode (blob files
 * are not in the data file); appendRawTransactions refuses them.
 *
 * FileStorage exposes the few pieces of writer state this needs through rawAppendInternals().
 */
import { writeSync, fdatasync, ftruncateSync } from 'node:fs';
import type { Oid, Tid } from '@zeo-ts/storage';
import { FileStorageError } from './errors.ts';
import type { FileReader } from './file-reader.ts';
import type { FsIndex } from './fsindex.ts';
import { DATA_HDR_LEN, TRANS_HDR_LEN, readU64 } from './format.ts';
import type { CommitLock, FileStorage } from './storage.ts';

/** What FileStorage lends raw-append.ts (see FileStorage.rawAppendInternals). */
export interface RawAppendInternals {
  readonly path: string;
  readonly commitLock: CommitLock;
  /** throws unless the storage is open and writable */
  check(): void;
  fd(): number;
  reader(): FileReader;
  /** committed end of the data file */
  pos(): number;
  lastTid(): Tid;
  index(): FsIndex;
  /** bumped when a pack swaps in a new data file */
  generation(): number;
  /** the bytes up to `end` are written and indexed: make them the committed data */
  advance(end: number, lastTid: Tid, maxOid: Oid): void;
  /** tell the commit listeners (invalidations) */
  publish(tid: Tid, oids: Oid[]): void;
  supportsBlobs(): boolean;
}

/** A segment refused by validation or a failed write; nothing of that segment was kept. */
export class RawAppendError extends FileStorageError {
  override name = 'RawAppendError';
  readonly file: string;
  readonly pos: number;
  constructor(file: string, pos: number, what: string) {
    super(`${file}: raw transaction refused: ${what} at ${pos}`);
    this.file = file;
    this.pos = pos;
  }
}

export interface RawAppendResult {
  /** transactions appended by this call */
  transactions: number;
  bytes: number;
  /** the last tid appended (lastTransaction() reaches it once it is durable) */
  lastTid: Tid;
  /** the storage's committed end afterwards */
  end: number;
  /** true when everything appended so far is durable and published */
  synced: boolean;
}

interface Pending {
  txns: Array<{ tid: Tid; oids: Oid[] }>;
  bytes: number;
  /** the last tid appended (also counts 'u' transactions, which publish nothing) */
  lastTid: Tid;
}
const pendingOf = new WeakMap<FileStorage, Pending>();
const internals = new WeakMap<FileStorage, RawAppendInternals>();

/** The storage's raw-append internals, made once per storage (they read its state live). */
export function internalsOf(fs: FileStorage): RawAppendInternals {
  let x = internals.get(fs);
  if (!x) internals.set(fs, (x = fs.rawAppendInternals()));
  return x;
}

/** Largest segment accepted in one call (a bound on what a peer can make us buffer and walk). */
export const MAX_RAW_SEGMENT = 1 << 30;

const TWO32 = 0x100000000;

interface Parsed {
  txns: Array<{ tid: Tid; oids: Oid[] }>;
  lastTid: Tid;
  maxHi: number;
  maxLo: number;
}

/** A position/length u64 as a number; -1 when it is too large to be one. */
function posAt(b: Buffer, o: number): number {
  const hi = b.readUInt32BE(o);
  if (hi >= 0x200000) return -1;
  return hi * TWO32 + b.readUInt32BE(o + 4);
}

/**
 * Check a segment that would be written at `base` (this storage's committed end), setting the
 * index entry of each record as it goes (so prev checks see earlier records of the segment).
 * Every index change is logged in `undo` as (oid hi, oid lo, old position, record position);
 * the caller rolls them back when this throws (RawAppendError at the first problem) or when the
 * write fails.
 */
function validate(x: RawAppendInternals, seg: Buffer, base: number, undo: number[], after: Tid): Parsed {
  const file = x.path;
  const index = x.index();
  const reader = x.reader();
  let ltid = after;
  const txns: Parsed['txns'] = [];
  let maxHi = -1;
  let maxLo = -1;
  let off = 0;
  for (let guard = 0; off < seg.length; guard++) {
    if (guard > seg.length) throw new RawAppendError(file, base + off, 'transaction walk does not advance');
    const tpos = base + off;
    if (seg.length - off < TRANS_HDR_LEN + 8) throw new RawAppendError(file, tpos, `truncated transaction (${seg.length - off} bytes left)`);
    const tid = readU64(seg, off);
    const tidHi = seg.readUInt32BE(off);
    const tidLo = seg.readUInt32BE(off + 4);
    const tlen = posAt(seg, off + 8);
    if (tlen < 0) throw new RawAppendError(file, tpos, 'transaction length out of range');
    const status = seg[off + 16]!;
    const hlen = TRANS_HDR_LEN + seg.readUInt16BE(off + 17) + seg.readUInt16BE(off + 19) + seg.readUInt16BE(off + 21);
    if (tid <= ltid) throw new RawAppendError(file, tpos, `transaction id ${tid.toString(16).padStart(16, '0')} is not later than ${ltid.toString(16).padStart(16, '0')}`);
    if (status !== 0x20 && status !== 0x70 && status !== 0x75) throw new RawAppendError(file, tpos, `transaction status ${JSON.stringify(String.fromCharCode(status))} is not committed`);
    if (tlen < hlen) throw new RawAppendError(file, tpos, `transaction length ${tlen} shorter than its header (${hlen})`);
    if (off + tlen + 8 > seg.length) throw new RawAppendError(file, tpos, `transaction length ${tlen} runs past the segment end (${seg.length - off} bytes left)`);
    if (posAt(seg, off + tlen) !== tlen) throw new RawAppendError(file, tpos + tlen, 'redundant transaction length does not match');
    if (status === 0x75) {
      // 'u': kept byte for byte but, as the open scan does, neither indexed nor published
      ltid = tid;
      off += tlen + 8;
      continue;
    }
    const oids: Oid[] = [];
    let r = off + hlen;
    const tend = off + tlen;
    for (let g = 0; r < tend; g++) {
      if (g > tlen) throw new RawAppendError(file, base + r, 'record walk does not advance');
      const rpos = base + r;
      if (tend - r < DATA_HDR_LEN) throw new RawAppendError(file, rpos, 'truncated data record header');
      const hi = seg.readUInt32BE(r);
      const lo = seg.readUInt32BE(r + 4);
      if (seg.readUInt32BE(r + 8) !== tidHi || seg.readUInt32BE(r + 12) !== tidLo) throw new RawAppendError(file, rpos, 'data record tid differs from its transaction');
      const prev = posAt(seg, r + 16);
      const tloc = posAt(seg, r + 24);
      const vlen = seg.readUInt16BE(r + 32);
      const plen = posAt(seg, r + 34);
      if (tloc !== tpos) throw new RawAppendError(file, rpos, `data record tloc ${tloc} is not its transaction's position ${tpos}`);
      if (vlen !== 0) throw new RawAppendError(file, rpos, `non-zero version length ${vlen}`);
      if (prev < 0 || plen < 0) throw new RawAppendError(file, rpos, 'position out of range');
      const rlen = plen > 0 ? DATA_HDR_LEN + plen : DATA_HDR_LEN + 8;
      if (r + rlen > tend) throw new RawAppendError(file, rpos, 'data record runs past its transaction');
      const old = index.getParts(hi, lo);
      const current = old > 0 ? old : 0;
      if (prev !== current) throw new RawAppendError(file, rpos, `data record prev ${prev} is not this storage's current position ${current} of the oid`);
      if (plen === 0) {
        const back = posAt(seg, r + DATA_HDR_LEN);
        if (back < 0) throw new RawAppendError(file, rpos, 'backpointer out of range');
        if (back !== 0) {
          if (back >= rpos) throw new RawAppendError(file, rpos, `backpointer ${back} does not point backwards`);
          if (back >= base) {
            if (!isRecordOf(undo, back, hi, lo)) throw new RawAppendError(file, rpos, `backpointer ${back} does not name a record of the same oid in the segment`);
          } else {
            let h;
            try {
              h = reader.readDataHeader(back);
            } catch (e) {
              throw new RawAppendError(file, rpos, `backpointer ${back} does not name a data record (${(e as Error).message})`);
            }
            if (h.oid !== readU64(seg, r)) throw new RawAppendError(file, rpos, `backpointer ${back} names a record of another oid`);
          }
        }
      }
      undo.push(hi, lo, old, rpos);
      index.setParts(hi, lo, rpos);
      // first record of this oid in this transaction: one invalidation
      if (current < tpos) oids.push(readU64(seg, r));
      if (hi > maxHi || (hi === maxHi && lo > maxLo)) {
        maxHi = hi;
        maxLo = lo;
      }
      r += rlen;
    }
    if (r !== tend) throw new RawAppendError(file, base + r, 'data records overrun the transaction');
    txns.push({ tid, oids });
    ltid = tid;
    off += tlen + 8;
  }
  if (off !== seg.length) throw new RawAppendError(file, base + off, 'segment does not end at a transaction boundary');
  return { txns, lastTid: ltid, maxHi, maxLo };
}

/** Is there a record of oid (hi, lo) at `pos` among the segment records logged in `undo`? */
function isRecordOf(undo: number[], pos: number, hi: number, lo: number): boolean {
  let a = 0;
  let b = undo.length / 4;
  while (a < b) {
    const m = (a + b) >> 1;
    const p = undo[m * 4 + 3]!;
    if (p === pos) return undo[m * 4] === hi && undo[m * 4 + 1] === lo;
    if (p < pos) a = m + 1;
    else b = m;
  }
  return false;
}

/** Put back the index entries `validate` changed, newest first. */
function rollback(index: FsIndex, undo: number[]): void {
  for (let i = undo.length - 4; i >= 0; i -= 4) {
    const old = undo[i + 2]!;
    index.setParts(undo[i]!, undo[i + 1]!, old > 0 ? old : 0);
  }
}

function writeAll(fd: number, file: string, buf: Buffer, pos: number): void {
  let off = 0;
  for (let guard = 0; off < buf.length; guard++) {
    const n = writeSync(fd, buf, off, buf.length - off, pos + off);
    if (n <= 0 || guard > buf.length) throw new RawAppendError(file, pos + off, `write returned ${n}`);
    off += n;
  }
}

/**
 * Validate and append `segments` (raw transactions of another FileStorage; each must start at
 * this storage's committed end at its turn), under the commit lock. Throws RawAppendError (or a
 * write error) for the first bad segment; the segments before it stay appended and, with
 * `sync`, durable and published.
 */
export async function appendRawTransactions(fs: FileStorage, segments: Buffer[], options: { sync?: boolean } = {}): Promise<RawAppendResult> {
  const x = internalsOf(fs);
  x.check();
  if (x.supportsBlobs()) throw new FileStorageError(`${x.path}: raw transactions cannot be appended to a blob storage (blob files are not in the data file)`);
  await x.commitLock.acquire();
  let transactions = 0;
  let bytes = 0;
  try {
    x.check();
    for (const seg of segments) {
      const base = x.pos();
      if (seg.length === 0) continue;
      if (seg.length > MAX_RAW_SEGMENT) throw new RawAppendError(x.path, base, `segment of ${seg.length} bytes is larger than ${MAX_RAW_SEGMENT}`);
      const index = x.index();
      const undo: number[] = [];
      let parsed: Parsed;
      try {
        parsed = validate(x, seg, base, undo, lastAppendedTid(fs));
      } catch (e) {
        rollback(index, undo);
        throw e;
      }
      const fd = x.fd();
      try {
        writeAll(fd, x.path, seg, base);
      } catch (e) {
        rollback(index, undo);
        try {
          ftruncateSync(fd, base);
        } catch {
          // the write error matters more
        }
        throw e;
      }
      const maxOid = parsed.maxHi < 0 ? 0n : (BigInt(parsed.maxHi) << 32n) | BigInt(parsed.maxLo);
      // the data is there (index, end); lastTransaction() moves only when it is durable and its
      // invalidations are published (syncRawAppends), as after tpc_finish
      x.advance(base + seg.length, x.lastTid(), maxOid);
      appendedTid.set(fs, parsed.lastTid);
      let p = pendingOf.get(fs);
      if (!p) pendingOf.set(fs, (p = { txns: [], bytes: 0, lastTid: 0n }));
      for (const t of parsed.txns) p.txns.push(t);
      p.lastTid = parsed.lastTid;
      p.bytes += seg.length;
      transactions += parsed.txns.length;
      bytes += seg.length;
    }
  } catch (e) {
    x.commitLock.release();
    if (options.sync ?? true) await syncRawAppends(fs);
    throw e;
  }
  x.commitLock.release();
  if (options.sync ?? true) await syncRawAppends(fs);
  return { transactions, bytes, lastTid: lastAppendedTid(fs), end: x.pos(), synced: !pendingOf.has(fs) && !syncChain.has(fs) };
}

const appendedTid = new WeakMap<FileStorage, Tid>();

/**
 * The last tid appended raw, durable or not (lastTransaction() gives the last durable and
 * published one). A FileStorage must not be closed while raw appends wait for syncRawAppends.
 */
export function lastAppendedTid(fs: FileStorage): Tid {
  const a = appendedTid.get(fs);
  const l = internalsOf(fs).lastTid();
  return a !== undefined && a > l ? a : l;
}

/** Bytes appended raw whose fdatasync has not been started (see syncRawAppends). */
export function unsyncedRawBytes(fs: FileStorage): number {
  return pendingOf.get(fs)?.bytes ?? 0;
}

const syncChain = new WeakMap<FileStorage, Promise<void>>();

/**
 * fdatasync what appendRawTransactions wrote with `sync: false` (everything appended before this
 * call), off the event loop, then publish its invalidations. Appends may go on meanwhile (a later
 * call covers them). Calls complete in order.
 */
export function syncRawAppends(fs: FileStorage): Promise<void> {
  const prev = syncChain.get(fs) ?? Promise.resolve();
  const p = pendingOf.get(fs);
  if (!p) return prev;
  pendingOf.delete(fs);
  const x = internalsOf(fs);
  const fd = x.fd();
  const run = prev
    .then(() => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(new RawAppendError(x.path, x.pos(), `fdatasync failed: ${e.message}`)) : resolve()))))
    .then(() => {
      for (const t of p.txns) {
        x.advance(x.pos(), t.tid, 0n);
        x.publish(t.tid, t.oids);
      }
      if (p.lastTid > x.lastTid()) x.advance(x.pos(), p.lastTid, 0n);
    });
  const settled = run.catch(() => undefined);
  syncChain.set(fs, settled);
  void settled.then(() => {
    if (syncChain.get(fs) === settled) syncChain.delete(fs);
  });
  return run;
}
