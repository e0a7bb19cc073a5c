// filestorage spec §2.2 (TimeStamp) — checklist items on tids and their text form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimeStamp, formatSeconds, newTid, p64, u64, toHex, fromHex, oidRepr, z64, maxtid } from '../src/index.ts';

test('fromTime matches the spec example 1704067530.0 -> 03f58e05 80000000', () => {
  assert.equal(toHex(TimeStamp.fromTime(1704067530.0).raw), '03f58e0580000000');
});

test('parts and timeTime round-trip', () => {
  const ts = TimeStamp.fromParts(2024, 1, 1, 0, 5, 30);
  const p = ts.parts();
  assert.deepEqual([p.year, p.month, p.day, p.hour, p.minute, p.second], [2024, 1, 1, 0, 5, 30]);
  assert.equal(ts.timeTime(), 1704067530);
  assert.equal(ts.toString(), '2024-01-01 00:05:30.000000');
});

test('seconds text rounds exact ties to even like C printf', () => {
  assert.equal(formatSeconds(3 * 2 ** 23), '00.351562');
  assert.equal(formatSeconds(0), '00.000000');
  assert.equal(formatSeconds(2 ** 32 / 4), '15.000000');
});

test('laterThan increments the low word and carries into the calendar', () => {
  const base = TimeStamp.fromParts(2024, 1, 1, 0, 0, 0);
  assert.equal(base.laterThan(base).raw, base.raw + 1n);
  const top = new TimeStamp((BigInt(TimeStamp.fromParts(2024, 2, 29, 23, 59).high) << 32n) | 0xffffffffn);
  const next = TimeStamp.fromTime(0).laterThan(top).parts();
  assert.deepEqual([next.year, next.month, next.day, next.hour, next.minute, next.second], [2024, 3, 1, 0, 0, 0]);
  const later = TimeStamp.fromParts(2030, 1, 1, 0, 0);
  assert.equal(later.laterThan(base).raw, later.raw);
});

test('newTid is strictly later than the last tid even if the clock is behind', () => {
  const future = TimeStamp.fromParts(2999, 1, 1, 0, 0).raw;
  assert.ok(newTid(future) > future);
  assert.ok(newTid(z64) > z64);
});

test('p64/u64/hex helpers', () => {
  assert.deepEqual([...p64(0x0102030405060708n)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(u64(p64(maxtid)), maxtid);
  assert.equal(fromHex('03f58e0580000000'), 0x03f58e0580000000n);
  assert.equal(oidRepr(0n), '0x00');
  assert.equal(oidRepr(0x1234n), '0x1234');
  assert.equal(oidRepr(0x123n), '0x0123');
  assert.throws(() => p64(-1n), RangeError);
});
