// FileStorage behaviour on real files: pack vectors, recovery, crash at every byte, lock,
// read-only, commit protocol, corruption, byte-identical re-creation of the vectors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POSKeyError, StorageError, TransactionMetaData, copyTransactionsFrom, fromHex, toHex, type Tid } from '@zeo-ts/storage';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { CorruptedError, FileReader, FileStorage, FileStorageError, LockError, tidToUndoId } from '../src/index.ts';

const V = (f: string) => vectorsDir('filestorage', f);
const skip = vectorsSkip('filestorage');
const tmp = () => mkdtempSync(join(tmpdir(), 'fst-'));
function copyVector(name: string, withIndex = false): string {
  const p = join(tmp(), 'Data.fs');
  copyFileSync(V(name), p);
  if (withIndex) copyFileSync(V(name + '.index'), p + '.index');
  return p;
}

test('filestorage §16 #47 #35 #46: packing Data.fs at 00:05:30 with GC yields Data-packed.fs byte for byte', { skip }, async () => {
  const p = copyVector('Data.fs', true);
  const fs = new FileStorage(p);
  await fs.pack(1704067530.0, true);
  assert.equal(fs.getSize(), 630);
  assert.equal(toHex((await fs.load(0n)).tid), '03f58e0500000000');
  await fs.close();
  assert.deepEqual(readFileSync(p), readFileSync(V('Data-packed.fs')));
  assert.deepEqual(readFileSync(p + '.index'), readFileSync(V('Data-packed.fs.index')));
  assert.deepEqual(readFileSync(p + '.old'), readFileSync(V('Data.fs')));
  assert.equal(existsSync(p + '.pack'), false);
});

test('filestorage §16 #45: a redundant pack changes nothing (no .pack, no .old)', { skip }, async () => {
  const p = copyVector('Data-packed.fs');
  const fs = new FileStorage(p);
  await fs.pack(1704067530.0, true);
  await fs.close();
  assert.deepEqual(readFileSync(p), readFileSync(V('Data-packed.fs')));
  assert.equal(existsSync(p + '.old'), false);
  assert.equal(existsSync(p + '.pack'), false);
});

test('filestorage §16 #44: GC pack of Dangling.fs fails with a KeyError for oid 1 and leaves the file unchanged', { skip }, async () => {
  const p = copyVector('Dangling.fs');
  const fs = new FileStorage(p);
  await assert.rejects(fs.pack(1704067200 + 3 * 60, true), (e: unknown) => e instanceof POSKeyError && e.oid === 1n);
  // commits still work afterwards and the file was not touched by the failed pack
  assert.equal(fs.packing, false);
  await fs.close();
  assert.deepEqual(readFileSync(p), readFileSync(V('Dangling.fs')));
  assert.equal(existsSync(p + '.pack'), false);
  assert.equal(existsSync(p + '.old'), false);
});

test('filestorage §16 #26 #29: a final checkpoint transaction is cut off read-write (saved in .tr0), ignored read-only', { skip }, async () => {
  const ro = copyVector('Data-checkpoint.fs');
  const r = new FileStorage(ro, { readOnly: true });
  assert.equal(r.getSize(), 2471);
  assert.equal(toHex(r.lastTransaction()), '03f58e0600000000');
  await r.close();
  assert.deepEqual(readFileSync(ro), readFileSync(V('Data-checkpoint.fs')));
  assert.equal(existsSync(ro + '.tr0'), false);
  assert.equal(existsSync(ro + '.index'), false);

  const p = copyVector('Data-checkpoint.fs');
  const fs = new FileStorage(p);
  assert.equal(fs.getSize(), 2471);
  // we report the last valid transaction; the discarded tid only bounds new tids (spec §8.2)
  assert.equal(toHex(fs.lastTransaction()), '03f58e0600000000');
  const txn = new TransactionMetaData();
  await fs.tpc_begin(txn);
  await fs.store(5n, 0n, Buffer.from('x'), txn);
  await fs.tpc_vote(txn);
  const tid = await fs.tpc_finish(txn);
  assert.ok(tid > 0x03f58e0700000000n);
  await fs.close();
  const whole = readFileSync(V('Data-checkpoint.fs'));
  assert.deepEqual(readFileSync(p + '.tr0'), whole.subarray(2471));
  assert.equal(readFileSync(p + '.tr0').length, 198);
  assert.deepEqual(readFileSync(p).subarray(0, 2471), readFileSync(V('Data.fs')));
});

test('filestorage §16 #27 #28: a transaction running past the end is cut (.tr0); a tail < 23 bytes is cut without copy', { skip }, async () => {
  const p = copyVector('Data-truncated.fs');
  const fs = new FileStorage(p);
  assert.equal(fs.getSize(), 2374);
  await fs.close();
  assert.equal(readFileSync(p).length, 2374);
  assert.deepEqual(readFileSync(p + '.tr0'), readFileSync(V('Data-truncated.fs')).subarray(2374));
  // a second damaged open uses the next free number
  appendFileSync(p, readFileSync(V('Data.fs')).subarray(2374, 2400));
  const again = new FileStorage(p);
  await again.close();
  assert.equal(readFileSync(p + '.tr1').length, 26);

  const q = copyVector('Data.fs');
  appendFileSync(q, Buffer.alloc(10, 1));
  const s = new FileStorage(q);
  assert.equal(s.getSize(), 2471);
  await s.close();
  assert.deepEqual(readFileSync(q), readFileSync(V('Data.fs')));
  assert.equal(existsSync(q + '.tr0'), false);
});

async function commitOne(fs: FileStorage, writes: Array<[bigint, Buffer]>, description = ''): Promise<Tid> {
  const txn = new TransactionMetaData('tester', description);
  await fs.tpc_begin(txn);
  for (const [oid, data] of writes) {
    let serial = 0n;
    try {
      serial = await fs.getTid(oid);
    } catch {
      serial = 0n;
    }
    await fs.store(oid, serial, data, txn);
  }
  await fs.tpc_vote(txn);
  return fs.tpc_finish(txn);
}

test('filestorage §8 crash at any byte of the last transaction reopens to exactly the committed transactions', async () => {
  const d = tmp();
  const p = join(d, 'Data.fs');
  const fs = new FileStorage(p);
  await commitOne(fs, [[0n, Buffer.from('root-0')], [1n, Buffer.from('one-0')]], 'first');
  await commitOne(fs, [[1n, Buffer.from('one-1')]], 'second');
  const before = fs.getSize();
  await commitOne(fs, [[0n, Buffer.from('root-1')], [2n, Buffer.from('two-0')]], 'third');
  const full = readFileSync(p);
  await fs.close();
  // every prefix from the start of the last transaction up to one byte short of its end, and
  // the complete transaction still marked 'c' (voted, never finished)
  const cases: Buffer[] = [];
  for (let cut = before; cut < full.length; cut++) cases.push(full.subarray(0, cut));
  const voted = Buffer.from(full);
  voted[before + 16] = 'c'.charCodeAt(0);
  cases.push(voted);
  assert.ok(cases.length > 100 && cases.length < 1000);
  for (const [i, bytes] of cases.entries()) {
    const cd = tmp();
    const cp = join(cd, 'Data.fs');
    writeFileSync(cp, bytes);
    const s = new FileStorage(cp);
    try {
      assert.equal(s.getSize(), before, `case ${i}`);
      assert.equal((await s.load(1n)).data.toString(), 'one-1');
      assert.equal((await s.load(0n)).data.toString(), 'root-0');
      await assert.rejects(s.load(2n), POSKeyError);
      assert.equal(s.len(), 2);
    } finally {
      await s.close();
    }
    assert.deepEqual(readFileSync(cp), full.subarray(0, before), `case ${i}: file truncated to the committed end`);
  }
});

test('filestorage §16 #36: the lock file holds " <pid>\\n"; a second writer fails naming the holder; readers may share', async () => {
  const d = tmp();
  const p = join(d, 'Data.fs');
  const fs = new FileStorage(p);
  assert.equal(readFileSync(p + '.lock', 'latin1'), ` ${process.pid}\n`);
  assert.throws(() => new FileStorage(p), (e: unknown) => e instanceof LockError && e.message.includes(`pid ${process.pid}`) && e.message.includes(p + '.lock'));
  await commitOne(fs, [[0n, Buffer.from('r')]]);
  const ro = new FileStorage(p, { readOnly: true });
  assert.equal((await ro.load(0n)).data.toString(), 'r');
  await assert.rejects(ro.new_oid(), /ReadOnly/);
  await ro.close();
  await fs.close();
  const again = new FileStorage(p);
  await again.close();
  assert.ok(existsSync(p + '.lock'));
});

test('filestorage §16 #1 #13 #14 #10: new file is FS30; vote writes a c record, finish flips one byte; abort truncates', async () => {
  const d = tmp();
  const p = join(d, 'Data.fs');
  const fs = new FileStorage(p);
  assert.deepEqual(readFileSync(p), Buffer.from('FS30'));
  const txn = new TransactionMetaData('u', 'd');
  await fs.tpc_begin(txn);
  await fs.store(0n, 0n, Buffer.from('root'), txn);
  await fs.tpc_vote(txn);
  const voted = readFileSync(p);
  assert.equal(voted[4 + 16], 'c'.charCodeAt(0));
  assert.equal(fs.getSize(), 4);
  const tid = await fs.tpc_finish(txn);
  const done = readFileSync(p);
  assert.equal(done.length, voted.length);
  const diff = [...done.keys()].filter((i) => done[i] !== voted[i]);
  assert.deepEqual(diff, [20]);
  assert.equal(done[20], 0x20);
  assert.equal(fs.lastTransaction(), tid);
  // abort after vote restores the previous size
  const t2 = new TransactionMetaData();
  await fs.tpc_begin(t2);
  await fs.store(0n, tid, Buffer.from('root2'), t2);
  await fs.tpc_vote(t2);
  assert.ok(readFileSync(p).length > done.length);
  await fs.tpc_abort(t2);
  assert.deepEqual(readFileSync(p), done);
  // metadata too long: refused before anything is written
  await assert.rejects(fs.tpc_begin(new TransactionMetaData(Buffer.alloc(70000))), (e: unknown) => e instanceof FileStorageError && /user name too long/.test(e.message));
  await assert.rejects(fs.tpc_begin(new TransactionMetaData('', Buffer.alloc(70000))), /description too long/);
  await assert.rejects(fs.tpc_begin(new TransactionMetaData('', '', Buffer.alloc(70000))), /too much extension data/);
  assert.deepEqual(readFileSync(p), done);
  await fs.close();
});

test('filestorage §16 #19: tids stay increasing when the clock is behind the last tid', async () => {
  const d = tmp();
  const p = join(d, 'Data.fs');
  let now = 1704067200; // 2024-01-01
  const fs = new FileStorage(p, { now: () => now });
  const t1 = await commitOne(fs, [[0n, Buffer.from('a')]]);
  now -= 3600;
  const t2 = await commitOne(fs, [[0n, Buffer.from('b')]]);
  assert.ok(t2 > t1);
  await fs.close();
  const again = new FileStorage(p, { now: () => now });
  const t3 = await commitOne(again, [[0n, Buffer.from('c')]]);
  assert.ok(t3 > t2);
  await again.close();
});

test('filestorage §16 #30: damage inside the file makes open fail naming the file and position', { skip }, async () => {
  const p = copyVector('Data.fs');
  const b = readFileSync(p);
  b.writeUInt32BE(0x12345, 2127 + 4); // T4 redundant length
  writeFileSync(p, b);
  assert.throws(() => new FileStorage(p), (e: unknown) => e instanceof CorruptedError && e.message.includes(p) && /redundant transaction length/.test(e.message));
  const q = copyVector('Data.fs');
  const c = readFileSync(q);
  c.writeUInt32BE(99, 1951 + 4); // tloc of a T4 record
  writeFileSync(q, c);
  assert.throws(() => new FileStorage(q), (e: unknown) => e instanceof CorruptedError && /at 1927/.test(e.message));
  // read-only open of a damaged file fails too, and nothing is written
  assert.throws(() => new FileStorage(q, { readOnly: true }), CorruptedError);
  assert.deepEqual(readFileSync(q), c);
});

test('corrupt data found at read time gives a clear error, not wrong data', { skip }, async () => {
  const p = copyVector('Data.fs', true);
  const b = readFileSync(p);
  // T4's backpointer for oid 1 (at 1969) now points at oid 2's record in T1 (431 -> 431 is oid 2)
  b.writeUInt32BE(431, 1969 + 4);
  writeFileSync(p, b);
  const fs = new FileStorage(p, { readOnly: true });
  await assert.rejects(fs.loadBefore(1n, 0x03f58e0500000000n), (e: unknown) => e instanceof CorruptedError && /at 431/.test(e.message) && e.message.includes(p));
  await fs.close();
  // a backpointer that points forward
  const q = copyVector('Data.fs', true);
  const c = readFileSync(q);
  c.writeUInt32BE(2300, 2069 + 4);
  writeFileSync(q, c);
  const s = new FileStorage(q, { readOnly: true });
  await assert.rejects(s.load(0n).then(() => s.loadSerial(0n, 0x03f58e0400000000n)), /backpointer 2300 does not point before the record/);
  await s.close();
});

test('filestorage §16 #34: a stale or damaged Data.fs.index is ignored and rebuilt with the same results', { skip }, async () => {
  for (const bad of [Buffer.from('garbage'), readFileSync(V('Data-packed.fs.index'))]) {
    const p = copyVector('Data.fs');
    writeFileSync(p + '.index', bad);
    const fs = new FileStorage(p);
    assert.equal(fs.len(), 5);
    assert.equal(toHex((await fs.load(0n)).tid), '03f58e0500000000');
    await fs.close();
    assert.deepEqual(readFileSync(p + '.index'), readFileSync(V('Data.fs.index')));
  }
  // an index whose position is beyond a truncated file
  const p = copyVector('Data-truncated.fs');
  copyFileSync(V('Data.fs.index'), p + '.index');
  const fs = new FileStorage(p);
  assert.equal(fs.getSize(), 2374);
  assert.equal(fs.len(), 5);
  await fs.close();
});

test('filestorage §16 #49: copyTransactionsFrom the vectors into empty storages reproduces them byte for byte', { skip }, async () => {
  for (const name of ['Data.fs', 'Data-packed.fs', 'Dangling.fs']) {
    const src = new FileStorage(V(name), { readOnly: true });
    const p = join(tmp(), 'Data.fs');
    const dst = new FileStorage(p);
    await copyTransactionsFrom(src, dst);
    await dst.close();
    await src.close();
    assert.deepEqual(readFileSync(p), readFileSync(V(name)), name);
  }
});

test('filestorage §16 #9 #13 #16 #38 #40: replaying the scripted history with store/undo/deleteObject gives Data.fs byte for byte', { skip }, async () => {
  const vec = FileReader.open(V('Data.fs'));
  const txns = [...vec.transactions(4, vec.size())].map((h) => ({ h, meta: vec.readTxnMeta(h), recs: [...vec.records(h)] }));
  vec.close();
  const p = join(tmp(), 'Data.fs');
  const fs = new FileStorage(p);
  for (const [i, t] of txns.entries()) {
    const txn = new TransactionMetaData(t.meta.user, t.meta.description, t.meta.extension);
    await fs.tpc_begin(txn, t.h.tid);
    if (i === 4) {
      assert.deepEqual(await fs.undo(tidToUndoId(txns[3]!.h.tid), txn), [1n, 2n, 0n, 4n]);
    } else if (i === 6) {
      await fs.deleteObject(3n, fromHex('03f58e0203333333'), txn);
    } else {
      for (const r of t.recs) {
        let serial = 0n;
        try {
          serial = await fs.getTid(r.oid);
        } catch {
          serial = 0n;
        }
        await fs.store(r.oid, serial, r.data!, txn);
      }
    }
    await fs.tpc_vote(txn);
    await fs.tpc_finish(txn);
  }
  await fs.close();
  assert.deepEqual(readFileSync(p), readFileSync(V('Data.fs')));
  assert.deepEqual(readFileSync(p + '.index'), readFileSync(V('Data.fs.index')));
});

test('store of empty data and reads on a closed storage fail clearly', async () => {
  const fs = new FileStorage(join(tmp(), 'Data.fs'));
  const txn = new TransactionMetaData();
  await fs.tpc_begin(txn);
  await assert.rejects(fs.store(1n, 0n, Buffer.alloc(0), txn), StorageError);
  await fs.tpc_abort(txn);
  await fs.close();
  await assert.rejects(fs.load(0n), /closed/);
});

test('read-only stop: the open scan ends before the first tid >= stop (spec §8.1 time travel)', { skip }, async () => {
  const fs = new FileStorage(V('Data.fs'), { readOnly: true, stop: 0x03f58e0300000000n });
  assert.equal(fs.getSize(), 1210);
  assert.equal(toHex(fs.lastTransaction()), '03f58e0203333333');
  assert.equal(toHex((await fs.load(1n)).tid), '03f58e0203333333');
  await fs.close();
});

test('undoInfo matches extension keys like Python (extension dict merged into the entry)', { skip }, async () => {
  const fs = new FileStorage(V('Data.fs'), { readOnly: true });
  const hits = await fs.undoInfo(0, 100, { app: 'vectors' });
  assert.deepEqual(hits.map((e) => toHex(e.tid)), ['03f58e0102222222']);
  assert.deepEqual((await fs.undoInfo(0, 100, { user_name: 'bob' })).length, 2);
  await fs.close();
});

test('a corrupt data length is reported, not allocated', { skip }, async () => {
  const p = copyVector('Data.fs', true);
  const b = readFileSync(p);
  b.writeUInt32BE(0x100000, 2174 + 34); // root's current record: plen high word -> 2^52-ish
  writeFileSync(p, b);
  const fs = new FileStorage(p, { readOnly: true });
  await assert.rejects(fs.load(0n), (e: unknown) => e instanceof CorruptedError && /at 2174/.test(e.message));
  await fs.close();
});

test('filestorage §10.2: undo of a transaction that stored one oid twice succeeds (as Python: records of the same undo are not consulted)', async () => {
  const fs = new FileStorage(join(tmp(), 'Data.fs'));
  const t1 = await commitOne(fs, [[0n, Buffer.from('A')]]);
  const txn = new TransactionMetaData();
  await fs.tpc_begin(txn);
  await fs.store(0n, t1, Buffer.from('B'), txn);
  await fs.store(0n, t1, Buffer.from('B'), txn);
  await fs.tpc_vote(txn);
  const t2 = await fs.tpc_finish(txn);
  const u = new TransactionMetaData();
  await fs.tpc_begin(u);
  assert.deepEqual(await fs.undo(tidToUndoId(t2), u), [0n]);
  await fs.tpc_vote(u);
  const t3 = await fs.tpc_finish(u);
  assert.equal((await fs.load(0n)).data.toString(), 'A');
  const recs = [...fs.iterateSync(t3, t3)][0]!.records;
  assert.deepEqual(recs.map((r) => [r.oid, r.data?.toString(), r.data_txn]), [
    [0n, 'A', t1],
    [0n, 'A', t1],
  ]);
  await fs.close();
});

test('quota: a store beyond the quota raises FileStorageQuotaError and nothing is written', async () => {
  const p = join(tmp(), 'Data.fs');
  const fs = new FileStorage(p, { quota: 300 });
  await commitOne(fs, [[0n, Buffer.alloc(100, 1)]]);
  const size = readFileSync(p).length;
  const txn = new TransactionMetaData();
  await fs.tpc_begin(txn);
  await fs.store(1n, 0n, Buffer.alloc(100, 2), txn);
  await assert.rejects(fs.store(2n, 0n, Buffer.alloc(100, 3), txn), (e: unknown) => (e as Error).name === 'FileStorageQuotaError');
  await fs.tpc_abort(txn);
  assert.equal(readFileSync(p).length, size);
  await fs.close();
});

test('record_iternext walks every oid in order (sorted oids cached until the index changes)', async () => {
  const fs = new FileStorage(join(tmp(), 'Data.fs'));
  await commitOne(fs, [[5n, Buffer.from('e')], [1n, Buffer.from('a')], [3n, Buffer.from('c')]]);
  const seen: bigint[] = [];
  let next: bigint | null | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await fs.record_iternext(next);
    seen.push(r.oid);
    if (r.next === null) break;
    next = r.next;
  }
  assert.deepEqual(seen, [1n, 3n, 5n]);
  await commitOne(fs, [[2n, Buffer.from('b')]]);
  assert.equal((await fs.record_iternext(2n)).oid, 2n);
  await fs.close();
});

test('filestorage §16 #25: iterator(start, stop) gives the same transactions whichever way it seeks', async () => {
  const fs = new FileStorage(join(tmp(), 'Data.fs'));
  const tids: Tid[] = [];
  for (let i = 0; i < 40; i++) tids.push(await commitOne(fs, [[BigInt(i % 5), Buffer.from(`v${i}`)]]));
  const list = (start?: Tid, stop?: Tid) => [...fs.iterateSync(start, stop)].map((t) => t.tid);
  assert.deepEqual(list(), tids);
  const want = (start: Tid, stop?: Tid) => tids.filter((t) => t >= start && (stop === undefined || t <= stop));
  for (const i of [0, 1, 10, 19, 20, 21, 30, 38, 39]) {
    assert.deepEqual(list(tids[i]), want(tids[i]!), `start at #${i}`);
    assert.deepEqual(list(tids[i]! - 1n), want(tids[i]! - 1n), `start just before #${i}`);
    assert.deepEqual(list(tids[i]! + 1n), want(tids[i]! + 1n), `start just after #${i}`);
    assert.deepEqual(list(tids[i], tids[Math.min(39, i + 3)]), want(tids[i]!, tids[Math.min(39, i + 3)]));
  }
  assert.deepEqual(list(tids[39]! + 1n), []);
  assert.deepEqual(list(0n), tids);
  await fs.close();
});
