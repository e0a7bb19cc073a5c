// FileStorage with a blob directory (IBlobStorage): layout, marker, tmp/, storeBlob moving the
// file at store time, abort removing it, read-only committed files, loadBlob, undo, the Python
// vectors (filestorage §13, §16 #55, #56).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BLOB_RECORD,
  POSKeyError,
  StorageError,
  TransactionMetaData,
  copyTransactionsFrom,
  isBlobRecord,
  isBlobStorage,
  fromHex,
  tidRepr,
  z64,
  type Oid,
  type Tid,
} from '@zeo-ts/storage';
import { ROOT_RECORD, commit, makeRecord, rejectsWith, tidAt, timeAt, undoId, undoTxn, vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { FileStorage } from '../src/index.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'fsblob-'));
const skip = vectorsSkip('filestorage');

/** a file with `content` in the storage's temporary directory */
function tmpBlob(s: FileStorage, content: string): string {
  const p = join(s.temporaryDirectory(), `up-${Math.random().toString(16).slice(2)}.tmp`);
  writeFileSync(p, content);
  return p;
}

async function commitBlob(s: FileStorage, oid: Oid, serial: Tid, content: string, o: { tid?: Tid; description?: string } = {}): Promise<Tid> {
  const txn = new TransactionMetaData('', o.description ?? '');
  await s.tpc_begin(txn, o.tid);
  try {
    await s.storeBlob(oid, serial, BLOB_RECORD, tmpBlob(s, content), txn);
    await s.tpc_vote(txn);
    return await s.tpc_finish(txn);
  } catch (e) {
    await s.tpc_abort(txn);
    throw e;
  }
}

/** every file below dir (relative paths, sorted), for comparing blob directories */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(p).isDirectory()) walk(p, r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out;
}

function writable(p: string): boolean {
  return (statSync(p).mode & 0o222) !== 0;
}

test('filestorage §13 §16 #55: a new blob directory is bushy with a .layout marker and tmp/', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    assert.equal(s.supportsBlobs(), true);
    assert.equal(isBlobStorage(s), true);
    assert.equal(readFileSync(join(d, 'blobs', '.layout'), 'latin1'), 'bushy');
    assert.equal(s.temporaryDirectory(), join(d, 'blobs', 'tmp'));
    assert.ok(statSync(s.temporaryDirectory()).isDirectory());
    await commit(s, [{ oid: z64, serial: z64, data: ROOT_RECORD }]);
    const t = await commitBlob(s, 1n, z64, 'hello blob');
    const f = await s.loadBlob(1n, t);
    assert.equal(f, join(d, 'blobs', '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', '0x01', `${tidRepr(t)}.blob`));
    assert.equal(readFileSync(f, 'utf8'), 'hello blob');
    assert.equal(writable(f), false, 'committed blob files are read-only');
    assert.deepEqual((await s.load(1n)).data, BLOB_RECORD);
  } finally {
    await s.close();
  }
});

test('filestorage §13: automatic layout selection: marker, else bushy for empty/dot-only, else lawn; a mismatched marker fails', async () => {
  const d = tmp();
  // an old unmarked directory with content: lawn
  mkdirSync(join(d, 'old'));
  mkdirSync(join(d, 'old', '0x01'));
  const s1 = new FileStorage(join(d, 'a.fs'), { blobDir: join(d, 'old') });
  assert.equal(s1.blobs!.layoutName, 'lawn');
  await commit(s1, [{ oid: z64, serial: z64, data: ROOT_RECORD }]);
  const t = await commitBlob(s1, 0x1234n, z64, 'lawn file');
  assert.equal(await s1.loadBlob(0x1234n, t), join(d, 'old', '0x1234', `${tidRepr(t)}.blob`));
  await s1.close();
  assert.equal(readFileSync(join(d, 'old', '.layout'), 'latin1'), 'lawn');
  // dot-files only: bushy
  mkdirSync(join(d, 'dots'));
  writeFileSync(join(d, 'dots', '.hidden'), '');
  const s2 = new FileStorage(join(d, 'b.fs'), { blobDir: join(d, 'dots') });
  assert.equal(s2.blobs!.layoutName, 'bushy');
  await s2.close();
  // configured layout against a marker: error naming the directory
  assert.throws(
    () => new FileStorage(join(d, 'c.fs'), { blobDir: join(d, 'dots'), blobLayout: 'lawn' }),
    (e: unknown) => e instanceof StorageError && /dots/.test(e.message) && /bushy/.test(e.message),
  );
  // and the lock was released: the data file opens again
  await new FileStorage(join(d, 'c.fs')).close();
});

test('filestorage §13: storeBlob moves the file at store time; tpc_abort (before or after vote) removes it', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    const t0 = await commit(s, [{ oid: z64, serial: z64, data: ROOT_RECORD }]);
    for (const vote of [false, true]) {
      const txn = new TransactionMetaData();
      await s.tpc_begin(txn);
      const src = tmpBlob(s, 'aborted');
      await s.storeBlob(1n, z64, BLOB_RECORD, src, txn);
      assert.equal(existsSync(src), false, 'the file was moved at store time');
      const moved = readdirSync(s.blobs!.oidPath(1n));
      assert.equal(moved.length, 1);
      if (vote) await s.tpc_vote(txn);
      await s.tpc_abort(txn);
      assert.deepEqual(readdirSync(s.blobs!.oidPath(1n)), [], `abort ${vote ? 'after' : 'before'} vote removes the file`);
      await rejectsWith(s.load(1n), POSKeyError, 'aborted blob object');
    }
    assert.equal(s.lastTransaction(), t0);
    // a conflicting storeBlob leaves the caller's file where it was and adds no record
    const t1 = await commitBlob(s, 1n, z64, 'one');
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn);
    const src = tmpBlob(s, 'stale');
    await rejectsWith(s.storeBlob(1n, z64, BLOB_RECORD, src, txn), Error, 'stale serial');
    assert.equal(existsSync(src), true);
    await s.tpc_abort(txn);
    assert.deepEqual(s.blobs!.tidsOf(1n), [t1]);
    // a missing upload file: error naming it, no record left behind
    const txn2 = new TransactionMetaData();
    await s.tpc_begin(txn2);
    const missing = join(s.temporaryDirectory(), 'nope.tmp');
    await assert.rejects(s.storeBlob(1n, t1, BLOB_RECORD, missing, txn2), (e: unknown) => e instanceof StorageError && e.message.includes('nope.tmp'));
    await s.tpc_vote(txn2);
    await s.tpc_finish(txn2);
    assert.equal((await s.load(1n)).tid, t1, 'the failed storeBlob left no record');
  } finally {
    await s.close();
  }
});

test('filestorage §13: loadBlob of a missing revision is POSKeyError; committed blobs survive reopen; close mid-transaction removes its files', async () => {
  const d = tmp();
  const opts = { blobDir: join(d, 'blobs') };
  let s = new FileStorage(join(d, 'Data.fs'), opts);
  await commit(s, [{ oid: z64, serial: z64, data: ROOT_RECORD }]);
  const t1 = await commitBlob(s, 1n, z64, 'v1');
  const t2 = await commitBlob(s, 1n, t1, 'v2');
  await rejectsWith(s.loadBlob(1n, t2 + 1n), POSKeyError, 'no such revision');
  await rejectsWith(s.loadBlob(2n, t2), POSKeyError, 'no such object');
  const txn = new TransactionMetaData();
  await s.tpc_begin(txn);
  await s.storeBlob(1n, t2, BLOB_RECORD, tmpBlob(s, 'never'), txn);
  await s.close();
  assert.deepEqual(s.blobs!.tidsOf(1n), [t1, t2]);
  s = new FileStorage(join(d, 'Data.fs'), opts);
  try {
    assert.equal(readFileSync(await s.loadBlob(1n, t1), 'utf8'), 'v1');
    assert.equal(readFileSync(await s.loadBlob(1n, (await s.load(1n)).tid), 'utf8'), 'v2');
  } finally {
    await s.close();
  }
});

test('filestorage §13: without a blob directory supportsBlobs() is false and the blob methods throw StorageError', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'));
  try {
    assert.equal(s.supportsBlobs(), false);
    assert.equal(isBlobStorage(s), false);
    assert.throws(() => s.temporaryDirectory(), StorageError);
    await rejectsWith(s.loadBlob(1n, 1n), StorageError, 'loadBlob');
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn);
    await rejectsWith(s.storeBlob(1n, z64, BLOB_RECORD, join(d, 'x'), txn), StorageError, 'storeBlob');
    await rejectsWith(s.restoreBlob(1n, 1n, BLOB_RECORD, join(d, 'x'), null, txn), StorageError, 'restoreBlob');
    await s.tpc_abort(txn);
  } finally {
    await s.close();
  }
});

test('filestorage §13: restoreBlob names the file after the record serial; a null file restores only the record', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    const tid = 0x03f58e0100000000n;
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn, tid);
    await s.restore(z64, tid, ROOT_RECORD, null, txn);
    await s.restoreBlob(1n, tid, BLOB_RECORD, tmpBlob(s, 'restored'), null, txn);
    await s.restoreBlob(2n, tid, BLOB_RECORD, null, null, txn);
    await s.tpc_vote(txn);
    await s.tpc_finish(txn);
    assert.equal(readFileSync(join(d, 'blobs', '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', '0x01', '0x03f58e0100000000.blob'), 'utf8'), 'restored');
    await rejectsWith(s.loadBlob(2n, tid), POSKeyError, 'restored without a file');
  } finally {
    await s.close();
  }
});

test('filestorage §13 §16 #56: undo of a blob change copies the earlier revision to the undo tid; undo of a creation writes none; abort removes the copy', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    const t0 = await commit(s, [{ oid: z64, serial: z64, data: ROOT_RECORD }]);
    const t1 = await commitBlob(s, 1n, z64, 'hello blob');
    const t2 = await commitBlob(s, 1n, t1, 'second');
    // aborted undo leaves nothing
    const txn = new TransactionMetaData();
    await s.tpc_begin(txn);
    await s.undo(undoId(t2), txn);
    assert.equal(s.blobs!.tidsOf(1n).length, 3);
    await s.tpc_abort(txn);
    assert.deepEqual(s.blobs!.tidsOf(1n), [t1, t2]);
    const [t3] = await undoTxn(s, undoId(t2));
    assert.equal((await s.load(1n)).tid, t3);
    assert.equal(readFileSync(await s.loadBlob(1n, t3), 'utf8'), 'hello blob');
    assert.equal(writable(await s.loadBlob(1n, t3)), false);
    // undo the undo: back to 'second'
    const [t4] = await undoTxn(s, undoId(t3));
    assert.equal(readFileSync(await s.loadBlob(1n, t4), 'utf8'), 'second');
    // undo of a creation: no file for its tid
    const t5 = await commitBlob(s, 2n, z64, 'created');
    const [t6] = await undoTxn(s, undoId(t5));
    await rejectsWith(s.load(2n), POSKeyError, 'undone creation');
    await rejectsWith(s.loadBlob(2n, t6), POSKeyError, 'no file for an undone creation');
    assert.deepEqual(s.blobs!.tidsOf(2n), [t5]);
    void t0;
  } finally {
    await s.close();
  }
});

/** a writable copy of the Python blob vector (Data.fs + blobs/) */
function copyBlobVector(): string {
  const d = tmp();
  cpSync(vectorsDir('filestorage', 'blob'), d, { recursive: true });
  const fix = (p: string) => {
    chmodSync(p, 0o755);
    for (const n of readdirSync(p)) {
      const q = join(p, n);
      if (statSync(q).isDirectory()) fix(q);
      else if (n === 'Data.fs') chmodSync(q, 0o644);
    }
  };
  fix(d);
  return d;
}

test('filestorage §13 §16 #55 #56: the Python blob vector: layout, every revision, undo copy, and we can commit on top', { skip }, async () => {
  const d = copyBlobVector();
  const before = tree(join(d, 'blobs'));
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    assert.equal(s.blobs!.layoutName, 'bushy');
    const T1 = fromHex('03f58e0100000000');
    const T2 = fromHex('03f58e0200000000');
    const T3 = fromHex('03f58e0300000000');
    assert.deepEqual(await s.load(1n), { data: BLOB_RECORD, tid: T3 });
    assert.ok(isBlobRecord((await s.load(1n)).data));
    assert.ok(!isBlobRecord((await s.load(0n)).data));
    assert.equal(readFileSync(await s.loadBlob(1n, T1), 'utf8'), 'hello blob');
    assert.equal(readFileSync(await s.loadBlob(1n, T2), 'utf8'), 'second');
    assert.equal(readFileSync(await s.loadBlob(1n, T3), 'utf8'), 'hello blob');
    assert.deepEqual(s.blobs!.tidsOf(1n), [T1, T2, T3]);
    // opening created only tmp/
    assert.deepEqual(tree(join(d, 'blobs')), before);
    assert.ok(existsSync(join(d, 'blobs', 'tmp')));
    const t4 = await commitBlob(s, 1n, T3, 'ours');
    assert.equal(readFileSync(await s.loadBlob(1n, t4), 'utf8'), 'ours');
  } finally {
    await s.close();
  }
});

/** T1: root → blobs 1, 2; T2: blob 1 rewritten; T3: root drops 2; T4 (after the pack time): blob 1 again */
async function packScenario(s: FileStorage): Promise<{ T1: Tid; T2: Tid; T3: Tid; T4: Tid }> {
  const txn = new TransactionMetaData();
  const T1 = tidAt(1);
  await s.tpc_begin(txn, T1);
  await s.store(z64, z64, makeRecord({ refs: [1n, 2n] }), txn);
  await s.storeBlob(1n, z64, BLOB_RECORD, tmpBlob(s, 'one v1'), txn);
  await s.storeBlob(2n, z64, BLOB_RECORD, tmpBlob(s, 'two'), txn);
  await s.tpc_vote(txn);
  await s.tpc_finish(txn);
  const T2 = await commitBlob(s, 1n, T1, 'one v2', { tid: tidAt(2) });
  const T3 = await commit(s, [{ oid: z64, serial: T1, data: makeRecord({ refs: [1n] }) }], { tid: tidAt(3) });
  const T4 = await commitBlob(s, 1n, T2, 'one v4', { tid: tidAt(4) });
  return { T1, T2, T3, T4 };
}

const oidDir = (b: string, oid: number) => join(b, '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', '0x00', `0x0${oid}`);

for (const keepOld of [true, false]) {
  test(`filestorage §13 §16 #57: GC pack ${keepOld ? 'moves' : 'deletes'} exactly the .removed blob revisions${keepOld ? '; B.old mirrors Data.fs.old' : ''}`, async () => {
    const d = tmp();
    const B = join(d, 'blobs');
    const s = new FileStorage(join(d, 'Data.fs'), { blobDir: B, packKeepOld: keepOld });
    try {
      const { T1, T2, T4 } = await packScenario(s);
      await s.pack(timeAt(3, 30), true);
      // oid 2 is garbage: its whole directory goes; oid 1 loses the revision of T1 only
      assert.deepEqual(tree(B), ['.layout', `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/${tidRepr(T2)}.blob`, `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/${tidRepr(T4)}.blob`]);
      assert.equal(existsSync(oidDir(B, 2)), false);
      assert.equal(existsSync(join(B, 'tmp')), true);
      assert.equal(existsSync(join(B, '.removed')), false);
      assert.equal(readFileSync(await s.loadBlob(1n, T2), 'utf8'), 'one v2');
      assert.equal(readFileSync(await s.loadBlob(1n, T4), 'utf8'), 'one v4');
      await rejectsWith(s.loadBlob(1n, T1), POSKeyError, 'packed-away revision');
      if (keepOld) {
        assert.deepEqual(tree(B + '.old'), [
          '.layout',
          `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/${tidRepr(T1)}.blob`,
          `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/${tidRepr(T2)}.blob`,
          `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/${tidRepr(T4)}.blob`,
          `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02/${tidRepr(T1)}.blob`,
        ]);
        assert.equal(readFileSync(join(oidDir(B + '.old', 1), `${tidRepr(T1)}.blob`), 'utf8'), 'one v1');
        assert.equal(statSync(join(oidDir(B + '.old', 1), `${tidRepr(T2)}.blob`)).ino, statSync(await s.loadBlob(1n, T2)).ino, 'kept files are hard links');
        // the next pack starts by deleting B.old
        await commitBlob(s, 1n, T4, 'one v5');
        await s.pack(Date.now() / 1000 + 60, true);
        assert.deepEqual(tree(B + '.old').filter((f) => f.includes('0x02/')), []);
      } else {
        assert.equal(existsSync(B + '.old'), false);
      }
    } finally {
      await s.close();
    }
  });
}

test('filestorage §13: a pack that frees nothing leaves the blob files alone (Python leaves an empty .removed)', async () => {
  const d = tmp();
  const B = join(d, 'blobs');
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: B });
  try {
    await commit(s, [{ oid: z64, serial: z64, data: makeRecord({ refs: [1n] }) }], { tid: tidAt(1) });
    const T2 = await commitBlob(s, 1n, z64, 'only', { tid: tidAt(2) });
    const before = tree(B);
    await s.pack(timeAt(5), true);
    assert.deepEqual(tree(B), [...before, '.removed'].sort());
    assert.equal(readFileSync(join(B, '.removed'), 'latin1'), '');
    assert.equal(readFileSync(await s.loadBlob(1n, T2), 'utf8'), 'only');
  } finally {
    await s.close();
  }
});

test('filestorage §13: undo after a pack still copies the kept revision; blobs of revisions after the pack time stay', async () => {
  const d = tmp();
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    const { T2, T4 } = await packScenario(s);
    await s.pack(timeAt(3, 30), true);
    const [T5] = await undoTxn(s, undoId(T4));
    assert.equal(readFileSync(await s.loadBlob(1n, T5), 'utf8'), 'one v2');
    assert.deepEqual(s.blobs!.tidsOf(1n), [T2, T4, T5]);
  } finally {
    await s.close();
  }
});

test('filestorage §13: blobMode proxy (Python BlobStorage around a FileStorage): undo of a creation copies its file, pack drops unloadable revisions without B.old, create keeps the directory', async () => {
  const d = tmp();
  const B = join(d, 'blobs');
  const opts = { blobDir: B, blobMode: 'proxy' as const };
  let s = new FileStorage(join(d, 'Data.fs'), opts);
  try {
    assert.equal(s.blobMode, 'proxy');
    await commit(s, [{ oid: z64, serial: z64, data: makeRecord({ refs: [1n] }) }], { tid: tidAt(1) });
    const T2 = await commitBlobs1(s, 1n, z64, 'one', tidAt(2));
    const T3 = await commitBlobs1(s, 1n, T2, 'one again', tidAt(3));
    const [T4] = await undoTxn(s, undoId(T3));
    assert.equal(readFileSync(await s.loadBlob(1n, T4), 'utf8'), 'one');
    assert.equal(writable(await s.loadBlob(1n, T4)), true, 'the proxy writes undo copies with the default mode');
    const T5 = await commitBlob(s, 2n, z64, 'unreferenced');
    const [T6] = await undoTxn(s, undoId(T5));
    assert.equal(readFileSync(await s.loadBlob(2n, T6), 'utf8'), 'unreferenced', 'the proxy copies the file of an undone creation');
    await s.pack(Date.now() / 1000 + 60, true);
    assert.equal(existsSync(B + '.old'), false);
    assert.equal(existsSync(join(B, '.removed')), false);
    assert.deepEqual(s.blobs!.tidsOf(1n), [T4], 'revisions loadSerial no longer finds are gone');
    assert.equal(existsSync(s.blobs!.oidPath(2n)), false, 'an emptied oid directory goes');
    await s.close();
    s = new FileStorage(join(d, 'Data.fs'), { ...opts, create: true });
    assert.equal(existsSync(await Promise.resolve(join(B, '.layout'))), true);
    assert.deepEqual(s.blobs!.tidsOf(1n), [T4], 'create does not remove the blob directory in proxy mode');
  } finally {
    await s.close();
  }
});

async function commitBlobs1(s: FileStorage, oid: Oid, serial: Tid, content: string, tid: Tid): Promise<Tid> {
  return commitBlob(s, oid, serial, content, { tid });
}

test('filestorage §16 #49 §13: copyTransactionsFrom of the Python blob vector reproduces Data.fs byte for byte and every blob file', { skip }, async () => {
  const src = copyBlobVector();
  const d = tmp();
  const a = new FileStorage(join(src, 'Data.fs'), { blobDir: join(src, 'blobs'), readOnly: true });
  const b = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs') });
  try {
    const r = await copyTransactionsFrom(a, b);
    assert.equal(r.transactions, 4);
    assert.equal(r.blobs, 3);
  } finally {
    await a.close();
    await b.close();
  }
  assert.deepEqual(readFileSync(join(d, 'Data.fs')), readFileSync(vectorsDir('filestorage', 'blob', 'Data.fs')));
  const files = (dir: string) => tree(dir).filter((f) => f.endsWith('.blob')).map((f) => [f, readFileSync(join(dir, f), 'latin1')]);
  assert.deepEqual(files(join(d, 'blobs')), files(vectorsDir('filestorage', 'blob', 'blobs')));
});

test('filestorage §13 (safety beyond upstream): an object garbage at the pack time but written again later keeps its newer blob files', async () => {
  const d = tmp();
  const B = join(d, 'blobs');
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: B });
  try {
    const txn = new TransactionMetaData();
    const T1 = tidAt(1);
    await s.tpc_begin(txn, T1);
    await s.store(z64, z64, makeRecord({}), txn);
    await s.storeBlob(2n, z64, BLOB_RECORD, tmpBlob(s, 'garbage'), txn);
    await s.tpc_vote(txn);
    await s.tpc_finish(txn);
    const T2 = await commitBlob(s, 2n, T1, 'written again', { tid: tidAt(2) });
    await s.pack(timeAt(1, 30), true);
    // Python moves the whole oid directory (and so loses the file of T2's record); we keep it
    assert.equal(readFileSync(await s.loadBlob(2n, T2), 'utf8'), 'written again');
    assert.deepEqual(s.blobs!.tidsOf(2n), [T2]);
    assert.deepEqual(tree(B + '.old').filter((f) => f.endsWith('.blob')), [
      `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02/${tidRepr(T1)}.blob`, // moved
      `0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02/${tidRepr(T2)}.blob`, // linked, as every kept file
    ]);
  } finally {
    await s.close();
  }
});
