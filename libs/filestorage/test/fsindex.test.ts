// The compact index and the Data.fs.index codec — filestorage §5, §6, §16 #33.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsIndex, decodeIndexFile, encodeIndexFile } from '../src/index.ts';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('FsIndex agrees with a Map under random sets, overwrites and removals (bounded loop)', () => {
  const r = rng(7);
  const idx = new FsIndex(4);
  const ref = new Map<bigint, number>();
  for (let i = 0; i < 50_000; i++) {
    const oid = r() < 0.1 ? BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 53)) * 4096n + BigInt(Math.floor(r() * 4096))) : BigInt(Math.floor(r() * 20000));
    const op = r();
    if (op < 0.8) {
      const pos = 4 + Math.floor(r() * 2 ** 47);
      idx.set(oid, pos);
      ref.set(oid, pos);
    } else {
      idx.delete(oid);
      ref.delete(oid);
    }
  }
  assert.equal(idx.size, ref.size);
  for (const [k, v] of ref) assert.equal(idx.get(k), v);
  assert.equal(idx.get(123456789012345n), ref.get(123456789012345n) ?? 0);
  const sorted = idx.sortedOids();
  assert.deepEqual(sorted, [...ref.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  assert.equal(idx.maxLiveOid(), sorted[sorted.length - 1]);
});

test('filestorage §16 #33: index file round trip across prefixes, bucket sizes and position encodings', () => {
  const idx = new FsIndex();
  // >256 entries in one prefix (BINBYTES bucket), several prefixes, large positions (LONG1 pos)
  for (let i = 0; i < 70000; i++) idx.set(BigInt(i), 4 + i * 97);
  idx.set(0x0102030405060708n, 2 ** 47 + 5);
  idx.set(0xffffffffffff0001n, 77);
  for (const pos of [100, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 40, 2 ** 47]) {
    const bytes = encodeIndexFile(pos, idx);
    const back = decodeIndexFile(bytes);
    assert.equal(back.pos, pos);
    assert.equal(back.index.size, idx.size);
    assert.deepEqual(encodeIndexFile(pos, back.index), bytes);
  }
  assert.throws(() => decodeIndexFile(Buffer.from('80037d2e', 'hex')), /old format|position/);
  assert.throws(() => decodeIndexFile(encodeIndexFile(1000, idx).subarray(0, 500)), /truncated|expected/);
});
