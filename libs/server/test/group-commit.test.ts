// Group commit through the server (FileStorage, which the server switches to group commit): the
// commit lock passes to the next voter while a tpc_finish waits for its fdatasync, but replies,
// invalidations and loads only ever show durable transactions, in tid order.
// zeo5-protocol §10.8, §11.1, §11.2 (S-17, S-18, S-23, S-25); filestorage §9.7.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FileStorage } from '@zeo-ts/filestorage';
import { SyncGate, track as settle } from '@zeo-ts/storage/testing';
import { StorageServer } from '../src/index.ts';
import { PyListValue } from '../src/values.ts';
import { CallError, TestClient, oid, rec, Z64, MAXTID } from './helpers.ts';


async function setup() {
  const gate = new SyncGate();
  const fs = await FileStorage.open(join(mkdtempSync(join(tmpdir(), 'srv-group-')), 'Data.fs'), { fdatasync: gate.hook, logger: pino({ level: 'silent' }) });
  const server = new StorageServer({ '1': fs });
  const clients: TestClient[] = [];
  for (let i = 0; i < 3; i++) {
    const c = new TestClient(server, `peer-${i}`);
    await c.rpc('register', '1', false);
    clients.push(c);
  }
  return { gate, fs, server, clients };
}

function begin(c: TestClient, id: number, stores: Array<[Buffer, Buffer, Buffer]>): void {
  c.oneway('tpc_begin', id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
  for (const [o, serial, data] of stores) c.oneway('storea', o, serial, data, id);
}


/** index in c's output of the invalidation of tid, or of the reply to msgid */
const invAt = (c: TestClient, tid: Buffer) => c.out.findIndex((o) => o.kind === 'call' && o.name === 'invalidateTransaction' && (o.args[0] as Buffer).equals(tid));
const replyAt = (c: TestClient, tid: Buffer) => c.out.findIndex((o) => o.kind === 'reply' && Buffer.isBuffer(o.value) && o.value.equals(tid));

test('group commit: the next vote proceeds during a finish; replies and invalidations wait for durability, in tid order (S-17, S-18, S-23, S-25)', async () => {
  const { gate, fs, server, clients } = await setup();
  const [a, b, c] = clients as [TestClient, TestClient, TestClient];
  assert.equal(fs.pipelinedFinish, true, 'the server turned group commit on');
  const base = a.commit([[Z64, Z64, rec(0)]]);
  await gate.release();
  const t0 = await base;

  // a finishes T1 (oid 0); its fdatasync is held
  begin(a, 1, [[Z64, t0, rec(1)]]);
  assert.deepEqual(((await a.rpc('vote', 1)) as PyListValue).items, []);
  const fa = settle(a.rpc('tpc_finish', 1) as Promise<Buffer>);
  await gate.whenWaiting();
  // b votes meanwhile: the lock was passed on. A stale store of oid 0 is a conflict against T1.
  begin(b, 2, [[Z64, t0, rec(7)]]);
  const conflicts = (await b.rpc('vote', 2)) as PyListValue;
  assert.equal(conflicts.items.length, 1);
  const cm = conflicts.items[0] as { serials: [Buffer, Buffer] };
  const t1 = cm.serials[0];
  assert.ok(t1.compare(t0) > 0);
  // b resolves against T1's revision (loadSerial finds it) and votes again
  assert.deepEqual(await b.rpc('loadSerial', Z64, t1), rec(1));
  b.oneway('storea', Z64, t1, rec(2), 2);
  b.oneway('storea', oid(1), Z64, rec(5), 2);
  assert.deepEqual(((await b.rpc('vote', 2)) as PyListValue).items, []);
  const fb = settle(b.rpc('tpc_finish', 2) as Promise<Buffer>);
  // nothing is reported, invalidated or loadable before the fdatasync
  assert.deepEqual(await c.rpc('loadBefore', Z64, MAXTID), [rec(0), t0, null]);
  assert.deepEqual(await c.rpc('lastTransaction'), t0);
  assert.equal(fa.done || fb.done, false);
  assert.equal(c.invalidations().length, 1, 'only the base commit');

  await gate.release(); // T1 durable (T2 was finished after this fdatasync began)
  await fa.settled;
  assert.deepEqual(fa.value, t1);
  assert.equal(fb.done, false);
  assert.deepEqual(await c.rpc('loadBefore', Z64, MAXTID), [rec(1), t1, null]);
  await gate.release(); // T2 durable
  await fb.settled;
  const t2 = fb.value!;
  assert.ok(t2.compare(t1) > 0);
  await c.rpc('ping');
  // c: invalidation T1 before T2; b: invalidation T1 before its own finish reply; a: T2 after its reply T1
  assert.deepEqual(
    c.invalidations().map((i) => i.tid),
    [t0, t1, t2],
  );
  assert.ok(invAt(b, t1) >= 0 && invAt(b, t1) < replyAt(b, t2), 'b hears of T1 before its own T2 reply');
  assert.ok(replyAt(a, t1) >= 0 && replyAt(a, t1) < invAt(a, t2), 'a gets its T1 reply before the T2 invalidation');
  assert.deepEqual(await c.rpc('loadBefore', Z64, MAXTID), [rec(2), t2, null]);
  assert.deepEqual(await c.rpc('loadBefore', oid(1), MAXTID), [rec(5), t2, null]);
  const closing = server.close();
  await closing;
});

test('group commit: a failed fdatasync fails the finishes it covered and the storage refuses later commits (filestorage §9.7)', async () => {
  const { gate, server, clients } = await setup();
  const [a, b, c] = clients as [TestClient, TestClient, TestClient];
  const base = a.commit([[Z64, Z64, rec(0)]]);
  await gate.release();
  const t0 = await base;
  begin(a, 1, [[Z64, t0, rec(1)]]);
  await a.rpc('vote', 1);
  const fa = settle(a.rpc('tpc_finish', 1));
  await gate.whenWaiting();
  begin(b, 2, [[oid(1), Z64, rec(3)]]);
  await b.rpc('vote', 2);
  const fb = settle(b.rpc('tpc_finish', 2));
  await gate.fail();
  await Promise.all([fa.settled, fb.settled]);
  for (const f of [fa, fb]) {
    assert.equal(f.value, undefined, 'no tpc_finish reply for undurable data');
    assert.ok(f.error instanceof CallError, String(f.error));
  }
  assert.equal(c.invalidations().length, 1, 'no invalidation of an undurable transaction');
  begin(c, 3, [[oid(2), Z64, rec(4)]]);
  await assert.rejects(c.rpc('vote', 3));
  await server.close();
});

test('group commit: server close waits for the finishes under way; they are durable and replied to first (S-27, filestorage §9.7)', async () => {
  const { gate, fs, server, clients } = await setup();
  const [a, b] = clients as [TestClient, TestClient];
  const base = a.commit([[Z64, Z64, rec(0)]]);
  await gate.release();
  const t0 = await base;
  begin(a, 1, [[Z64, t0, rec(1)]]);
  await a.rpc('vote', 1);
  const fa = settle(a.rpc('tpc_finish', 1) as Promise<Buffer>);
  await gate.whenWaiting();
  begin(b, 2, [[oid(1), Z64, rec(2)]]);
  await b.rpc('vote', 2);
  const fb = settle(b.rpc('tpc_finish', 2) as Promise<Buffer>);
  const closing = settle(server.close());
  await gate.release();
  await gate.release();
  await Promise.all([fa.settled, fb.settled, closing.settled]);
  assert.equal(closing.error, undefined);
  assert.ok(Buffer.isBuffer(fa.value) && Buffer.isBuffer(fb.value), 'both finishes replied before the connections closed');
  const again = await FileStorage.open(fs.path, { readOnly: true });
  assert.equal(again.lastTransaction(), fb.value!.readBigUInt64BE(0));
  assert.deepEqual((await again.load(1n)).data, rec(2));
  await again.close();
});
