// The server over real sockets (127.0.0.1, port 0; a Unix socket; TLS with openssl-made
// certificates), with @zeo-ts/wire's RpcConnection as the client, in both encodings.
// Checklist: zeo5-protocol S-1, S-2, S-3, S-9, S-17, S-23, S-24, S-27, S-28, S-38; operations #79, #84.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MappingStorage } from '@zeo-ts/storage';
import { RpcConnection, FrameDecoder, type WireValue, type EncodingLetter } from '@zeo-ts/wire';
import { StorageServer, serve, type Listener } from '../src/index.ts';
import { rec } from './helpers.ts';

const Z64 = Buffer.alloc(8);
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');

interface Client {
  conn: RpcConnection;
  invalidations: Array<[Buffer, Buffer[]]>;
  infos: unknown[];
}

function client(connect: () => net.Socket): Client {
  const c: Client = { conn: null as unknown as RpcConnection, invalidations: [], infos: [] };
  c.conn = new RpcConnection(connect(), {
    role: 'client',
    heartbeatInterval: 0,
    handler: (method, args) => {
      if (method === 'invalidateTransaction') c.invalidations.push([args[0] as Buffer, args[1] as Buffer[]]);
      else if (method === 'info') c.infos.push(args[0]);
    },
  });
  return c;
}

async function start(opts: ConstructorParameters<typeof StorageServer>[1] = {}, announce: EncodingLetter = 'M') {
  const server = new StorageServer({ '1': new MappingStorage() }, opts);
  const listener = await serve(server, { address: { host: '127.0.0.1', port: 0 }, announce });
  const port = (listener.address as { port: number }).port;
  const connect = () => net.connect(port, '127.0.0.1');
  const stop = async () => {
    await listener.close();
    await server.close();
  };
  return { server, listener, port, connect, stop };
}

async function commit(c: Client, txnid: number, stores: Array<[Buffer, Buffer, Buffer]>): Promise<WireValue> {
  c.conn.callOneWay('tpc_begin', [txnid, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  for (const [oid, serial, data] of stores) c.conn.callOneWay('storea', [oid, serial, data, txnid]);
  const v = (await c.conn.call('vote', [txnid])) as unknown[];
  assert.ok(v.every((x) => Buffer.isBuffer(x)), 'no conflicts');
  return c.conn.call('tpc_finish', [txnid]);
}

for (const letter of ['M', 'Z'] as const) {
  test(`${letter}5: handshake, commit, invalidation to the other client only, info before the reply (S-1, S-2, S-23)`, async () => {
    const s = await start({}, letter);
    // S-1: exactly the announcement first
    const raw = net.connect(s.port, '127.0.0.1');
    const first = await new Promise<Buffer>((res) => {
      const d = new FrameDecoder();
      raw.on('data', (b: Buffer) => {
        const f = d.push(b);
        if (f.length) res(f[0]!);
      });
    });
    assert.equal(first.toString(), `${letter}5`);
    raw.destroy();
    const a = client(s.connect);
    const b = client(s.connect);
    assert.equal(await a.conn.ready, letter);
    assert.deepEqual(await a.conn.call('register', ['1', false]), Z64);
    await b.conn.call('register', ['1', false]);
    const tid = (await commit(a, 1, [[Z64, Z64, rec(1)]])) as Buffer;
    assert.equal(a.infos.length, 1, 'info arrived before the tpc_finish reply');
    assert.equal(a.invalidations.length, 0);
    await b.conn.call('ping', []);
    assert.deepEqual(b.invalidations, [[tid, [Z64]]]);
    assert.deepEqual(await b.conn.call('loadBefore', [Z64, MAXTID], { msgid: [Z64, MAXTID] }), [rec(1), tid, null]);
    a.conn.close();
    b.conn.close();
    await s.stop();
  });
}

test('ruok probe: announcement, one JSON frame, close; counts nothing (S-3, #79, #84)', async () => {
  const s = await start();
  const sock = net.connect(s.port, '127.0.0.1');
  sock.write(Buffer.from('0000000472756f6b', 'hex'));
  const frames: Buffer[] = [];
  const d = new FrameDecoder();
  sock.on('data', (b: Buffer) => frames.push(...d.push(b)));
  await new Promise((r) => sock.on('close', r));
  assert.equal(frames.length, 2);
  assert.equal(frames[0]!.toString(), 'M5');
  const st = JSON.parse(frames[1]!.toString('ascii'));
  assert.deepEqual(Object.keys(st), ['1']);
  assert.equal(st['1'].connections, 0);
  assert.equal(st['1']['last-transaction'], '0000000000000000');
  await s.stop();
});

test('bad handshake and garbage close only that connection; others keep working (S-2, S-9)', { timeout: 10000 }, async () => {
  const s = await start();
  const good = client(s.connect);
  await good.conn.call('register', ['1', false]);
  // bad handshake
  const bad = net.connect(s.port, '127.0.0.1');
  bad.on('error', () => undefined);
  bad.resume();
  bad.write(Buffer.from('000000025a34', 'hex'));
  await new Promise((r) => bad.on('close', r));
  // a registered client that then sends an undecodable message
  const g = client(s.connect);
  await g.conn.call('register', ['1', false]);
  const sock = g.conn.socket;
  sock.write(Buffer.from('00000005ffffffffff', 'hex'));
  await g.conn.closed;
  // an oversized frame header
  const big = net.connect(s.port, '127.0.0.1');
  big.on('error', () => undefined);
  big.resume();
  big.write(Buffer.from('000000024d35ffffffff', 'hex'));
  await new Promise((r) => big.on('close', r));
  // random bytes after a valid handshake
  for (let i = 0; i < 5; i++) {
    const r = net.connect(s.port, '127.0.0.1');
    r.on('error', () => undefined);
    r.resume();
    const junk = Buffer.alloc(64);
    for (let k = 0; k < junk.length; k++) junk[k] = (k * 37 + i * 11) & 0xff;
    r.write(Buffer.concat([Buffer.from('000000024d35', 'hex'), Buffer.from([0, 0, 0, 60]), junk.subarray(0, 60)]));
    await new Promise((res) => r.on('close', res));
  }
  // the good client is unaffected
  const tid = await commit(good, 7, [[Z64, Z64, rec(2)]]);
  assert.ok(Buffer.isBuffer(tid));
  assert.equal(s.server.ruok()['1']!.connections, 1);
  good.conn.close();
  await s.stop();
});

test('disconnect while holding the lock frees it for a queued voter (S-27)', async () => {
  const s = await start();
  const a = client(s.connect);
  const b = client(s.connect);
  await a.conn.call('register', ['1', false]);
  await b.conn.call('register', ['1', false]);
  a.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  a.conn.callOneWay('storea', [Z64, Z64, rec(1), 1]);
  await a.conn.call('vote', [1]);
  b.conn.callOneWay('tpc_begin', [2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  b.conn.callOneWay('storea', [Z64, Z64, rec(2), 2]);
  const bVote = b.conn.call('vote', [2]);
  await b.conn.call('ping', []); // b's vote is queued behind a's lock
  a.conn.socket.destroy();
  assert.deepEqual(await bVote, []);
  const tid = await b.conn.call('tpc_finish', [2]);
  assert.deepEqual(await b.conn.call('loadBefore', [Z64, MAXTID]), [rec(2), tid, null]);
  assert.equal(s.server.ruok()['1']!.aborts, 1);
  b.conn.close();
  await s.stop();
});

test('transaction timeout disconnects the lock holder; the next voter commits (S-28)', async () => {
  const s = await start({ transaction_timeout: 0.2 });
  const a = client(s.connect);
  const b = client(s.connect);
  await a.conn.call('register', ['1', false]);
  await b.conn.call('register', ['1', false]);
  a.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  a.conn.callOneWay('storea', [Z64, Z64, rec(1), 1]);
  await a.conn.call('vote', [1]);
  b.conn.callOneWay('tpc_begin', [2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  b.conn.callOneWay('storea', [Z64, Z64, rec(2), 2]);
  const bVote = b.conn.call('vote', [2]);
  await a.conn.closed; // the server closed the holder
  await assert.rejects(a.conn.call('tpc_finish', [1]));
  assert.deepEqual(await bVote, []);
  await b.conn.call('tpc_finish', [2]);
  b.conn.close();
  await s.stop();
});

test('counter workload over sockets: 5 clients x 8 increments, conflicts resolved by clients, no lost update; invalidations ordered (S-17, S-19, S-24)', async () => {
  const s = await start({ client_conflict_resolution: true });
  const clients = Array.from({ length: 5 }, () => client(s.connect));
  for (const c of clients) await c.conn.call('register', ['1', false]);
  await commit(clients[0]!, 1, [[Z64, Z64, rec(0)]]);
  let conflicts = 0;
  let txnid = 100;
  const value = (r: Buffer) => r.readUInt8(r.length - 2); // K n STOP (n < 256)
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 8; i++) {
        const [data, serial] = (await c.conn.call('loadBefore', [Z64, MAXTID])) as [Buffer, Buffer];
        const id = txnid++;
        c.conn.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
        c.conn.callOneWay('storea', [Z64, serial, rec(value(data) + 1), id]);
        for (let round = 0; ; round++) {
          assert.ok(round < 200, 'bounded retries');
          const v = (await c.conn.call('vote', [id])) as Array<Buffer | { serials: [Buffer, Buffer]; data: Buffer }>;
          if (v.every((x) => Buffer.isBuffer(x))) break;
          conflicts++;
          const m = v[0] as { serials: [Buffer, Buffer]; data: Buffer };
          const committed = value((await c.conn.call('loadSerial', [Z64, m.serials[0]])) as Buffer);
          const old = value((await c.conn.call('loadSerial', [Z64, m.serials[1]])) as Buffer);
          c.conn.callOneWay('storea', [Z64, m.serials[0], rec(committed + value(m.data) - old), id]);
        }
        await c.conn.call('tpc_finish', [id]);
      }
    }),
  );
  const [data] = (await clients[0]!.conn.call('loadBefore', [Z64, MAXTID])) as [Buffer];
  assert.equal(value(data), 40);
  assert.ok(conflicts > 0);
  for (const c of clients) {
    await c.conn.call('ping', []);
    const tids = c.invalidations.map(([t]) => t.readBigUInt64BE(0));
    for (let i = 1; i < tids.length; i++) assert.ok(tids[i]! > tids[i - 1]!, 'strictly increasing');
    c.conn.close();
  }
  await s.stop();
});

test('Unix-domain socket listener; the socket file is removed at close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-unix-'));
  const path = join(dir, 'zeo.sock');
  const server = new StorageServer({ '1': new MappingStorage() });
  const listener: Listener = await serve(server, { address: { path }, announce: 'Z' });
  const c = client(() => net.connect(path));
  assert.equal(await c.conn.ready, 'Z');
  assert.deepEqual(await c.conn.call('register', ['1', false]), Z64);
  c.conn.close();
  await listener.close();
  await server.close();
  assert.throws(() => readFileSync(path));
});

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

test('TLS with client certificates: a certified client works, one without a certificate is refused (S-38)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-tls-'));
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(join(dir, 'srv.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  writeFileSync(join(dir, 'cli.ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=zeo-ts test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  for (const who of ['srv', 'cli']) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'srv' ? 'localhost' : 'client'}`], dir);
    openssl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2', '-extfile', `${who}.ext`], dir);
  }
  const server = new StorageServer({ '1': new MappingStorage() });
  const listener = await serve(server, {
    address: { host: '127.0.0.1', port: 0 },
    announce: 'M',
    tls: { cert: join(dir, 'srv.pem'), key: join(dir, 'srv.key'), authenticate: join(dir, 'ca.pem') },
  });
  const port = (listener.address as { port: number }).port;
  const ca = readFileSync(join(dir, 'ca.pem'));
  const ok = client(() =>
    tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: readFileSync(join(dir, 'cli.pem')), key: readFileSync(join(dir, 'cli.key')) }),
  );
  assert.deepEqual(await ok.conn.call('register', ['1', false]), Z64);
  ok.conn.close();
  // no client certificate: the server refuses the TLS handshake
  const refused = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca });
  const outcome = await new Promise<string>((res) => {
    refused.on('data', () => res('data'));
    refused.on('error', () => res('error'));
    refused.on('close', () => res('closed'));
  });
  assert.notEqual(outcome, 'data');
  refused.destroy();
  // plaintext client gets nothing
  const plain = net.connect(port, '127.0.0.1');
  plain.on('error', () => undefined);
  plain.write(Buffer.from('000000024d35', 'hex'));
  const got = await new Promise<string>((res) => {
    plain.on('data', (d: Buffer) => res(d.subarray(0, 6).toString('hex')));
    plain.on('close', () => res('closed'));
  });
  assert.notEqual(got, '000000024d35');
  plain.destroy();
  await listener.close();
  await server.close();
});

test('bounded: a client pipelining 5000 loads with max_backlog 50 gets every reply in order; an oversized transaction closes its connection', async () => {
  const s = await start({ max_backlog: 50, max_transaction_bytes: 1000 });
  const c = client(s.connect);
  await c.conn.call('register', ['1', false]);
  const tid = (await commit(c, 1, [[Z64, Z64, rec(3)]])) as Buffer;
  const replies = await Promise.all(Array.from({ length: 5000 }, (_, i) => c.conn.call('loadBefore', [Z64, MAXTID], { msgid: i + 1000 })));
  assert.equal(replies.length, 5000);
  for (const r of replies) assert.deepEqual(r, [rec(3), tid, null]);
  c.conn.callOneWay('tpc_begin', [2, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  c.conn.callOneWay('storea', [Z64, tid, Buffer.alloc(2000), 2]);
  await c.conn.closed;
  assert.equal(s.server.ruok()['1']!.active_txns, 0);
  await s.stop();
});
