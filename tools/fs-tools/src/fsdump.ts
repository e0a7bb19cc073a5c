/**
 * fsdump (filestorage spec §11.1): one "Trans" line pair per transaction and one "data" line per
 * record, from the file iterator; and the very verbose Dumper layout (-v).
 */
import { DATA_HDR_LEN, RawFile, TRANS_HDR_LEN, ToolError, decodeDataHdr, decodeTxnHdr, iterateRecords, iterateTransactions, type IterWarning } from './fsio.ts';
import { className } from './pickle.ts';
import { bytesRepr, hex16, reprBytesOrEmptyStr, strRepr, tsText } from './pyfmt.ts';
import type { Out } from './output.ts';

export interface DumpOptions {
  out: Out;
  /** warnings of the iterator (Python logs them on stderr) */
  warn?: (w: IterWarning) => void;
  /** print "offset=" on the Trans line (Python's with_offset, default true) */
  withOffset?: boolean;
}

export async function fsdump(path: string, opts: DumpOptions): Promise<void> {
  const f = new RawFile(path);
  try {
    let i = 0;
    for (const t of iterateTransactions(f, opts.warn)) {
      const head = `Trans #${String(i).padStart(5, '0')} tid=${hex16(t.tid)} size=${t.tlen} time=${tsText(t.tid)}`;
      opts.out.write(opts.withOffset === false ? head + '\n' : `${head} offset=${t.pos}\n`);
      opts.out.write(`    status=${strRepr(t.status)} user=${bytesRepr(t.user)} description=${bytesRepr(t.description)}\n`);
      let j = 0;
      for (const r of iterateRecords(f, t, opts.warn)) {
        const size = r.data === null ? '' : ` size=${r.data.length}`;
        const cls = r.data === null ? 'undo or abort of object creation' : className(r.data);
        const bp = r.dataTxn !== null ? ` bp=${hex16(r.dataTxn)}` : '';
        opts.out.write(`  data #${String(j).padStart(5, '0')} oid=${hex16(r.oid)}${size} class=${cls}${bp}\n`);
        j++;
      }
      i++;
      await opts.out.maybeFlush();
    }
  } finally {
    f.close();
  }
}

const STARS = '*'.repeat(60);
const EQUALS = '='.repeat(60);
const DASHES = '-'.repeat(60);

/**
 * The verbose Dumper: every header field of every transaction and record, read sequentially
 * from the start (no validation beyond what is needed to move on; stops at a short header).
 */
export async function fsdumpVerbose(path: string, out: Out): Promise<void> {
  const f = new RawFile(path);
  try {
    out.write(`${STARS}\nfile identifier: ${bytesRepr(f.read(0, 4))}\n`);
    let pos = 4;
    let lastPos = -1;
    while (pos < f.size) {
      if (pos <= lastPos) throw new ToolError(`${path}: dump did not advance at ${pos}`);
      lastPos = pos;
      const hb = f.read(pos, TRANS_HDR_LEN);
      if (hb.length < TRANS_HDR_LEN) throw new ToolError(`${path}: truncated transaction header at ${pos}`);
      const h = decodeTxnHdr(hb, 0);
      const end = pos + h.tlen;
      out.write(`${EQUALS}\noffset: ${pos}\nend pos: ${end}\ntransaction id: ${hex16(h.tid)}\ntrec len: ${h.tlenBig}\n`);
      out.write(`status: ${bytesRepr(Buffer.of(h.statusByte))}\n`);
      let p = pos + TRANS_HDR_LEN;
      const user = f.read(p, h.ulen);
      p += h.ulen;
      const descr = f.read(p, h.dlen);
      p += h.dlen + h.elen;
      out.write(`user: ${reprBytesOrEmptyStr(user)}\ndescription: ${reprBytesOrEmptyStr(descr)}\nlen(extra): ${h.elen}\n`);
      while (p < end) {
        const db = f.read(p, DATA_HDR_LEN);
        if (db.length !== DATA_HDR_LEN) throw new ToolError(`${path}: truncated data record header at ${p}`);
        const d = decodeDataHdr(db, 0);
        if (d.vlen !== 0) throw new ToolError(`${path}: data record with a version at ${p}`);
        out.write(`${DASHES}\noffset: ${p}\noid: ${hex16(d.oid)}\nrevid: ${hex16(d.tid)}\nprevious record offset: ${d.prev}\ntransaction offset: ${d.tloc}\nlen(data): ${d.plen}\n`);
        p += DATA_HDR_LEN + d.plen;
        if (d.plen === 0) {
          const back = f.readU64(p);
          if (back === null) throw new ToolError(`${path}: truncated backpointer at ${p}`);
          out.write(`backpointer: ${back}\n`);
          p += 8;
        }
        await out.maybeFlush();
      }
      const stl = f.readU64(p);
      if (stl === null) throw new ToolError(`${path}: truncated redundant length at ${p}`);
      out.write(`redundant trec len: ${stl}\n`);
      pos = p + 8;
      await out.maybeFlush();
    }
  } finally {
    f.close();
  }
}
