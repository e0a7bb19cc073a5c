/**
 * fsrecover (filestorage spec §10.5): copy every readable transaction of a damaged data file
 * into a new one, skipping damaged transactions (found again by scanning for a plausible
 * transaction end), and report how many bytes were lost.
 *
 * The output is written by RecoverWriter, which follows FileStorage.restore's rules
 * (spec §10.4): records keep their serial; a record whose data lives in an earlier
 * transaction becomes a backpointer to that transaction's record in the *output*, and a
 * backpointer to a transaction that was lost makes the copy of that transaction fail
 * ("Invalid transaction id").
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { TimeStamp } from '@zeo-ts/storage';
import { encodeDataRecord, encodeTxnHeader } from '@zeo-ts/filestorage';
import { DATA_HDR_LEN, RawFile, TRANS_HDR_LEN, ToolError, decodeDataHdr, decodeTxnHdr, iterateRecords, type IterTxn } from './fsio.ts';
import { floatRepr, strRepr } from './pyfmt.ts';
import type { Out } from './output.ts';

/** Python's UndoError raised by restore when the backpointer's transaction is not in the output. */
export class RestoreError extends Error {
  override name = 'UndoError';
}

/**
 * A minimal FileStorage writer for recovery: an append-only FS30 file, its committed index,
 * and restore/commit following Python's byte layout.
 */
export class RecoverWriter {
  readonly fd: number;
  /** end of committed data */
  pos = 4;
  readonly index = new Map<bigint, number>();
  private txn: { tid: bigint; status: string; user: Buffer; description: Buffer; extension: Buffer; thl: number; parts: Buffer[]; size: number; tindex: Map<bigint, number> } | null = null;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w+');
    writeSync(this.fd, Buffer.from('FS30', 'latin1'), 0, 4, 0);
  }

  private read(pos: number, len: number): Buffer {
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, b, got, len - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    return b.subarray(0, got);
  }

  tpcBegin(tid: bigint, status: string, user: Buffer, description: Buffer, extension: Buffer): void {
    if (this.txn) throw new Error('RecoverWriter: a transaction is already in progress');
    this.txn = { tid, status, user, description, extension, thl: TRANS_HDR_LEN + user.length + description.length + extension.length, parts: [], size: 0, tindex: new Map() };
  }

  /** Python's _txn_find: the position of the committed output transaction with this tid. */
  private txnFind(tid: bigint): number {
    let pos = this.pos;
    while (pos > 39) {
      const tl = this.read(pos - 8, 8).readBigUInt64BE(0);
      pos = pos - Number(tl) - 8;
      if (this.read(pos, 8).readBigUInt64BE(0) === tid) return pos;
    }
    // str() of Python's UndoError without an oid
    throw new RestoreError('Undo error None: Invalid transaction id');
  }

  /** Python's FileStorage._data_find: backpointer target for oid in the transaction at tpos, or 0. */
  private dataFind(tpos: number, oid: bigint, data: Buffer | null, warn: (s: string) => void): number {
    const h = decodeTxnHdr(this.read(tpos, TRANS_HDR_LEN), 0);
    const tend = tpos + h.tlen;
    let pos = tpos + TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
    let found: { pos: number; plen: number } | null = null;
    while (pos < tend) {
      const d = decodeDataHdr(this.read(pos, DATA_HDR_LEN), 0);
      if (d.oid === oid) found = { pos, plen: d.plen };
      pos += d.plen > 0 ? DATA_HDR_LEN + d.plen : DATA_HDR_LEN + 8;
    }
    if (!found) return 0;
    if (found.plen === 0) return found.pos;
    if (data === null) throw new ToolError("object of type 'NoneType' has no len()");
    if (found.plen !== data.length) {
      warn(`Mismatch between data and backpointer at ${pos}`);
      return 0;
    }
    return this.read(found.pos + DATA_HDR_LEN, found.plen).equals(data) ? found.pos : 0;
  }

  restore(oid: bigint, serial: bigint, data: Buffer | null, prevTxn: bigint | null, warn: (s: string) => void): void {
    const t = this.txn;
    if (!t) throw new Error('RecoverWriter.restore outside a transaction');
    let prevPos = 0;
    if (prevTxn !== null) prevPos = this.dataFind(this.txnFind(prevTxn), oid, data, warn);
    const old = this.index.get(oid) ?? 0;
    const here = this.pos + t.thl + t.size;
    t.tindex.set(oid, here);
    const rec = prevPos ? encodeDataRecord(oid, serial, old, this.pos, null, prevPos) : encodeDataRecord(oid, serial, old, this.pos, data, 0);
    t.parts.push(rec);
    t.size += rec.length;
  }

  /** Vote and finish: write the record with status 'c', then the real status byte, fsync. */
  tpcFinish(): void {
    const t = this.txn;
    if (!t) throw new Error('RecoverWriter.tpcFinish outside a transaction');
    const tlen = t.thl + t.size;
    const head = encodeTxnHeader(t.tid, tlen, 'c', { user: t.user, description: t.description, extension: t.extension });
    const tail = Buffer.alloc(8);
    tail.writeBigUInt64BE(BigInt(tlen), 0);
    const all = Buffer.concat([head, ...t.parts, tail]);
    try {
      let off = 0;
      while (off < all.length) off += writeSync(this.fd, all, off, all.length - off, this.pos + off);
      writeSync(this.fd, Buffer.from(t.status, 'latin1'), 0, 1, this.pos + 16);
      fsyncSync(this.fd);
    } catch (e) {
      ftruncateSync(this.fd, this.pos);
      this.txn = null;
      throw e;
    }
    this.pos += all.length;
    for (const [k, v] of t.tindex) this.index.set(k, v);
    this.txn = null;
  }

  tpcAbort(): void {
    this.txn = null;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Python's scan(): a plausible transaction start after `pos`, or 0 at the end of the file. */
export function scanForward(f: RawFile, start: number): number {
  let pos = start;
  const CH = 8096;
  for (;;) {
    const data = f.read(pos, CH);
    if (data.length === 0) return 0;
    let s = 0;
    for (;;) {
      const l = data.indexOf(0x2e, s);
      if (l < 0) {
        pos += data.length;
        break;
      }
      s = l + 1;
      if (s > data.length - 8) {
        // Python re-reads from the '.'; at the end of the file that would never finish
        if (data.length < CH) return 0;
        pos += l;
        break;
      }
      const tl = data.readBigUInt64BE(s);
      if (tl < BigInt(pos)) return pos + s + 8;
    }
  }
}

class HeaderError extends Error {}
class EndOfInput extends Error {}

export interface RecoverOptions {
  verbose: number;
  partial: boolean;
  out: Out;
  /** warnings Python logs (stderr) */
  warn: (s: string) => void;
}

export interface RecoverResult {
  /** bytes of the input not carried over (size - undone - output size) */
  bad: number;
  undone: number;
  outputSize: number;
  /** transactions copied */
  copied: number;
}

function readTxnHeader(f: RawFile, pos: number, outp: string, ltid: bigint | null): { npos: number; txn: IterTxn | null; tid: bigint } {
  const hb = f.read(pos, TRANS_HDR_LEN);
  if (hb.length < TRANS_HDR_LEN) throw new EndOfInput();
  const h = decodeTxnHdr(hb, 0);
  if (h.statusByte >= 0x80) {
    // Python decodes the status byte as ASCII before any check
    throw new HeaderError(`'ascii' codec can't decode byte 0x${h.statusByte.toString(16)} in position 0: ordinal not in range(128)`);
  }
  const tl = h.tlenBig;
  if (BigInt(pos) + tl + 8n > BigInt(f.size)) throw new HeaderError(`bad transaction length at ${pos}`);
  const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
  if (tl < BigInt(hlen)) throw new HeaderError(`invalid transaction length, ${tl}, at ${pos}`);
  if (ltid !== null && h.tid < ltid) throw new HeaderError(`time-stamp reducation ${h.tid} < ${ltid}, at ${pos}`);
  if (h.status === 'c') {
    saveTail(f, pos, outp);
    throw new EndOfInput();
  }
  if (!' up'.includes(h.status)) throw new HeaderError(`invalid status, ${strRepr(h.status)}, at ${pos}`);
  const tend = pos + h.tlen;
  const stl = hb.subarray(8, 16);
  if (h.status === 'u') {
    if (!f.read(tend, 8).equals(stl)) throw new HeaderError(`inconsistent transaction length at ${pos}`);
    return { npos: tend + 8, txn: null, tid: h.tid };
  }
  const o = pos + TRANS_HDR_LEN;
  const user = f.read(o, h.ulen);
  const description = f.read(o + h.ulen, h.dlen);
  const extension = f.read(o + h.ulen + h.dlen, h.elen);
  if (!f.read(tend, 8).equals(stl)) throw new HeaderError(`redundant transaction length check failed at ${tend}`);
  const txn: IterTxn = { tid: h.tid, status: h.status, statusByte: h.statusByte, user, description, extension, tpos: pos, pos: pos + hlen, tend, tlen: h.tlen, hlen };
  return { npos: tend + 8, txn, tid: h.tid };
}

/** Copy [pos, size) of the input to the first free <outp>.trN (a checkpoint tail). */
function saveTail(f: RawFile, pos: number, outp: string): void {
  let i = 0;
  while (existsSync(`${outp}.tr${i}`)) i++;
  const fd = openSync(`${outp}.tr${i}`, 'w');
  try {
    let p = pos;
    while (p < f.size) {
      const chunk = f.read(p, Math.min(1 << 20, f.size - p));
      if (!chunk.length) break;
      writeSync(fd, chunk);
      p += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
}

/** The progress indicator of verbosity 0: "0 . 1.0 . 2.0 ..." (Python 3 prints i/2 as a float). */
function iprogress(out: Out, i: number): void {
  out.write(i % 2 ? '. ' : `${floatRepr((i / 2) % 10)} `);
}

export async function recover(inp: string, outp: string, opts: RecoverOptions): Promise<RecoverResult> {
  const { out, verbose } = opts;
  const f = new RawFile(inp);
  const ofs = new RecoverWriter(outp);
  let copied = 0;
  try {
    let ts: TimeStamp | null = null;
    let ok = true;
    let prog1 = 0;
    let undone = 0;
    let pos = 4;
    let ltid: bigint | null = null;
    const progress = (p: number) => {
      for (let i = 0; i < p; i++) iprogress(out, i);
    };
    while (pos) {
      let r: { npos: number; txn: IterTxn | null; tid: bigint };
      try {
        r = readTxnHeader(f, pos, outp, ltid);
      } catch (e) {
        if (e instanceof EndOfInput) break;
        out.write(`error reading txn header: ${(e as Error).message}\n`);
        if (!verbose) progress(prog1);
        pos = scanForward(f, pos);
        if (verbose > 1) out.write(`looking for valid txn header at ${pos}\n`);
        continue;
      }
      ltid = r.tid;
      const txn = r.txn;
      if (txn === null) {
        undone += r.npos - pos;
        pos = r.npos;
        continue;
      }
      pos = r.npos;
      let tid = txn.tid;
      if (ts === null) ts = new TimeStamp(tid);
      else {
        const t = new TimeStamp(tid);
        if (t.raw <= ts.raw) {
          if (ok) out.write(`Time stamps out of order ${ts.toString()}, ${t.toString()}\n`);
          ok = false;
          ts = t.laterThan(ts);
          tid = ts.raw;
        } else {
          ts = t;
          if (!ok) {
            out.write(`Time stamps back in order ${t.toString()}\n`);
            ok = true;
          }
        }
      }
      ofs.tpcBegin(tid, txn.status, txn.user, txn.description, txn.extension);
      if (verbose) {
        out.write(`begin ${pos} ${ts.toString()} `);
        if (verbose > 1) out.write('\n');
      }
      let nrec = 0;
      let failed = false;
      try {
        for (const rec of iterateRecords(f, txn, (w) => opts.warn(w.message))) {
          if (verbose > 1) out.write(`${String(rec.oid).padStart(7)} ${rec.data === null ? 'bp' : rec.data.length}\n`);
          ofs.restore(rec.oid, rec.tid, rec.data, rec.dataTxn, opts.warn);
          nrec++;
        }
      } catch (e) {
        if (opts.partial && nrec) {
          ofs.tpcFinish();
          copied++;
          if (verbose) out.write('partial\n');
        } else ofs.tpcAbort();
        out.write(`error copying transaction: ${(e as Error).message}\n`);
        if (!verbose) progress(prog1);
        pos = scanForward(f, pos);
        if (verbose > 1) out.write(`looking for valid txn header at ${pos}\n`);
        failed = true;
      }
      if (!failed) {
        ofs.tpcFinish();
        copied++;
        if (verbose) out.write('finish\n');
      }
      if (!verbose) {
        const prog = (pos * 20) / f.size;
        while (prog > prog1) {
          prog1++;
          iprogress(out, prog1);
        }
      }
      await out.maybeFlush();
    }
    const bad = f.size - undone - ofs.pos;
    out.write(`\n${bad} bytes removed during recovery\n`);
    if (undone) out.write(`${undone} bytes of undone transaction data were skipped\n`);
    return { bad, undone, outputSize: ofs.pos, copied };
  } finally {
    ofs.close();
    f.close();
  }
}
