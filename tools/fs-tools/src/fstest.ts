/**
 * fstest: a standalone consistency check of the raw bytes of a data file (filestorage spec §8.3,
 * §11.2). It stops at the first problem with the message Python's fstest prints. Arithmetic on
 * positions and lengths is done in bigint so that garbage lengths are reported exactly.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TRANS_HDR_LEN, DATA_HDR_LEN } from './fsio.ts';
import { bytesRepr } from './pyfmt.ts';
import type { Out } from './output.ts';

/** A problem found by fstest; the message is exactly Python's. */
export class FormatError extends Error {
  override name = 'FormatError';
}

function hexify(b: Buffer): string {
  return '0x' + b.toString('hex');
}

/** Sequential reader with a file pointer, like the Python file object fstest uses. */
class SeqFile {
  pos = 0n;
  constructor(readonly fd: number, readonly size: bigint) {}
  read(n: number): Buffer {
    if (this.pos >= this.size || n <= 0) return Buffer.alloc(0);
    const avail = this.size - this.pos;
    const len = BigInt(n) > avail ? Number(avail) : n;
    const b = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const r = readSync(this.fd, b, got, len - got, Number(this.pos) + got);
      if (r === 0) break;
      got += r;
    }
    this.pos += BigInt(got);
    return got === len ? b : b.subarray(0, got);
  }
  seek(p: bigint): void {
    this.pos = p;
  }
}

export interface FstestOptions {
  verbose: number;
  out: Out;
}

/**
 * Check `path`; throws FormatError (message = Python's) at the first problem. With verbose ≥ 1
 * a line per transaction, with ≥ 2 also a line per data record, before its transaction line.
 */
export async function fstest(path: string, opts: FstestOptions): Promise<void> {
  const fd = openSync(path, 'r');
  try {
    const size = BigInt(fstatSync(fd).size);
    const file = new SeqFile(fd, size);
    if (size === 0n) throw new FormatError('empty file');
    // FS21 (Python 2) has the FS30 layout and is checked the same way (Python 3's fstest says
    // "invalid file header"); the command line adds a note on stderr
    const magic = file.read(4).toString('latin1');
    if (magic !== 'FS30' && magic !== 'FS21') throw new FormatError('invalid file header');
    let pos: bigint | null = 4n;
    let ltid: Buffer = Buffer.alloc(8);
    let i = 0;
    while (pos !== null) {
      const tpos: bigint = pos;
      const r = checkTrec(path, file, tpos, ltid, size, opts);
      if (r === null) break;
      pos = r.next;
      ltid = r.tid;
      if (opts.verbose >= 1) opts.out.write(`${String(tpos).padStart(10)}: transaction tid ${hexify(r.tid)} #${i} \n`);
      i++;
      await opts.out.maybeFlush();
    }
    if (opts.verbose >= 1) opts.out.write('no errors detected');
  } finally {
    closeSync(fd);
  }
}

function checkTrec(path: string, file: SeqFile, pos: bigint, ltid: Buffer, size: bigint, opts: FstestOptions): { next: bigint; tid: Buffer } | null {
  file.seek(pos);
  const h = file.read(TRANS_HDR_LEN);
  if (h.length === 0) return null;
  if (h.length !== TRANS_HDR_LEN) throw new FormatError(`${path} truncated at ${pos}`);
  const tid = Buffer.from(h.subarray(0, 8));
  const stl = Buffer.from(h.subarray(8, 16));
  const status = h[16]!;
  const ul = h.readUInt16BE(17);
  const dl = h.readUInt16BE(19);
  const el = h.readUInt16BE(21);
  const tmetaLen = BigInt(TRANS_HDR_LEN + ul + dl + el);

  if (Buffer.compare(tid, ltid) <= 0) {
    throw new FormatError(`${path} time-stamp reduction at ${pos}: ${hexify(tid)} <= ${hexify(ltid)}`);
  }
  const tl = stl.readBigUInt64BE(0);
  if (pos + tl + 8n > size) throw new FormatError(`${path} truncated possibly because of damaged records at ${pos}`);
  if (status === 0x63) throw new FormatError(`${path} checkpoint flag was not cleared at ${pos}`);
  if (status !== 0x20 && status !== 0x75 && status !== 0x70) {
    throw new FormatError(`${path} has invalid status '${bytesRepr(Buffer.of(status))}' at ${pos}`);
  }
  if (tmetaLen > tl) throw new FormatError(`${path} has an invalid transaction header at ${pos}`);

  const tpos = pos;
  const tend = tpos + tl;
  let p = pos;
  if (status !== 0x75) {
    p = tpos + tmetaLen;
    file.read(ul + dl + el);
    let i = 0;
    while (p < tend) {
      const recpos = p;
      const r = checkDrec(path, file, p, tpos);
      p = r.next;
      if (p > tend) throw new FormatError(`${path} has data records that extend beyond the transaction record; end at ${p}`);
      if (opts.verbose >= 2) opts.out.write(`${String(recpos).padStart(10)}: object oid ${hexify(r.oid)} #${i}\n`);
      i++;
    }
  }
  file.seek(tend);
  const rtl = file.read(8);
  if (!rtl.equals(stl)) throw new FormatError(`${path} has inconsistent transaction length for undone transaction at ${p}`);
  return { next: tend + 8n, tid };
}

function checkDrec(path: string, file: SeqFile, pos: bigint, tpos: bigint): { next: bigint; oid: Buffer } {
  const h = file.read(DATA_HDR_LEN);
  if (h.length !== DATA_HDR_LEN) throw new FormatError(`${path} truncated at ${pos}`);
  const oid = Buffer.from(h.subarray(0, 8));
  const tloc = h.readBigUInt64BE(24);
  const vlen = h.readUInt16BE(32);
  const plen = h.readBigUInt64BE(34);
  let dlen = BigInt(DATA_HDR_LEN) + (plen === 0n ? 8n : plen);
  if (vlen) {
    // legacy version layout (spec §3.4): non-version data pos, previous version record, name
    dlen += 16n + BigInt(vlen);
    file.seek(file.pos + 8n);
    file.read(8);
    file.seek(file.pos + BigInt(vlen));
  }
  if (tloc !== tpos) throw new FormatError(`${path} data record exceeds transaction record at ${pos}: tloc ${tloc} != tpos ${tpos}`);
  file.seek(file.pos + (plen === 0n ? 8n : plen));
  return { next: pos + dlen, oid };
}
