/**
 * Blobs through ClientStorage against a real runzeo child process serving a FileStorage with a
 * blob directory, in both encodings (Z5: runzeo's default announcement; M5: `msgpack true`).
 * Covers zeo5-protocol §17.2 S-27, S-32, S-33 and §17.3 C-14, C-15 (end to end), the blob cache
 * ('zeocache' layout, size check) and shared-blob-dir of operations §4 (blob settings).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pino from 'pino';
import { RpcConnection } from '@zeo-ts/wire';
import { POSKeyError, TransactionMetaData, p64, z64, type Oid, type Tid } from '@zeo-ts/storage';
import { ClientStorage, type ClientStorageOptions } from '../src/index.ts';
import { startRunzeo, tempDir, type RunzeoProcess } from '../src/testing.ts';

const logger = pino({ level: 'silent' });

async function runzeo(dir: string, encoding: 'M' | 'Z'): Promise<RunzeoProcess> {
  writeFileSync(
    join(dir, 'zeo.conf'),
    `<zeo>\n  address 127.0.0.1:0\n${encoding === 'M' ? '  msgpack true\n' : ''}</zeo>\n<filestorage 1>\n  path ${join(dir, 'Data.fs')}\n  blob-dir ${join(dir, 'blobs')}\n</filestorage>\n`,
  );
  return startRunzeo(['-C', join(dir, 'zeo.conf')], { cwd: dir });
}

function open(srv: RunzeoProcess, opts: Partial<ClientStorageOptions>): Promise<ClientStorage> {
  return ClientStorage.open({ addresses: [{ host: '127.0.0.1', port: srv.port }], waitTimeout: 20, logger, ...opts });
}

/** Commit blobs (fresh oids) through storeBlob; returns the oids and the tid. */
async function commitBlobs(c: ClientStorage, contents: Buffer[], serials?: Tid[], oids?: Oid[]): Promise<{ oids: Oid[]; tid: Tid }> {
  const txn = new TransactionMetaData('test', 'blobs');
  const os: Oid[] = [];
  await c.tpc_begin(txn);
  for (let i = 0; i < contents.length; i++) {
    const oid = oids?.[i] ?? (await c.new_oid());
    os.push(oid);
    const f = join(c.temporaryDirectory(), `upload-${i}-${randomBytes(4).toString('hex')}`);
    writeFileSync(f, contents[i]!);
    await c.storeBlob(oid, serials?.[i] ?? z64, Buffer.from(`blob record ${i}`), f, txn);
    assert.equal(existsSync(f), false, 'storeBlob takes the file');
  }
  await c.tpc_vote(txn);
  const tid = await c.tpc_finish(txn);
  return { oids: os, tid };
}

/** bounded wait for something another process does asynchronously (the server's connection cleanup) */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const SIZES = [0, 1, 58999, 59000, 59001, 3 * 1024 * 1024 + 5];

for (const encoding of ['Z', 'M'] as const) {
  test(`${encoding}5: blobs of ${SIZES.join(', ')} bytes: upload, cached after commit, download by another client, concurrent loads share one download, missing blob (C-14, C-15, S-32, S-33)`, { timeout: 90_000 }, async () => {
    const dir = tempDir();
    const srv = await runzeo(dir, encoding);
    const a = await open(srv, { blobDir: join(dir, 'cache-a') });
    const b = await open(srv, { blobDir: join(dir, 'cache-b') });
    try {
      assert.equal(a.protocol(), encoding);
      assert.ok(a.supportsBlobs() && a.serverSupportsBlobs(), 'the server advertises IBlobStorage (§13)');
      assert.equal(readFileSync(join(dir, 'cache-a', '.layout'), 'utf8'), 'zeocache');
      const contents = SIZES.map((n) => randomBytes(n));
      const { oids, tid } = await commitBlobs(a, contents);
      for (let i = 0; i < SIZES.length; i++) {
        // the committing client kept its upload in its cache: no download
        const pa = await a.loadBlob(oids[i]!, tid);
        assert.equal(pa, join(dir, 'cache-a', String(oids[i]! % 997n), `${oids[i]! / 997n}.${p64(tid).toString('hex')}.blob`));
        assert.ok(readFileSync(pa).equals(contents[i]!));
        // the other client downloads it with sendBlob
        const pb = await b.loadBlob(oids[i]!, tid);
        assert.ok(pb.startsWith(join(dir, 'cache-b')));
        assert.ok(readFileSync(pb).equals(contents[i]!), `blob of ${SIZES[i]} bytes`);
        assert.equal((await b.load(oids[i]!)).data.toString(), `blob record ${i}`);
      }
      assert.equal(a.blobs!.downloadCount, 0);
      assert.equal(b.blobs!.downloadCount, SIZES.length);
      // a second load is served by the cache
      await b.loadBlob(oids[5]!, tid);
      assert.equal(b.blobs!.downloadCount, SIZES.length);
      // concurrent loads of one blob: one download
      const c = await open(srv, { blobDir: join(dir, 'cache-c') });
      const paths = await Promise.all(Array.from({ length: 5 }, () => c.loadBlob(oids[5]!, tid)));
      assert.equal(new Set(paths).size, 1);
      assert.equal(c.blobs!.downloadCount, 1);
      assert.ok(readFileSync(paths[0]!).equals(contents[5]!));
      // missing blobs: POSKeyError, no file left behind
      await assert.rejects(c.loadBlob(oids[0]!, z64), POSKeyError);
      await assert.rejects(c.loadBlob(999n, tid), POSKeyError);
      assert.deepEqual(readdirSync(join(dir, 'cache-c', String(oids[0]! % 997n))).filter((n) => n.endsWith('.dl')), []);
      await c.close();
      // nothing left in the server's temporary blob directory
      assert.deepEqual(readdirSync(join(dir, 'blobs', 'tmp')), []);
    } finally {
      await a.close();
      await b.close();
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('abort, and disconnect before vote, after blob uploads leave no temporary files and lose nothing committed (S-27)', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const srv = await runzeo(dir, 'Z');
  const a = await open(srv, { blobDir: join(dir, 'cache-a') });
  try {
    const first = randomBytes(100_000);
    const { oids, tid } = await commitBlobs(a, [first]);
    const oid = oids[0]!;
    // abort after an upload
    const txn = new TransactionMetaData();
    await a.tpc_begin(txn);
    const f = join(a.temporaryDirectory(), 'x');
    writeFileSync(f, randomBytes(200_000));
    await a.storeBlob(oid, tid, Buffer.from('second'), f, txn);
    await a.tpc_abort(txn);
    assert.deepEqual(readdirSync(join(dir, 'blobs', 'tmp')), []);
    assert.deepEqual(readdirSync(join(dir, 'cache-a', String(oid % 997n))).filter((n) => !n.endsWith('.blob')), [], 'no upload file left in the cache');
    // a client that goes away after uploading, before voting
    const b = await open(srv, { blobDir: join(dir, 'cache-b') });
    const txn2 = new TransactionMetaData();
    await b.tpc_begin(txn2);
    const g = join(b.temporaryDirectory(), 'y');
    writeFileSync(g, randomBytes(300_000));
    await b.storeBlob(oid, tid, Buffer.from('third'), g, txn2);
    await b.sync(); // the server has the whole upload
    await b.close();
    await until("the server's cleanup of the dropped connection", () => readdirSync(join(dir, 'blobs', 'tmp')).length === 0);
    // a connection that drops in the middle of a blob upload (before storeBlobEnd)
    const raw = new RpcConnection(net.connect(srv.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0, handler: () => undefined });
    await raw.call('register', ['1', false]);
    raw.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    raw.callOneWay('storea', [p64(oid), p64(tid), Buffer.from('fifth'), 1]);
    raw.callOneWay('storeBlobStart', []);
    raw.callOneWay('storeBlobChunk', [randomBytes(59000)]);
    await raw.call('ping', []);
    assert.equal(readdirSync(join(dir, 'blobs', 'tmp')).length, 1, 'the upload file exists while the upload runs');
    raw.close();
    await raw.closed;
    await until("the server's cleanup of the dropped upload", () => readdirSync(join(dir, 'blobs', 'tmp')).length === 0);
    // the committed revision and its blob are intact, and a later commit works
    const c = await open(srv, { blobDir: join(dir, 'cache-c') });
    assert.ok(readFileSync(await c.loadBlob(oid, tid)).equals(first));
    assert.equal((await c.load(oid)).tid, tid);
    const next = await commitBlobs(c, [Buffer.from('fourth')], [tid], [oid]);
    assert.equal(readFileSync(await a.loadBlob(oid, next.tid), 'utf8'), 'fourth');
    await c.close();
  } finally {
    await a.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('blob cache size check removes the least recently used blobs (blob-cache-size, blob-cache-size-check)', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const srv = await runzeo(dir, 'M');
  const a = await open(srv, { blobDir: join(dir, 'cache-a') });
  // limit 200000 bytes, check every 50% (100000 bytes loaded): cleanup target 100000 bytes
  const c = await open(srv, { blobDir: join(dir, 'cache-c'), blobCacheSize: 200_000, blobCacheSizeCheck: 50 });
  try {
    assert.equal(c.blobs!.checkBytes, 100_000);
    const contents = [0, 1, 2].map(() => randomBytes(40_000));
    const { oids, tid } = await commitBlobs(a, contents);
    const p0 = await c.loadBlob(oids[0]!, tid);
    const p1 = await c.loadBlob(oids[1]!, tid);
    assert.equal(c.blobs!.sizeCheck, null, 'no check below 100000 bytes loaded');
    // make the order of use explicit: blob 0 least recently used
    const now = Date.now() / 1000;
    utimesSync(p0, now - 100, now - 100);
    utimesSync(p1, now - 50, now - 50);
    const p2 = await c.loadBlob(oids[2]!, tid); // 120000 bytes loaded: check
    await c.blobs!.sizeCheck;
    assert.equal(existsSync(p0), false, 'least recently used blob removed');
    assert.ok(existsSync(p1) && existsSync(p2));
    assert.equal(await c.blobs!.cachedBytes(), 80_000);
    // a removed blob is downloaded again
    assert.ok(readFileSync(await c.loadBlob(oids[0]!, tid)).equals(contents[0]!));
    await c.close();
    const later = Date.now() / 1000;
    utimesSync(p1, later - 100, later - 100);
    utimesSync(p2, later - 50, later - 50);
    utimesSync(p0, later, later);
    // a client opening a cache above its limit checks it at once (as the reference)
    const d = await open(srv, { blobDir: join(dir, 'cache-c'), blobCacheSize: 50_000, blobCacheSizeCheck: 10 });
    try {
      await d.blobs!.sizeCheck;
      assert.equal(await d.blobs!.cachedBytes(), 40_000, 'reduced to at most 45000 bytes');
      assert.ok(existsSync(p0), 'the most recently used blob stays');
    } finally {
      await d.close();
    }
  } finally {
    await a.close();
    await c.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shared-blob-dir: uploads by name (storeBlobShared), reads the server directory directly', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const srv = await runzeo(dir, 'Z');
  // the server creates its blob directory; the shared client uses the same one
  const s = await open(srv, { blobDir: join(dir, 'blobs'), sharedBlobDir: true });
  const b = await open(srv, { blobDir: join(dir, 'cache-b') });
  try {
    const content = randomBytes(150_000);
    const { oids, tid } = await commitBlobs(s, [content]);
    const p = await s.loadBlob(oids[0]!, tid);
    assert.ok(p.startsWith(join(dir, 'blobs')), p);
    assert.ok(readFileSync(p).equals(content));
    assert.equal(s.blobs!.downloadCount, 0);
    assert.ok(readFileSync(await b.loadBlob(oids[0]!, tid)).equals(content));
    await assert.rejects(s.loadBlob(oids[0]!, z64), POSKeyError);
    assert.deepEqual(readdirSync(join(dir, 'blobs', 'tmp')), []);
  } finally {
    await s.close();
    await b.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a blob directory against a storage without blobs: no blob support, storeBlob is Unsupported without closing the connection', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), `<zeo>\n  address 127.0.0.1:0\n</zeo>\n<filestorage 1>\n  path ${join(dir, 'Data.fs')}\n</filestorage>\n`);
  const srv = await startRunzeo(['-C', join(dir, 'zeo.conf')], { cwd: dir });
  const c = await open(srv, { blobDir: join(dir, 'cache') });
  try {
    assert.equal(c.serverSupportsBlobs(), false);
    assert.equal(c.supportsBlobs(), false);
    const txn = new TransactionMetaData();
    await c.tpc_begin(txn);
    const f = join(c.temporaryDirectory(), 'f');
    writeFileSync(f, 'x');
    await assert.rejects(c.storeBlob(await c.new_oid(), z64, Buffer.from('r'), f, txn), /does not support blobs/);
    await c.tpc_abort(txn);
    await assert.rejects(c.loadBlob(1n, 1n), /blob/);
    assert.ok(c.isConnected());
  } finally {
    await c.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('blob settings of <zeoclient> map to client options (operations §4 blob settings, #118)', async () => {
  const { loadClientConfig } = await import('@zeo-ts/config');
  const { storageOptionsFromConfig } = await import('../src/index.ts');
  const z = loadClientConfig('<zeoclient>\n  server 127.0.0.1:8100\n  blob-dir blobs\n  blob-cache-size 1000MB\n  blob-cache-size-check 10\n</zeoclient>\n');
  const o = storageOptionsFromConfig(z.client!);
  assert.equal(o.blobDir, 'blobs');
  assert.equal(o.sharedBlobDir, false);
  assert.equal(o.blobCacheSize, 1048576000);
  assert.equal(o.blobCacheSizeCheck, 10);
  const dir = tempDir();
  const { BlobCache } = await import('../src/index.ts');
  const cache = new BlobCache({ dir: join(dir, 'b'), shared: false, cacheSize: o.blobCacheSize!, cacheSizeCheck: o.blobCacheSizeCheck!, logger });
  assert.equal(cache.checkBytes, 104857600, 'cleanup every 104857600 bytes');
  // a server blob directory is not a blob cache
  writeFileSync(join(dir, 'b', '.layout'), 'bushy');
  assert.throws(() => new BlobCache({ dir: join(dir, 'b'), shared: false, cacheSize: null, cacheSizeCheck: 10, logger }), /layout 'bushy'/);
  const s = loadClientConfig('<zeoclient>\n  server 8100\n  blob-dir /srv/blobs\n  shared-blob-dir true\n</zeoclient>\n');
  assert.equal(storageOptionsFromConfig(s.client!).sharedBlobDir, true);
  rmSync(dir, { recursive: true, force: true });
});
