/**
 * Our own replication channel between zeo-ts peers (negotiated with protocol id `zts1.0`,
 * which a zc.zrs primary refuses, so our secondary then falls back to zrs2.0).
 *
 * Every frame is a sized message (§4) carrying one protobuf `Frame`. The secondary opens with
 * Hello (its last tid and a digest of its last transaction); the primary answers with Welcome
 * (and then streams one Txn per transaction, each with its own MD5) or Refuse (ahead, diverged,
 * protocol). The secondary sends Ack after each transaction is durable; an empty sized message
 * is a keep-alive. Pure codec.
 *
 * Raw mode: when the secondary's Hello asks for it (`raw`, its data file's end `end_pos` and the
 * SHA-1 of the raw bytes of its last transaction) and the primary finds the same transaction
 * ending at the same offset in its own file, the Welcome says `raw` and the primary sends Raw
 * frames: whole transactions as the bytes of its data file (`pos` = where they start in both
 * files, `count` transactions, the last one `last_tid`, SHA-1 of the bytes). The primary may
 * switch back to Txn frames at any time (after a pack); the secondary accepts both kinds.
 * `ack_now` (set while a commit waits for acknowledgements, semi-sync) asks the secondary to make
 * the segment durable and acknowledge it at once, without grouping it with later ones.
 * Raw frames are encoded and decoded by hand (no copy of the bytes beyond the one frame buffer).
 */
import crypto, { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { p64, u64, type Oid, type Tid } from '@zeo-ts/storage';

export const NATIVE_PROTOCOL = 'zts1.0';

const SCHEMA = `
syntax = "proto3";
package zeots.zrs;
message Record { bytes oid = 1; bytes tid = 2; bool has_data = 3; bytes data = 4; bytes data_txn = 5; }
message Txn { bytes tid = 1; string status = 2; bytes user = 3; bytes description = 4; bytes extension = 5; repeated Record records = 6; uint64 end_pos = 8; }
message Hello { bytes last_tid = 1; bytes last_digest = 2; string name = 3; uint64 end_pos = 4; bool raw = 5; bytes last_raw_sha1 = 6; bool blobs = 7; }
message Welcome { bytes last_tid = 1; string name = 2; bool raw = 3; }
message Raw { uint64 pos = 1; bytes data = 2; bytes last_tid = 3; uint32 count = 4; bytes sha1 = 5; bool ack_now = 6; }
message Refuse { string reason = 1; string code = 2; }
message Ack { bytes tid = 1; }
message Frame { oneof kind { Hello hello = 1; Welcome welcome = 2; Refuse refuse = 3; bytes txn = 4; Ack ack = 5; Raw raw = 7; } bytes txn_md5 = 6; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
const FrameType = root.lookupType('zeots.zrs.Frame');
const TxnType = root.lookupType('zeots.zrs.Txn');

export interface NativeRecord {
  oid: Oid;
  tid: Tid;
  data: Buffer | null;
  dataTxn: Tid | null;
}
export interface NativeTxn {
  tid: Tid;
  status: string;
  user: Buffer;
  description: Buffer;
  /** raw extension bytes as stored by the primary */
  extension: Buffer;
  records: NativeRecord[];
  /** primary file position after this transaction (lag in bytes) */
  endPos: number;
}

export type NativeFrame =
  | { kind: 'hello'; lastTid: Tid; lastDigest: Buffer; name: string; endPos?: number; raw?: boolean; lastRawSha1?: Buffer; blobs?: boolean }
  | { kind: 'welcome'; lastTid: Tid; name: string; raw?: boolean }
  | RawFrame
  | { kind: 'refuse'; reason: string; code: string }
  | { kind: 'txn'; txn: NativeTxn }
  | { kind: 'ack'; tid: Tid };

/** MD5 over a transaction's content: what both sides check per transaction. */
export function txnDigest(t: { tid: Tid; status: string; user: Buffer; description: Buffer; extension: Buffer; records: NativeRecord[] }): Buffer {
  const h = createHash('md5');
  const n = Buffer.allocUnsafe(8);
  h.update(p64(t.tid));
  h.update(t.status);
  for (const b of [t.user, t.description, t.extension]) {
    n.writeUInt32BE(b.length, 0);
    h.update(n.subarray(0, 4));
    h.update(b);
  }
  for (const r of t.records) {
    h.update(p64(r.oid));
    h.update(p64(r.tid));
    h.update(r.dataTxn === null ? Buffer.alloc(8, 0xff) : p64(r.dataTxn));
    if (r.data === null) h.update('N');
    else {
      n.writeUInt32BE(r.data.length, 0);
      h.update('D');
      h.update(n.subarray(0, 4));
      h.update(r.data);
    }
  }
  return h.digest();
}

export function encodeFrame(f: NativeFrame): Buffer {
  let msg: Record<string, unknown>;
  switch (f.kind) {
    case 'hello':
      msg = { hello: { last_tid: p64(f.lastTid), last_digest: f.lastDigest, name: f.name, end_pos: f.endPos ?? 0, raw: !!f.raw, last_raw_sha1: f.lastRawSha1 ?? Buffer.alloc(0), blobs: !!f.blobs } };
      break;
    case 'welcome':
      msg = { welcome: { last_tid: p64(f.lastTid), name: f.name, raw: !!f.raw } };
      break;
    case 'raw':
      return encodeRawFrame(f.pos, f.lastTid, f.count, f.data, undefined, f.ackNow).subarray(4);
    case 'refuse':
      msg = { refuse: { reason: f.reason, code: f.code } };
      break;
    case 'ack': {
      // Frame { ack { tid } }, written directly (one per durable batch, on the hot path)
      const b = Buffer.allocUnsafe(12);
      ACK_PREFIX.copy(b, 0);
      b.writeBigUInt64BE(f.tid, 4);
      return b;
    }
    case 'txn': {
      // the transaction travels as serialized bytes with the MD5 of exactly those bytes
      const t = f.txn;
      const empty = Buffer.alloc(0);
      const body = TxnType.encode({
        tid: p64(t.tid),
        status: t.status,
        user: t.user,
        description: t.description,
        extension: t.extension,
        records: t.records.map((r) => ({ oid: p64(r.oid), tid: p64(r.tid), has_data: r.data !== null, data: r.data ?? empty, data_txn: r.dataTxn === null ? empty : p64(r.dataTxn) })),
        end_pos: t.endPos,
      }).finish();
      return Buffer.from(FrameType.encode({ txn: body, txn_md5: createHash('md5').update(body).digest() }).finish());
    }
  }
  return Buffer.from(FrameType.encode(FrameType.fromObject(msg)).finish());
}

/** The 4 bytes before the tid in an encoded Ack frame: Frame field 5 (10 bytes), Ack field 1 (8 bytes). */
const ACK_PREFIX = Buffer.from([(5 << 3) | 2, 10, (1 << 3) | 2, 8]);

/** An Ack frame ready for the socket (size prefix included): one 16-byte buffer. */
export function encodeSizedAck(tid: Tid): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32BE(12, 0);
  ACK_PREFIX.copy(b, 4);
  b.writeBigUInt64BE(tid, 8);
  return b;
}

export class NativeProtocolError extends Error {
  override name = 'NativeProtocolError';
}

function id(b: unknown, what: string): bigint {
  if (!(b instanceof Uint8Array) || b.length !== 8) throw new NativeProtocolError(`${what}: expected 8 bytes`);
  return u64(b);
}

const buf = (b: unknown): Buffer => (b instanceof Uint8Array ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.alloc(0));

/** Decode one frame; a Txn whose MD5 does not match its content is an error. */
export function decodeFrame(payload: Buffer): NativeFrame {
  if (payload.length > 0 && payload[0] === RAW_TAG) return decodeRawFrame(payload);
  if (payload.length === 12 && payload.compare(ACK_PREFIX, 0, 4, 0, 4) === 0) return { kind: 'ack', tid: payload.readBigUInt64BE(4) };
  let m: Record<string, any>;
  try {
    m = FrameType.toObject(FrameType.decode(payload), { longs: Number, defaults: true }) as Record<string, any>;
  } catch (e) {
    throw new NativeProtocolError(`undecodable frame: ${(e as Error).message}`);
  }
  if (m.hello) {
    const h = m.hello;
    return { kind: 'hello', lastTid: id(h.last_tid, 'hello.last_tid'), lastDigest: buf(h.last_digest), name: String(h.name), endPos: Number(h.end_pos ?? 0), raw: !!h.raw, lastRawSha1: buf(h.last_raw_sha1), blobs: !!h.blobs };
  }
  if (m.welcome) return { kind: 'welcome', lastTid: id(m.welcome.last_tid, 'welcome.last_tid'), name: String(m.welcome.name), raw: !!m.welcome.raw };
  if (m.refuse) return { kind: 'refuse', reason: String(m.refuse.reason), code: String(m.refuse.code) };
  if (m.ack) return { kind: 'ack', tid: id(m.ack.tid, 'ack.tid') };
  if (m.txn && m.txn.length) {
    const body = buf(m.txn);
    if (!createHash('md5').update(body).digest().equals(buf(m.txn_md5))) throw new NativeProtocolError('checksum mismatch in a transaction frame');
    let x: any;
    try {
      x = TxnType.decode(body);
    } catch (e) {
      throw new NativeProtocolError(`undecodable transaction: ${(e as Error).message}`);
    }
    const endPos = typeof x.end_pos === 'number' ? x.end_pos : Number(x.end_pos?.toString() ?? 0);
    const records: NativeRecord[] = new Array(x.records.length);
    for (let i = 0; i < x.records.length; i++) {
      const r = x.records[i];
      records[i] = { oid: id(r.oid, 'record.oid'), tid: id(r.tid, 'record.tid'), data: r.has_data ? buf(r.data) : null, dataTxn: r.data_txn && r.data_txn.length ? id(r.data_txn, 'record.data_txn') : null };
    }
    const txn: NativeTxn = { tid: id(x.tid, 'txn.tid'), status: String(x.status), user: buf(x.user), description: buf(x.description), extension: buf(x.extension), records, endPos };
    return { kind: 'txn', txn };
  }
  throw new NativeProtocolError('empty frame');
}

// ---- raw frames ----------------------------------------------------------------------------

/** Whole transactions as the primary's data-file bytes (raw mode). */
export interface RawFrame {
  kind: 'raw';
  /** offset of data[0] in both data files */
  pos: number;
  /** tid of the last transaction in data */
  lastTid: Tid;
  /** number of transactions in data */
  count: number;
  data: Buffer;
  /** a commit waits for the acknowledgement: make it durable and acknowledge it now */
  ackNow?: boolean;
}

/** Frame field 7 (Raw), length-delimited: the first byte of every Raw frame. */
const RAW_TAG = (7 << 3) | 2;

function varintLength(v: number): number {
  let n = 1;
  for (let x = v; x >= 0x80; x = Math.floor(x / 0x80)) n++;
  return n;
}

function writeVarint(b: Buffer, o: number, v: number): number {
  let x = v;
  for (let guard = 0; x >= 0x80 && guard < 10; guard++) {
    b[o++] = (x % 0x80) | 0x80;
    x = Math.floor(x / 0x80);
  }
  b[o++] = x;
  return o;
}

/** one-shot crypto.hash (Node >= 20.12): no Hash object per digest, which costs more than the SHA-1 of a small segment */
const oneShot = (crypto as unknown as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;

/** SHA-1 of a raw segment (what a Raw frame carries; cheaper than MD5 on this hardware). */
export function rawDigest(data: Buffer): Buffer {
  return oneShot ? oneShot('sha1', data, 'buffer') : createHash('sha1').update(data).digest();
}

/**
 * One Raw frame ready for the socket: the 4-byte size prefix, then the protobuf Frame { raw }.
 * `sha1` may be given when already computed.
 */
export function encodeRawFrame(pos: number, lastTid: Tid, count: number, data: Buffer, sha1: Buffer = rawDigest(data), ackNow = false): Buffer {
  if (!Number.isSafeInteger(pos) || pos < 0) throw new RangeError(`raw frame: bad position ${pos}`);
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) throw new RangeError(`raw frame: bad count ${count}`);
  if (sha1.length !== 20) throw new RangeError('raw frame: sha1 must be 20 bytes');
  // Raw body: pos (1), last_tid (3), count (4), sha1 (5), ack_now (6, only when true), data (2, last so it is copied once)
  const bodyLen = 1 + varintLength(pos) + 2 + 8 + 1 + varintLength(count) + 2 + 20 + (ackNow ? 2 : 0) + 1 + varintLength(data.length) + data.length;
  const total = 1 + varintLength(bodyLen) + bodyLen;
  const out = Buffer.allocUnsafe(4 + total);
  out.writeUInt32BE(total, 0);
  let o = 4;
  out[o++] = RAW_TAG;
  o = writeVarint(out, o, bodyLen);
  out[o++] = (1 << 3) | 0;
  o = writeVarint(out, o, pos);
  out[o++] = (3 << 3) | 2;
  out[o++] = 8;
  out.writeBigUInt64BE(lastTid, o);
  o += 8;
  out[o++] = (4 << 3) | 0;
  o = writeVarint(out, o, count);
  out[o++] = (5 << 3) | 2;
  out[o++] = 20;
  sha1.copy(out, o);
  o += 20;
  if (ackNow) {
    out[o++] = (6 << 3) | 0;
    out[o++] = 1;
  }
  out[o++] = (2 << 3) | 2;
  o = writeVarint(out, o, data.length);
  data.copy(out, o);
  o += data.length;
  if (o !== out.length) throw new Error(`raw frame: encoded ${o} of ${out.length} bytes`);
  return out;
}

/** where the last readVarint stopped (no tuple allocated per field on the hot path) */
let varintEnd = 0;

/** what a varint of Raw field `field` is, for errors (-1: the Frame's length) */
const varintWhat = (field: number, isLength: boolean): string => (field < 0 ? 'frame length' : `field ${field}${isLength ? ' length' : ''}`);

function readVarint(b: Buffer, o: number, end: number, field: number, isLength: boolean): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (o >= end) throw new NativeProtocolError(`raw frame: truncated ${varintWhat(field, isLength)}`);
    const c = b[o++]!;
    v += (c & 0x7f) * mul;
    if (c < 0x80) {
      if (!Number.isSafeInteger(v)) throw new NativeProtocolError(`raw frame: ${varintWhat(field, isLength)} out of range`);
      varintEnd = o;
      return v;
    }
    mul *= 0x80;
  }
  throw new NativeProtocolError(`raw frame: ${varintWhat(field, isLength)} varint too long`);
}

/** Decode a Raw frame (the payload after the size prefix); its data is a view, not a copy. */
export function decodeRawFrame(payload: Buffer): RawFrame {
  if (payload[0] !== RAW_TAG) throw new NativeProtocolError('not a raw frame');
  const bodyLen = readVarint(payload, 1, payload.length, -1, false);
  const start = varintEnd;
  const end = start + bodyLen;
  if (end !== payload.length) throw new NativeProtocolError(`raw frame: body of ${bodyLen} bytes in a ${payload.length}-byte frame`);
  let pos = -1;
  let count = -1;
  let ackNow = false;
  let lastTid: Tid | null = null;
  let sha1: Buffer | null = null;
  let data: Buffer | null = null;
  let o = start;
  for (let guard = 0; o < end && guard < 64; guard++) {
    const tag = payload[o++]!;
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) {
      const v = readVarint(payload, o, end, field, false);
      o = varintEnd;
      if (field === 1) pos = v;
      else if (field === 4) count = v;
      else if (field === 6) ackNow = v !== 0;
    } else if (wire === 2) {
      const len = readVarint(payload, o, end, field, true);
      const n = varintEnd;
      if (n + len > end) throw new NativeProtocolError(`raw frame: field ${field} runs past the frame`);
      o = n + len;
      if (field === 2) data = payload.subarray(n, o);
      else if (field === 3) {
        if (len !== 8) throw new NativeProtocolError('raw frame: last_tid must be 8 bytes');
        lastTid = payload.readBigUInt64BE(n);
      } else if (field === 5) sha1 = payload.subarray(n, o);
    } else {
      throw new NativeProtocolError(`raw frame: unexpected wire type ${wire} for field ${field}`);
    }
  }
  if (o !== end) throw new NativeProtocolError('raw frame: too many fields');
  if (pos < 0 || count < 0 || lastTid === null || sha1 === null || data === null) throw new NativeProtocolError('raw frame: a field is missing');
  if (!rawDigest(data).equals(sha1)) throw new NativeProtocolError(`checksum mismatch in the raw segment at ${pos}`);
  return ackNow ? { kind: 'raw', pos, lastTid, count, data, ackNow } : { kind: 'raw', pos, lastTid, count, data };
}
