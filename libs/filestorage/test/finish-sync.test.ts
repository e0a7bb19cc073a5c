// tpc_finish fsyncs off the event loop (filestorage §9.7, §16 durability items): while the
// fsync runs, an abort of the same transaction or a close must not undo or lose it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TransactionMetaData } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import { FileStorage } from '../src/index.ts';

async function voted(fs: FileStorage, value: string): Promise<TransactionMetaData> {
  const txn = new TransactionMetaData('', value);
  await fs.tpc_begin(txn);
  await fs.store(0n, fs.lastTransaction() === 0n ? 0n : await fs.getTid(0n), makeRecord({ value }), txn);
  await fs.tpc_vote(txn);
  return txn;
}

test('an abort arriving while tpc_finish syncs does not undo the transaction (§9.7)', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fs-finish-')), 'Data.fs');
  const fs = await FileStorage.open(path, {});
  const txn = await voted(fs, 'kept');
  const finishing = fs.tpc_finish(txn);
  await fs.tpc_abort(txn);
  const tid = await finishing;
  assert.equal(fs.lastTransaction(), tid);
  assert.deepEqual((await fs.load(0n)).data, makeRecord({ value: 'kept' }));
  await assert.rejects(fs.tpc_finish(txn), /wrong transaction|twice/);
  await fs.close();
  const again = await FileStorage.open(path, { readOnly: true });
  assert.equal(again.lastTransaction(), tid);
  assert.deepEqual((await again.load(0n)).data, makeRecord({ value: 'kept' }));
  await again.close();
});

test('close while tpc_finish syncs waits for the commit to complete (§9.7)', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fs-finish-')), 'Data.fs');
  const fs = await FileStorage.open(path, {});
  const txn = await voted(fs, 'durable');
  const finishing = fs.tpc_finish(txn);
  const closing = fs.close();
  const tid = await finishing;
  await closing;
  const again = await FileStorage.open(path, { readOnly: true });
  assert.equal(again.lastTransaction(), tid);
  assert.deepEqual((await again.load(0n)).data, makeRecord({ value: 'durable' }));
  await again.close();
});
