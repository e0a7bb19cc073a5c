// FS21 files (written by ZODB on Python 2): same record layout as FS30, another magic
// (filestorage spec §3). We open them read-only only, never write beside them, and explain the
// conversion path. filestorage §16 #2 (magic check) extended to FS21.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ReadOnlyError, TransactionMetaData } from '@zeo-ts/storage';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { FS21_CONVERSION_HINT, FileReader, FileStorage, FileStorageFormatError, fileFormat, tidToUndoId } from '../src/index.ts';

const V = (f: string) => vectorsDir('filestorage', f);
const skip = vectorsSkip('filestorage');

/** A copy of an FS30 vector with its magic rewritten to FS21 (the layout is identical). */
function fs21Copy(name: string): { dir: string; path: string; bytes: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'fs21-'));
  const path = join(dir, 'Data.fs');
  const b = readFileSync(V(name));
  b.write('FS21', 0, 'latin1');
  writeFileSync(path, b);
  return { dir, path, bytes: Buffer.from(b) };
}

test('fileFormat names FS30 / FS21 / nothing', () => {
  assert.equal(fileFormat(Buffer.from('FS30xx')), 'FS30');
  assert.equal(fileFormat(Buffer.from('FS21')), 'FS21');
  assert.equal(fileFormat(Buffer.from('FS2')), null);
  assert.equal(fileFormat(Buffer.from('FS20')), null);
});

test('filestorage §16 #2: FileReader refuses FS21 unless allowFs21, then reads it like FS30', { skip }, () => {
  const { path } = fs21Copy('Data.fs');
  assert.throws(
    () => FileReader.open(path),
    (e: unknown) => e instanceof FileStorageFormatError && e.message.includes(path) && /invalid file header/.test(e.message) && /fsconvert-fs21/.test(e.message),
  );
  const r21 = FileReader.open(path, { allowFs21: true });
  const r30 = FileReader.open(V('Data.fs'));
  try {
    assert.equal(r21.format, 'FS21');
    assert.equal(r30.format, 'FS30');
    const size = r21.size();
    assert.deepEqual(
      [...r21.transactions(4, size)].map((t) => [t.pos, t.tid, t.status]),
      [...r30.transactions(4, size)].map((t) => [t.pos, t.tid, t.status]),
    );
  } finally {
    r21.close();
    r30.close();
  }
});

test('filestorage §16 #2: read-write open of an FS21 file is a FileStorageFormatError with the conversion path; the file is untouched', { skip }, async () => {
  const { dir, path, bytes } = fs21Copy('Data.fs');
  await assert.rejects(
    FileStorage.open(path),
    (e: unknown) => e instanceof FileStorageFormatError && e.file === path && e.pos === 0 && e.message.includes(FS21_CONVERSION_HINT),
  );
  assert.deepEqual(readFileSync(path), bytes);
  assert.ok(!existsSync(path + '.index'));
  // the lock was released (a second attempt fails the same way, not with a LockError)
  await assert.rejects(FileStorage.open(path), FileStorageFormatError);
  assert.deepEqual(readdirSync(dir).filter((f) => f !== 'Data.fs' && f !== 'Data.fs.lock'), []);
});

test('FS21 read-only: load/loadBefore/loadSerial/history/iterator/undoLog equal those of the FS30 original; nothing written', { skip }, async () => {
  const { dir, path, bytes } = fs21Copy('Data.fs');
  const fs21 = await FileStorage.open(path, { readOnly: true });
  const fs30 = await FileStorage.open(V('Data.fs'), { readOnly: true });
  try {
    assert.equal(fs21.fileFormat(), 'FS21');
    assert.equal(fs30.fileFormat(), 'FS30');
    assert.ok(fs21.isReadOnly());
    assert.equal(fs21.getSize(), fs30.getSize());
    assert.equal(fs21.lastTransaction(), fs30.lastTransaction());
    assert.equal(fs21.len(), fs30.len());
    for (const oid of [0n, 1n, 2n]) {
      assert.deepEqual(await fs21.load(oid), await fs30.load(oid));
      assert.deepEqual(await fs21.history(oid, 10), await fs30.history(oid, 10));
      for (const before of [0x03f58e0300000000n, 0x03f58e0500000000n, 0x03f58e0700000000n]) {
        assert.deepEqual(await fs21.loadBefore(oid, before), await fs30.loadBefore(oid, before));
      }
    }
    assert.deepEqual(await fs21.loadSerial(1n, 0x03f58e0203333333n), await fs30.loadSerial(1n, 0x03f58e0203333333n));
    const it = async (s: FileStorage) => {
      const out: unknown[] = [];
      for await (const t of s.iterator()) out.push([t.tid, t.status, t.user, t.description, t.extension, t.records.map((r) => [r.oid, r.tid, r.data, r.data_txn])]);
      return out;
    };
    const a = await it(fs21);
    assert.equal(a.length, 7);
    assert.deepEqual(a, await it(fs30));
    assert.deepEqual(await fs21.undoLog(0, 20), await fs30.undoLog(0, 20));
    assert.deepEqual((await fs21.undoLog(0, 1))[0]!.id, tidToUndoId(0x03f58e0600000000n));
  } finally {
    await fs21.close();
    await fs30.close();
  }
  assert.deepEqual(readFileSync(path), bytes);
  // upstream read-only opening writes neither .index nor .lock nor .tmp
  assert.deepEqual(readdirSync(dir), ['Data.fs']);
});

test('FS21 read-only: every write (new_oid, tpc_begin, store, undo, pack) fails naming the file and FS21; nothing written', { skip }, async () => {
  const { dir, path, bytes } = fs21Copy('Data.fs');
  const fs = await FileStorage.open(path, { readOnly: true });
  const isFs21Error = (e: unknown) => e instanceof ReadOnlyError && e.message.includes(path) && /FS21/.test(e.message) && /Python 2/.test(e.message);
  try {
    await assert.rejects(fs.new_oid(), isFs21Error);
    const txn = new TransactionMetaData();
    await assert.rejects(fs.tpc_begin(txn), isFs21Error);
    await assert.rejects(fs.store(1n, 0x03f58e0300000000n, Buffer.from('x'), txn), isFs21Error);
    await assert.rejects(fs.undo(tidToUndoId(0x03f58e0500000000n), txn), isFs21Error);
    await assert.rejects(fs.restore(1n, 0x03f58e0700000000n, Buffer.from('x'), null, txn), isFs21Error);
    await assert.rejects(fs.pack(1704067530.0, true), isFs21Error);
  } finally {
    await fs.close();
  }
  assert.deepEqual(readFileSync(path), bytes);
  assert.deepEqual(readdirSync(dir), ['Data.fs']);
});

test('FS21 read-only with a packed vector and its stale .index (from the FS30 file): same answers, index file unchanged', { skip }, async () => {
  const { dir, path } = fs21Copy('Data-packed.fs');
  copyFileSync(V('Data-packed.fs.index'), path + '.index');
  const before = readFileSync(path + '.index');
  const fs = await FileStorage.open(path, { readOnly: true });
  const ref = await FileStorage.open(V('Data-packed.fs'), { readOnly: true });
  try {
    assert.equal(fs.getSize(), ref.getSize());
    for (const oid of [0n, 1n, 2n]) assert.deepEqual(await fs.load(oid), await ref.load(oid));
  } finally {
    await fs.close();
    await ref.close();
  }
  assert.deepEqual(readFileSync(path + '.index'), before);
  assert.deepEqual(readdirSync(dir).sort(), ['Data.fs', 'Data.fs.index']);
});

test('FS21 read-only with a Python 2 style .index (protocol 1, str keys): ignored as upstream does (it cannot load it either), the file is scanned, the index left alone', { skip }, async () => {
  const { dir, path } = fs21Copy('Data.fs');
  // Python 2's fsIndex.save: protocol 1 without PROTO, pos as an int, (prefix, bucket) tuples of
  // Python 2 str, None. Python 3's fsIndex.load fails on the non-ASCII bytes of the buckets.
  const ref = await FileStorage.open(V('Data.fs'), { readOnly: true });
  const parts: Buffer[] = [Buffer.from([0x4d, 2471 & 0xff, 2471 >> 8, 0x2e])]; // BININT2 2471, STOP
  const suffixes: Buffer[] = [];
  const positions: Buffer[] = [];
  for (const oid of [0n, 1n, 2n, 3n, 4n]) {
    const pos = ref.index.get(oid);
    if (pos === undefined) continue;
    suffixes.push(Buffer.from([0, Number(oid)]));
    const p6 = Buffer.alloc(6);
    p6.writeUIntBE(pos, 0, 6);
    positions.push(p6);
  }
  await ref.close();
  const bucket = Buffer.concat([...suffixes, ...positions]);
  parts.push(Buffer.from([0x28, 0x55, 6]), Buffer.alloc(6), Buffer.from([0x55, bucket.length]), bucket, Buffer.from('t.N.', 'latin1'));
  const py2index = Buffer.concat(parts);
  writeFileSync(path + '.index', py2index);
  const fs = await FileStorage.open(path, { readOnly: true, logger: pino({ level: 'silent' }) });
  try {
    assert.equal(fs.getSize(), 2471);
    assert.equal(fs.len(), 5);
    assert.equal((await fs.load(2n)).tid, 0x03f58e0400000000n); // T4 undid T3
  } finally {
    await fs.close();
  }
  assert.deepEqual(readFileSync(path + '.index'), py2index);
  assert.deepEqual(readdirSync(dir).sort(), ['Data.fs', 'Data.fs.index']);
});

test('an empty FS21-magic-only file opens read-only as an empty storage', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fs21-'));
  const path = join(dir, 'Data.fs');
  writeFileSync(path, 'FS21');
  const fs = await FileStorage.open(path, { readOnly: true });
  try {
    assert.equal(fs.fileFormat(), 'FS21');
    assert.equal(fs.getSize(), 4);
    assert.equal(fs.lastTransaction(), 0n);
    let n = 0;
    for await (const _ of fs.iterator()) n++;
    assert.equal(n, 0);
  } finally {
    await fs.close();
  }
  assert.equal(readFileSync(path, 'latin1'), 'FS21');
});
