// Server-side resolution of BTrees.Length conflicts (zeo5-protocol §10.5, vectors zeo5/*-conflict.json step 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLengthRecord, pickleInt, resolveLengthConflict } from '../src/resolve.ts';

const CLS = '8003634254726565732e4c656e6774680a4c656e6774680a71002e';
const rec = (stateHex: string) => Buffer.from(CLS + stateHex, 'hex');

test('Length records from the conflict vector resolve to committed + mine - old, byte for byte', () => {
  // old (T3) = 1, committed (T4) = 2, B's stale store = 11 → server writes 12 (frame 74 of m5-conflict.json)
  const out = resolveLengthConflict(rec('80034b012e'), rec('80034b022e'), rec('80034b0b2e'));
  assert.equal(out?.toString('hex'), CLS + '80034b0c2e');
});

test('int pickles use K, M, J, LONG1 like CPython protocol 3', () => {
  assert.equal(pickleInt(0n).toString('hex'), '80034b002e');
  assert.equal(pickleInt(300n).toString('hex'), '80034d2c012e');
  assert.equal(pickleInt(-1n).toString('hex'), '80034affffffff2e');
  assert.equal(pickleInt(0x80000000n).toString('hex'), '80038a050000008000' + '2e');
  assert.equal(pickleInt(140234567890123n).toString('hex'), '80038a06cbb49ae78a7f2e');
  for (const v of [0n, 255n, 256n, 65535n, 65536n, -5n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 40n, -(2n ** 40n)]) {
    assert.equal(parseLengthRecord(Buffer.concat([Buffer.from(CLS, 'hex'), pickleInt(v)]))?.value, v);
  }
});

test('anything but a plain Length record is not resolved', () => {
  const pm = Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e80037d71012e', 'hex');
  assert.equal(resolveLengthConflict(pm, pm, pm), null);
  assert.equal(resolveLengthConflict(rec('80034b012e'), rec('80034b022e'), Buffer.alloc(0)), null);
  assert.equal(parseLengthRecord(rec('80034b01')), null, 'truncated');
});
