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
import { writeSync, fdatasyncSync, ftruncateSync } from 'node:fs';
import type { Oid, Tid } from '@zeo-ts/storage';
import { FileStorageError } from './errors.ts';
import type { FileReader } from './file-reader.ts';
import type { FsIndex } from './fsindex.ts';
import { DATA_HDR_LEN, TRANS_HDR_LEN, readPos, readU64 } from './format.ts';
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
  /** the storage's last tid afterwards */
  lastTid: Tid;
  /** the storage's committed end afterwards */
  end: number;
  /** true when everything appended so far is durable and published */
  synced: boolean;
}

interface Pending {
  txns: Array<{ tid: Tid; oids: Oid[] }>;
  bytes: number;
}
const pendingOf = new WeakMap<FileStorage, Pending>();

/** Largest segment accepted in one call (a bound on what a peer can make us buffer and walk). */
export const MAX_RAW_SEGMENT = 1 << 30;

const TWO32 = 0x100000000;

interface Parsed {
  txns: Array<{ tid: Tid; oids: Oid[] }>;
  /** (oid hi, oid lo, position) of every record, in order */
  entries: number[];
  lastTid: Tid;
  maxHi: number;
  maxLo: number;
}

/**
 * Check a segment that would be written at `base` (this storage's committed end) and list what
 * it changes. Throws RawAppendError at the first problem. Pure apart from index/file lookups.
 */
function validate(x: RawAppendInternals, seg: Buffer, base: number): Parsed {
  const file = x.path;
  const index = x.index();
  const reader = x.reader();
  let ltid = x.lastTid();
  const txns: Parsed['txns'] = [];
  const entries: number[] = [];
  // positions of this segment's records by oid (prev / backpointer checks inside the segment)
  const local = new Map<number, number>(); // key: hi * 2^32 + lo when safe, else string
  const localBig = new Map<string, number>();
  const localRecords = new Map<number, string>(); // record position → oid key
  let maxHi = -1;
  let maxLo = -1;
  const keyOf = (hi: number, lo: number): number | string => (hi < 0x200000 ? hi * TWO32 + lo : `${hi}:${lo}`);
  const localGet = (k: number | string) => (typeof k === 'number' ? local.get(k) : localBig.get(k));
  let off = 0;
  for (let guard = 0; off < seg.length; guard++) {
    if (guard > seg.length) throw new RawAppendError(file, base + off, 'transaction walk does not advance');
    const tpos = base + off;
    if (seg.length - off < TRANS_HDR_LEN + 8) throw new RawAppendError(file, tpos, `truncated transaction (${seg.length - off} bytes left)`);
    const tid = readU64(seg, off);
    let tlen: number;
    try {
      tlen = readPos(seg, off + 8);
    } catch {
      throw new RawAppendError(file, tpos, 'transaction length out of range');
    }
    const status = seg[off + 16]!;
    const ulen = seg.readUInt16BE(off + 17);
    const dlen = seg.readUInt16BE(off + 19);
    const elen = seg.readUInt16BE(off + 21);
    if (tid <= ltid) throw new RawAppendError(file, tpos, `transaction id ${tid.toString(16).padStart(16, '0')} is not later than ${ltid.toString(16).padStart(16, '0')}`);
    if (status !== 0x20 && status !== 0x70 && status !== 0x75) throw new RawAppendError(file, tpos, `transaction status ${JSON.stringify(String.fromCharCode(status))} is not committed`);
    const hlen = TRANS_HDR_LEN + ulen + dlen + elen;
    if (tlen < hlen) throw new RawAppendError(file, tpos, `transaction length ${tlen} shorter than its header (${hlen})`);
    if (off + tlen + 8 > seg.length) throw new RawAppendError(file, tpos, `transaction length ${tlen} runs past the segment end (${seg.length - off} bytes left)`);
    if (readPosSafe(seg, off + tlen) !== tlen) throw new RawAppendError(file, tpos + tlen, 'redundant transaction length does not match');
    if (status === 0x75) {
      // 'u': kept byte for byte but, as the open scan does, neither indexed nor published
      ltid = tid;
      off += tlen + 8;
      continue;
    }
    const oids: Oid[] = [];
    const seen = new Set<number | string>();
    let r = off + hlen;
    const tend = off + tlen;
    for (let g = 0; r < tend; g++) {
      if (g > tlen) throw new RawAppendError(file, base + r, 'record walk does not advance');
      const rpos = base + r;
      if (tend - r < DATA_HDR_LEN) throw new RawAppendError(file, rpos, 'truncated data record header');
      const hi = seg.readUInt32BE(r);
      const lo = seg.readUInt32BE(r + 4);
      const rtid = readU64(seg, r + 8);
      const prev = readPosSafe(seg, r + 16);
      const tloc = readPosSafe(seg, r + 24);
      const vlen = seg.readUInt16BE(r + 32);
      const plen = readPosSafe(seg, r + 34);
      if (rtid !== tid) throw new RawAppendError(file, rpos, 'data record tid differs from its transaction');
      if (tloc !== tpos) throw new RawAppendError(file, rpos, `data record tloc ${tloc} is not its transaction's position ${tpos}`);
      if (vlen !== 0) throw new RawAppendError(file, rpos, `non-zero version length ${vlen}`);
      if (prev < 0 || plen < 0) throw new RawAppendError(file, rpos, 'position out of range');
      const rlen = plen > 0 ? DATA_HDR_LEN + plen : DATA_HDR_LEN + 8;
      if (r + rlen > tend) throw new RawAppendError(file, rpos, 'data record runs past its transaction');
      const k = keyOf(hi, lo);
      const cur = localGet(k) ?? index.getParts(hi, lo);
      const current = cur > 0 ? cur : 0;
      if (prev !== current) throw new RawAppendError(file, rpos, `data record prev ${prev} is not this storage's current position ${current} of the oid`);
      if (plen === 0) {
        const back = readPosSafe(seg, r + DATA_HDR_LEN);
        if (back < 0) throw new RawAppendError(file, rpos, 'backpointer out of range');
        if (back !== 0) {
          if (back >= rpos) throw new RawAppendError(file, rpos, `backpointer ${back} does not point backwards`);
          if (back >= base) {
            if (localRecords.get(back) !== String(k)) throw new RawAppendError(file, rpos, `backpointer ${back} does not name a record of the same oid in the segment`);
          } else {
            let h;
            try {
              h = reader.readDataHeader(back);
            } catch (e) {
              throw new RawAppendError(file, rpos, `backpointer ${back} does not name a data record (${(e as Error).message})`);
            }
            const bh = Number(h.oid >> 32n);
            const bl = Number(h.oid & 0xffffffffn);
            if (bh !== hi || bl !== lo) throw new RawAppendError(file, rpos, `backpointer ${back} names a record of another oid`);
          }
        }
      }
      if (typeof k === 'number') local.set(k, rpos);
      else localBig.set(k, rpos);
      localRecords.set(rpos, String(k));
      entries.push(hi, lo, rpos);
      if (!seen.has(k)) {
        seen.add(k);
        oids.push((BigInt(hi) << 32n) | BigInt(lo));
      }
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
  return { txns, entries, lastTid: ltid, maxHi, maxLo };
}

function readPosSafe(b: Buffer, o: number): number {
  try {
    return readPos(b, o);
  } catch {
    return -1;
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

function flushLocked(fs: FileStorage, x: RawAppendInternals): void {
  const p = pendingOf.get(fs);
  if (!p || (p.txns.length === 0 && p.bytes === 0)) return;
  fdatasyncSync(x.fd());
  pendingOf.delete(fs);
  for (const t of p.txns) x.publish(t.tid, t.oids);
}

/**
 * Validate and append `segments` (raw transactions of another FileStorage; each must start at
 * this storage's committed end at its turn), under the commit lock. Throws RawAppendError (or a
 * write error) for the first bad segment; the segments before it stay appended and, with
 * `sync`, durable and published.
 */
export async function appendRawTransactions(fs: FileStorage, segments: Buffer[], options: { sync?: boolean } = {}): Promise<RawAppendResult> {
  const x = fs.rawAppendInternals();
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
      const parsed = validate(x, seg, base);
      const fd = x.fd();
      try {
        writeAll(fd, x.path, seg, base);
      } catch (e) {
        try {
          ftruncateSync(fd, base);
        } catch {
          // the write error matters more
        }
        throw e;
      }
      const index = x.index();
      const e = parsed.entries;
      for (let i = 0; i < e.length; i += 3) index.setParts(e[i]!, e[i + 1]!, e[i + 2]!);
      const maxOid = parsed.maxHi < 0 ? 0n : (BigInt(parsed.maxHi) << 32n) | BigInt(parsed.maxLo);
      x.advance(base + seg.length, parsed.lastTid, maxOid);
      let p = pendingOf.get(fs);
      if (!p) pendingOf.set(fs, (p = { txns: [], bytes: 0 }));
      for (const t of parsed.txns) p.txns.push(t);
      p.bytes += seg.length;
      transactions += parsed.txns.length;
      bytes += seg.length;
    }
  } finally {
    try {
      if (options.sync ?? true) flushLocked(fs, x);
    } finally {
      x.commitLock.release();
    }
  }
  return { transactions, bytes, lastTid: x.lastTid(), end: x.pos(), synced: !pendingOf.has(fs) };
}

/** Bytes appended raw but not yet fdatasynced (0 when everything is durable). */
export function unsyncedRawBytes(fs: FileStorage): number {
  return pendingOf.get(fs)?.bytes ?? 0;
}

/** fdatasync what appendRawTransactions wrote with `sync: false`, then publish its invalidations. */
export async function syncRawAppends(fs: FileStorage): Promise<void> {
  if (!pendingOf.has(fs)) return;
  const x = fs.rawAppendInternals();
  await x.commitLock.acquire();
  try {
    flushLocked(fs, x);
  } finally {
    x.commitLock.release();
  }
}
