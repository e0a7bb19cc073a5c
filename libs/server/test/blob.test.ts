// Blob methods of the server over real sockets (127.0.0.1, port 0) with @zeo-ts/wire's
// RpcConnection as the client, in both encodings, against a blob storage (DirBlobStorage: a
// MappingStorage with a ZODB 'bushy' blob directory).
// Checklist: zeo5-protocol S-9, S-27, S-31, S-32, S-33, S-34 (§8.4, §9, §13).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MappingStorage, POSKeyError, u64, type IStorage } from '@zeo-ts/storage';
import { RpcConnection, getWireState, type EncodingLetter, type WireValue } from '@zeo-ts/wire';
import { StorageServer, serve } from '../src/index.ts';
import { DirBlobStorage } from '../src/testing/index.ts';
import { TestClient } from './helpers.ts';

const Z64 = Buffer.alloc(8);

interface Client {
  conn: RpcConnection;
  /** every server→client one-way call, in arrival order, with the reply events interleaved */
  events: Array<{ name: string; args: WireValue[] }>;
}

function client(port: number): Client {
  const c: Client = { conn: null as unknown as RpcConnection, events: [] };
  c.conn = new RpcConnection(net.connect(port, '127.0.0.1'), {
    role: 'client',
    heartbeatInterval: 0,
    handler: (method, args) => {
      c.events.push({ name: method, args });
    },
  });
  return c;
}

async function start(storage: IStorage, announce: EncodingLetter) {
  const server = new StorageServer({ '1': storage });
  const listener = await serve(server, { address: { host: '127.0.0.1', port: 0 }, announce });
  const port = (listener.address as { port: number }).port;
  return {
    server,
    port,
    stop: async () => {
      await listener.close();
      await server.close();
    },
  };
}

function oidB(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(n, 4);
  return b;
}

/** the reference client's upload: storea, then storeBlobStart, chunks of ≤ 59000 bytes, storeBlobEnd (C-15) */
function sendBlobUpload(c: Client, txnid: number, oid: Buffer, serial: Buffer, data: Buffer, content: Buffer): void {
  c.conn.callOneWay('storea', [oid, serial, data, txnid]);
  c.conn.callOneWay('storeBlobStart', []);
  for (let off = 0; off < content.length; off += 59000) c.conn.callOneWay('storeBlobChunk', [content.subarray(off, off + 59000)]);
  c.conn.callOneWay('storeBlobEnd', [oid, serial, data, txnid]);
}

/** sendBlob: the stream before the reply; returns the content and the chunk sizes */
async function download(c: Client, oid: Buffer, serial: Buffer): Promise<{ content: Buffer; chunks: number[] }> {
  const from = c.events.length;
  await c.conn.call('sendBlob', [oid, serial]);
  const ev = c.events.slice(from).filter((e) => e.name.startsWith('receiveBlob'));
  assert.equal(ev[0]?.name, 'receiveBlobStart');
  assert.equal(ev[ev.length - 1]?.name, 'receiveBlobStop', 'the stop arrives before the reply (S-32)');
  const chunks = ev.slice(1, -1);
  for (const ch of chunks) {
    assert.equal(ch.name, 'receiveBlobChunk');
    assert.deepEqual(Buffer.from(ch.args[0] as Buffer), oid);
    assert.deepEqual(Buffer.from(ch.args[1] as Buffer), serial);
  }
  return { content: Buffer.concat(chunks.map((ch) => Buffer.from(ch.args[2] as Buffer))), chunks: chunks.map((ch) => (ch.args[2] as Buffer).length) };
}

/** bounded wait for a condition the server reaches asynchronously (connection cleanup) */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const SIZES = [0, 1, 58999, 59000, 59001, 3 * 1024 * 1024 + 17];

for (const letter of ['M', 'Z'] as const) {
  test(`${letter}5: blobs of ${SIZES.join(', ')} bytes upload with storea + storeBlob* and stream back with sendBlob (S-31, S-32, S-33)`, { timeout: 60000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-blob-'));
    const storage = new DirBlobStorage(join(dir, 'blobs'));
    const srv = await start(storage, letter);
    const c = client(srv.port);
    const d = client(srv.port);
    try {
      await c.conn.call('register', ['1', false]);
      await d.conn.call('register', ['1', false]);
      const info = (await c.conn.call('get_info', [])) as Record<string, WireValue>;
      const ifaces = (info['interfaces'] as WireValue[]).map((p) => (p as WireValue[]).join('.'));
      assert.deepEqual(ifaces.slice(0, 2), ['ZODB.interfaces.IBlobStorageRestoreable', 'ZODB.interfaces.IBlobStorage'], '§13 order');
      const contents = SIZES.map((n) => randomBytes(n));
      const oids = SIZES.map((_, i) => oidB(i + 1));
      c.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      for (let i = 0; i < SIZES.length; i++) sendBlobUpload(c, 1, oids[i]!, Z64, Buffer.from(`record ${i}`), contents[i]!);
      assert.deepEqual(await c.conn.call('vote', [1]), []);
      const tid = Buffer.from((await c.conn.call('tpc_finish', [1])) as Buffer);
      // the other client sees the blob oids invalidated (duplicates allowed, §9)
      await d.conn.call('ping', []);
      const inv = d.events.find((e) => e.name === 'invalidateTransaction');
      assert.ok(inv);
      for (const o of oids) assert.ok((inv.args[1] as Buffer[]).some((x) => Buffer.from(x).equals(o)));
      for (let i = 0; i < SIZES.length; i++) {
        const got = await download(d, oids[i]!, tid);
        assert.ok(got.content.equals(contents[i]!), `blob ${SIZES[i]} bytes round-trips`);
        assert.ok(got.chunks.every((n) => n > 0 && n <= 59000));
        assert.equal(got.chunks.length, Math.ceil(SIZES[i]! / 59000));
        // the committed file is the storage's
        assert.ok(readFileSync(storage.blobFilename(u64(oids[i]!), u64(tid))).equals(contents[i]!));
        // the record itself is the one stored with the blob
        const r = (await d.conn.call('loadBefore', [oids[i]!, Buffer.from('7fffffffffffffff', 'hex')])) as WireValue[];
        assert.equal(Buffer.from(r[0] as Buffer).toString(), `record ${i}`);
      }
      // no upload file left behind
      assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
      // missing blob: POSKeyError (message, oid, serial), no stream (S-32)
      const before = d.events.length;
      await assert.rejects(d.conn.call('sendBlob', [oidB(99), tid]), (e: Error) => {
        assert.ok(e instanceof POSKeyError, String(e));
        const st = getWireState(e) as WireValue[];
        assert.equal(st.length, 3, 'args (message, oid, serial) as the reference (§6.4)');
        assert.deepEqual(Buffer.from(st[1] as Buffer), oidB(99));
        assert.deepEqual(Buffer.from(st[2] as Buffer), tid);
        return true;
      });
      await assert.rejects(d.conn.call('sendBlob', [oids[0]!, Z64]), /POSKeyError|No blob/);
      assert.equal(d.events.slice(before).filter((e) => e.name.startsWith('receiveBlob')).length, 0);
      // loads after a stream still work on the same connection
      assert.equal(await d.conn.call('ping', []), null);
    } finally {
      c.conn.close();
      d.conn.close();
      await srv.stop();
    }
  });
}

test('abort and disconnect in the middle of an upload leave no temporary file and lose nothing committed (S-27)', { timeout: 30000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-blob-'));
  const storage = new DirBlobStorage(join(dir, 'blobs'));
  const srv = await start(storage, 'M');
  const entry = srv.server.storages.get('1')!;
  const c = client(srv.port);
  try {
    await c.conn.call('register', ['1', false]);
    const committed = randomBytes(70000);
    c.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    sendBlobUpload(c, 1, oidB(1), Z64, Buffer.from('r'), committed);
    await c.conn.call('vote', [1]);
    const tid = Buffer.from((await c.conn.call('tpc_finish', [1])) as Buffer);
    // abort with an upload half done, and with a finished upload not voted
    c.conn.callOneWay('tpc_begin', [2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    sendBlobUpload(c, 2, oidB(1), tid, Buffer.from('r2'), randomBytes(100000));
    c.conn.callOneWay('storeBlobStart', []);
    c.conn.callOneWay('storeBlobChunk', [randomBytes(1000)]);
    await c.conn.call('ping', []);
    assert.equal(readdirSync(storage.temporaryDirectory()).length, 2, 'one finished and one open upload');
    await c.conn.call('tpc_abort', [2]);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
    // a ccr conflict round keeps the blob until the transaction ends; the abort then removes it
    const other = client(srv.port);
    await other.conn.call('register', ['1', false]);
    other.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    other.conn.callOneWay('storea', [oidB(1), tid, Buffer.from('other'), 1]);
    await other.conn.call('vote', [1]);
    const tid2 = Buffer.from((await other.conn.call('tpc_finish', [1])) as Buffer);
    c.conn.callOneWay('tpc_begin', [3, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    sendBlobUpload(c, 3, oidB(1), tid, Buffer.from('r3'), randomBytes(10));
    const v = (await c.conn.call('vote', [3])) as Array<Record<string, WireValue>>;
    assert.equal(v.length, 1);
    assert.deepEqual(Buffer.from(v[0]!['oid'] as Buffer), oidB(1));
    assert.equal(readdirSync(storage.temporaryDirectory()).length, 1, 'the upload survives the conflict round');
    await c.conn.call('tpc_abort', [3]);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
    other.conn.close();
    // disconnect in the middle of an upload
    c.conn.callOneWay('tpc_begin', [4, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    sendBlobUpload(c, 4, oidB(1), tid2, Buffer.from('r4'), randomBytes(5000));
    c.conn.callOneWay('storeBlobStart', []);
    c.conn.callOneWay('storeBlobChunk', [randomBytes(59000)]);
    await c.conn.call('ping', []);
    assert.equal(readdirSync(storage.temporaryDirectory()).length, 2);
    c.conn.close();
    await until('the session cleanup', () => entry.sessions.size === 0 && entry.stats.active_txns === 0);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
    // what was committed is intact
    const d = client(srv.port);
    await d.conn.call('register', ['1', true]);
    assert.ok((await download(d, oidB(1), tid)).content.equals(committed));
    d.conn.close();
  } finally {
    c.conn.close();
    await srv.stop();
  }
});

test('protocol violations around blobs close the connection and remove the upload (S-9, S-34)', { timeout: 30000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-blob-'));
  const storage = new DirBlobStorage(join(dir, 'blobs'));
  const srv = await start(storage, 'Z');
  const entry = srv.server.storages.get('1')!;
  try {
    // nested storeBlobStart
    const a = client(srv.port);
    await a.conn.call('register', ['1', false]);
    a.conn.callOneWay('storeBlobStart', []);
    a.conn.callOneWay('storeBlobChunk', [Buffer.from('x')]);
    a.conn.callOneWay('storeBlobStart', []);
    await a.conn.closed;
    await until('the session cleanup', () => entry.sessions.size === 0);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
    // storeBlobEnd without a transaction
    const b = client(srv.port);
    await b.conn.call('register', ['1', false]);
    b.conn.callOneWay('storeBlobStart', []);
    b.conn.callOneWay('storeBlobEnd', [oidB(1), Z64, Buffer.from('r'), 7]);
    await b.conn.closed;
    await until('the session cleanup', () => entry.sessions.size === 0);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
    // storeBlobShared with bad names (S-34)
    for (const bad of ['../x.tmp', 'a/b.tmp', 'blob.dat', 'x.tmpab']) {
      const c = client(srv.port);
      await c.conn.call('register', ['1', false]);
      c.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      c.conn.callOneWay('storeBlobShared', [oidB(1), Z64, Buffer.from('r'), bad, 1]);
      await c.conn.closed;
    }
    // storeBlobShared with a file in the oid's directory of the shared (bushy) blob directory
    const s = client(srv.port);
    await s.conn.call('register', ['1', false]);
    const oidDir = storage.blobs.oidPath(5n);
    mkdirSync(oidDir, { recursive: true });
    writeFileSync(join(oidDir, '0x00abc.tmp-'), 'shared content');
    s.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    s.conn.callOneWay('storea', [oidB(5), Z64, Buffer.from('r'), 1]);
    s.conn.callOneWay('storeBlobShared', [oidB(5), Z64, Buffer.from('r'), '0x00abc.tmp-', 1]);
    await s.conn.call('vote', [1]);
    const tid = Buffer.from((await s.conn.call('tpc_finish', [1])) as Buffer);
    assert.equal(readFileSync(storage.blobFilename(5n, u64(tid)), 'utf8'), 'shared content');
    assert.equal(existsSync(join(oidDir, '0x00abc.tmp-')), false, 'the shared temporary file was taken');
    assert.equal((await download(s, oidB(5), tid)).content.toString(), 'shared content');
    s.conn.close();
  } finally {
    await srv.stop();
  }
});

test('an upload beyond max_blob_bytes closes the connection and removes its file', { timeout: 30000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-blob-'));
  const storage = new DirBlobStorage(join(dir, 'blobs'));
  const server = new StorageServer({ '1': storage }, { max_blob_bytes: 100_000 });
  const listener = await serve(server, { address: { host: '127.0.0.1', port: 0 }, announce: 'M' });
  const entry = server.storages.get('1')!;
  try {
    const c = client((listener.address as { port: number }).port);
    await c.conn.call('register', ['1', false]);
    c.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    c.conn.callOneWay('storeBlobStart', []);
    c.conn.callOneWay('storeBlobChunk', [randomBytes(59000)]);
    c.conn.callOneWay('storeBlobChunk', [randomBytes(59000)]);
    await c.conn.closed;
    await until('the session cleanup', () => entry.sessions.size === 0 && entry.stats.active_txns === 0);
    assert.deepEqual(readdirSync(storage.temporaryDirectory()), []);
  } finally {
    await listener.close();
    await server.close();
  }
});

test('a storage without blobs: not advertised, sendBlob is a StorageError, uploads close the connection', { timeout: 30000 }, async () => {
  const srv = await start(new MappingStorage(), 'M');
  try {
    const c = client(srv.port);
    await c.conn.call('register', ['1', false]);
    const info = (await c.conn.call('get_info', [])) as Record<string, WireValue>;
    const ifaces = (info['interfaces'] as WireValue[]).map((p) => (p as WireValue[]).join('.'));
    assert.ok(!ifaces.some((x) => /Blob/.test(x)));
    await assert.rejects(c.conn.call('sendBlob', [oidB(1), Z64]), /StorageError|no blob directory/);
    c.conn.callOneWay('storeBlobStart', []);
    await c.conn.closed;
  } finally {
    await srv.stop();
  }
});

/** A channel whose transport is always backed up until the test lets one drain through. */
class SlowClient extends TestClient {
  writable = false;
  private drains: Array<() => void> = [];
  private onWait: (() => void) | null = null;
  waitDrain(): Promise<void> {
    return new Promise<void>((r) => {
      this.drains.push(r);
      this.onWait?.();
    });
  }
  nextWait(): Promise<void> {
    if (this.drains.length > 0) return Promise.resolve();
    return new Promise<void>((r) => {
      this.onWait = () => {
        this.onWait = null;
        r();
      };
    });
  }
  release(): void {
    this.drains.shift()!();
  }
}

test('sendBlob reads the next chunk only once the transport drained, and later replies wait behind the stream (S-32, back-pressure)', { timeout: 30000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-blob-'));
  const storage = new DirBlobStorage(join(dir, 'blobs'));
  const server = new StorageServer({ '1': storage });
  try {
    const w = new TestClient(server);
    await w.rpc('register', '1', false);
    const content = randomBytes(40 * 59000 + 10); // 41 chunks: read 16 at a time
    w.oneway('tpc_begin', 1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ');
    w.oneway('storea', oidB(1), Z64, Buffer.from('r'), 1);
    w.oneway('storeBlobStart');
    w.oneway('storeBlobChunk', content);
    w.oneway('storeBlobEnd', oidB(1), Z64, Buffer.from('r'), 1);
    await w.rpc('vote', 1);
    const tid = (await w.rpc('tpc_finish', 1)) as Buffer;

    const c = new SlowClient(server);
    await c.rpc('register', '1', true);
    let blobDone = false;
    const sent = c.rpc('sendBlob', oidB(1), tid).then(() => (blobDone = true));
    let pingDone = false;
    const ping = c.rpc('ping').then(() => {
      assert.ok(blobDone, 'the ping reply comes after the stream and its reply');
      pingDone = true;
    });
    const chunks = () => c.out.filter((o) => o.kind === 'call' && o.name === 'receiveBlobChunk').length;
    for (let i = 1; i <= 3; i++) {
      await c.nextWait();
      assert.equal(chunks(), Math.min(16 * i, 41), `one read's chunks written while the transport is backed up (round ${i})`);
      assert.equal(blobDone || pingDone, false);
      c.release();
    }
    await sent;
    await ping;
    const names = c.out.filter((o) => o.kind === 'call').map((o) => (o as { name: string }).name);
    assert.deepEqual(names, ['receiveBlobStart', ...Array(41).fill('receiveBlobChunk'), 'receiveBlobStop']);
    const got = Buffer.concat(c.out.filter((o) => o.kind === 'call' && o.name === 'receiveBlobChunk').map((o) => (o as { args: unknown[] }).args[2] as Buffer));
    assert.ok(got.equals(content));
  } finally {
    await server.close();
  }
});
