/**
 * The read-only open scan of a data file (filestorage spec §8.2, read_index with read_only):
 * builds the oid → current record position index, ending quietly at a 'c' or incomplete tail
 * and failing (like Python's open) on damage inside the file. fsrefs uses it as its storage.
 */
import { DATA_HDR_LEN, RawFile, TRANS_HDR_LEN, ToolError, decodeDataHdr, decodeTxnHdr, loadBackLenient, readDataHeaderAt, readExact } from './fsio.ts';

export interface ScanResult {
  index: Map<bigint, number>;
  /** end of the valid data */
  pos: number;
  /** tid of the last header read (Python quirk 20) */
  ltid: bigint;
  warnings: string[];
}

/** Python's CorruptedTransactionError / FileStorageFormatError while opening. */
export class OpenError extends ToolError {
  override name = 'CorruptedTransactionError';
}

export function scanIndex(f: RawFile): ScanResult {
  const name = f.path;
  const warnings: string[] = [];
  const index = new Map<bigint, number>();
  if (f.size === 0) return { index, pos: 4, ltid: 0n, warnings };
  if (f.format() === null) {
    // FS30, or FS21 (Python 2, the same layout) which Python 3 refuses and we read
    const e = new OpenError(name);
    (e as { name: string }).name = 'FileStorageFormatError';
    throw e;
  }
  let pos = 4;
  let ltid = 0n;
  for (;;) {
    const hb = f.read(pos, TRANS_HDR_LEN);
    if (hb.length === 0) break;
    if (hb.length < TRANS_HDR_LEN) {
      warnings.push(`${name} truncated at ${pos}`);
      break;
    }
    const h = decodeTxnHdr(hb, 0);
    if (h.tid <= ltid) warnings.push(`${name} time-stamp reduction at ${pos}`);
    ltid = h.tid;
    if (pos + h.tlen + 8 > f.size || h.status === 'c') break;
    if (!' up'.includes(h.status)) warnings.push(`${name} has invalid status, ${h.status}, at ${pos}`);
    const hlen = TRANS_HDR_LEN + h.ulen + h.dlen + h.elen;
    if (h.tlen < hlen) {
      const rtl = f.readU64(f.size - 8) ?? 0;
      if (f.size - rtl < pos || rtl < TRANS_HDR_LEN) {
        warnings.push(`${name} has invalid transaction header at ${pos}`);
        break;
      }
      throw new OpenError(`${name} has invalid transaction header at ${pos}`);
    }
    const tend = pos + h.tlen;
    if (h.status === 'u') {
      if (f.readU64(tend) !== h.tlen) throw new OpenError(`${name} has inconsistent transaction length at ${pos}`);
      pos = tend + 8;
      continue;
    }
    const tindex = new Map<bigint, number>();
    let p = pos + hlen;
    while (p < tend) {
      const db = f.read(p, DATA_HDR_LEN);
      if (db.length < DATA_HDR_LEN) throw new OpenError(`${name} data record exceeds transaction record at ${p}`);
      const d = decodeDataHdr(db, 0);
      const dlen = d.plen > 0 ? DATA_HDR_LEN + d.plen : DATA_HDR_LEN + 8;
      if (p + dlen > tend || d.tloc !== pos) throw new OpenError(`${name} data record exceeds transaction record at ${p}`);
      if ((index.get(d.oid) ?? 0) !== d.prev) warnings.push(`${name} incorrect previous pointer at ${p}`);
      tindex.set(d.oid, p);
      p += dlen;
    }
    if (p !== tend) throw new OpenError(`${name} data records don't add up at ${pos}`);
    if (f.readU64(tend) !== h.tlen) throw new OpenError(`${name} redundant transaction length check failed at ${tend}`);
    for (const [k, v] of tindex) index.set(k, v);
    pos = tend + 8;
  }
  return { index, pos, ltid, warnings };
}

/** POSKeyError of a load: the oid is missing or its current record is a deletion. */
export class LoadKeyError extends ToolError {
  override name = 'POSKeyError';
}

/** load_current(oid) over a scanned index: (data, tid of the current record). */
export function loadCurrent(f: RawFile, index: Map<bigint, number>, oid: bigint): { data: Buffer; tid: bigint } {
  const pos = index.get(oid);
  if (pos === undefined) throw new LoadKeyError(`0x${oid.toString(16)}`);
  const h = readDataHeaderAt(f, pos);
  if (h.oid !== oid) throw new ToolError(`${f.path}: record at ${pos} has oid ${h.oid.toString(16)}, expected ${oid.toString(16)}`);
  if (h.plen > 0) return { data: readExact(f, pos + DATA_HDR_LEN, h.plen), tid: h.tid };
  const back = f.readU64(pos + DATA_HDR_LEN);
  if (back === null) throw new ToolError(`${f.path}: truncated backpointer at ${pos}`);
  if (back === 0) throw new LoadKeyError(`0x${oid.toString(16)}`);
  const r = loadBackLenient(f, oid, back);
  if (r.data === null) throw new LoadKeyError(`0x${oid.toString(16)}`);
  return { data: r.data, tid: h.tid };
}
