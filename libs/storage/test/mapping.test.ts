// MappingStorage behaviour beyond the shared suite: commit-lock bounds and shutdown, explicit tids,
// restore backpointer rules (filestorage §10.4), limits, listener isolation, undo ids (§2.3).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  MappingStorage,
  POSKeyError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  TimeStamp,
  TransactionMetaData,
  TransactionTooLargeError,
  UndoError,
  fromHex,
  tidFromUndoId,
  undoIdForTid,
  z64,
} from '../src/index.ts';
import { commit, makeRecord, rejectsWith, tidAt } from '../src/testing/index.ts';

const rec = (v: string) => makeRecord({ value: v });

describe('MappingStorage commit lock', () => {
  it('tpc_abort of a waiting transaction rejects its tpc_begin; the queue goes on', async () => {
    const s = new MappingStorage();
    const a = new TransactionMetaData();
    const b = new TransactionMetaData();
    const c = new TransactionMetaData();
    await s.tpc_begin(a);
    const bBegin = s.tpc_begin(b);
    const cBegin = s.tpc_begin(c);
    await s.tpc_abort(b);
    await rejectsWith(bBegin, StorageTransactionError, 'aborted waiter');
    await s.tpc_abort(a);
    await cBegin;
    await s.store(z64, z64, rec('c'), c);
    await s.tpc_vote(c);
    const t = await s.tpc_finish(c);
    assert.deepEqual(await s.load(z64), { data: rec('c'), tid: t });
  });

  it('an abort arriving after the lock was handed over but before tpc_begin resumed frees the lock', async () => {
    const s = new MappingStorage();
    const a = new TransactionMetaData();
    const b = new TransactionMetaData();
    await s.tpc_begin(a);
    const bBegin = s.tpc_begin(b);
    await s.tpc_vote(a);
    const finished = s.tpc_finish(a); // hands the lock to b synchronously
    const aborted = s.tpc_abort(b); // before b's tpc_begin resumes
    await finished;
    await aborted;
    await rejectsWith(bBegin, StorageTransactionError, 'b was aborted');
    const c = new TransactionMetaData();
    await s.tpc_begin(c); // the lock is free again
    await s.tpc_abort(c);
  });

  it('the wait queue is bounded (maxWaiting)', async () => {
    const s = new MappingStorage({ maxWaiting: 2 });
    const first = new TransactionMetaData();
    await s.tpc_begin(first);
    const w1 = s.tpc_begin(new TransactionMetaData());
    const w2 = s.tpc_begin(new TransactionMetaData());
    await rejectsWith(s.tpc_begin(new TransactionMetaData()), StorageTransactionError, 'third waiter');
    await s.close();
    await rejectsWith(w1, StorageError, 'waiter at close');
    await rejectsWith(w2, StorageError, 'waiter at close');
  });

  it('a closed storage refuses calls with StorageError', async () => {
    const s = new MappingStorage();
    await commit(s, [{ oid: z64, serial: z64, data: rec('r') }]);
    await s.close();
    await s.close(); // idempotent
    await rejectsWith(s.load(z64), StorageError, 'load after close');
    await rejectsWith(s.tpc_begin(new TransactionMetaData()), StorageError, 'tpc_begin after close');
    await rejectsWith(s.new_oid(), StorageError, 'new_oid after close');
  });

  it('an explicit tid must be later than the last transaction; the lock is released after the refusal', async () => {
    const s = new MappingStorage();
    const t1 = await commit(s, [{ oid: z64, serial: z64, data: rec('r1') }], { tid: tidAt(10) });
    await rejectsWith(s.tpc_begin(new TransactionMetaData(), t1), StorageTransactionError, 'same tid');
    await rejectsWith(s.tpc_begin(new TransactionMetaData(), tidAt(5)), StorageTransactionError, 'earlier tid');
    await rejectsWith(s.tpc_begin(new TransactionMetaData(), undefined, 'c'), StorageTransactionError, 'bad status');
    const t2 = await commit(s, [{ oid: z64, serial: t1, data: rec('r2') }]);
    assert.ok(t2 > t1);
  });

  it('new tids follow TimeStamp(now).laterThan(last), also when the clock goes back (filestorage §16 #19)', async () => {
    let now = Date.UTC(2024, 0, 1, 0, 5, 30) / 1000;
    const s = new MappingStorage({ clock: () => now });
    const t1 = await commit(s, [{ oid: z64, serial: z64, data: rec('1') }]);
    assert.equal(t1, TimeStamp.fromTime(now).raw);
    now -= 3600;
    const t2 = await commit(s, [{ oid: z64, serial: t1, data: rec('2') }]);
    assert.equal(t2, t1 + 1n);
    // an aborted transaction also advances the tid
    const x = new TransactionMetaData();
    await s.tpc_begin(x);
    await s.tpc_abort(x);
    const t3 = await commit(s, [{ oid: z64, serial: t2, data: rec('3') }]);
    assert.equal(t3, t2 + 2n);
  });
});

describe('MappingStorage writes', () => {
  it('restore stores data inline when the prevTxn record differs or is absent (filestorage §10.4)', async () => {
    const s = new MappingStorage({ logger: pino({ level: 'silent' }) });
    const T1 = tidAt(1);
    const T2 = tidAt(2);
    await commit(s, [{ oid: 1n, serial: z64, data: rec('one') }], { tid: T1 });
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn, T2);
    await s.restore(1n, T2, rec('different'), T1, txn); // differs: inline
    await s.restore(2n, T2, rec('two'), T1, txn); // no record of oid 2 in T1: inline
    await s.tpc_vote(txn);
    await s.tpc_finish(txn);
    const recs: Array<[bigint, bigint | null]> = [];
    for await (const t of s.iterator(T2, T2)) for (const r of t.records) recs.push([r.oid, r.data_txn]);
    assert.deepEqual(recs, [[1n, null], [2n, null]]);
    assert.deepEqual((await s.load(1n)).data, rec('different'));
    assert.equal((await s.history(1n))[0]!.size, rec('different').length);
  });

  it('a transaction has at most maxRecordsPerTransaction records', async () => {
    const s = new MappingStorage({ maxRecordsPerTransaction: 3 });
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn);
    for (let i = 0n; i < 2n; i++) await s.store(i, z64, rec(String(i)), txn);
    await s.store(1n, z64, rec('again'), txn); // a repeated oid is a record too (as in FileStorage)
    await rejectsWith(s.store(3n, z64, rec('3'), txn), TransactionTooLargeError, 'fourth record');
    await s.tpc_abort(txn);
  });

  it('a throwing commit listener neither breaks the commit nor other listeners', async () => {
    const s = new MappingStorage({ logger: pino({ level: 'silent' }) });
    const seen: bigint[] = [];
    s.onCommit(() => {
      throw new Error('listener failure');
    });
    s.onCommit((tid) => seen.push(tid));
    const t = await commit(s, [{ oid: z64, serial: z64, data: rec('r') }]);
    assert.deepEqual(seen, [t]);
    assert.equal(s.lastTransaction(), t);
    await commit(s, [{ oid: z64, serial: t, data: rec('r2') }]); // the lock was released
  });

  it('loaded and stored buffers are copies', async () => {
    const s = new MappingStorage();
    const data = rec('original');
    const t = await commit(s, [{ oid: z64, serial: z64, data }]);
    data.fill(0);
    const loaded = await s.load(z64);
    assert.deepEqual(loaded.data, rec('original'));
    loaded.data.fill(0);
    assert.deepEqual((await s.loadSerial(z64, t)), rec('original'));
  });

  it('read-only: every write refuses with ReadOnlyError, reads work', async () => {
    const s = new MappingStorage({ readOnly: true });
    const txn = new TransactionMetaData();
    assert.equal(s.isReadOnly(), true);
    await rejectsWith(s.new_oid(), ReadOnlyError, 'new_oid');
    await rejectsWith(s.tpc_begin(txn), ReadOnlyError, 'tpc_begin');
    await rejectsWith(s.store(z64, z64, rec('x'), txn), ReadOnlyError, 'store');
    await rejectsWith(s.restore(z64, z64, rec('x'), null, txn), ReadOnlyError, 'restore');
    await rejectsWith(s.deleteObject(z64, z64, txn), ReadOnlyError, 'deleteObject');
    await rejectsWith(s.undo(undoIdForTid(1n), txn), ReadOnlyError, 'undo');
    await rejectsWith(s.pack(Date.now() / 1000), ReadOnlyError, 'pack');
    await rejectsWith(s.load(z64), POSKeyError, 'load');
  });

  it('pack refuses a pack time of z64 and ignores an empty storage', async () => {
    const s = new MappingStorage();
    await s.pack(Date.now() / 1000);
    await commit(s, [{ oid: z64, serial: z64, data: rec('r') }]);
    await rejectsWith(s.pack(-2208988800), StorageError, 'pack at 1900-01-01 00:00 (tid z64)');
  });
});

describe('undoInfo (filestorage §10.1)', () => {
  it('matches specification keys against entry fields and extension keys', async () => {
    const s = new MappingStorage();
    // Python's pickle of {"app": "vectors"} (filestorage spec §3.3)
    const ext = Buffer.from('80037d7100580300000061707071015807000000766563746f72737102732e', 'hex');
    const t1 = await commit(s, [{ oid: z64, serial: z64, data: rec('1') }], { user: 'alice', extension: ext });
    const t2 = await commit(s, [{ oid: z64, serial: t1, data: rec('2') }], { user: 'bob' });
    const tids = async (spec: Record<string, Buffer | string>) => (await s.undoInfo(0, 20, spec)).map((e) => e.tid);
    assert.deepEqual(await tids({ app: 'vectors' }), [t1]);
    assert.deepEqual(await tids({ app: 'other' }), []);
    assert.deepEqual(await tids({ user_name: Buffer.from('bob') }), [t2]);
    assert.deepEqual(await tids({ user_name: 'alice', app: 'vectors' }), [t1]);
    assert.deepEqual(await tids({}), [t2, t1]);
  });
});

describe('undo ids (filestorage §2.3)', () => {
  it('base64 of the tid without newline, and back', () => {
    assert.equal(undoIdForTid(fromHex('03f58e0600000000')).toString(), 'A/WOBgAAAAA=');
    assert.equal(tidFromUndoId(Buffer.from('A/WOBgAAAAA=')), fromHex('03f58e0600000000'));
    assert.equal(tidFromUndoId('A/WOBgAAAAA='), fromHex('03f58e0600000000'));
    for (const bad of ['', 'A/WOBgAAAA', 'not base64!!', 'A/WOBgAAAAAA']) {
      assert.throws(() => tidFromUndoId(bad), UndoError, JSON.stringify(bad));
    }
  });
});
