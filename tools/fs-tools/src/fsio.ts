/**
 * Reading a data file the way Python's tools do (filestorage spec §3, §9.9, §11).
 *
 * The record layouts come from @zeo-ts/filestorage's pure codecs. The tools must survive
 * damaged files, so lengths that do not fit a position (≥ 2^53, only seen in garbage) are
 * decoded leniently here instead of failing: such a length is simply "past the end".
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  DATA_HDR_LEN,
  RecordFormatError,
  TRANS_HDR_LEN,
  decodeDataHeader,
  decodeTxnHeader,
  fileFormat,
  type DataHeader,
  type FileFormat,
  type TxnHeader,
} from '@zeo-ts/filestorage';
import { bytesRepr, oidRepr } from './pyfmt.ts';

export { DATA_HDR_LEN, TRANS_HDR_LEN };

/** A read-only data file with positional reads (short reads at the end of the file are allowed). */
export class RawFile {
  readonly path: string;
  readonly fd: number;
  readonly size: number;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }

  /** Up to `len` bytes at `pos` (fewer at the end of the file). */
  read(pos: number, len: number): Buffer {
    if (pos >= this.size || len <= 0) return Buffer.alloc(0);
    const n0 = Math.min(len, this.size - pos);
    const b = Buffer.allocUnsafe(n0);
    let got = 0;
    while (got < n0) {
      const n = readSync(this.fd, b, got, n0 - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    return got === n0 ? b : b.subarray(0, got);
  }

  /** u64 at pos as a number (lenient: huge values become imprecise but stay huge); null if short. */
  readU64(pos: number): number | null {
    const b = this.read(pos, 8);
    return b.length === 8 ? u64num(b, 0) : null;
  }

  /** The file's format from its magic: FS30, FS21 (Python 2, same layout) or null. */
  format(): FileFormat | null {
    return fileFormat(this.read(0, 4));
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * The note the tools print on stderr when they read an FS21 file (written by ZODB on Python 2):
 * they read it with the FS30 record layout, which is the same, while Python 3's tools refuse it.
 */
export function fs21Note(path: string): string {
  return `${path}: FS21 file (written by ZODB on Python 2), read with the FS30 record layout; Python 3 ZODB refuses it: convert it with fsconvert-fs21 ${path} NEW.fs`;
}

/** A u64 as a JavaScript number; exact below 2^53. */
export function u64num(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x100000000 + b.readUInt32BE(off + 4);
}

/** Transaction header decoded from 23 bytes (lenient about garbage lengths). `tlenBig` is exact. */
export interface TxnHdr extends TxnHeader {
  tlenBig: bigint;
  /** the raw status byte */
  statusByte: number;
}

export function decodeTxnHdr(b: Buffer, off = 0): TxnHdr {
  let h: TxnHeader;
  try {
    h = decodeTxnHeader(b, off);
  } catch (e) {
    if (!(e instanceof RecordFormatError) || b.length - off < TRANS_HDR_LEN) throw e;
    // tlen too large for a position: keep every other field, tlen as an (inexact) huge number
    h = { ...decodeTxnHeader(withZeroedU64(b, off, 8), 0), tlen: u64num(b, off + 8) };
  }
  return { ...h, tlenBig: b.readBigUInt64BE(off + 8), statusByte: b[off + 16]! };
}

/** Data record header decoded from 42 bytes (lenient about garbage positions/lengths). */
export function decodeDataHdr(b: Buffer, off = 0): DataHeader {
  try {
    return decodeDataHeader(b, off);
  } catch (e) {
    if (!(e instanceof RecordFormatError) || b.length - off < DATA_HDR_LEN) throw e;
    const z = withZeroedU64(withZeroedU64(withZeroedU64(b, off, 16), 0, 24), 0, 34);
    return { ...decodeDataHeader(z, 0), prev: u64num(b, off + 16), tloc: u64num(b, off + 24), plen: u64num(b, off + 34) };
  }
}

function withZeroedU64(b: Buffer, off: number, field: number): Buffer {
  const c = Buffer.from(b.subarray(off));
  c.fill(0, field, field + 8);
  return c;
}

/** A data record as Python's FileIterator yields it (spec §9.9). */
export interface IterRecord {
  oid: bigint;
  tid: bigint;
  /** own data, data resolved through the backpointer chain, or null (zero backpointer) */
  data: Buffer | null;
  /** tid of the record directly named by the backpointer (one hop), else null */
  dataTxn: bigint | null;
  pos: number;
}

/** A transaction as Python's FileIterator yields it. */
export interface IterTxn {
  tid: bigint;
  status: string;
  statusByte: number;
  user: Buffer;
  description: Buffer;
  extension: Buffer;
  /** header position */
  tpos: number;
  /** first record position */
  pos: number;
  /** tpos + tlen */
  tend: number;
  tlen: number;
  hlen: number;
}

export interface IterWarning {
  pos: number;
  message: string;
}

/** Error raised for damage the iterator cannot step over (Python would raise too). */
export class ToolError extends Error {
  override name = 'ToolError';
}

/**
 * Python's `_loadBack_impl(oid, back, fail=False)`: follow backpointers until data; null when the
 * chain ends in a zero backpointer. Bounded: positions must strictly decrease.
 */
export function loadBackLenient(f: RawFile, oid: bigint, back: number): { data: Buffer | null; tid: bigint; pos: number } {
  let p = back;
  let last = Infinity;
  for (;;) {
    if (p === 0) throw new ToolError(`POSKeyError ${oid.toString(16)}`);
    if (!(p < last)) throw new ToolError(`${f.path}: backpointer loop at ${p}`);
    last = p;
    const h = readDataHeaderAt(f, p);
    // a short read at the end of the file gives what is there, as Python's file.read does
    if (h.plen > 0) return { data: f.read(p + DATA_HDR_LEN, h.plen), tid: h.tid, pos: p };
    const b = f.readU64(p + DATA_HDR_LEN);
    if (b === null) throw new ToolError(`${f.path}: truncated backpointer at ${p}`);
    if (b === 0) return { data: null, tid: h.tid, pos: p };
    p = b;
  }
}

/** Python's CorruptedDataError, whose text the tools print ("Error reading oid 0x01.  Found b'...' at 123"). */
export class CorruptedDataText extends ToolError {
  override name = 'CorruptedDataError';
  constructor(oid: bigint | null, buf: Buffer, pos: number) {
    let msg = oid !== null ? `Error reading oid ${oidRepr(oid)}.  Found ${bytesRepr(buf)}` : `Error reading unknown oid.  Found ${bytesRepr(buf)}`;
    if (pos) msg += ` at ${pos}`;
    super(msg);
  }
}

/** The data record header at pos; with `oid`, it must be a record of that oid (Python's _read_data_header). */
export function readDataHeaderAt(f: RawFile, pos: number, oid: bigint | null = null): DataHeader {
  const b = f.read(pos, DATA_HDR_LEN);
  if (b.length !== DATA_HDR_LEN) throw new CorruptedDataText(oid, b, pos);
  const h = decodeDataHdr(b, 0);
  if (oid !== null && h.oid !== oid) throw new CorruptedDataText(oid, b, pos);
  if (h.vlen !== 0) throw new ToolError("Non-zero version length. Versions aren't supported.");
  return h;
}

export function readExact(f: RawFile, pos: number, len: number): Buffer {
  const b = f.read(pos, len);
  if (b.length !== len) throw new ToolError(`${f.path}: short read of ${len} bytes at ${pos}`);
  return b;
}

/** Read the transaction header (with metadata) at pos; null at the end of the file (0 bytes). */
export function readTxnAt(f: RawFile, pos: number): { h: TxnHdr; user: Buffer; description: Buffer; extension: Buffer } | null {
  const b = f.read(pos, TRANS_HDR_LEN);
  if (b.length === 0) return null;
  if (b.length < TRANS_HDR_LEN) throw new ToolError(`${f.path}: truncated transaction header at ${pos}`);
  const h = decodeTxnHdr(b, 0);
  let o = pos + TRANS_HDR_LEN;
  const user = f.read(o, h.ulen);
  o += h.ulen;
  const description = f.read(o, h.dlen);
  o += h.dlen;
  const extension = f.read(o, h.elen);
  return { h, user, description, extension };
}

/**
 * Python's FileIterator (spec §9.9): transactions in file order, stopping quietly (with a
 * warning) at a 'c' transaction, a transaction past the end, a bad header length or a
 * redundant-length mismatch. 'u' transactions are skipped (Python crashes, spec §15 #1).
 */
export function* iterateTransactions(f: RawFile, warn: (w: IterWarning) => void = () => {}): Generator<IterTxn> {
  // FS21 (Python 2) files have the FS30 layout: read them too (Python 3's iterator refuses them)
  if (f.format() === null) throw new ToolError(`${f.path}: not a FileStorage (FS30) file`);
  let pos = 4;
  let ltid = 0n;
  while (pos < f.size) {
    const t = readTxnAt(f, pos);
    if (!t) break;
    const { h } = t;
    if (h.tid <= ltid) warn({ pos, message: `${f.path} time-stamp reduction at ${pos}` });
    ltid = h.tid;
    if (h.status === 'c') break;
    if (pos + h.tlen + 8 > f.size) {
      warn({ pos, message: `${f.path} truncated, possibly due to damaged records at ${pos}` });
      break;
    }
    if (!' up'.includes(h.status)) warn({ pos, message: `${f.path} has invalid status, ${h.status}, at ${pos}` });
    const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
    if (h.tlen < hlen) {
      warn({ pos, message: `${f.path} has invalid transaction header at ${pos}` });
      break;
    }
    const tend = pos + h.tlen;
    const rtl = f.readU64(tend);
    if (rtl !== h.tlen) {
      warn({ pos: tend, message: `${f.path} redundant transaction length check failed at ${tend}` });
      break;
    }
    const tpos = pos;
    pos = tend + 8;
    if (h.status === 'u') continue;
    yield {
      tid: h.tid,
      status: h.status,
      statusByte: h.statusByte,
      user: t.user,
      description: t.description,
      extension: t.extension,
      tpos,
      pos: tpos + hlen,
      tend,
      tlen: h.tlen,
      hlen,
    };
  }
}

/**
 * The records of one transaction as Python's TransactionRecordIterator yields them: stops with a
 * warning at a record that overruns the transaction or names another transaction.
 */
export function* iterateRecords(f: RawFile, t: IterTxn, warn: (w: IterWarning) => void = () => {}): Generator<IterRecord> {
  let pos = t.pos;
  while (pos < t.tend) {
    const h = readDataHeaderAt(f, pos);
    const back = h.plen === 0 ? f.readU64(pos + DATA_HDR_LEN) : 0;
    if (back === null) throw new ToolError(`${f.path}: truncated backpointer at ${pos}`);
    const dlen = h.plen > 0 ? DATA_HDR_LEN + h.plen : DATA_HDR_LEN + 8;
    if (pos + dlen > t.tend || h.tloc !== t.tpos) {
      warn({ pos, message: `${f.path} data record exceeds transaction record at ${pos}` });
      return;
    }
    let data: Buffer | null;
    let dataTxn: bigint | null = null;
    if (h.plen > 0) data = readExact(f, pos + DATA_HDR_LEN, h.plen);
    else if (back === 0) data = null;
    else {
      data = loadBackLenient(f, h.oid, back).data;
      dataTxn = readDataHeaderAt(f, back, h.oid).tid;
    }
    yield { oid: h.oid, tid: h.tid, data, dataTxn, pos };
    pos += dlen;
  }
}
