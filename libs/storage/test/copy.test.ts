// copyTransactionsFrom (filestorage spec §10.4; §16 #49 for FileStorage destinations).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MappingStorage, ReadOnlyError, UndoError, copyTransactionsFrom, z64 } from '../src/index.ts';
import { commit, dumpIterator, makeRecord, rejectsWith, tidAt, undoId, undoTxn } from '../src/testing/index.ts';

const silent = pino({ level: 'silent' });
const rec = (v: string) => makeRecord({ value: v });

async function history(): Promise<MappingStorage> {
  const s = new MappingStorage({ name: 'source' });
  const T1 = await commit(s, [{ oid: z64, serial: z64, data: makeRecord({ refs: [1n] }) }, { oid: 1n, serial: z64, data: rec('a') }], { tid: tidAt(1) });
  const T2 = await commit(s, [{ oid: 1n, serial: T1, data: rec('b') }], { tid: tidAt(2) });
  await undoTxn(s, undoId(T2)); // record reusing T1's data
  return s;
}

test('copy counts transactions and records and reproduces the history', async () => {
  const src = await history();
  const dst = new MappingStorage({ name: 'dest' });
  const r = await copyTransactionsFrom(src, dst, { logger: silent });
  assert.equal(r.transactions, 3);
  assert.equal(r.records, 4);
  assert.equal(r.lastTid, src.lastTransaction());
  assert.deepEqual(await dumpIterator(dst), await dumpIterator(src));
});

test('copying a suffix fails with UndoError at a backpointer to an uncopied transaction; dest stays usable (filestorage §10.4)', async () => {
  const src = await history();
  const dst = new MappingStorage({ name: 'dest' });
  await rejectsWith(copyTransactionsFrom(src, dst, { start: tidAt(2), logger: silent }), UndoError, 'suffix copy');
  assert.equal(dst.lastTransaction(), tidAt(2), 'the transaction before the failure stays committed');
  const t = await commit(dst, [{ oid: 1n, serial: tidAt(2), data: rec('c') }]);
  assert.ok(t > tidAt(2), 'the failed copy transaction was aborted (commit lock free)');
});

test('copy into a read-only storage fails with ReadOnlyError', async () => {
  const src = await history();
  await rejectsWith(copyTransactionsFrom(src, new MappingStorage({ readOnly: true }), { logger: silent }), ReadOnlyError, 'read-only dest');
});

test('copy with start/stop copies only that range', async () => {
  const src = await history();
  const dst = new MappingStorage();
  const r = await copyTransactionsFrom(src, dst, { stop: tidAt(1), logger: silent });
  assert.equal(r.transactions, 1);
  assert.deepEqual(await dumpIterator(dst), await dumpIterator(src, undefined, tidAt(1)));
});
