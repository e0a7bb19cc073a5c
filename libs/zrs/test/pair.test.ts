// Primary + Secondary in one process over real sockets and real files.
// zrs §14 #6-#8, #10-#13, #16, #24-#25, #30-#35, #37-#38, #40-#47 (as cited per test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { ReadOnlyError, TransactionMetaData, StorageError, type IStorage, type Tid } from '@zeo-ts/storage';
import { commit, makeRecord } from '@zeo-ts/storage/testing';
import { Primary, Secondary, encodeSized } from '../src/index.ts';
import { RawClient, memoryLogger, tempDir, until } from './helpers.ts';

async function pair(o: { native?: 'auto' | 'never' | 'always'; ackQuorum?: number; ackTimeout?: number; policy?: 'refuse' | 'async' } = {}) {
  const d = tempDir();
  const pm = memoryLogger();
  const sm = memoryLogger();
  const pfs = new FileStorage(join(d, 'p.fs'));
  const primary = new Primary(pfs, { host: '127.0.0.1', port: 0 }, { logger: pm.log, ackQuorum: o.ackQuorum, ackTimeout: o.ackTimeout, ackTimeoutPolicy: o.policy });
  await primary.listening;
  const sfs = new FileStorage(join(d, 's.fs'));
  const secondary = new Secondary(sfs, { host: '127.0.0.1', port: primary.port }, { logger: sm.log, native: o.native ?? 'auto', reconnectDelay: 0.05 });
  return { d, pm, sm, pfs, primary, sfs, secondary };
}

let counter = 0;
async function commitSome(s: IStorage, n: number): Promise<Tid[]> {
  const tids: Tid[] = [];
  for (let i = 0; i < n; i++) {
    const oid = await s.new_oid();
    tids.push(await commit(s, [{ oid, serial: 0n, data: makeRecord({ state: { n: counter++ } } as never) }], { description: `txn ${counter}` }));
  }
  return tids;
}

async function caughtUp(primary: IStorage, secondary: Secondary): Promise<void> {
  await until(() => secondary.lastTransaction() === primary.lastTransaction(), () => secondary.changed(), 'secondary to catch up');
}

for (const native of ['never', 'always'] as const) {
  test(`zrs §14 #30, #33, #37, #38: live replication keeps files identical (${native === 'never' ? 'zrs2.0' : 'native'})`, async () => {
    const { d, primary, secondary, pfs } = await pair({ native });
    const root = await commit(primary, [{ oid: 0n, serial: 0n, data: makeRecord() }], { description: 'initial database creation' });
    assert.ok(root);
    const invalidated: Tid[] = [];
    secondary.onCommit((tid) => invalidated.push(tid));
    const tids = await commitSome(primary, 20);
    // an undo makes back-pointers (§14 #20, #21)
    const txn = new TransactionMetaData('', 'undo');
    await primary.tpc_begin(txn);
    const [entry] = await primary.undoLog(0, 1);
    await primary.undo(entry!.id, txn);
    await primary.tpc_vote(txn);
    await primary.tpc_finish(txn);
    await caughtUp(primary, secondary);
    assert.deepEqual(invalidated.slice(-21, -1), tids);
    assert.equal(secondary.isReadOnly(), true);
    await assert.rejects(secondary.new_oid(), ReadOnlyError);
    await assert.rejects(secondary.tpc_begin(new TransactionMetaData()), ReadOnlyError);
    await assert.rejects(secondary.undo(Buffer.alloc(8), new TransactionMetaData()), ReadOnlyError);
    assert.deepEqual((await secondary.load(1n)).data, (await primary.load(1n)).data);
    await secondary.close();
    await primary.close();
    assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
    void pfs;
  });
}

test('zrs §14 #34, #35, #42: a dropped connection aborts nothing committed; the secondary resumes from its last tid', async () => {
  const { primary, secondary, pm } = await pair({ native: 'never' });
  await commitSome(primary, 5);
  await caughtUp(primary, secondary);
  const before = secondary.connections;
  primary.disconnectAll();
  await commitSome(primary, 5);
  await caughtUp(primary, secondary);
  assert.ok(secondary.connections > before);
  const starts = pm.lines.filter((l) => /: start [0-9a-f]{16}/.test(l.msg)).map((l) => /start ([0-9a-f]{16})/.exec(l.msg)![1]);
  assert.equal(starts[0], '0000000000000000');
  assert.notEqual(starts.at(-1), '0000000000000000', 'resumed without a full copy');
  await secondary.close();
  await primary.close();
});

test('zrs §14 #6-#8: handshake validation on the primary (bad protocol, bad tid, too many messages, keep-alives)', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  const cases: Array<[string, (c: RawClient) => void, RegExp]> = [
    ['bad protocol', (c) => c.send('zrs9.9'), /Invalid protocol b'zrs9.9'/],
    ['7-byte tid', (c) => (c.send('zrs2.0'), c.send(Buffer.alloc(7))), /Invalid transaction id/],
    ['empty tid', (c) => (c.send('zrs2.0'), c.send(Buffer.alloc(0))), /Invalid transaction id, b''/],
    ['too many', (c) => (c.send('zrs2.0'), c.send(Buffer.alloc(8)), c.send(Buffer.alloc(0)), c.send(Buffer.alloc(0)), c.send('x')), /Too many messages/],
    ['oversized', (c) => c.raw(Buffer.from([0, 0, 0, 15])), /message too large: \(8, 15\)/],
    ['oversized second', (c) => (c.send('zrs2.1'), c.raw(Buffer.from([0, 0, 0x10, 0]))), /message too large: \(8, 4096\)/],
  ];
  for (const [what, act, re] of cases) {
    const c = new RawClient(p.port);
    await c.ready;
    act(c);
    await c.gone;
    assert.ok(m.has(re), what);
    assert.equal(c.received.length, 0, `${what}: nothing sent (§14 #9)`);
  }
  await p.close();
});

test('zrs hostile input: garbage and huge sizes close that connection only; the good secondary keeps replicating', async () => {
  const { primary, secondary } = await pair({ native: 'always' });
  await commitSome(primary, 3);
  await caughtUp(primary, secondary);
  for (const bytes of [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.concat([encodeSized(Buffer.from('zts1.0')), encodeSized(Buffer.from('not a protobuf at all'))])]) {
    const c = new RawClient(primary.port);
    await c.ready;
    c.raw(bytes);
    await c.gone;
  }
  await commitSome(primary, 3);
  await caughtUp(primary, secondary);
  await secondary.close();
  await primary.close();
});

test('zrs §14 #39: a secondary given a non-pickle message logs Input data error and drops the connection', async () => {
  const { FakePrimary } = await import('./helpers.ts');
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const m = memoryLogger();
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port }, { logger: m.log, native: 'never', reconnectDelay: 3600 });
  const c = await fake.connection(0);
  await c.waitCount(2);
  c.send(Buffer.from('xx'));
  await c.gone;
  await m.waitFor(/Input data error/);
  assert.equal(m.lines.find((l) => /Input data error/.test(l.msg))!.level, 60);
  await sec.close();
  await fake.close();
});

test('zrs §14 #40, #41: keep-alives are empty messages every keep-alive-delay; none by default', async () => {
  const { FakePrimary } = await import('./helpers.ts');
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port }, { logger: memoryLogger().log, native: 'never', keepAliveDelay: 0.05, reconnectDelay: 3600 });
  const c = await fake.connection(0);
  await c.waitCount(4);
  assert.deepEqual(c.received.slice(2).map((b) => b.length), [0, 0]);
  await sec.close();
  await fake.close();
  const sec2 = new Secondary(new FileStorage(join(tempDir(), 's.fs')), null, { logger: memoryLogger().log });
  assert.equal(sec2.state, 'idle');
  await sec2.close();
});

test('zrs §14 #43: closing a secondary while waiting to reconnect leaves nothing pending', async () => {
  const d = tempDir();
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: 1 }, { logger: memoryLogger().log, native: 'never', reconnectDelay: 3600 });
  await until(() => sec.state === 'waiting', () => sec.changed(), 'refused connection');
  await sec.close();
  assert.equal(sec.state, 'closed');
});

test('native auto mode falls back to zrs2.0 against a primary that refuses the native id', async () => {
  const { FakePrimary } = await import('./helpers.ts');
  const fake = new FakePrimary();
  const port = await fake.listening;
  const sec = new Secondary(new FileStorage(join(tempDir(), 's.fs')), { host: '127.0.0.1', port }, { logger: memoryLogger().log, native: 'auto', reconnectDelay: 3600 });
  const c0 = await fake.connection(0);
  await c0.waitCount(1);
  assert.equal(c0.received[0]!.toString(), 'zts1.0');
  c0.sock.destroy();
  const c1 = await fake.connection(1);
  await c1.waitCount(2);
  assert.equal(c1.received[0]!.toString(), 'zrs2.0');
  await sec.close();
  await fake.close();
});

test('semi-sync (ack-quorum 1): tpc_finish returns after the secondary acknowledged; lag is reported', async () => {
  const { primary, secondary } = await pair({ native: 'always', ackQuorum: 1, ackTimeout: 60000 });
  await until(() => secondary.state === 'connected', () => secondary.changed(), 'connect');
  const tids = await commitSome(primary, 10);
  // every returned tid is already durable on the secondary
  assert.equal(secondary.lastTransaction(), tids.at(-1));
  const st = primary.replicationStatus() as { secondaries: Array<Record<string, unknown>> };
  assert.equal(st.secondaries.length, 1);
  assert.equal(st.secondaries[0]!['lag-transactions'], 0);
  await secondary.close();
  await primary.close();
});

test('semi-sync timeout, policy refuse: tpc_finish fails loudly and further commits are refused until the quorum is back', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: m.log, ackQuorum: 1, ackTimeout: 50, ackTimeoutPolicy: 'refuse' });
  await p.listening;
  await assert.rejects(commitSome(p, 1), StorageError);
  assert.ok(m.has(/REPLICATION QUORUM LOST.*REFUSING/));
  assert.equal(p.commitsRefused, true);
  await assert.rejects(p.tpc_begin(new TransactionMetaData()), /commits refused/);
  // The short timeout served to provoke the refusal; from here on a busy machine must not make
  // the secondary's acknowledgements look late.
  p.ackTimeout = 60_000;
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: p.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05 });
  await until(() => sec.lastTransaction() === p.lastTransaction() && !p.commitsRefused, () => Promise.race([sec.changed(), p.changed()]), 'quorum back');
  await m.waitFor(/quorum of 1 restored/);
  await commitSome(p, 2);
  assert.equal(sec.lastTransaction(), p.lastTransaction());
  await sec.close();
  await p.close();
});

test('semi-sync timeout, policy async: commits continue with a loud log line and a status flag', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: m.log, ackQuorum: 1, ackTimeout: 50, ackTimeoutPolicy: 'async' });
  await p.listening;
  await commitSome(p, 3);
  assert.ok(m.has(/REPLICATION QUORUM LOST.*ASYNCHRONOUSLY/));
  assert.equal((p.replicationStatus() as Record<string, unknown>)['ack-degraded'], true);
  await p.close();
});

test('divergence (native): a secondary with a transaction the primary lacks is refused and left untouched', async () => {
  const d = tempDir();
  const pfs = new FileStorage(join(d, 'p.fs'));
  await commit(pfs, [{ oid: 0n, serial: 0n, data: makeRecord() }]);
  // the secondary: same first transaction, then one the primary never had, then the primary moves on
  const { copyFileSync } = await import('node:fs');
  await pfs.close();
  copyFileSync(join(d, 'p.fs'), join(d, 's.fs'));
  const sfs0 = new FileStorage(join(d, 's.fs'));
  await commitSome(sfs0, 1);
  await sfs0.close();
  const pfs2 = new FileStorage(join(d, 'p.fs'));
  await commitSome(pfs2, 3); // later tids than the secondary's extra one
  const m = memoryLogger();
  const p = new Primary(pfs2, { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  const before = readFileSync(join(d, 's.fs'));
  const sm = memoryLogger();
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: p.port }, { logger: sm.log, native: 'always', reconnectDelay: 3600 });
  await until(() => sec.refused !== null, () => sec.changed(), 'refusal');
  assert.equal(sec.refused!.code, 'diverged');
  assert.match(sec.refused!.reason, /does not exist on the primary/);
  assert.equal((sec.replicationStatus() as Record<string, unknown>).state, 'refused');
  assert.ok(sm.has(/REFUSED by the primary \(diverged\)/));
  await sec.close();
  await p.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), before);
});

test('ahead (native): a secondary ahead of the primary is refused with code ahead (zrs §6.13)', async () => {
  const d = tempDir();
  const p = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log });
  await p.listening;
  await commitSome(p, 1);
  const sfs = new FileStorage(join(d, 's.fs'));
  await commitSome(sfs, 2);
  const sec = new Secondary(sfs, { host: '127.0.0.1', port: p.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 3600 });
  await until(() => sec.refused !== null, () => sec.changed(), 'refusal');
  assert.equal(sec.refused!.code, 'ahead');
  await sec.close();
  await p.close();
});

test('zrs §14 #45: closing the primary flushes committed transactions to connected secondaries', async () => {
  const { primary, secondary, pfs, pm } = await pair({ native: 'never' });
  await pm.waitFor(/: start 0000000000000000/);
  await commitSome(primary, 30);
  const last = pfs.lastTransaction();
  await primary.close();
  await until(() => secondary.lastTransaction() === last, () => secondary.changed(), 'flush');
  await secondary.close();
});

test('promotion: a promoted secondary accepts commits and another secondary re-points to it without a full copy', async () => {
  const { primary, secondary } = await pair({ native: 'always' });
  const d = tempDir();
  const m3 = memoryLogger();
  const third = new Secondary(new FileStorage(join(d, 't.fs')), { host: '127.0.0.1', port: primary.port }, { logger: m3.log, native: 'always', reconnectDelay: 0.05 });
  await commitSome(primary, 5);
  await caughtUp(primary, secondary);
  await caughtUp(primary, third);
  await primary.close();
  await secondary.promote({ host: '127.0.0.1', port: 0 });
  assert.equal(secondary.isReadOnly(), false);
  const newPort = secondary.primary!.port;
  third.setReplicationAddress({ host: '127.0.0.1', port: newPort });
  const pm = secondary.primary!.log;
  void pm;
  const tids = await commitSome(secondary, 3);
  await until(() => third.lastTransaction() === tids.at(-1), () => third.changed(), 'third follows the new primary');
  const st = secondary.replicationStatus() as { secondaries: Array<Record<string, unknown>>; promoted: boolean };
  assert.equal(st.promoted, true);
  assert.notEqual(st.secondaries[0]!['start-tid'], '0000000000000000');
  await third.close();
  await secondary.close();
});
