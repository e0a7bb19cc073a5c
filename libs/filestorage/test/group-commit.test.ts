// Group commit (tpc_finish with the fdatasync off the event loop and off the commit lock) and the
// durability rules it must keep (filestorage §9.7, §16 durability items; zeo5-protocol §10.8):
// a transaction is visible to readers, told to the commit listeners and reported finished only
// once an fdatasync covering it returned, in tid order; a failed fdatasync fails every finish it
// covered and refuses later commits; close waits for finishes under way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, TransactionMetaData, type Oid, type Tid } from '@zeo-ts/storage';
import { SyncGate, makeRecord, track } from '@zeo-ts/storage/testing';
import { FileStorage } from '../src/index.ts';


function tempPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'fs-group-')), 'Data.fs');
}

async function voted(fs: FileStorage, oid: Oid, serial: Tid, value: string): Promise<TransactionMetaData> {
  const txn = new TransactionMetaData('', value);
  await fs.tpc_begin(txn);
  await fs.store(oid, serial, makeRecord({ value }), txn);
  await fs.tpc_vote(txn);
  return txn;
}


test('group commit: finished transactions stay invisible until durable, share one fdatasync, and complete in tid order (filestorage §9.7, §16 #13, #15)', async () => {
  const gate = new SyncGate();
  const fs = await FileStorage.open(tempPath(), { groupCommit: true, fdatasync: gate.hook });
  assert.equal(fs.pipelinedFinish, true);
  const seen: Tid[] = [];
  fs.onCommit((tid) => seen.push(tid));
  // T0: the base revision of oid 0
  const f0 = fs.tpc_finish(await voted(fs, 0n, 0n, 'zero'));
  await gate.release();
  const t0 = await f0;

  // T1 finishes: its fdatasync is held by the gate
  const t1txn = await voted(fs, 0n, t0, 'one');
  const f1 = track(fs.tpc_finish(t1txn));
  await gate.whenWaiting();
  // the commit lock is free: T2 begins, and its conflict check sees T1 (not yet durable)
  const stale = new TransactionMetaData('', 'stale');
  await fs.tpc_begin(stale);
  await assert.rejects(fs.store(0n, t0, makeRecord({ value: 'stale' }), stale), (e: unknown) => e instanceof ConflictError);
  await fs.tpc_abort(stale);
  const t1 = fs.writerTid(0n)!;
  assert.ok(t1 > t0);
  // readers still see T0 only
  assert.equal(fs.lastTransaction(), t0);
  assert.deepEqual((await fs.load(0n)).data, makeRecord({ value: 'zero' }));
  // loadSerial finds T1's revision (a committer told of it by a conflict resolves against it)
  assert.deepEqual(await fs.loadSerial(0n, t1), makeRecord({ value: 'one' }));
  // T2 and T3 finish while T1's fdatasync runs
  const f2 = track(fs.tpc_finish(await voted(fs, 0n, t1, 'two')));
  const t2 = fs.writerTid(0n)!;
  const f3 = track(fs.tpc_finish(await voted(fs, 1n, 0n, 'three')));
  assert.equal(f1.done || f2.done || f3.done, false, 'no finish before its fdatasync');
  assert.deepEqual(seen, [t0]);
  await gate.release(); // T1 durable
  await f1.settled;
  assert.equal(f1.value, t1);
  assert.equal(fs.lastTransaction(), t1);
  assert.deepEqual((await fs.load(0n)).data, makeRecord({ value: 'one' }));
  assert.equal(f2.done, false);
  await gate.release(); // one fdatasync for T2 and T3
  await Promise.all([f2.settled, f3.settled]);
  assert.equal(gate.calls, 3, 'T2 and T3 shared one fdatasync');
  assert.equal(f2.value, t2);
  assert.ok(f3.value! > t2);
  assert.deepEqual(seen, [t0, t1, t2, f3.value], 'listeners in tid order, each once durable');
  assert.equal(fs.lastTransaction(), f3.value);
  await fs.close();
  const again = await FileStorage.open(fs.path, { readOnly: true });
  assert.equal(again.lastTransaction(), f3.value);
  assert.deepEqual((await again.load(0n)).data, makeRecord({ value: 'two' }));
  await again.close();
});

test('group commit: a failed fdatasync fails every finish it covered, later commits are refused, nothing of them survives (filestorage §9.7)', async () => {
  const gate = new SyncGate();
  const path = tempPath();
  const fs = await FileStorage.open(path, { groupCommit: true, fdatasync: gate.hook });
  const f0 = fs.tpc_finish(await voted(fs, 0n, 0n, 'durable'));
  await gate.release();
  const t0 = await f0;
  const f1 = track(fs.tpc_finish(await voted(fs, 0n, t0, 'lost-1')));
  await gate.whenWaiting();
  const t1 = fs.writerTid(0n)!;
  const f2 = track(fs.tpc_finish(await voted(fs, 0n, t1, 'lost-2')));
  await gate.fail('injected EIO');
  await Promise.all([f1.settled, f2.settled]);
  for (const f of [f1, f2]) {
    assert.equal(f.value, undefined, 'no success for undurable data');
    assert.match(String((f.error as Error).message), /fdatasync failed.*injected EIO/);
    assert.match(String((f.error as Error).message), new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  }
  await assert.rejects(fs.tpc_begin(new TransactionMetaData('', 'later')), /fdatasync failed|closed|closing/);
  await fs.close();
  const again = await FileStorage.open(path, { readOnly: true });
  assert.equal(again.lastTransaction(), t0);
  assert.deepEqual((await again.load(0n)).data, makeRecord({ value: 'durable' }));
  await again.close();
});

test('without group commit: a failed fdatasync fails tpc_finish and closes the storage (filestorage §9.7)', async () => {
  const path = tempPath();
  let fail = false;
  const fs = await FileStorage.open(path, {
    fdatasync: async () => {
      if (fail) throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
    },
  });
  assert.equal(fs.pipelinedFinish, false);
  const t0 = await fs.tpc_finish(await voted(fs, 0n, 0n, 'durable'));
  fail = true;
  await assert.rejects(fs.tpc_finish(await voted(fs, 0n, t0, 'lost')), /fdatasync failed.*injected EIO/);
  await assert.rejects(fs.tpc_begin(new TransactionMetaData('', 'later')), /closed|closing|fdatasync/);
  const again = await FileStorage.open(path, { readOnly: true });
  assert.equal(again.lastTransaction(), t0);
  await again.close();
});

test('group commit: close during a finish waits for it; an abort during it is a no-op (filestorage §9.7)', async () => {
  const gate = new SyncGate();
  const path = tempPath();
  const fs = await FileStorage.open(path, { groupCommit: true, fdatasync: gate.hook });
  const txn = await voted(fs, 0n, 0n, 'kept');
  const f = track(fs.tpc_finish(txn));
  await fs.tpc_abort(txn);
  const closing = track(fs.close());
  await gate.whenWaiting();
  assert.equal(closing.done, false, 'close waits for the fdatasync under way');
  await gate.release();
  await Promise.all([f.settled, closing.settled]);
  assert.equal(closing.error, undefined);
  assert.ok(typeof f.value === 'bigint');
  const again = await FileStorage.open(path, { readOnly: true });
  assert.equal(again.lastTransaction(), f.value);
  assert.deepEqual((await again.load(0n)).data, makeRecord({ value: 'kept' }));
  await again.close();
});

test('group commit: pack waits for finished transactions to be durable (filestorage §9.7)', async () => {
  const gate = new SyncGate();
  const fs = await FileStorage.open(tempPath(), { groupCommit: true, fdatasync: gate.hook });
  const f0 = fs.tpc_finish(await voted(fs, 0n, 0n, 'a'));
  await gate.release();
  const t0 = await f0;
  const f1 = track(fs.tpc_finish(await voted(fs, 0n, t0, 'b')));
  const packed = track(fs.pack(Date.now() / 1000 + 1, false));
  await gate.release();
  await Promise.all([f1.settled, packed.settled]);
  assert.equal(packed.error, undefined);
  assert.deepEqual((await fs.load(0n)).data, makeRecord({ value: 'b' }));
  await fs.close();
});
