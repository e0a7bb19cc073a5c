/**
 * A small data file with records as ZODB on Python 2 wrote them (filestorage spec §3, §4.2):
 * protocol-1 pickles without PROTO, Python 2 `str` (SHORT_BINSTRING) oids and keys, `(`-MARK
 * TUPLE persistent ids, GLOBAL classes, a protocol-2 record with TUPLE2, a protocol-1
 * transaction extension, and (in T0 only) a non-ASCII Python 2 str. Assembled opcode by opcode
 * here; the expected tool outputs in fs21.test.ts were checked against Python ZODB's tools on
 * the FS30 twin of this file when written.
 */
import { writeFileSync } from 'node:fs';
import { FileStorage } from '@zeo-ts/filestorage';
import { TransactionMetaData } from '@zeo-ts/storage';

const oid8 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(n, 4);
  return b;
};
/** SHORT_BINSTRING: Python 2 str of < 256 bytes */
const U = (s: Buffer | string) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([Buffer.from([0x55, b.length]), b]);
};
const raw = (s: string) => Buffer.from(s, 'latin1');
const cat = (...parts: Array<Buffer | string>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? raw(p) : p)));

/** root (oid 0), protocol 1: {'data': {'a': (oid 1, PersistentMapping), 'b': (oid 2, PersistentList)}} */
export const ROOT = cat(
  'cpersistent.mapping\nPersistentMapping\nq\x00.',
  '}q\x01', U('data'), 'q\x02}q\x03(',
  U('a'), 'q\x04(', U(oid8(1)), 'q\x05h\x00tq\x06Q',
  U('b'), 'q\x07(', U(oid8(2)), 'q\x08cpersistent.list\nPersistentList\nq\ttq\nQ',
  'us.',
);
/** oid 1 in T0, protocol 1, with a non-ASCII Python 2 str (Python 3's referencesf refuses it) */
export const M1_LATIN1 = cat(
  'cpersistent.mapping\nPersistentMapping\nq\x01.',
  '}q\x02', U('data'), 'q\x03}q\x04(', U('name'), 'q\x05', U('a'), 'q\x06', U('raw'), 'q\x07', U(raw('\xe9t\xe9')), 'q\x08us.',
);
/** oid 1 in T1, protocol 1, ASCII only */
export const M1 = cat('cpersistent.mapping\nPersistentMapping\nq\x01.', '}q\x02', U('data'), 'q\x03}q\x04', U('name'), 'q\x05', U('a1'), 'q\x06ss.');
/** oid 2, protocol 2: {'data': [1, 2, 3], 'next': (oid 1, <memo 1: PersistentList>)} */
export const L2 = cat(
  '\x80\x02cpersistent.list\nPersistentList\nq\x01.',
  '\x80\x02}q\x02(', U('data'), 'q\x03]q\x04(K\x01K\x02K\x03e', U('next'), 'q\x05', U(oid8(1)), 'q\x06h\x01\x86q\x07Qu.',
);
/** BINSTRING (T): a Python 2 str of any length */
const T = (b: Buffer) => {
  const n = Buffer.alloc(5);
  n[0] = 0x54;
  n.writeUInt32LE(b.length, 1);
  return Buffer.concat([n, b]);
};
/**
 * A state that refers to oid 7 (BINSTRING oid, class from memo 1), holds a weak reference
 * ['w', (oid 9,)] (not followed) and the 8 bytes of oid 3 as a plain value (not a reference).
 */
const OLD_STATE = cat(
  '}q\x03(', U('x'), '(', T(oid8(7)), 'h\x01tQ',
  U('w'), ']q\x04(', U('w'), '(', U(oid8(9)), 'tq\x05eQ',
  U('plain'), U(oid8(3)), 'u.',
);
/** Older class descriptions of ZODB 3 (serialize.py formats 5, 3 and 4) with OLD_STATE. */
export const CLASS_FORMAT5 = cat('(cpersistent.mapping\nPersistentMapping\nq\x01Ntq\x02.', OLD_STATE);
export const CLASS_FORMAT3 = cat('((', U('persistent.mapping'), U('PersistentMapping'), 'tq\x01Ntq\x02.', OLD_STATE);
export const CLASS_FORMAT4 = cat('((', U('BTrees.OOBTree'), U('OOBTree'), 'tq\x01)tq\x02.N.');

/** a Python 2 transaction extension, protocol 1: {'app': 'py2'} */
export const EXT_PY2 = cat('}q\x01', U('app'), 'q\x02', U('py2'), 'q\x03s.');

export const T0 = 0x03f58e0001111111n;
export const T1 = 0x03f58e0102222222n;

/** Write the file at `path` (magic FS30, or FS21 when `fs21`); returns its bytes. */
export async function writePy2File(path: string, fs21: boolean): Promise<Buffer> {
  const fs = new FileStorage(path, { create: true });
  try {
    const t0 = new TransactionMetaData('alice', 'py2 records', EXT_PY2);
    await fs.tpc_begin(t0, T0);
    await fs.store(0n, 0n, ROOT, t0);
    await fs.store(1n, 0n, M1_LATIN1, t0);
    await fs.store(2n, 0n, L2, t0);
    await fs.tpc_vote(t0);
    await fs.tpc_finish(t0);
    const t1 = new TransactionMetaData('bob', 'ascii a');
    await fs.tpc_begin(t1, T1);
    await fs.store(1n, T0, M1, t1);
    await fs.tpc_vote(t1);
    await fs.tpc_finish(t1);
  } finally {
    await fs.close();
  }
  const { readFileSync, rmSync } = await import('node:fs');
  rmSync(path + '.index', { force: true });
  rmSync(path + '.lock', { force: true });
  rmSync(path + '.tmp', { force: true });
  const b = readFileSync(path);
  if (fs21) {
    b.write('FS21', 0, 'latin1');
    writeFileSync(path, b);
  }
  return b;
}
