// The doctest walkthroughs of zrs spec §11.1 (primary.test) and §11.3 (secondary.test), step by
// step, over real sockets and files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { TransactionMetaData, p64, type Tid } from '@zeo-ts/storage';
import { commit, makeRecord, ROOT_RECORD } from '@zeo-ts/storage/testing';
import { Primary, RunningChecksum, Secondary, decodeMessage, encodeC, encodeS, encodeT, type ZrsMessage } from '../src/index.ts';
import { FakePrimary, RawClient, memoryLogger, tempDir, until } from './helpers.ts';

test('zrs §11.1 primary.test walkthrough (§14 #4-#5, #8-#9, #17-#21, #26-#27, #30)', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(new FileStorage(join(d, 'Data.fs')), { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  assert.ok(m.has(/^Opening .*Data\.fs \('127\.0\.0\.1', 0\)$/)); // 1
  const root = await commit(p, [{ oid: 0n, serial: 0n, data: ROOT_RECORD }], { description: 'initial database creation' });
  const c = new RawClient(p.port);
  await c.ready;
  await m.waitFor(/: Connected$/); // 2
  c.send('zrs2.0');
  c.send(p64(0n));
  await m.waitFor(/start 0000000000000000 \(1900-01-01 00:00:00\.000000\)/); // 3
  c.send(Buffer.alloc(0));
  await m.waitFor(/: keep-alive$/); // 4
  const msgs = await c.waitCount(4); // 5
  const dec = (i: number): ZrsMessage => decodeMessage(msgs[i]!);
  const t0 = dec(0);
  assert.equal(t0.type, 'T');
  if (t0.type === 'T') {
    assert.equal(t0.tid, root);
    assert.equal(t0.status, ' ');
    assert.equal(t0.user.length, 0);
    assert.equal(t0.description.toString(), 'initial database creation');
    assert.equal(t0.extension.size, 0);
  }
  assert.deepEqual(dec(1), { type: 'S', oid: 0n, tid: root, version: '', dataTxn: null });
  assert.deepEqual(msgs[2], ROOT_RECORD);
  const sum = new RunningChecksum(p64(0n));
  for (const x of msgs.slice(0, 3)) sum.update(x);
  assert.deepEqual(dec(3), { type: 'C', checksum: sum.digest() });
  sum.update(msgs[3]!);
  // 6: root change + a new object: T, S(0), data, S(1), data, C
  const t1 = await commit(p, [{ oid: 0n, serial: root, data: makeRecord() }, { oid: 1n, serial: 0n, data: makeRecord() }]);
  await c.waitCount(10);
  assert.deepEqual(msgs.slice(4, 10).map((x, i) => ([0, 1, 3, 5].includes(i) ? decodeMessage(x).type : 'data')), ['T', 'S', 'data', 'S', 'data', 'C']);
  // 7: nothing more until a commit (the next payloads are exactly the next commit's)
  const undoTarget = await commit(p, [{ oid: 1n, serial: t1, data: makeRecord({ state: { v: 2 } } as never) }]);
  await c.waitCount(14); // 8
  assert.equal(decodeMessage(msgs[10]!).type, 'T');
  // 9: undo of the last transaction → S for oid 1 with data_txn = the tid whose data it restores
  const txn = new TransactionMetaData('', 'undo');
  await p.tpc_begin(txn);
  const [entry] = await p.undoLog(0, 1);
  await p.undo(entry!.id, txn);
  await p.tpc_vote(txn);
  await p.tpc_finish(txn);
  await c.waitCount(18);
  assert.deepEqual(decodeMessage(msgs[15]!), { type: 'S', oid: 1n, tid: p.lastTransaction(), version: '', dataTxn: t1 });
  assert.notEqual(undoTarget, t1);
  // 10: a second connection from a saved tid gets only later transactions
  const c2 = new RawClient(p.port);
  await c2.ready;
  c2.send('zrs2.0');
  c2.send(p64(undoTarget));
  const m2 = await c2.waitCount(4);
  assert.equal((decodeMessage(m2[0]!) as { tid: Tid }).tid, p.lastTransaction());
  // 11
  c2.close();
  await c2.gone;
  await m.waitFor(/: Disconnected/);
  await p.close();
  assert.ok(m.has(/^Closing .*Data\.fs \('127\.0\.0\.1', 0\)$/));
  await c.gone;
});

test('zrs §11.3 secondary.test walkthrough (§14 #4-#5, #34-#35, #37-#38, #42)', async () => {
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const m = memoryLogger();
  const fs = new FileStorage(join(d, 'Data.fs'));
  const sec = new Secondary(fs, { host: '127.0.0.1', port }, { logger: m.log, native: 'never', reconnectDelay: 0.05 });
  assert.ok(m.has(/^Opening .*Data\.fs \('127\.0\.0\.1', \d+\)$/)); // 1
  const c = await fake.connection(0);
  await c.waitCount(2); // 2
  assert.equal(c.received[0]!.toString(), 'zrs2.0');
  assert.deepEqual(c.received[1], p64(0n));
  const invalidations: Array<[Tid, bigint[]]> = [];
  sec.onCommit((tid, oids) => invalidations.push([tid, oids]));
  // 3: the creation transaction with a correct running checksum
  const sum = new RunningChecksum(p64(0n));
  const send = (conn: typeof c, payload: Buffer) => {
    conn.send(payload);
    sum.update(payload);
  };
  const tid1 = 0x036c6b90f3333333n;
  send(c, encodeT(tid1, ' ', Buffer.alloc(0), Buffer.from('initial database creation'), new Map()));
  send(c, encodeS(0n, tid1, null));
  send(c, ROOT_RECORD);
  send(c, encodeC(sum.digest()));
  await until(() => fs.lastTransaction() === tid1, () => sec.changed(), 'first txn');
  assert.deepEqual((await sec.load(0n)).data, ROOT_RECORD);
  assert.deepEqual(invalidations, [[tid1, [0n]]]);
  // 9: the connection fails after T/S/data but before C: nothing visible
  const tid2 = tid1 + 1000n;
  send(c, encodeT(tid2, ' ', Buffer.alloc(0), Buffer.from('second'), new Map()));
  send(c, encodeS(0n, tid2, null));
  send(c, makeRecord());
  await c.waitCount(2);
  c.sock.destroy();
  await until(() => sec.state === 'waiting', () => sec.changed(), 'disconnect'); // 7
  assert.equal(fs.lastTransaction(), tid1);
  // 8: reconnect sends the protocol and the same last tid
  const c2 = await fake.connection(1);
  await c2.waitCount(2);
  assert.deepEqual(c2.received[1], p64(tid1));
  const sum2 = new RunningChecksum(p64(tid1));
  for (const x of [encodeT(tid2, ' ', Buffer.alloc(0), Buffer.from('second'), new Map()), encodeS(0n, tid2, null), makeRecord()]) {
    c2.send(x);
    sum2.update(x);
  }
  c2.send(encodeC(sum2.digest()));
  await until(() => fs.lastTransaction() === tid2, () => sec.changed(), 'second txn');
  assert.deepEqual(invalidations.at(-1), [tid2, [0n]]);
  await sec.close(); // §14 #43
  assert.equal(sec.state, 'closed');
  await fake.close();
});
