// Commits continue while a pack runs; nothing committed during the pack is lost
// (filestorage §10.3 D: the tail is copied under the commit lock) — §16 #41 #42 #46.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TransactionMetaData, type Tid } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import pino from 'pino';
import { FileStorage } from '../src/index.ts';

test('filestorage §10.3: commits made while pack runs survive it, and pack output reads back identically after reopen', async () => {
  const p = join(mkdtempSync(join(tmpdir(), 'fspc-')), 'Data.fs');
  const fs = new FileStorage(p, { logger: pino({ level: 'silent' }) });
  const serial = new Map<bigint, Tid>();
  const expect = new Map<bigint, string>();
  async function commit(writes: Array<[bigint, Buffer]>): Promise<Tid> {
    const txn = new TransactionMetaData('t', 'c');
    await fs.tpc_begin(txn);
    for (const [oid, data] of writes) await fs.store(oid, serial.get(oid) ?? 0n, data, txn);
    await fs.tpc_vote(txn);
    const tid = await fs.tpc_finish(txn);
    for (const [oid, data] of writes) {
      serial.set(oid, tid);
      expect.set(oid, data.toString('hex'));
    }
    return tid;
  }
  const leaves = Array.from({ length: 200 }, (_, i) => BigInt(i + 1));
  await commit([[0n, makeRecord({ refs: leaves })]]);
  // > 1000 small transactions so that the copy phase yields to the event loop several times
  for (let r = 0; r < 6; r++) for (const o of leaves) await commit([[o, makeRecord({ value: `r${r} o${o}` })]]);
  const packing = fs.pack(Date.now() / 1000 + 1, true);
  let settled = false;
  packing.then(
    () => (settled = true),
    () => (settled = true),
  );
  let duringPack = 0;
  for (let i = 0; i < 5000 && !settled; i++) {
    const o = leaves[i % leaves.length]!;
    if (fs.packing) duringPack++;
    // let the pack's own steps run between commits, as network events would
    await new Promise<void>((resolve) => setImmediate(resolve));
    await commit([[o, makeRecord({ value: `during ${i}` })]]);
  }
  await packing;
  assert.ok(duringPack > 0, 'some commits ran while the pack was running');
  await commit([[1n, makeRecord({ value: 'after' })]]);
  for (const [oid, hex] of expect) assert.equal((await fs.load(oid)).data.toString('hex'), hex);
  await fs.close();
  // a full rescan (no index) sees the same state
  const { unlinkSync } = await import('node:fs');
  unlinkSync(p + '.index');
  const again = new FileStorage(p, { readOnly: true });
  for (const [oid, hex] of expect) assert.equal((await again.load(oid)).data.toString('hex'), hex);
  assert.equal(again.len(), 201);
  await again.close();
});

test('filestorage §9.9: an iterator started before a pack finishes the file it started on', async () => {
  const p = join(mkdtempSync(join(tmpdir(), 'fspi-')), 'Data.fs');
  const fs = new FileStorage(p, { logger: pino({ level: 'silent' }) });
  let serial = 0n;
  const tids: Tid[] = [];
  for (let i = 0; i < 30; i++) {
    const txn = new TransactionMetaData('', `t${i}`);
    await fs.tpc_begin(txn);
    await fs.store(0n, serial, makeRecord({ value: `v${i}` }), txn);
    await fs.tpc_vote(txn);
    serial = await fs.tpc_finish(txn);
    tids.push(serial);
  }
  const it = fs.iterateSync();
  const seen: Tid[] = [it.next().value!.tid];
  await fs.pack(Date.now() / 1000 + 1, true);
  for (const t of it) seen.push(t.tid);
  assert.deepEqual(seen, tids);
  // a new iterator sees the packed file: one 'p' transaction
  const after = [...fs.iterateSync()];
  assert.deepEqual(after.map((t) => [t.tid, t.status]), [[tids[29], 'p']]);
  await fs.close();
});

test('closing the storage while a pack runs abandons the pack and leaves the file intact', async () => {
  const p = join(mkdtempSync(join(tmpdir(), 'fspx-')), 'Data.fs');
  const fs = new FileStorage(p, { logger: pino({ level: 'silent' }) });
  let serial = 0n;
  for (let i = 0; i < 3000; i++) {
    const txn = new TransactionMetaData();
    await fs.tpc_begin(txn);
    await fs.store(0n, serial, makeRecord({ value: `v${i}` }), txn);
    await fs.tpc_vote(txn);
    serial = await fs.tpc_finish(txn);
  }
  const { readFileSync, existsSync } = await import('node:fs');
  const before = readFileSync(p);
  const packing = fs.pack(Date.now() / 1000 + 1, true);
  await fs.close();
  await assert.rejects(packing, /closed while packing/);
  assert.deepEqual(readFileSync(p), before);
  assert.equal(existsSync(p + '.pack'), false);
});
