/**
 * The saved index `Data.fs.index` in Python's fsIndex format (spec §6.1): a pickle of the
 * covered position, then one pickle per 6-byte oid prefix `(prefix, bucket)` where the bucket is
 * the 2-byte suffixes followed by 6-byte big-endian positions, then a pickle of None.
 * Pure codec: bytes in, values out.
 */
import { FsIndex } from './fsindex.ts';

const PROTO3 = [0x80, 0x03];

/** Encode a non-negative integer the way Python's pickler (protocol 3) does, as one pickle. */
function encodeIntPickle(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad index position ${n}`);
  if (n < 256) return Buffer.from([...PROTO3, 0x4b, n, 0x2e]);
  if (n < 65536) return Buffer.from([...PROTO3, 0x4d, n & 0xff, n >> 8, 0x2e]);
  if (n < 2 ** 31) {
    const b = Buffer.from([...PROTO3, 0x4a, 0, 0, 0, 0, 0x2e]);
    b.writeInt32LE(n, 3);
    return b;
  }
  // LONG1: minimal two's complement little-endian, with a sign byte if the top bit is set
  const bytes: number[] = [];
  let v = BigInt(n);
  while (v > 0n) {
    bytes.push(Number(v & 0xffn));
    v >>= 8n;
  }
  if (bytes[bytes.length - 1]! & 0x80) bytes.push(0);
  return Buffer.from([...PROTO3, 0x8a, bytes.length, ...bytes, 0x2e]);
}

/** The complete index file for `index` covering data up to `pos`. */
export function encodeIndexFile(pos: number, index: FsIndex): Buffer {
  const head = encodeIntPickle(pos);
  const s = index.sortedParts();
  const n = s.hi.length;
  // count prefixes to size the output exactly
  let groups = 0;
  for (let i = 0; i < n; i++) if (i === 0 || s.hi[i] !== s.hi[i - 1] || s.lo[i]! >>> 16 !== s.lo[i - 1]! >>> 16) groups++;
  // per group: PROTO(2) + prefix op(2+6) + bucket op(<= 5) + TUPLE2 STOP(2), plus 8 per entry
  const out = Buffer.allocUnsafe(head.length + groups * 17 + n * 8 + 4);
  let o = head.copy(out, 0);
  let i = 0;
  while (i < n) {
    // group by the 6-byte prefix = hi (32 bits) + top 16 bits of lo
    const hi = s.hi[i]!;
    const mid = s.lo[i]! >>> 16;
    let j = i;
    while (j < n && s.hi[j] === hi && s.lo[j]! >>> 16 === mid) j++;
    const count = j - i;
    out[o++] = 0x80;
    out[o++] = 0x03;
    out[o++] = 0x43;
    out[o++] = 6;
    out.writeUInt32BE(hi, o);
    out.writeUInt16BE(mid, o + 4);
    o += 6;
    const blen = count * 8;
    if (blen < 256) {
      out[o++] = 0x43;
      out[o++] = blen;
    } else {
      out[o++] = 0x42;
      out.writeUInt32LE(blen, o);
      o += 4;
    }
    for (let k = 0; k < count; k++) {
      const l = s.lo[i + k]!;
      out[o + k * 2] = (l >>> 8) & 0xff;
      out[o + k * 2 + 1] = l & 0xff;
    }
    let po = o + count * 2;
    for (let k = 0; k < count; k++) {
      const p = s.pos[i + k]!;
      if (p >= 2 ** 48) throw new RangeError(`position ${p} does not fit the index format (2^48)`);
      const top = Math.floor(p / 2 ** 32);
      out[po] = top >>> 8;
      out[po + 1] = top & 0xff;
      out.writeUInt32BE(p >>> 0, po + 2);
      po += 6;
    }
    o = po;
    out[o++] = 0x86;
    out[o++] = 0x2e;
    i = j;
  }
  out[o++] = 0x80;
  out[o++] = 0x03;
  out[o++] = 0x4e;
  out[o++] = 0x2e;
  return out.subarray(0, o);
}

/** Thrown when an index file cannot be decoded (the caller then rebuilds by scanning). */
export class IndexFileError extends Error {
  override name = 'IndexFileError';
}

/** Decode an index file; throws IndexFileError on anything unexpected. */
export function decodeIndexFile(buf: Buffer): { pos: number; index: FsIndex } {
  let o = 0;
  const need = (n: number) => {
    if (o + n > buf.length) throw new IndexFileError(`index file truncated at ${o}`);
  };
  const proto = () => {
    need(2);
    if (buf[o] !== 0x80) throw new IndexFileError(`expected PROTO at ${o}`);
    o += 2;
  };
  const stop = () => {
    need(1);
    if (buf[o] !== 0x2e) throw new IndexFileError(`expected STOP at ${o}`);
    o += 1;
  };
  const readBytes = (): Buffer => {
    need(1);
    const op = buf[o]!;
    let len: number;
    if (op === 0x43 || op === 0x55 || op === 0x8c) {
      need(2);
      len = buf[o + 1]!;
      o += 2;
    } else if (op === 0x42 || op === 0x54 || op === 0x58) {
      need(5);
      len = buf.readUInt32LE(o + 1);
      o += 5;
    } else throw new IndexFileError(`expected a bytes value at ${o} (opcode 0x${op.toString(16)})`);
    need(len);
    const b = buf.subarray(o, o + len);
    o += len;
    // skip an optional memo put
    if (buf[o] === 0x71) o += 2;
    else if (buf[o] === 0x72) o += 5;
    else if (buf[o] === 0x94) o += 1;
    return b;
  };
  proto();
  need(1);
  const op = buf[o]!;
  let pos: number;
  if (op === 0x4b) {
    need(2);
    pos = buf[o + 1]!;
    o += 2;
  } else if (op === 0x4d) {
    need(3);
    pos = buf.readUInt16LE(o + 1);
    o += 3;
  } else if (op === 0x4a) {
    need(5);
    pos = buf.readInt32LE(o + 1);
    o += 5;
  } else if (op === 0x8a) {
    need(2);
    const n = buf[o + 1]!;
    need(2 + n);
    let v = 0n;
    for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(buf[o + 2 + k]!);
    if (n > 0 && buf[o + 1 + n]! & 0x80) throw new IndexFileError('negative index position');
    if (v > 2n ** 48n) throw new IndexFileError('index position too large');
    pos = Number(v);
    o += 2 + n;
  } else throw new IndexFileError(`index file does not start with a position (old format?) at ${o}`);
  stop();
  const total = Math.max(16, Math.floor((buf.length - o) / 8));
  const index = new FsIndex(total);
  for (let guard = 0; guard <= buf.length; guard++) {
    proto();
    need(1);
    if (buf[o] === 0x4e) {
      o += 1;
      stop();
      return { pos, index };
    }
    const prefix = readBytes();
    const bucket = readBytes();
    need(1);
    if (buf[o] !== 0x86) throw new IndexFileError(`expected TUPLE2 at ${o}`);
    o += 1;
    if (buf[o] === 0x71) o += 2;
    stop();
    if (prefix.length !== 6 || bucket.length % 8 !== 0) throw new IndexFileError(`bad prefix/bucket lengths at ${o}`);
    const hi = prefix.readUInt32BE(0);
    const mid = prefix.readUInt16BE(4);
    const count = bucket.length / 8;
    for (let k = 0; k < count; k++) {
      const suffix = bucket.readUInt16BE(k * 2);
      const po = count * 2 + k * 6;
      const p = bucket.readUInt16BE(po) * 2 ** 32 + bucket.readUInt32BE(po + 2);
      index.setParts(hi, ((mid << 16) | suffix) >>> 0, p);
    }
  }
  throw new IndexFileError('index file has no end marker');
}
