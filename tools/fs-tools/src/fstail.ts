/**
 * fstail (filestorage spec §11.3): the last N transactions, newest first, read backwards from the
 * redundant length at the end of the file.
 */
import { createHash } from 'node:crypto';
import { RawFile, TRANS_HDR_LEN, ToolError, decodeTxnHdr } from './fsio.ts';
import { reprBytesOrEmptyStr, tsText } from './pyfmt.ts';
import type { Out } from './output.ts';

export async function fstail(path: string, ntxn: number, out: Out): Promise<void> {
  const f = new RawFile(path);
  try {
    if (f.size <= 4 || ntxn <= 0) return;
    const last = f.readU64(f.size - 8)!;
    let pos = f.size - (last + 8);
    let above = f.size;
    for (let i = ntxn; i > 0; i--) {
      if (!(pos >= 4 && pos < above)) throw new ToolError(`${path}: no transaction header where the length at ${above - 8} points (${pos})`);
      const hb = f.read(pos, TRANS_HDR_LEN);
      if (hb.length !== TRANS_HDR_LEN) throw new ToolError(`${path}: truncated transaction header at ${pos}`);
      const h = decodeTxnHdr(hb, 0);
      const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
      const raw = f.read(pos + hlen, h.tlen - hlen);
      const hash = createHash('sha1').update(raw).digest('hex');
      const user = f.read(pos + TRANS_HDR_LEN, h.ulen);
      const descr = f.read(pos + TRANS_HDR_LEN + h.ulen, h.dlen);
      out.write(`${tsText(h.tid)}: hash=${hash}\n`);
      out.write(`user=${reprBytesOrEmptyStr(user)} description=${reprBytesOrEmptyStr(descr)} length=${h.tlenBig} offset=${pos} (+${hlen})\n\n`);
      await out.maybeFlush();
      if (pos === 4) break;
      const tl = f.readU64(pos - 8);
      if (tl === null) throw new ToolError(`${path}: cannot read the length before ${pos}`);
      above = pos;
      pos = pos - (tl + 8);
    }
  } finally {
    f.close();
  }
}
