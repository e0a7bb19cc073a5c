// The transport-independent server core against MappingStorage, several sessions at once.
// Checklist numbers are those of zeo5-protocol §17.2 (S-n) and operations §9.5 (#n).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MappingStorage } from '@zeo-ts/storage';
import { StorageServer, PyFloat } from '../src/index.ts';
import { PyListValue } from '../src/values.ts';
import { CallError, TestClient, oid, rec, Z64, MAXTID, plus1 } from './helpers.ts';

function setup(opts: ConstructorParameters<typeof StorageServer>[1] = {}, names = ['1']) {
  const storages: Record<string, MappingStorage> = {};
  for (const n of names) storages[n] = new MappingStorage({ name: `MS-${n}` });
  const server = new StorageServer(storages, opts);
  return { server, storages };
}

async function registered(server: StorageServer, name = '1', ro: unknown = false): Promise<TestClient> {
  const c = new TestClient(server, `peer-${Math.random().toString(36).slice(2, 8)}`);
  await c.rpc('register', name, ro);
  return c;
}

async function rejects(p: Promise<unknown>, pythonClass: string): Promise<CallError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CallError, `expected CallError, got ${e}`);
    assert.equal(e.pythonClass, pythonClass, e.message);
    return e;
  }
  assert.fail(`expected ${pythonClass}`);
}

test('register, lastTransaction, get_info, new_oids (S-13, S-15, S-31)', async () => {
  const { server } = setup();
  const a = new TestClient(server);
  assert.deepEqual(await a.rpc('register', '1', 0), Z64);
  assert.deepEqual(await a.rpc('lastTransaction'), Z64);
  const info = (await a.rpc('get_info')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(info), ['length', 'size', 'name', 'supportsUndo', 'supports_record_iternext', 'interfaces']);
  assert.equal(info.name, 'MS-1');
  assert.ok((info.interfaces as unknown[]).some((x) => JSON.stringify(x) === JSON.stringify(['ZODB.interfaces', 'IStorage'])));
  const oids = (await a.rpc('new_oids')) as PyListValue;
  assert.equal(oids.items.length, 100);
  const more = (await a.rpc('new_oids', 3)) as PyListValue;
  assert.equal(more.items.length, 3);
  assert.ok((more.items[0] as Buffer).compare(oids.items[99] as Buffer) > 0);
  assert.equal(((await a.rpc('new_oids', 0)) as PyListValue).items.length, 1);
  assert.equal(((await a.rpc('new_oids', 1000)) as PyListValue).items.length, 100);
  await rejects(a.rpc('new_oid'), 'builtins.AttributeError');
  await server.close();
});

test('register errors: unknown storage, arity, methods before register, second register (S-4, S-12)', async () => {
  const { server } = setup();
  const a = new TestClient(server);
  const e = await rejects(a.rpc('register', 'nope', false), 'builtins.ValueError');
  assert.deepEqual((e.err as unknown as { args: unknown[] }).args, ['unknown storage: nope']);
  await rejects(a.rpc('register', '1', false, 'creds'), 'builtins.TypeError');
  // a method other than register before registration closes the connection without reply
  const b = new TestClient(server);
  void b.rpc('loadBefore', Z64, MAXTID).catch(() => undefined);
  await b.whenClosed();
  assert.equal(b.out.length, 0);
  // heartbeats are ignored (S-5)
  a.session.handle(-1, 0, '.reply', null as unknown as unknown[]);
  await a.rpc('register', '1', false);
  void a.rpc('register', '1', false).catch(() => undefined);
  await a.whenClosed();
  await server.close();
});

test('commit: invisible until finish, info before the tid, invalidation to others only (S-14, S-16, S-23)', async () => {
  const { server } = setup({}, ['1', '2']);
  const a = await registered(server);
  const b = await registered(server);
  const other = await registered(server, '2');
  await rejects(a.rpcWithId([Z64, MAXTID], 'loadBefore', [Z64, MAXTID]), 'ZODB.POSException.POSKeyError');
  a.oneway('tpc_begin', 7, Buffer.from('/ bob'), Buffer.from('first'), {}, null, ' ');
  a.oneway('storea', Z64, Z64, Buffer.from('ROOT1'), 7);
  const voted = (await a.rpc('vote', 7)) as PyListValue;
  assert.deepEqual(voted.items, []);
  // voted but not finished: still invisible
  await rejects(b.rpc('loadBefore', Z64, MAXTID), 'ZODB.POSException.POSKeyError');
  const before = a.out.length;
  const tid = (await a.rpc('tpc_finish', 7)) as Buffer;
  const tail = a.out.slice(before);
  assert.equal(tail.length, 2);
  assert.deepEqual(tail[0], { kind: 'call', name: 'info', args: [{ length: 1, size: server.storages.get('1')!.storage.getSize() }] });
  assert.equal(tail[1]!.kind, 'reply');
  assert.equal(a.invalidations().length, 0, 'the committer never gets its own invalidation');
  assert.deepEqual(b.invalidations(), [{ tid, oids: [Z64] }]);
  assert.equal(other.invalidations().length, 0, 'no invalidation for another storage (S-40)');
  const r = (await b.rpcWithId([Z64, MAXTID], 'loadBefore', [Z64, MAXTID])) as unknown[];
  assert.deepEqual(r, [Buffer.from('ROOT1'), tid, null]);
  assert.equal(await b.rpc('loadBefore', Z64, tid), null);
  const tid2 = await a.commit([[Z64, tid, Buffer.from('ROOT2')]]);
  assert.ok(tid2.compare(tid) > 0);
  assert.deepEqual(await b.rpc('loadBefore', Z64, tid2), [Buffer.from('ROOT1'), tid, tid2]);
  assert.deepEqual(await b.rpc('loadSerial', Z64, tid), Buffer.from('ROOT1'));
  assert.deepEqual(await b.rpc('getTid', Z64), tid2);
  assert.deepEqual(await b.rpc('lastTransaction'), tid2);
  const e = await rejects(b.rpc('getTid', oid(0x4242)), 'ZODB.POSException.POSKeyError');
  assert.deepEqual((e.err as unknown as { pythonArgs(): unknown[] }).pythonArgs(), [oid(0x4242)]);
  const h = (await b.rpc('history', Z64, 5)) as PyListValue;
  assert.equal(h.items.length, 2);
  const h0 = h.items[0] as Record<string, unknown>;
  assert.deepEqual(h0.tid, tid2);
  assert.ok(h0.time instanceof PyFloat);
  await server.close();
});

test('ccr: stale store gives conflict maps, lock released, re-store and re-vote commit (S-19)', async () => {
  const { server } = setup({ client_conflict_resolution: true });
  const a = await registered(server);
  const b = await registered(server);
  const t1 = await a.commit([[Z64, Z64, Buffer.from('v0')]]);
  const t2 = await a.commit([[Z64, t1, Buffer.from('v1')]]);
  b.oneway('tpc_begin', 5, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', Z64, t1, Buffer.from('v5'), 5);
  const v = (await b.rpc('vote', 5)) as PyListValue;
  assert.deepEqual(v.items, [{ oid: Z64, serials: [t2, t1], data: Buffer.from('v5') }]);
  assert.equal(server.storages.get('1')!.lock.locked, null, 'lock released after conflicts');
  // meanwhile a can still commit (the lock is free)
  const t3 = await a.commit([[oid(1), Z64, Buffer.from('x')]]);
  // b resolves against t2, but t2 is still current for oid 0: second vote succeeds
  b.oneway('storea', Z64, t2, Buffer.from('v6'), 5);
  assert.deepEqual(((await b.rpc('vote', 5)) as PyListValue).items, []);
  const t4 = (await b.rpc('tpc_finish', 5)) as Buffer;
  assert.ok(t4.compare(t3) > 0);
  assert.deepEqual(await a.rpc('loadBefore', Z64, MAXTID), [Buffer.from('v6'), t4, null]);
  assert.equal((server.ruok()['1'] as Record<string, unknown>).conflicts, 0);
  await server.close();
});

test('no ccr: ConflictError at vote, transaction cleared, tpc_abort replies nil (S-20, S-26)', async () => {
  const { server } = setup({ client_conflict_resolution: false });
  const a = await registered(server);
  const b = await registered(server);
  const t1 = await a.commit([[Z64, Z64, Buffer.from('v0')]]);
  const t2 = await a.commit([[Z64, t1, Buffer.from('v1')]]);
  b.oneway('tpc_begin', 5, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', Z64, t1, Buffer.from('v5'), 5);
  const e = await rejects(b.rpc('vote', 5), 'ZODB.POSException.ConflictError');
  const ce = e.err as unknown as { oid: bigint; serials: [bigint, bigint] };
  assert.equal(ce.oid, 0n);
  assert.deepEqual(ce.serials, [t2.readBigUInt64BE(0), t1.readBigUInt64BE(0)]);
  assert.equal(await b.rpc('tpc_abort', 5), null);
  assert.equal(await b.rpc('tpc_finish', 99), null);
  await rejects(b.rpc('vote', 5), 'ZODB.POSException.StorageTransactionError');
  const st = server.ruok()['1']!;
  assert.equal(st.conflicts, 1);
  assert.equal(st.active_txns, 0);
  await server.close();
});

test('read conflict via checkCurrentSerialInTransaction, in ccr mode too (S-21); deleteObject checks (S-22)', async () => {
  const { server } = setup({ client_conflict_resolution: true });
  const a = await registered(server);
  const b = await registered(server);
  const t1 = await a.commit([[Z64, Z64, Buffer.from('r')], [oid(1), Z64, Buffer.from('o1')], [oid(3), Z64, Buffer.from('o3')]]);
  const t2 = await a.commit([[oid(1), t1, Buffer.from('o1b')]]);
  b.oneway('tpc_begin', 9, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', oid(3), t1, Buffer.from('o3b'), 9);
  b.oneway('checkCurrentSerialInTransaction', oid(1), t1, 9);
  const e = await rejects(b.rpc('vote', 9), 'ZODB.POSException.ReadConflictError');
  assert.deepEqual((e.err as unknown as { serials: unknown }).serials, [t2.readBigUInt64BE(0), t1.readBigUInt64BE(0)]);
  assert.equal(await b.rpc('tpc_abort', 9), null);
  // deleteObject of an unknown oid → POSKeyError; stale serial → ConflictError
  b.oneway('tpc_begin', 10, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('deleteObject', oid(77), Z64, 10);
  await rejects(b.rpc('vote', 10), 'ZODB.POSException.POSKeyError');
  b.oneway('tpc_begin', 11, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('deleteObject', oid(1), t1, 11);
  await rejects(b.rpc('vote', 11), 'ZODB.POSException.ConflictError');
  await server.close();
});

test('commit lock: a second vote waits, gets the invalidation first, then its reply (S-17, S-18, S-10)', async () => {
  const { server } = setup();
  const a = await registered(server);
  const b = await registered(server);
  const t0 = await a.commit([[Z64, Z64, Buffer.from('r')]]);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  a.oneway('storea', oid(1), Z64, Buffer.from('a'), 1);
  await a.rpc('vote', 1);
  b.oneway('tpc_begin', 2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', oid(2), Z64, Buffer.from('b'), 2);
  let bVoted = false;
  const bVote = b.rpc('vote', 2).then((v) => {
    bVoted = true;
    return v;
  });
  // b keeps being served while its vote is queued
  assert.deepEqual(await b.rpc('loadBefore', Z64, MAXTID), [Buffer.from('r'), t0, null]);
  assert.equal(bVoted, false);
  assert.equal(server.ruok()['1']!.waiting, 1);
  assert.ok(server.ruok()['1']!.lock_time instanceof PyFloat);
  const ta = (await a.rpc('tpc_finish', 1)) as Buffer;
  await bVote;
  const iInv = b.out.findIndex((o) => o.kind === 'call' && o.name === 'invalidateTransaction');
  const iVote = b.out.findIndex((o) => o.kind === 'reply' && o.msgid === 3);
  assert.ok(iInv >= 0 && iInv < iVote, 'invalidation before the queued vote reply');
  assert.deepEqual(b.invalidations().at(-1)!.tid, ta);
  const tb = (await b.rpc('tpc_finish', 2)) as Buffer;
  assert.ok(tb.compare(ta) > 0);
  assert.equal(server.ruok()['1']!.waiting, 0);
  assert.equal(server.ruok()['1']!.lock_time, null);
  await server.close();
});

test('disconnect while holding the lock aborts and lets the queued voter proceed (S-27, #83)', async () => {
  const { server } = setup();
  const a = await registered(server);
  const b = await registered(server);
  await a.commit([[Z64, Z64, Buffer.from('r')]]);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  a.oneway('storea', oid(1), Z64, Buffer.from('a'), 1);
  await a.rpc('vote', 1);
  b.oneway('tpc_begin', 2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', oid(1), Z64, Buffer.from('b'), 2);
  const bVote = b.rpc('vote', 2);
  const abortsBefore = server.ruok()['1']!.aborts as number;
  await a.session.connectionLost();
  assert.deepEqual(((await bVote) as PyListValue).items, []);
  const tb = (await b.rpc('tpc_finish', 2)) as Buffer;
  assert.deepEqual(await b.rpc('loadBefore', oid(1), MAXTID), [Buffer.from('b'), tb, null]);
  const st = server.ruok()['1']!;
  assert.equal(st.aborts, abortsBefore + 1);
  assert.equal(st.active_txns, 0);
  assert.equal(st.connections, 1);
  await server.close();
});

test('transaction timeout closes the holder, aborts and releases the lock (S-28)', async () => {
  const { server } = setup({ transaction_timeout: 0.05 });
  const a = await registered(server);
  const b = await registered(server);
  assert.equal(server.ruok()['1']!['timeout-thread-is-alive'], true);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  a.oneway('storea', Z64, Z64, Buffer.from('a'), 1);
  await a.rpc('vote', 1);
  b.oneway('tpc_begin', 2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', Z64, Z64, Buffer.from('b'), 2);
  const v = await b.rpc('vote', 2); // waits until a is timed out
  await a.whenClosed();
  assert.equal(a.closedReason, 'transaction timeout');
  assert.deepEqual((v as PyListValue).items, []);
  const tb = (await b.rpc('tpc_finish', 2)) as Buffer;
  assert.deepEqual(await b.rpc('loadBefore', Z64, MAXTID), [Buffer.from('b'), tb, null]);
  await server.close();
});

test('read-only connection and read-only server (S-11, S-35)', async () => {
  const { server } = setup();
  const a = await registered(server, '1', true);
  await rejects(a.rpc('new_oids'), 'ZODB.POSException.ReadOnlyError');
  await rejects(a.rpc('vote', 1), 'ZODB.POSException.ReadOnlyError');
  await rejects(a.rpc('tpc_abort', 1), 'ZODB.POSException.ReadOnlyError');
  assert.equal(await a.rpc('pack', Date.now() / 1000, 1), null);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  await a.whenClosed();
  await server.close();

  const ro = setup({ read_only: true });
  const c = new TestClient(ro.server);
  const e = await rejects(c.rpc('register', '1', false), 'ZODB.POSException.ReadOnlyError');
  assert.deepEqual((e.err as unknown as { pythonArgs(): unknown[] }).pythonArgs(), []);
  assert.deepEqual(await c.rpc('register', '1', true), Z64);
  await ro.server.close();
});

test('getInvalidations and the bounded invalidation queue (S-29, S-30)', async () => {
  const { server } = setup({ invalidation_queue_size: 2 });
  const a = await registered(server);
  // empty storage: the startup sentinel (last tid, no oids) answers a client at z64
  assert.deepEqual(await a.rpc('getInvalidations', Z64), [Z64, new PyListValue([])]);
  const t1 = await a.commit([[Z64, Z64, Buffer.from('r')]]);
  const t2 = await a.commit([[oid(1), Z64, Buffer.from('1')]]);
  const t3 = await a.commit([[oid(2), Z64, Buffer.from('2')], [oid(1), t2, Buffer.from('1b')]]);
  // queue holds t3, t2 (own commits included)
  const r = (await a.rpc('getInvalidations', t2)) as [Buffer, PyListValue];
  assert.deepEqual(r[0], t3);
  assert.deepEqual(new Set(r[1].items.map((x) => (x as Buffer).toString('hex'))), new Set([oid(2).toString('hex'), oid(1).toString('hex')]));
  // the oldest queued tid (t2) is later than t1: the queue cannot answer (§11.3 step 1)
  assert.equal(await a.rpc('getInvalidations', t1), null);
  assert.deepEqual(await a.rpc('getInvalidations', t3), [t3, new PyListValue([])]);
  assert.equal(await a.rpc('getInvalidations', Z64), null, 'older than the queue: nil');
  await server.close();

  // invalidation-age: iterate the storage instead
  const aged = setup({ invalidation_queue_size: 1, invalidation_age: 3600 });
  const c = await registered(aged.server);
  const u1 = await c.commit([[Z64, Z64, Buffer.from('r')]]);
  await c.commit([[oid(1), Z64, Buffer.from('1')]]);
  const u3 = await c.commit([[oid(2), Z64, Buffer.from('2')]]);
  const g = (await c.rpc('getInvalidations', u1)) as [Buffer, PyListValue];
  assert.deepEqual(g[0], u3);
  assert.equal(g[1].items.length, 2);
  await aged.server.close();
});

test('transaction check errors and tpc_finish without vote (S-26)', async () => {
  const { server } = setup();
  const a = await registered(server);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  await rejects(a.rpc('vote', 2), 'ZODB.POSException.StorageTransactionError');
  await rejects(a.rpc('tpc_finish', 1), 'builtins.AssertionError');
  assert.equal(await a.rpc('tpc_abort', 2), null);
  assert.equal(await a.rpc('tpc_abort', 1), null);
  // a storea for an unknown transaction (one-way) closes the connection
  a.oneway('storea', Z64, Z64, Buffer.from('x'), 3);
  await a.whenClosed();
  await server.close();
});

test('iterators, undo, pack broadcast (S-36, S-37)', async () => {
  const { server } = setup();
  const a = await registered(server);
  const b = await registered(server);
  const t1 = await a.commit([[Z64, Z64, rec(1)]]);
  const t2 = await a.commit([[Z64, t1, rec(2)]]);
  const iid = (await a.rpc('iterator_start', null, null)) as number;
  assert.equal(iid, 0);
  const n1 = (await a.rpc('iterator_next', iid)) as unknown[];
  assert.deepEqual(n1[0], t1);
  assert.equal(n1[1], ' ');
  await rejects(a.rpc('iterator_record_start', iid, t2), 'builtins.Exception');
  const rid = (await a.rpc('iterator_record_start', iid, t1)) as number;
  assert.equal(rid, 1);
  assert.deepEqual(await a.rpc('iterator_record_next', rid), [Z64, t1, rec(1), null]);
  assert.equal(await a.rpc('iterator_record_next', rid), null);
  await rejects(a.rpc('iterator_record_next', rid), 'builtins.KeyError');
  assert.deepEqual(((await a.rpc('iterator_next', iid)) as unknown[])[0], t2);
  assert.equal(await a.rpc('iterator_next', iid), null);
  await rejects(a.rpc('iterator_next', iid), 'builtins.KeyError');
  a.oneway('iterator_gc', new PyListValue([5, 6]));

  const log = (await a.rpc('undoLog', 0, -20)) as PyListValue;
  assert.equal(log.items.length, 2);
  const first = log.items[0] as Record<string, unknown>;
  assert.deepEqual(Object.keys(first).slice(0, 3), ['id', 'time', 'user_name']);
  a.oneway('tpc_begin', 50, Buffer.alloc(0), Buffer.from('undo'), {}, null, ' ');
  a.oneway('undoa', first.id, 50);
  const v = (await a.rpc('vote', 50)) as PyListValue;
  assert.deepEqual(v.items, [Z64]);
  const t3 = (await a.rpc('tpc_finish', 50)) as Buffer;
  assert.deepEqual(b.invalidations().at(-1), { tid: t3, oids: [Z64] });
  assert.deepEqual(((await b.rpc('loadBefore', Z64, MAXTID)) as unknown[])[0], rec(1));
  const spec = (await a.rpc('undoInfo', 0, -20, { description: Buffer.from('undo') })) as PyListValue;
  assert.equal(spec.items.length, 1);

  const bInfos = b.out.filter((o) => o.kind === 'call' && o.name === 'info').length;
  const before = a.out.length;
  assert.equal(await a.rpc('pack', Date.now() / 1000 + 10, 1), null);
  assert.equal(a.out[before]!.kind, 'call', 'info before the pack reply');
  assert.equal(b.out.filter((o) => o.kind === 'call' && o.name === 'info').length, bInfos + 1);
  const status = (await a.rpc('server_status')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(status), [
    'connections', 'loads', 'stores', 'commits', 'aborts', 'active_txns', 'lock_time', 'conflicts',
    'conflicts_resolved', 'start', 'waiting', 'timeout-thread-is-alive', 'last-transaction',
  ]);
  assert.equal(status['last-transaction'], t3.toString('hex'));
  assert.equal(status['timeout-thread-is-alive'], 'stub');
  assert.equal(await a.rpc('ping'), null);
  a.oneway('set_client_label', 'lbl');
  assert.match(a.session.label, /^lbl /);
  await rejects(a.rpc('record_iternext', null), 'builtins.AttributeError');
  await rejects(a.rpc('sendBlob', Z64, t1), 'ZODB.POSException.StorageError');
  await server.close();
});

test('counters: register, load, store, commit (#82); ruok JSON (#80, #81)', async () => {
  const { server } = setup();
  const before = server.ruok()['1']!;
  assert.equal(before['last-transaction'], '0000000000000000');
  const a = await registered(server);
  await rejects(a.rpc('loadBefore', Z64, plus1(Z64)), 'ZODB.POSException.POSKeyError');
  await a.commit([[Z64, Z64, Buffer.from('r')]]);
  const s = server.ruok()['1']!;
  assert.equal(s.connections, 1);
  assert.equal(s.loads, 1);
  assert.equal(s.stores, 1);
  assert.equal(s.commits, 1);
  assert.equal(s.active_txns, 0);
  assert.equal(s.waiting, 0);
  assert.equal(s.lock_time, null);
  assert.match(String(s['last-transaction']), /^[0-9a-f]{16}$/);
  assert.notEqual(s['last-transaction'], '0000000000000000');
  const json = JSON.parse(server.ruokJson());
  assert.equal(Object.keys(json['1']).length, 13);
  assert.match(server.monitorReport(), /^ZEO monitor server version .*\n.*\n\nStorage: 1\nServer started: .*\nClients: 1\nClients verifying: 0\nActive transactions: 0\nCommits: 1\n/);
  await server.close();
});

test('counter workload: 6 clients x 15 increments with ccr retries lose no update (S-17, S-19)', async () => {
  const { server } = setup({ client_conflict_resolution: true });
  const clients = await Promise.all(Array.from({ length: 6 }, () => registered(server)));
  await clients[0]!.commit([[Z64, Z64, Buffer.from('0')]]);
  let conflicts = 0;
  let txnid = 100;
  async function increment(c: TestClient): Promise<void> {
    const [data, serial] = (await c.rpc('loadBefore', Z64, MAXTID)) as [Buffer, Buffer, null];
    const id = txnid++;
    c.oneway('tpc_begin', id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
    c.oneway('storea', Z64, serial, Buffer.from(String(Number(data.toString()) + 1)), id);
    for (let round = 0; round < 500; round++) {
      const v = (await c.rpc('vote', id)) as PyListValue;
      if (v.items.length === 0 || Buffer.isBuffer(v.items[0])) {
        await c.rpc('tpc_finish', id);
        return;
      }
      conflicts++;
      // client-side resolution of a counter: committed + (mine - old)
      const m = v.items[0] as { serials: [Buffer, Buffer]; data: Buffer };
      const committed = Number(((await c.rpc('loadSerial', Z64, m.serials[0])) as Buffer).toString());
      const old = Number(((await c.rpc('loadSerial', Z64, m.serials[1])) as Buffer).toString());
      c.oneway('storea', Z64, m.serials[0], Buffer.from(String(committed + Number(m.data.toString()) - old)), id);
    }
    throw new Error(`too many conflict rounds (${conflicts} conflicts so far)`);
  }
  await Promise.all(clients.map(async (c) => {
    for (let i = 0; i < 15; i++) await increment(c);
  }));
  const [data] = (await clients[0]!.rpc('loadBefore', Z64, MAXTID)) as [Buffer];
  assert.equal(Number(data.toString()), 90);
  assert.ok(conflicts > 0, 'the workload produced conflicts');
  // invalidations arrived in strictly increasing tid order at every client (S-24)
  for (const c of clients) {
    const tids = c.invalidations().map((x) => x.tid.readBigUInt64BE(0));
    for (let i = 1; i < tids.length; i++) assert.ok(tids[i]! > tids[i - 1]!);
  }
  await server.close();
});

test('loads racing commits: no current-revision reply after an invalidation of a newer revision (S-25, §11.2)', async () => {
  const { server } = setup();
  const writer = await registered(server);
  const reader = await registered(server);
  let serial = await writer.commit([[Z64, Z64, rec(0)]]);
  const loads: Promise<unknown>[] = [];
  for (let i = 1; i <= 30; i++) {
    // several loads in flight while the commit runs
    for (let k = 0; k < 3; k++) loads.push(reader.rpc('loadBefore', Z64, MAXTID).catch(() => undefined));
    serial = await writer.commit([[Z64, serial, rec(i)]]);
  }
  await Promise.all(loads);
  await reader.rpc('ping');
  let newestInvalidated = 0n;
  let checked = 0;
  for (const o of reader.out) {
    if (o.kind === 'call' && o.name === 'invalidateTransaction') {
      newestInvalidated = (o.args[0] as Buffer).readBigUInt64BE(0);
    } else if (o.kind === 'reply' && Array.isArray(o.value) && o.value.length === 3 && o.value[2] === null) {
      const start = (o.value[1] as Buffer).readBigUInt64BE(0);
      assert.ok(start >= newestInvalidated, `a reply reporting ${start} as current came after the invalidation of ${newestInvalidated}`);
      checked++;
    }
  }
  assert.equal(checked, 90);
  await server.close();
});

test('monitor report shows the commit-lock line only while the lock is held (#88)', async () => {
  const { server } = setup();
  const a = await registered(server);
  assert.doesNotMatch(server.monitorReport(), /Commit lock held for/);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  a.oneway('storea', Z64, Z64, rec(1), 1);
  await a.rpc('vote', 1);
  assert.match(server.monitorReport(), /Active transactions: 1\nCommit lock held for: \d+\nCommits: 0\n/);
  await a.rpc('tpc_finish', 1);
  assert.doesNotMatch(server.monitorReport(), /Commit lock held for/);
  await server.close();
});

test('undoInfo filters by spec values, a ZopeUndo Prefix by prefix (S-36)', async () => {
  const { server } = setup();
  const a = await registered(server);
  let serial: Buffer = Z64;
  for (const d of ['/site/a', '/site/b', '/other/c']) {
    a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.from(d), {}, null, ' ');
    a.oneway('storea', Z64, serial, rec(1), 1);
    await a.rpc('vote', 1);
    serial = (await a.rpc('tpc_finish', 1)) as Buffer;
  }
  const descs = (v: unknown) => (v as PyListValue).items.map((x) => ((x as Record<string, Buffer>).description).toString());
  assert.deepEqual(descs(await a.rpc('undoInfo', 0, -20, { description: Buffer.from('/other/c') })), ['/other/c']);
  // what the Z5 codec hands over for a pickled ZopeUndo.Prefix('/site')
  const prefix = { value: { className: 'ZopeUndo.Prefix.Prefix', state: new Map([['value', [5, '/site']]]) } };
  assert.deepEqual(descs(await a.rpc('undoInfo', 0, -20, { description: prefix })), ['/site/b', '/site/a']);
  assert.equal(descs(await a.rpc('undoInfo', 0, -20, null)).length, 3);
  await server.close();
});

test('restore with an explicit tid and status; a tid not after the last one fails the vote (§10.12)', async () => {
  const { server } = setup();
  const a = await registered(server);
  const b = await registered(server);
  const t1 = oid(0x03f58e0000000000n);
  a.oneway('tpc_begin', 1, Buffer.from('u'), Buffer.from('copied'), {}, t1, 'p');
  a.oneway('restorea', Z64, t1, rec(7), null, 1);
  a.oneway('restorea', oid(1), t1, null, null, 1);
  assert.deepEqual(((await a.rpc('vote', 1)) as PyListValue).items, []);
  assert.deepEqual(await a.rpc('tpc_finish', 1), t1);
  assert.deepEqual(b.invalidations(), [{ tid: t1, oids: [Z64, oid(1)] }]);
  assert.deepEqual(await b.rpc('loadBefore', Z64, MAXTID), [rec(7), t1, null]);
  const it = (await a.rpc('iterator_start', null, null)) as number;
  assert.equal(((await a.rpc('iterator_next', it)) as unknown[])[1], 'p');
  a.oneway('tpc_begin', 2, Buffer.alloc(0), Buffer.alloc(0), {}, t1, ' ');
  a.oneway('restorea', Z64, t1, rec(8), null, 2);
  await rejects(a.rpc('vote', 2), 'ZODB.POSException.StorageTransactionError');
  await server.close();
});

test('disconnect during tpc_finish: the commit completes, a queued voter still gets its invalidation first (S-18, S-27)', async () => {
  const { server } = setup();
  const a = await registered(server);
  const b = await registered(server);
  a.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  a.oneway('storea', Z64, Z64, rec(1), 1);
  await a.rpc('vote', 1);
  b.oneway('tpc_begin', 2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  b.oneway('storea', oid(1), Z64, rec(2), 2);
  const bVote = b.rpc('vote', 2);
  void a.rpc('tpc_finish', 1).catch(() => undefined);
  const lost = a.session.connectionLost();
  await bVote;
  await lost;
  const iInv = b.out.findIndex((o) => o.kind === 'call' && o.name === 'invalidateTransaction');
  const iVote = b.out.findIndex((o) => o.kind === 'reply' && o.msgid === 2);
  assert.ok(iInv >= 0 && iInv < iVote, 'invalidation of a\'s commit before b\'s vote reply');
  const st = server.ruok()['1']!;
  assert.equal(st.commits, 1);
  assert.equal(st.aborts, 0);
  await b.rpc('tpc_finish', 2);
  assert.deepEqual(((await b.rpc('loadBefore', Z64, MAXTID)) as unknown[])[0], rec(1));
  await server.close();
});

test('invalidateCache closes every connection of that storage only (§11.1)', async () => {
  const { server } = setup({}, ['1', '2']);
  const a = await registered(server, '1');
  const b = await registered(server, '2');
  await a.commit([[Z64, Z64, rec(1)]]);
  await server.invalidateCache('1');
  await a.whenClosed();
  assert.equal(b.closedReason, null);
  assert.equal(await b.rpc('ping'), null);
  await server.close();
});
