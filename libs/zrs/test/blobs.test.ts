// Blob replication (zrs spec §6.5–§6.10, §11.2 primary-blob.test, §11.4 secondary-blob.test):
// blob-enabled FileStorages (blob-dir) on real files and sockets.
// zrs §14 #4 (zrs2.1 announced), #5, #6 (zrs2.0 refused by a blob primary), #22 (B + ⌈size/65536⌉
// blocks), #23 (no blob file → S), #26/#27 (blocks in the running MD5), #34, #36 (blocks in a
// temporary file installed with restoreBlob; content equal), and the same over our native channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { BLOB_RECORD, POSKeyError, TransactionMetaData, p64, type Oid, type Tid } from '@zeo-ts/storage';
import { ROOT_RECORD, commit } from '@zeo-ts/storage/testing';
import { BLOB_BLOCK, Primary, RunningChecksum, Secondary, blobBlocks, decodeBlobFrame, decodeMessage, encodeB, encodeBlobBegin, encodeBlobEnd, encodeC, encodeT, blobChunkHeader, type ZrsMessage } from '../src/index.ts';
import { FakePrimary, RawClient, memoryLogger, tempDir, until } from './helpers.ts';

function blobFs(d: string, name: string): FileStorage {
  return new FileStorage(join(d, `${name}.fs`), { blobDir: join(d, `${name}.blobs`) });
}

/** One transaction storing blobs (content null: a Blob record without a blob file). */
async function commitBlobs(s: FileStorage | Primary, blobs: Array<{ oid: Oid; serial?: Tid; content: Buffer | null }>): Promise<Tid> {
  const txn = new TransactionMetaData('', 'blobs');
  await s.tpc_begin(txn);
  for (const b of blobs) {
    if (b.content === null) {
      await s.store(b.oid, b.serial ?? 0n, BLOB_RECORD, txn);
      continue;
    }
    const f = join(s.temporaryDirectory(), `upload-${b.oid}-${randomBytes(4).toString('hex')}`);
    writeFileSync(f, b.content);
    await s.storeBlob(b.oid, b.serial ?? 0n, BLOB_RECORD, f, txn);
  }
  await s.tpc_vote(txn);
  return s.tpc_finish(txn);
}

async function blobContent(s: { loadBlob(oid: Oid, tid: Tid): Promise<string> }, oid: Oid, tid: Tid): Promise<Buffer> {
  return readFileSync(await s.loadBlob(oid, tid));
}

test('zrs §14 #6 (native channel): a blob-enabled primary refuses, at the handshake, a native secondary without a blob directory; its file stays untouched', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(blobFs(d, 'p'), { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  await commitBlobs(p, [{ oid: 1n, content: Buffer.from('blob one') }]);
  const sfs = new FileStorage(join(d, 's.fs'));
  const sm = memoryLogger();
  const s = new Secondary(sfs, { host: '127.0.0.1', port: p.port }, { logger: sm.log, native: 'always', reconnectDelay: 60 });
  try {
    await until(() => s.refused !== null, () => s.changed(), 'the refusal');
    assert.equal(s.refused!.code, 'blobs');
    assert.match(s.refused!.reason, /no blob directory/);
    assert.ok(m.has(/has no blob directory/), 'the primary logs why');
    assert.equal(s.lastTransaction(), 0n, 'nothing was applied');
    assert.equal(sfs.getSize(), 4, 'the secondary file is still just its magic');
  } finally {
    await s.close();
    await p.close();
  }
});

test('zrs §14 #6, §11.2 #4: a blob-enabled primary refuses zrs2.0 and accepts zrs2.1; a plain primary accepts both', async () => {
  const d = tempDir();
  const m = memoryLogger();
  const p = new Primary(blobFs(d, 'p'), { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  assert.equal(p.supportsBlobs(), true);
  const c = new RawClient(p.port);
  await c.ready;
  c.send('zrs2.0');
  await c.gone;
  assert.ok(m.has(/: Invalid protocol b'zrs2\.0'\. Require >= 2\.1$/));
  const c2 = new RawClient(p.port);
  await c2.ready;
  c2.send('zrs2.1');
  c2.send(p64(0n));
  await m.waitFor(/start 0000000000000000/);
  c2.close();
  await p.close();
  const m2 = memoryLogger();
  const plain = new Primary(new FileStorage(join(d, 'plain.fs')), { host: '127.0.0.1', port: 0 }, { logger: m2.log });
  await plain.listening;
  assert.equal(plain.supportsBlobs(), false);
  for (const proto of ['zrs2.0', 'zrs2.1']) {
    const x = new RawClient(plain.port);
    await x.ready;
    x.send(proto);
    x.send(p64(0n));
    await m2.waitFor(/start 0000000000000000/);
    m2.lines.length = 0;
    x.close();
  }
  await plain.close();
});

test('zrs §14 #22, #23, #26, #27, §11.2 #2-#3: B + data + ⌈size/65536⌉ blocks (the last shorter) for blob records with a file, S without; blocks are in the checksum', async () => {
  const d = tempDir();
  const p = new Primary(blobFs(d, 'p'), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger('silent').log });
  await p.listening;
  const root = await commit(p, [{ oid: 0n, serial: 0n, data: ROOT_RECORD }]);
  const sizes = [5, 4000, BLOB_BLOCK, BLOB_BLOCK + 1, 400_000, 0];
  const contents = sizes.map((n, i) => (i === 0 ? Buffer.from('test\n') : randomBytes(n)));
  const blobs = contents.map((content, i) => ({ oid: BigInt(i + 2), content }));
  const tid = await commitBlobs(p, [...blobs, { oid: 20n, content: null }]);
  const c = new RawClient(p.port);
  await c.ready;
  c.send('zrs2.1');
  c.send(p64(0n));
  const expected = 4 + 1 + sizes.reduce((a, n) => a + 2 + blobBlocks(n), 0) + 2 + 1;
  const msgs = await c.waitCount(expected);
  assert.equal(msgs.length, expected);
  const sum = new RunningChecksum(p64(0n));
  const check = (i: number): ZrsMessage => {
    const x = decodeMessage(msgs[i]!);
    if (x.type === 'C') assert.deepEqual(x.checksum, sum.digest(), `checksum at message ${i}`);
    return x;
  };
  let i = 0;
  const next = () => {
    const m = msgs[i]!;
    i++;
    return m;
  };
  // first transaction: the root
  for (let k = 0; k < 3; k++) sum.update(next());
  assert.equal(check(3).type, 'C');
  sum.update(next());
  const t = decodeMessage(next());
  assert.equal(t.type, 'T');
  sum.update(msgs[i - 1]!);
  for (let k = 0; k < blobs.length; k++) {
    const b = decodeMessage(next());
    sum.update(msgs[i - 1]!);
    assert.deepEqual(b, { type: 'B', oid: blobs[k]!.oid, tid, version: '', dataTxn: null, blocks: blobBlocks(sizes[k]!) });
    assert.deepEqual(next(), BLOB_RECORD);
    sum.update(msgs[i - 1]!);
    const parts: Buffer[] = [];
    for (let n = 0; n < blobBlocks(sizes[k]!); n++) {
      const block = next();
      sum.update(block);
      if (n < blobBlocks(sizes[k]!) - 1) assert.equal(block.length, BLOB_BLOCK, 'every block but the last has 65536 bytes');
      parts.push(block);
    }
    assert.deepEqual(Buffer.concat(parts), contents[k], `blob ${k} (${sizes[k]} bytes)`);
  }
  // the Blob record without a file travels as S + data
  assert.deepEqual(decodeMessage(next()), { type: 'S', oid: 20n, tid, version: '', dataTxn: null });
  sum.update(msgs[i - 1]!);
  assert.deepEqual(next(), BLOB_RECORD);
  sum.update(msgs[i - 1]!);
  assert.equal(check(i).type, 'C');
  assert.ok(root < tid);
  c.close();
  await p.close();
});

async function replicaPair(native: 'never' | 'always') {
  const d = tempDir();
  const p = new Primary(blobFs(d, 'p'), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger('silent').log });
  await p.listening;
  const sm = memoryLogger('info');
  const sfs = blobFs(d, 's');
  const s = new Secondary(sfs, { host: '127.0.0.1', port: p.port }, { logger: sm.log, native, reconnectDelay: 0.05 });
  return { d, p, s, sfs, sm };
}

for (const native of ['never', 'always'] as const) {
  const channel = native === 'never' ? 'zrs2.1' : 'native channel (record path)';
  test(`zrs §14 #4, #36, §11.4 #1-#3 (${channel}): a blob-enabled secondary replicates blob files of 0 B–400 KB exactly; a Blob without a file stays without; later revisions replicate`, async () => {
    const { d, p, s, sfs } = await replicaPair(native);
    try {
      assert.equal(s.supportsBlobs(), true);
      const root = await commit(p, [{ oid: 0n, serial: 0n, data: ROOT_RECORD }]);
      const sizes = [4000, 400_000, BLOB_BLOCK, 0, 12345];
      const contents = sizes.map((n) => randomBytes(n));
      const t1 = await commitBlobs(p, [...contents.map((content, k) => ({ oid: BigInt(k + 1), content })), { oid: 50n, content: null }]);
      await until(() => s.lastTransaction() === t1, () => s.changed(), 'blobs replicated');
      if (native === 'never') assert.equal(s.replicationStatus().protocol, 'zrs2.1');
      for (let k = 0; k < sizes.length; k++) {
        if (sizes[k] === 0 && native === 'never') {
          // spec §13 #4 (as upstream): an empty blob file is announced with 0 blocks and applied without a file
          await assert.rejects(s.loadBlob(BigInt(k + 1), t1), POSKeyError);
          continue;
        }
        // (our native channel carries empty blob files too)
        assert.deepEqual(await blobContent(s, BigInt(k + 1), t1), contents[k], `blob ${k} (${sizes[k]} bytes) on the secondary`);
        assert.deepEqual(await blobContent(s, BigInt(k + 1), t1), await blobContent(p, BigInt(k + 1), t1));
      }
      // a Blob record whose file was missing on the primary: the record is there, its file is not
      assert.deepEqual((await s.load(50n)).data, BLOB_RECORD);
      await assert.rejects(s.loadBlob(50n, t1), POSKeyError);
      // a later revision with data replicates and reads back
      const t2 = await commitBlobs(p, [{ oid: 50n, serial: t1, content: Buffer.from('new data') }]);
      await until(() => s.lastTransaction() === t2, () => s.changed(), 'second revision replicated');
      assert.equal((await blobContent(s, 50n, t2)).toString(), 'new data');
      // the temporary directory keeps nothing behind
      assert.deepEqual(readdirSync(sfs.temporaryDirectory()), []);
      assert.ok(root < t2);
    } finally {
      await s.close();
      await p.close();
    }
    // the files are the same on both sides (same records, same positions)
    assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
  });
}

test('zrs §14 #34, #36: a connection lost in the middle of a blob leaves no transaction and no temporary file; the whole transaction comes again', async () => {
  const d = tempDir();
  const fake = new FakePrimary();
  const port = await fake.listening;
  const sfs = blobFs(d, 's');
  const s = new Secondary(sfs, { host: '127.0.0.1', port }, { logger: memoryLogger('silent').log, native: 'never', reconnectDelay: 0.01 });
  try {
    const c = await fake.connection(0);
    await c.waitCount(2);
    assert.equal(c.received[0]!.toString(), 'zrs2.1', 'a blob-enabled secondary announces zrs2.1 (§14 #4)');
    assert.deepEqual(c.received[1], p64(0n), 'an empty secondary sends z64 (§14 #5)');
    const tid = 0x03c5_0000_0000_0000n;
    const content = randomBytes(3 * BLOB_BLOCK - 7);
    const stream = (): Buffer[] => {
      const out = [encodeT(tid, ' ', Buffer.alloc(0), Buffer.from('blob'), new Map()), encodeB(1n, tid, null, 3), BLOB_RECORD];
      for (let k = 0; k < 3; k++) out.push(content.subarray(k * BLOB_BLOCK, (k + 1) * BLOB_BLOCK));
      const sum = new RunningChecksum(p64(0n));
      for (const x of out) sum.update(x);
      out.push(encodeC(sum.digest()));
      return out;
    };
    const all = stream();
    // T, B, data and one block: then the connection breaks
    for (const x of all.slice(0, 4)) c.send(x);
    await until(() => readdirSync(sfs.temporaryDirectory()).length === 1, () => new Promise((r) => setImmediate(r)), 'the temporary blob file', 100_000);
    assert.match(readdirSync(sfs.temporaryDirectory())[0]!, /^secondary.*\.blob$/);
    c.sock.destroy();
    const c2 = await fake.connection(1);
    await c2.waitCount(2);
    assert.deepEqual(c2.received[1], p64(0n), 'nothing was committed: the secondary asks from z64 again');
    assert.deepEqual(readdirSync(sfs.temporaryDirectory()), [], 'the partial blob file was removed');
    for (const x of all) c2.send(x);
    await until(() => s.lastTransaction() === tid, () => s.changed(), 'the transaction after reconnecting');
    assert.deepEqual(await blobContent(s, 1n, tid), content);
  } finally {
    await s.close();
    await fake.close();
  }
});

test('zrs §14 #36: partial blob files of an earlier run (kill -9 mid-blob) are removed when the secondary starts; nothing else in the directory', async () => {
  const d = tempDir();
  const sfs = blobFs(d, 's');
  const tmp = sfs.temporaryDirectory();
  writeFileSync(join(tmp, 'secondary0123456789ab.blob'), 'partial');
  writeFileSync(join(tmp, 'upload-1'), 'not ours');
  const m = memoryLogger('info');
  const s = new Secondary(sfs, null, { logger: m.log });
  assert.deepEqual(readdirSync(tmp), ['upload-1']);
  assert.ok(m.has(/^removed 1 partial blob file\(s\) left by an earlier run in /));
  await s.close();
});

test('zrs native blob frames: codec round trip and bad frames', () => {
  const b = encodeBlobBegin(7n, 9n, 70000);
  assert.deepEqual(decodeBlobFrame(b), { kind: 'blob-begin', oid: 7n, tid: 9n, size: 70000 });
  assert.deepEqual(decodeBlobFrame(Buffer.concat([blobChunkHeader(), Buffer.from('abc')])), { kind: 'blob-chunk', data: Buffer.from('abc') });
  const md5 = Buffer.alloc(16, 1);
  assert.deepEqual(decodeBlobFrame(encodeBlobEnd(md5)), { kind: 'blob-end', md5 });
  assert.throws(() => decodeBlobFrame(b.subarray(0, 20)), /blob-begin frame of 20 bytes/);
  assert.throws(() => decodeBlobFrame(Buffer.concat([blobChunkHeader(), Buffer.alloc(BLOB_BLOCK + 1)])), /blob chunk of 65537 bytes/);
  assert.throws(() => decodeBlobFrame(Buffer.from([0x7a, 9])), /unknown blob frame type 9/);
});

test('zrs §2 relay with blobs: primary → relay → secondary, blob files equal on all three', async () => {
  const d = tempDir();
  const silent = memoryLogger('silent').log;
  const p = new Primary(blobFs(d, 'p'), { host: '127.0.0.1', port: 0 }, { logger: silent });
  await p.listening;
  const inner = new Primary(blobFs(d, 'r'), { host: '127.0.0.1', port: 0 }, { logger: silent });
  await inner.listening;
  const relay = new Secondary(inner, { host: '127.0.0.1', port: p.port }, { logger: silent, native: 'never', reconnectDelay: 0.05 });
  const s = new Secondary(blobFs(d, 's'), { host: '127.0.0.1', port: inner.port }, { logger: silent, native: 'always', reconnectDelay: 0.05 });
  try {
    assert.equal(relay.supportsBlobs(), true);
    const content = randomBytes(200_000);
    await commit(p, [{ oid: 0n, serial: 0n, data: ROOT_RECORD }]);
    const t = await commitBlobs(p, [{ oid: 1n, content }]);
    await until(() => s.lastTransaction() === t, () => s.changed(), 'the blob at the end of the chain');
    assert.deepEqual(await blobContent(relay, 1n, t), content);
    assert.deepEqual(await blobContent(s, 1n, t), content);
  } finally {
    await s.close();
    await relay.close();
    await p.close();
  }
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
});
