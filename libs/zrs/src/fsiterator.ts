/**
 * The primary's view of the data file (zrs spec §6.4, §6.6): its own read handle, the start
 * point search (forward, or backward from the end when the requested tid is nearer the end),
 * and transaction-by-transaction reading that waits at an unfinished ('c') transaction.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { TimeStamp, toHex, type Oid, type Tid } from '@zeo-ts/storage';
import { DATA_HDR_LEN, MAGIC_LEN, TRANS_HDR_LEN, decodeDataHeader, decodeTxnHeader, readPos } from '@zeo-ts/filestorage';

export class TidTooHigh extends Error {
  override name = 'TidTooHigh';
  constructor(readonly tid: Tid, detail = '') {
    super(`${toHex(tid)}${detail ? ` (${detail})` : ''}`);
  }
}

export class IteratorError extends Error {
  override name = 'CorruptedDataError';
}

export class ScanAborted extends Error {
  override name = 'ScanAborted';
}

export interface ReplRecord {
  oid: Oid;
  tid: Tid;
  /** resolved data; null = no data (creation undone / deleted) */
  data: Buffer | null;
  dataTxn: Tid | null;
}

export interface ReplTransaction {
  pos: number;
  tid: Tid;
  status: string;
  user: Buffer;
  description: Buffer;
  extension: Buffer;
  records: ReplRecord[];
  /** bytes of the transaction record in the file */
  size: number;
}

const WINDOW = 1 << 20;

export interface FileIteratorOptions {
  /** end of committed data (the storage's getSize()) for the backward strategy */
  committedEnd: () => number;
  /** the storage's last committed tid */
  lastTransaction: () => Tid;
  log?: Logger;
  /** checked before each scan step; true → stop (the secondary went away; §14 #16) */
  aborted?: () => boolean;
}

export class FileIterator {
  private fd: number;
  private ino: number;
  private winStart = 0;
  private win: Buffer = Buffer.alloc(0);
  private winBuf: Buffer | null = null;
  private closed = false;
  /** position of the next transaction to read */
  pos = MAGIC_LEN;
  /** tid of the last transaction produced (or the start tid) */
  lastTid: Tid = 0n;
  /** scan steps made by the start point search (tests) */
  scanSteps = 0;

  constructor(
    readonly path: string,
    private readonly o: FileIteratorOptions,
  ) {
    this.fd = openSync(path, 'r');
    this.ino = fstatSync(this.fd).ino;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private read(pos: number, len: number): Buffer {
    if (pos >= this.winStart && pos + len <= this.winStart + this.win.length) return this.win.subarray(pos - this.winStart, pos - this.winStart + len);
    const size = Math.max(len, WINDOW);
    // one reusable window (callers copy what they keep); a bigger one only for huge records
    if (!this.winBuf || this.winBuf.length < size) this.winBuf = Buffer.allocUnsafe(size);
    const buf = this.winBuf;
    let got = 0;
    while (got < size) {
      const n = readSync(this.fd, buf, got, size - got, pos + got);
      if (n <= 0) break;
      got += n;
    }
    this.winStart = pos;
    this.win = buf.subarray(0, got);
    return this.win.subarray(0, Math.min(len, got));
  }

  /** Drop read-ahead (the file grew or changed under the window). */
  private invalidate(): void {
    this.win = Buffer.alloc(0);
  }

  private readExact(pos: number, len: number, what: string): Buffer {
    const b = this.read(pos, len);
    if (b.length !== len) throw new IteratorError(`${this.path}: short read of ${what} at ${pos} (${b.length} of ${len} bytes)`);
    return b;
  }

  /** Position the iterator after `ltid` (§6.4). TidTooHigh when the file has nothing that late. */
  locate(ltid: Tid): void {
    this.lastTid = ltid;
    this.invalidate();
    if (ltid === 0n) {
      this.pos = MAGIC_LEN;
      return;
    }
    const first = this.read(MAGIC_LEN, 8);
    if (first.length < 8) throw new TidTooHigh(ltid, 'empty storage');
    const t1 = new TimeStamp(first.readBigUInt64BE(0)).timeTime();
    const t2 = new TimeStamp(this.o.lastTransaction()).timeTime();
    const t = new TimeStamp(ltid).timeTime();
    if (t - t1 < (t2 - t1) / 2) {
      this.pos = this.forward(MAGIC_LEN, ltid);
      return;
    }
    let p = this.o.committedEnd() - 8;
    if (p < 27) {
      this.pos = this.forward(MAGIC_LEN, ltid);
      return;
    }
    const l = readPos(this.readExact(p, 8, 'redundant length'), 0);
    p = p - l;
    if (p <= MAGIC_LEN) {
      this.pos = this.forward(MAGIC_LEN, ltid);
      return;
    }
    const h = decodeTxnHeader(this.readExact(p, TRANS_HDR_LEN, 'transaction header'));
    this.pos = h.tid <= ltid ? this.forward(p, ltid) : this.backward(p, ltid);
  }

  private step(): void {
    if (this.o.aborted?.()) throw new ScanAborted('start point scan stopped: the secondary disconnected');
    this.scanSteps++;
  }

  private forward(q: number, ltid: Tid): number {
    for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
      this.step();
      const b = this.read(q, TRANS_HDR_LEN);
      if (b.length === 0) throw new TidTooHigh(ltid, `end of file at ${q}`);
      if (b.length < TRANS_HDR_LEN) throw new IteratorError(`${this.path}: short transaction header at ${q}`);
      const h = decodeTxnHeader(b);
      if (h.status === 'c') throw new TidTooHigh(ltid, `unfinished transaction at ${q}`);
      if (h.tid > ltid) return q;
      q = q + h.tlen + 8;
      if (h.tid === ltid) return q;
    }
    throw new IteratorError('unreachable');
  }

  private backward(q: number, ltid: Tid): number {
    for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
      this.step();
      if (q <= MAGIC_LEN) return MAGIC_LEN;
      const l = readPos(this.readExact(q - 8, 8, 'redundant length'), 0);
      const prev = q - 8 - l;
      if (prev < MAGIC_LEN) throw new IteratorError(`${this.path}: bad redundant length ${l} before ${q}`);
      const h = decodeTxnHeader(this.readExact(prev, TRANS_HDR_LEN, 'transaction header'));
      if (h.tid <= ltid) return prev + l + 8;
      q = prev;
    }
    throw new IteratorError('unreachable');
  }

  /** After a pack the storage works on a new file: reopen it and find our place again (§6.11). */
  private checkReplaced(): void {
    let ino: number;
    try {
      ino = statSync(this.path).ino;
    } catch {
      return;
    }
    if (ino === this.ino) return;
    closeSync(this.fd);
    this.fd = openSync(this.path, 'r');
    this.ino = fstatSync(this.fd).ino;
    this.o.log?.info(`${this.path}: data file replaced (pack); re-locating after ${toHex(this.lastTid)}`);
    this.locate(this.lastTid);
  }

  /**
   * The next committed transaction, or null when none is available yet (end of file, or the
   * transaction there is still being committed). Status 'u' transactions are skipped (§13.1).
   */
  next(): ReplTransaction | null {
    for (let guard = 0; guard < 1_000_000; guard++) {
      const t = this.readOne();
      if (t === 'skip') continue;
      if (t === null) {
        this.checkReplaced();
        return this.readOneOrNull();
      }
      return t;
    }
    return null;
  }

  private readOneOrNull(): ReplTransaction | null {
    for (let guard = 0; guard < 1_000_000; guard++) {
      const t = this.readOne();
      if (t === 'skip') continue;
      return t;
    }
    return null;
  }

  private readOne(): ReplTransaction | null | 'skip' {
    const pos = this.pos;
    let b = this.read(pos, TRANS_HDR_LEN);
    if (b.length < TRANS_HDR_LEN) {
      // the window may predate a commit: read again from the file
      this.invalidate();
      b = this.read(pos, TRANS_HDR_LEN);
      if (b.length === 0) return null;
      if (b.length < TRANS_HDR_LEN) return null; // being written by another process; retry later
    }
    let h = decodeTxnHeader(b);
    if (h.status === 'c') {
      this.invalidate();
      h = decodeTxnHeader(this.readExact(pos, TRANS_HDR_LEN, 'transaction header'));
      if (h.status === 'c') return null;
    }
    if (h.tid <= this.lastTid) this.o.log?.warn(`${this.path} time-stamp reduction at ${pos}`);
    if (!' pu'.includes(h.status)) this.o.log?.warn(`${this.path} has invalid status, ${h.status}, at ${pos}`);
    const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
    if (h.tlen < hlen) {
      this.o.log?.fatal(`${this.path} has invalid transaction header at ${pos}`);
      throw new IteratorError(`${this.path} has invalid transaction header at ${pos}`);
    }
    const tend = pos + h.tlen;
    let rb = this.read(tend, 8);
    if (rb.length < 8) {
      this.invalidate();
      rb = this.read(tend, 8);
    }
    if (rb.length < 8 || readPos(rb, 0) !== h.tlen) {
      this.o.log?.warn(`${this.path} redundant transaction length check failed at ${tend}`);
      this.invalidate();
      return null;
    }
    this.pos = tend + 8;
    this.lastTid = h.tid;
    if (h.status === 'u') return 'skip';
    const full = this.readExact(pos, h.tlen, 'transaction record');
    const user = Buffer.from(full.subarray(TRANS_HDR_LEN, TRANS_HDR_LEN + h.ulen));
    const description = Buffer.from(full.subarray(TRANS_HDR_LEN + h.ulen, TRANS_HDR_LEN + h.ulen + h.dlen));
    const extension = Buffer.from(full.subarray(TRANS_HDR_LEN + h.ulen + h.dlen, hlen));
    const records: ReplRecord[] = [];
    let off = hlen;
    for (let guard = 0; off < h.tlen && guard < 1e9; guard++) {
      const rpos = pos + off;
      if (off + DATA_HDR_LEN > h.tlen) throw this.exceeds(rpos);
      const d = decodeDataHeader(full, off);
      const rlen = d.plen > 0 ? DATA_HDR_LEN + d.plen : DATA_HDR_LEN + 8;
      if (off + rlen > h.tlen || d.tloc !== pos) throw this.exceeds(rpos);
      let data: Buffer | null = null;
      let dataTxn: Tid | null = null;
      if (d.plen > 0) data = Buffer.from(full.subarray(off + DATA_HDR_LEN, off + rlen));
      else {
        const back = readPos(full, off + DATA_HDR_LEN);
        if (back !== 0) {
          const r = this.followBack(back, d.oid);
          data = r.data;
          dataTxn = r.dataTxn;
        }
      }
      records.push({ oid: d.oid, tid: d.tid, data, dataTxn });
      off += rlen;
    }
    // keep the window useful: a big transaction read should not evict the read-ahead forever
    return { pos, tid: h.tid, status: h.status, user, description, extension, records, size: h.tlen + 8 };
  }

  /** The transaction ending just before `pos` (null at the start of the file). */
  transactionBefore(pos: number): ReplTransaction | null {
    if (pos <= MAGIC_LEN + 8) return null;
    const l = readPos(this.readExact(pos - 8, 8, 'redundant length'), 0);
    const start = pos - 8 - l;
    if (start < MAGIC_LEN) throw new IteratorError(`${this.path}: bad redundant length ${l} before ${pos}`);
    const savedPos = this.pos;
    const savedTid = this.lastTid;
    try {
      this.pos = start;
      this.lastTid = 0n;
      const t = this.readOne();
      return t === null || t === 'skip' ? null : t;
    } finally {
      this.pos = savedPos;
      this.lastTid = savedTid;
    }
  }

  private exceeds(pos: number): IteratorError {
    this.o.log?.fatal(`${this.path} data record exceeds transaction record at ${pos}`);
    return new IteratorError(`${this.path} data record exceeds transaction record at ${pos}`);
  }

  /** Follow a back-pointer chain to its data; data_txn is the tid of the first hop (§6.6). */
  private followBack(back: number, oid: Oid): { data: Buffer | null; dataTxn: Tid } {
    const hb = Buffer.allocUnsafe(DATA_HDR_LEN + 8);
    const rd = (p: number, n: number): Buffer => {
      const buf = n <= hb.length ? hb.subarray(0, n) : Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const k = readSync(this.fd, buf, got, n - got, p + got);
        if (k <= 0) throw new IteratorError(`${this.path}: back-pointer to ${p} reads past the end of the file`);
        got += k;
      }
      return buf;
    };
    let dataTxn: Tid | null = null;
    let p = back;
    for (let hops = 0; hops < 1_000_000; hops++) {
      const d = decodeDataHeader(rd(p, DATA_HDR_LEN + 8));
      if (d.oid !== oid) throw new IteratorError(`${this.path}: back-pointer at ${p} names oid ${toHex(d.oid)}, expected ${toHex(oid)}`);
      if (dataTxn === null) dataTxn = d.tid;
      if (d.plen > 0) return { data: Buffer.from(rd(p + DATA_HDR_LEN, d.plen)), dataTxn };
      const next = readPos(hb, DATA_HDR_LEN);
      if (next === 0) return { data: null, dataTxn };
      p = next;
    }
    throw new IteratorError(`${this.path}: back-pointer chain too long from ${back}`);
  }
}
