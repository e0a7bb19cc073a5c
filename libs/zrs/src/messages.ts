/**
 * The pickled replication messages T/S/B/C (zrs spec §6.5, §6.8): protocol-1 pickles with the
 * memo off, exactly as Python peers write them. Pure.
 */
import { PickleError, PyGlobal, PyTuple, dumps, loads, tuple } from '@zeo-ts/pickle';
import { p64, u64, type Oid, type Tid } from '@zeo-ts/storage';

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export interface TMessage {
  type: 'T';
  tid: Tid;
  status: string;
  user: Buffer;
  description: Buffer;
  /** the unpickled extension dict, in pickle order */
  extension: Map<unknown, unknown>;
}
export interface SMessage {
  type: 'S';
  oid: Oid;
  tid: Tid;
  version: string;
  dataTxn: Tid | null;
}
export interface BMessage {
  type: 'B';
  oid: Oid;
  tid: Tid;
  version: string;
  dataTxn: Tid | null;
  blocks: number;
}
export interface CMessage {
  type: 'C';
  /** 16 bytes, or null for the pre-2.2.2 `('C', ())` */
  checksum: Buffer | null;
}
export type ZrsMessage = TMessage | SMessage | BMessage | CMessage;

const DUMP = { protocol: 1, memo: false } as const;

export function encodeT(tid: Tid, status: string, user: Buffer, description: Buffer, extension: Map<unknown, unknown>): Buffer {
  return dumps(tuple('T', tuple(p64(tid), status, user, description, extension)), DUMP);
}

// Hand-written canonical protocol-1 pieces (§6.8) for the per-record messages (hot path).
const CODECS_HEAD = Buffer.from('c_codecs\nencode\n(X', 'latin1');
const CODECS_TAIL = Buffer.from('X\x06\x00\x00\x00latin1tR', 'latin1');
const EMPTY_BYTES = Buffer.from('c__builtin__\nbytes\n)R', 'latin1');

/** Write `b` as protocol-1 bytes (_codecs.encode(latin1 text) / bytes()) into out at off; returns the new offset. */
function putBytes(out: Buffer, off: number, b: Buffer): number {
  if (b.length === 0) return off + EMPTY_BYTES.copy(out, off);
  off += CODECS_HEAD.copy(out, off);
  const lenAt = off;
  off += 4;
  const start = off;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x80) out[off++] = c;
    else {
      out[off++] = 0xc0 | (c >> 6);
      out[off++] = 0x80 | (c & 0x3f);
    }
  }
  out.writeUInt32LE(off - start, lenAt);
  return off + CODECS_TAIL.copy(out, off);
}

const ID_MAX = CODECS_HEAD.length + 4 + 16 + CODECS_TAIL.length;

function idPickle(out: Buffer, off: number, v: bigint): number {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(v, 0);
  return putBytes(out, off, b);
}

function smallMessage(tag: string, ids: Array<bigint | null>, version: string | null, extra: (out: Buffer, off: number) => number): Buffer {
  const out = Buffer.allocUnsafe(32 + ids.length * ID_MAX + 64);
  let off = 0;
  out[off++] = 0x28; // (
  out[off++] = 0x58; // X
  out.writeUInt32LE(1, off);
  off += 4;
  out[off++] = tag.charCodeAt(0);
  out[off++] = 0x28;
  ids.forEach((v, i) => {
    if (i === 2 && version !== null) {
      out[off++] = 0x58;
      out.writeUInt32LE(0, off);
      off += 4;
    }
    if (v === null) out[off++] = 0x4e; // N
    else off = idPickle(out, off, v);
  });
  off = extra(out, off);
  out[off++] = 0x74; // t
  out[off++] = 0x74;
  out[off++] = 0x2e; // .
  return out.subarray(0, off);
}

export function encodeS(oid: Oid, tid: Tid, dataTxn: Tid | null, version = ''): Buffer {
  if (version !== '') return dumps(tuple('S', tuple(p64(oid), p64(tid), version, dataTxn === null ? null : p64(dataTxn))), DUMP);
  return smallMessage('S', [oid, tid, dataTxn], '', (_o, off) => off);
}

export function encodeB(oid: Oid, tid: Tid, dataTxn: Tid | null, blocks: number, version = ''): Buffer {
  return dumps(tuple('B', tuple(p64(oid), p64(tid), version, dataTxn === null ? null : p64(dataTxn), blocks)), DUMP);
}

export function encodeC(checksum: Buffer | null): Buffer {
  if (checksum === null) return dumps(tuple('C', tuple()), DUMP);
  const out = Buffer.allocUnsafe(16 + ID_MAX + 16);
  let off = 0;
  off += Buffer.from('(X\x01\x00\x00\x00C(', 'latin1').copy(out, off);
  off = putBytes(out, off, checksum);
  off += Buffer.from('tt.', 'latin1').copy(out, off);
  return out.subarray(0, off);
}

/** Globals that rebuild bytes; anything else stays an opaque PyGlobal (never executed). */
function findClass(module: string, name: string): unknown {
  if (module === '_codecs' && name === 'encode') {
    return (s: unknown, enc: unknown) => {
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) throw new PickleError(`unsupported _codecs.encode arguments`, 0);
      const b = Buffer.allocUnsafe(s.length);
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 255) throw new PickleError(`_codecs.encode: code point ${c} is not latin-1`, 0);
        b[i] = c;
      }
      return b;
    };
  }
  if ((module === '__builtin__' || module === 'builtins') && name === 'bytes') {
    return (...args: unknown[]) => {
      if (args.length !== 0) throw new PickleError('bytes() with arguments', 0);
      return Buffer.alloc(0);
    };
  }
  return new PyGlobal(module, name);
}

function bytesField(v: unknown, what: string, len?: number): Buffer {
  if (!Buffer.isBuffer(v)) {
    if (typeof v === 'string' && /^[\x00-\xff]*$/.test(v)) v = Buffer.from(v, 'latin1');
    else throw new ProtocolError(`${what}: expected bytes, got ${describe(v)}`);
  }
  const b = v as Buffer;
  if (len !== undefined && b.length !== len) throw new ProtocolError(`${what}: expected ${len} bytes, got ${b.length}`);
  return b;
}

function strField(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  throw new ProtocolError(`${what}: expected str, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Buffer.isBuffer(v)) return `bytes(${v.length})`;
  if (v instanceof PyTuple) return `tuple(${v.length})`;
  return typeof v;
}

function idField(v: unknown, what: string): bigint {
  return u64(bytesField(v, what, 8));
}

/** Decode one pickled message; ProtocolError / PickleError on anything unexpected. */
export function decodeMessage(payload: Buffer): ZrsMessage {
  const v = loads(payload, { findClass, encoding: 'bytes', maxLength: payload.length });
  if (!(v instanceof PyTuple) || v.length !== 2 || !(v[1] instanceof PyTuple)) throw new ProtocolError(`Invalid message: not a (type, fields) tuple`);
  const type = strField(v[0], 'message type');
  const f = v[1] as PyTuple;
  switch (type) {
    case 'T': {
      if (f.length !== 5) throw new ProtocolError(`T: expected 5 fields, got ${f.length}`);
      let ext = f[4];
      if (ext === null || ext === undefined) ext = new Map();
      if (!(ext instanceof Map)) throw new ProtocolError(`T: extension is not a dict`);
      return { type, tid: idField(f[0], 'T tid'), status: strField(f[1], 'T status'), user: bytesField(f[2], 'T user'), description: bytesField(f[3], 'T description'), extension: ext };
    }
    case 'S':
    case 'B': {
      const n = type === 'S' ? 4 : 5;
      if (f.length !== n) throw new ProtocolError(`${type}: expected ${n} fields, got ${f.length}`);
      const base = {
        oid: idField(f[0], `${type} oid`),
        tid: idField(f[1], `${type} tid`),
        version: f[2] === null ? '' : strField(f[2], `${type} version`),
        dataTxn: f[3] === null ? null : idField(f[3], `${type} data_txn`),
      };
      if (base.version !== '') throw new ProtocolError(`${type}: versions are not supported (${JSON.stringify(base.version)})`);
      if (type === 'S') return { type, ...base };
      const blocks = f[4];
      if (typeof blocks !== 'number' || !Number.isInteger(blocks) || blocks < 0) throw new ProtocolError(`B: bad block count ${String(blocks)}`);
      return { type, ...base, blocks };
    }
    case 'C': {
      if (f.length === 0) return { type, checksum: null };
      if (f.length !== 1) throw new ProtocolError(`C: expected 1 field, got ${f.length}`);
      return { type, checksum: bytesField(f[0], 'C checksum', 16) };
    }
    default:
      throw new ProtocolError(`Invalid message type, ${JSON.stringify(type)}`);
  }
}

/** The extension dict from a transaction header's extension bytes (empty → {}). */
export function extensionDict(ext: Buffer): Map<unknown, unknown> {
  if (ext.length === 0) return new Map();
  const v = loads(ext, { encoding: 'ascii-or-bytes', maxProtocol: 3 });
  if (!(v instanceof Map)) throw new ProtocolError('transaction extension is not a pickled dict');
  return v;
}

/** Extension bytes as ZODB's FileStorage writes them: empty for {}, else a protocol-3 pickle. */
export function extensionBytes(ext: Map<unknown, unknown>): Buffer {
  if (ext.size === 0) return Buffer.alloc(0);
  return dumps(ext, { protocol: 3 });
}
