/**
 * Our own replication channel between zeo-ts peers (negotiated with protocol id `zts1.0`,
 * which a zc.zrs primary refuses, so our secondary then falls back to zrs2.0).
 *
 * Every frame is a sized message (§4) carrying one protobuf `Frame`. The secondary opens with
 * Hello (its last tid and a digest of its last transaction); the primary answers with Welcome
 * (and then streams one Txn per transaction, each with its own MD5) or Refuse (ahead, diverged,
 * protocol). The secondary sends Ack after each transaction is durable; an empty sized message
 * is a keep-alive. Pure codec.
 */
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { p64, u64, type Oid, type Tid } from '@zeo-ts/storage';

export const NATIVE_PROTOCOL = 'zts1.0';

const SCHEMA = `
syntax = "proto3";
package zeots.zrs;
message Record { bytes oid = 1; bytes tid = 2; bool has_data = 3; bytes data = 4; bytes data_txn = 5; }
message Txn { bytes tid = 1; string status = 2; bytes user = 3; bytes description = 4; bytes extension = 5; repeated Record records = 6; uint64 end_pos = 8; }
message Hello { bytes last_tid = 1; bytes last_digest = 2; string name = 3; }
message Welcome { bytes last_tid = 1; string name = 2; }
message Refuse { string reason = 1; string code = 2; }
message Ack { bytes tid = 1; }
message Frame { oneof kind { Hello hello = 1; Welcome welcome = 2; Refuse refuse = 3; bytes txn = 4; Ack ack = 5; } bytes txn_md5 = 6; }
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
  | { kind: 'hello'; lastTid: Tid; lastDigest: Buffer; name: string }
  | { kind: 'welcome'; lastTid: Tid; name: string }
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
      msg = { hello: { last_tid: p64(f.lastTid), last_digest: f.lastDigest, name: f.name } };
      break;
    case 'welcome':
      msg = { welcome: { last_tid: p64(f.lastTid), name: f.name } };
      break;
    case 'refuse':
      msg = { refuse: { reason: f.reason, code: f.code } };
      break;
    case 'ack':
      msg = { ack: { tid: p64(f.tid) } };
      break;
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
  let m: Record<string, any>;
  try {
    m = FrameType.toObject(FrameType.decode(payload), { longs: Number, defaults: true }) as Record<string, any>;
  } catch (e) {
    throw new NativeProtocolError(`undecodable frame: ${(e as Error).message}`);
  }
  if (m.hello) return { kind: 'hello', lastTid: id(m.hello.last_tid, 'hello.last_tid'), lastDigest: buf(m.hello.last_digest), name: String(m.hello.name) };
  if (m.welcome) return { kind: 'welcome', lastTid: id(m.welcome.last_tid, 'welcome.last_tid'), name: String(m.welcome.name) };
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
