// The primary's file iterator and start point search (zrs §6.4, §6.6, §11.5; §14 #10-#16, #24, #25, #32).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { TransactionMetaData, TimeStamp, type Tid } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import { FileIterator, ScanAborted, TidTooHigh } from '../src/index.ts';
import { tempDir } from './helpers.ts';

/** A storage with n transactions one second apart (clock injected). */
async function history(n: number) {
  const d = tempDir();
  let clock = 1_700_000_000;
  const fs = new FileStorage(join(d, 'Data.fs'), { now: () => clock });
  const tids: Tid[] = [];
  for (let i = 0; i < n; i++) {
    clock += 1;
    const txn = new TransactionMetaData('', `t${i}`);
    await fs.tpc_begin(txn);
    await fs.store(BigInt(i), 0n, makeRecord(), txn);
    await fs.tpc_vote(txn);
    tids.push(await fs.tpc_finish(txn));
  }
  const it = () => new FileIterator(fs.path, { committedEnd: () => fs.getSize(), lastTransaction: () => fs.lastTransaction() });
  return { d, fs, tids, it, clock: () => clock, setClock: (c: number) => (clock = c) };
}

function drain(it: FileIterator): Tid[] {
  const out: Tid[] = [];
  for (let t = it.next(); t && out.length < 1e6; t = it.next()) out.push(t.tid);
  return out;
}

test('zrs §14 #10-#13: start points: z64, an existing tid, between two tids, before every tid', async () => {
  const h = await history(10);
  let it = h.it();
  it.locate(0n);
  assert.deepEqual(drain(it), h.tids);
  it.close();
  for (const k of [1, 5, 8]) {
    it = h.it();
    it.locate(h.tids[k]!);
    assert.deepEqual(drain(it), h.tids.slice(k + 1), `exactly tid ${k}`);
    it.close();
    it = h.it();
    it.locate(h.tids[k]! + 1n);
    assert.deepEqual(drain(it), h.tids.slice(k + 1), `just after tid ${k}`);
    it.close();
  }
  it = h.it();
  it.locate(h.tids[0]! - 1n);
  assert.deepEqual(drain(it), h.tids);
  it.close();
  await h.fs.close();
});

test('zrs §14 #14: TidTooHigh after the last tid and on an empty storage', async () => {
  const h = await history(3);
  const it = h.it();
  assert.throws(() => it.locate(h.tids[2]! + 1n), TidTooHigh);
  it.close();
  const e = await history(0);
  const it2 = e.it();
  assert.throws(() => it2.locate(123n), TidTooHigh);
  it2.close();
  await h.fs.close();
  await e.fs.close();
});

test('zrs §14 #15: a tid in the second half is found from the end, reading only the first tid (corrupt first header)', async () => {
  const h = await history(20);
  await h.fs.close();
  // corrupt the first transaction header beyond its tid (tlen), as tests.py scan_from_back does
  const fd = openSync(join(h.d, 'Data.fs'), 'r+');
  writeSync(fd, Buffer.alloc(8, 0xee), 0, 8, 4 + 8);
  closeSync(fd);
  const fs = { path: join(h.d, 'Data.fs') };
  const size = readFileSync(fs.path).length;
  const mk = () => new FileIterator(fs.path, { committedEnd: () => size, lastTransaction: () => h.tids.at(-1)! });
  let it = mk();
  it.locate(h.tids[15]!);
  assert.deepEqual(drain(it), h.tids.slice(16));
  assert.ok(it.scanSteps <= 6, `backward scan: ${it.scanSteps} steps`);
  it.close();
  // fractional seconds between two tids in the second half
  it = mk();
  const mid = TimeStamp.fromTime(new TimeStamp(h.tids[12]!).timeTime() + 0.5).raw;
  it.locate(mid);
  assert.deepEqual(drain(it), h.tids.slice(13));
  it.close();
  // a tid in the first half scans forward and meets the corruption
  it = mk();
  assert.throws(() => it.locate(h.tids[2]!));
  it.close();
});

test('zrs §14 #16: a start point scan stops when the secondary has gone', async () => {
  const h = await history(30);
  let gone = false;
  let steps = 0;
  const it = new FileIterator(h.fs.path, {
    committedEnd: () => h.fs.getSize(),
    lastTransaction: () => h.fs.lastTransaction(),
    aborted: () => {
      steps++;
      if (steps === 3) gone = true;
      return gone;
    },
  });
  assert.throws(() => it.locate(h.tids[2]!), ScanAborted);
  assert.equal(it.scanSteps, 2);
  it.close();
  await h.fs.close();
});

test('zrs §14 #24, #25: an unfinished (voted) transaction is not produced until finished; empty transactions are', async () => {
  const h = await history(2);
  const it = h.it();
  it.locate(h.tids[1]!);
  assert.equal(it.next(), null);
  const txn = new TransactionMetaData('', 'empty');
  await h.fs.tpc_begin(txn);
  await h.fs.tpc_vote(txn);
  assert.equal(it.next(), null, "status 'c' is not available yet");
  const tid = await h.fs.tpc_finish(txn);
  const t = it.next();
  assert.equal(t?.tid, tid);
  assert.deepEqual(t?.records, []);
  it.close();
  await h.fs.close();
});

test('zrs §14 #32, §11.5 #2: after a pack the iterator reopens the new file and continues', async () => {
  const h = await history(5);
  const it = h.it();
  it.locate(0n);
  assert.equal(drain(it).length, 5);
  h.setClock(h.clock() + 10);
  await h.fs.pack(h.clock(), false);
  h.setClock(h.clock() + 1);
  const txn = new TransactionMetaData('', 'after pack');
  await h.fs.tpc_begin(txn);
  await h.fs.store(99n, 0n, makeRecord(), txn);
  await h.fs.tpc_vote(txn);
  const tid = await h.fs.tpc_finish(txn);
  assert.deepEqual(drain(it), [tid]);
  it.close();
  await h.fs.close();
});
