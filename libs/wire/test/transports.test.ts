// RpcConnection over TLS and Unix-domain sockets (zeo5 §14.1/§14.2), ordered output slots
// (§11.2, S-25) and messages queued before the handshake (§4.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { p64 } from '@zeo-ts/storage';
import { RpcConnection, ordered, pyList, type WireValue, type CallHandler, type RpcConnection as Conn } from '../src/index.ts';
import { quiet, startServer, connectClient } from './net-helpers.ts';

const fx = (f: string) => fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls', f));
const echo: CallHandler = (_m, args) => args;

test('zeo5 §14.2: calls over TLS with a verified client certificate; a client without one is refused', async () => {
  const conns: Conn[] = [];
  const server = tls.createServer({ key: fx('server.key'), cert: fx('server.pem'), ca: fx('ca.pem'), requestCert: true, rejectUnauthorized: true }, (sock) => {
    conns.push(new RpcConnection(sock, { role: 'server', announce: 'Z', handler: echo, logger: quiet }));
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  try {
    const sock = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fx('ca.pem'), cert: fx('client.pem'), key: fx('client.key') });
    const client = new RpcConnection(sock, { role: 'client', logger: quiet });
    assert.deepEqual(await client.call('echo', [p64(1n), 'x']), [p64(1n), 'x']);
    assert.equal(client.letter, 'Z');
    client.close();
    await client.closed;
    // without a client certificate the TLS handshake fails: the call fails, nothing hangs
    const bad = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fx('ca.pem') });
    bad.on('error', () => undefined);
    const c2 = new RpcConnection(bad, { role: 'client', logger: quiet });
    await assert.rejects(c2.call('echo', [1]));
    await c2.closed;
  } finally {
    for (const c of conns) c.abort(new Error('test over'));
    server.close();
  }
});

test('zeo5 §14.1: calls over a Unix-domain socket', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zeo-wire-'));
  const sockPath = path.join(dir, 'zeo.sock');
  const server = net.createServer((s) => new RpcConnection(s, { role: 'server', handler: echo, logger: quiet }));
  server.listen(sockPath);
  await once(server, 'listening');
  try {
    const s = net.connect(sockPath);
    await once(s, 'connect');
    const client = new RpcConnection(s, { role: 'client', logger: quiet, label: sockPath });
    assert.deepEqual(await client.call('echo', [1, 'a']), [1, 'a']);
    client.close();
    await client.closed;
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('zeo5 §11.2 S-25: an ordered() reply keeps its output position; invalidations written meanwhile wait behind it', async () => {
  let release!: (v: WireValue) => void;
  const handler: CallHandler = (method, args, call) => {
    if (method === 'loadBefore') {
      const p = new Promise<WireValue>((res) => { release = res; });
      // while the load is "reading", another transaction commits: its invalidation is sent now
      setImmediate(() => {
        call.connection.callOneWay('invalidateTransaction', [p64(2n), pyList([p64(1n)])]);
        release([Buffer.from('old'), p64(1n), null]);
      });
      return ordered(p);
    }
    return args;
  };
  const srv = await startServer({ handler });
  try {
    const seen: string[] = [];
    const client = await connectClient(srv.port, { handler: (m) => { seen.push(m); } });
    await client.call('loadBefore', [p64(1n), p64(0x7fffffffffffffffn)], { onReply: () => seen.push('reply') });
    await client.call('ping', []); // the invalidation has arrived by now
    assert.deepEqual(seen, ['reply', 'invalidateTransaction']);
    client.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 §11.2: reserveOutput holds later frames until filled, in order; cancel releases', async () => {
  const srv = await startServer({ handler: echo });
  try {
    const seen: string[] = [];
    const client = await connectClient(srv.port, { handler: (m, a) => { seen.push(`${m}:${String(a[0])}`); } });
    await client.call('ping', []);
    const sconn = await srv.nextConn();
    const s1 = sconn.reserveOutput();
    const s2 = sconn.reserveOutput();
    sconn.callOneWay('info', ['after-both']);
    s2.send({ msgid: 0, flags: true, method: 'info', args: ['s2'] });
    s1.cancel();
    assert.throws(() => s1.cancel());
    await client.call('ping', []);
    assert.deepEqual(seen, ['info:s2', 'info:after-both']);
    assert.equal(sconn.outgoingBytes >= 0, true);
    client.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 §4.2 C-2: messages queued before the handshake follow the client answer in order', async () => {
  const got: string[] = [];
  const srv = await startServer({ handler: (m, args) => { got.push(m); return args; } });
  try {
    const s = net.connect(srv.port, '127.0.0.1');
    const client = new RpcConnection(s, { role: 'client', logger: quiet });
    const r = client.call('register', ['1', false]);
    client.callOneWay('set_client_label', ['x']);
    const i = client.call('get_info', []);
    assert.deepEqual(await r, ['1', false]);
    await i;
    assert.deepEqual(got, ['register', 'set_client_label', 'get_info']);
    client.close();
  } finally {
    await srv.close();
  }
});
