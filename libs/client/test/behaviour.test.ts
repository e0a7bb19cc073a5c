/**
 * ClientStorage against real runzeo child processes: restart with a persistent cache,
 * invalidations, read-only fallback, client conflict resolution, TLS, damaged cache files.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { ClientDisconnected, ConflictError, ReadOnlyError, TransactionMetaData, maxtid, z64, type Oid, type Tid } from '@zeo-ts/storage';
import { commit, makeRecord } from '@zeo-ts/storage/testing';
import { FileStorage } from '@zeo-ts/filestorage';
import { ClientCache } from '@zeo-ts/client-cache';
import { ClientStorage, openClientFromConfig, type ClientStorageOptions } from '../src/index.ts';
import { startRunzeo, tempDir, type RunzeoProcess } from '../src/testing.ts';
import { captureLogs, connectionState, freePort, makeCertificates } from './helpers.ts';

const silent = pino({ level: 'silent' });
const rec = (v: string) => makeRecord({ value: v });
const fast: Partial<ClientStorageOptions> = { minDisconnectPoll: 0.05, maxDisconnectPoll: 0.3, registrationRetry: 0.3, logger: silent, waitTimeout: 20 };

const cleanups: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function server(dir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunzeoProcess> {
  const s = await startRunzeo(args, { cwd: dir, env });
  cleanups.push(() => s.stop());
  return s;
}

async function client(opts: ClientStorageOptions): Promise<ClientStorage> {
  const c = await ClientStorage.open({ ...fast, ...opts });
  cleanups.push(() => c.close());
  return c;
}

describe('ClientStorage behaviour against runzeo', () => {
  test('server restart while the client holds a persistent cache: reads from cache while down, writes fail ClientDisconnected, verification after restart drops changed oids; no stale read (zeo5 C-3, C-12; client-cache §13 #28, #29)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const fs = join(dir, 'Data.fs');
    let srv = await server(dir, ['-a', '127.0.0.1:0', '-f', fs]);
    const port = srv.port;
    const c = await client({ addresses: [{ host: '127.0.0.1', port }], cachePath: join(dir, 'c.zec') });
    const t1 = await commit(c, [{ oid: z64, serial: z64, data: rec('root') }, { oid: 1n, serial: z64, data: rec('one') }, { oid: 2n, serial: z64, data: rec('two') }]);
    assert.equal(c.lastTransaction(), t1);
    assert.deepEqual(await c.load(1n), { data: rec('one'), tid: t1 }, 'cached by the commit (C-10)');
    const down = connectionState(c, false);
    await srv.stop();
    await down;
    // disconnected: cache hits still answer, writes fail at once
    assert.deepEqual(await c.load(2n), { data: rec('two'), tid: t1 });
    await assert.rejects(c.tpc_begin(new TransactionMetaData()), ClientDisconnected);
    // change oid 1 behind the client's back, then restart on the same port
    const direct = await FileStorage.open(fs);
    const t2 = await commit(direct, [{ oid: 1n, serial: t1, data: rec('one changed offline') }]);
    await direct.close();
    const seen: Array<[Tid, Oid[]]> = [];
    c.onCommit((tid, oids) => seen.push([tid, oids]));
    const up = connectionState(c, true);
    srv = await server(dir, ['-a', `127.0.0.1:${port}`, '-f', fs]);
    await up;
    assert.equal(c.lastTransaction(), t2, 'last tid follows the server after quick verification');
    assert.deepEqual(seen.map(([t, o]) => [t, o]), [[t2, [1n]]], 'quick verification reported the missed oids');
    assert.deepEqual(await c.load(1n), { data: rec('one changed offline'), tid: t2 }, 'no stale read after reconnect');
    assert.deepEqual(await c.load(2n), { data: rec('two'), tid: t1 }, 'unchanged objects stay cached');
    const t3 = await commit(c, [{ oid: 2n, serial: t1, data: rec('two again') }]);
    assert.ok(t3 > t2);
    await c.close();
    // reopen with the same persistent cache: equal tids, nothing to verify, served from cache
    const c2 = await client({ addresses: [{ host: '127.0.0.1', port }], cachePath: join(dir, 'c.zec') });
    assert.equal(c2.lastTransaction(), t3);
    assert.ok(c2.cache.load(2n), 'the persistent cache kept oid 2');
    assert.deepEqual(await c2.load(2n), { data: rec('two again'), tid: t3 });
  });

  test('invalidations from a second client: onCommit, cache invalidated at tid, last tid advances, loadBefore of the old revision (zeo5 C-11; client-cache §13 #29)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = await server(dir, ['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')], { ZEO_MSGPACK: '1' });
    const a = await client({ addresses: [srv.port] });
    const b = await client({ addresses: [srv.port] });
    const t1 = await commit(a, [{ oid: z64, serial: z64, data: rec('r1') }]);
    await b.sync();
    assert.deepEqual(await b.load(z64), { data: rec('r1'), tid: t1 });
    const got = new Promise<[Tid, Oid[]]>((resolve) => b.onCommit((tid, oids) => resolve([tid, oids])));
    const t2 = await commit(a, [{ oid: z64, serial: t1, data: rec('r2') }]);
    assert.deepEqual(await got, [t2, [z64]]);
    assert.equal(b.lastTransaction(), t2);
    assert.equal(b.cache.load(z64), null, 'current record invalidated');
    assert.deepEqual(b.cache.loadBefore(z64, t2), { data: rec('r1'), start: t1, end: t2 }, 'kept as non-current [t1, t2)');
    assert.deepEqual(await b.load(z64), { data: rec('r2'), tid: t2 });
    // pipelined loads
    const oids = Array.from({ length: 50 }, (_, i) => BigInt(i + 10));
    await commit(a, oids.map((oid) => ({ oid, serial: z64, data: rec(`o${oid}`) })));
    await b.sync();
    await b.prefetch(oids);
    for (const oid of oids) assert.deepEqual(b.cache.load(oid)?.data, rec(`o${oid}`));
  });

  test('read-only fallback: a read-only server while the writable one is down, then switching to the writable one (zeo5 C-13, §12.2, §12.3)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ro.conf'), `<zeo>\n  address 127.0.0.1:0\n  read-only true\n</zeo>\n<filestorage 1>\n  path ${join(dir, 'ro.fs')}\n</filestorage>\n`);
    // the read-only server needs an existing file
    const init = await FileStorage.open(join(dir, 'ro.fs'));
    await init.close();
    const ro = await server(dir, ['-C', join(dir, 'ro.conf')]);
    const wport = await freePort();
    const c = await client({ addresses: [{ host: '127.0.0.1', port: wport }, { host: '127.0.0.1', port: ro.port }], readOnlyFallback: true });
    assert.deepEqual(c.connectedAddress(), { host: '127.0.0.1', port: ro.port });
    assert.equal(c.isReadOnly(), true);
    await assert.rejects(c.tpc_begin(new TransactionMetaData()), ReadOnlyError);
    await assert.rejects(c.new_oid(), ReadOnlyError);
    const writable = connectionState(c, true, () => c.connectedAddress() !== null && 'port' in c.connectedAddress()! && (c.connectedAddress() as { port: number }).port === wport);
    await server(dir, ['-a', `127.0.0.1:${wport}`, '-f', join(dir, 'rw.fs')]);
    await writable;
    assert.equal(c.isReadOnly(), false);
    const t = await commit(c, [{ oid: z64, serial: z64, data: rec('written after the switch') }]);
    assert.deepEqual(await c.load(z64), { data: rec('written after the switch'), tid: t });
    // a plain read-only client refuses writes locally (§12.1)
    const r = await client({ addresses: [{ host: '127.0.0.1', port: ro.port }], readOnly: true });
    assert.equal(r.isReadOnly(), true);
    await assert.rejects(r.tpc_begin(new TransactionMetaData()), ReadOnlyError);
    // a writable registration on a read-only server without fallback never connects
    await assert.rejects(ClientStorage.open({ ...fast, addresses: [ro.port], waitTimeout: 1 }), ClientDisconnected);
  });

  test('conflicts: ConflictError(oid, serials) without a resolver; the resolver re-stores with the committed serial (zeo5 C-9, §10.6)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = await server(dir, ['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')]);
    const calls: unknown[] = [];
    const a = await client({
      addresses: [srv.port],
      conflictResolver: ({ oid, oldSerial, committedSerial, oldData, committedData, newData }) => {
        calls.push({ oid, oldSerial, committedSerial, old: oldData?.toString('latin1'), committed: committedData.toString('latin1'), mine: newData.toString('latin1') });
        return Buffer.from(`${committedData.toString('latin1')}+${newData.toString('latin1')}`, 'latin1');
      },
    });
    const b = await client({ addresses: [srv.port] });
    const t1 = await commit(a, [{ oid: z64, serial: z64, data: Buffer.from('base') }]);
    await b.sync();
    const t2 = await commit(b, [{ oid: z64, serial: t1, data: Buffer.from('theirs') }]);
    // b without a resolver: stale store fails with the oid and serials
    const tx = new TransactionMetaData();
    await b.tpc_begin(tx);
    await b.store(z64, t1, Buffer.from('stale'), tx);
    const err = await b.tpc_vote(tx).then(() => null, (e: unknown) => e);
    await b.tpc_abort(tx);
    assert.ok(err instanceof ConflictError, `expected ConflictError, got ${String(err)}`);
    assert.equal(err.oid, z64);
    assert.deepEqual(err.serials, [t2, t1]);
    // a resolves: the committed result is the resolver's
    const t3 = await commit(a, [{ oid: z64, serial: t1, data: Buffer.from('mine') }]);
    assert.deepEqual(calls, [{ oid: z64, oldSerial: t1, committedSerial: t2, old: 'base', committed: 'theirs', mine: 'mine' }]);
    assert.deepEqual(await a.load(z64), { data: Buffer.from('theirs+mine'), tid: t3 });
    await b.sync();
    assert.deepEqual(await b.load(z64), { data: Buffer.from('theirs+mine'), tid: t3 });
  });

  test('TLS: a valid client certificate connects, a certificate from another CA and a plain client do not (zeo5 C-17, §14.2)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    makeCertificates(dir);
    writeFileSync(join(dir, 'zeo.conf'), `<zeo>\n  address 127.0.0.1:0\n  <ssl>\n    certificate ${join(dir, 'server.pem')}\n    key ${join(dir, 'server.key')}\n    authenticate ${join(dir, 'ca.pem')}\n  </ssl>\n</zeo>\n<filestorage 1>\n  path ${join(dir, 'Data.fs')}\n</filestorage>\n`);
    const srv = await server(dir, ['-C', join(dir, 'zeo.conf')]);
    const good = await client({ addresses: [srv.port], tls: { certificate: join(dir, 'client.pem'), key: join(dir, 'client.key'), authenticate: join(dir, 'ca.pem') } });
    const t = await commit(good, [{ oid: z64, serial: z64, data: rec('over tls') }]);
    assert.deepEqual(await good.load(z64), { data: rec('over tls'), tid: t });
    // the configured name is checked: a wrong server-hostname fails verification
    await assert.rejects(ClientStorage.open({ ...fast, addresses: [srv.port], waitTimeout: 1, tls: { certificate: join(dir, 'client.pem'), key: join(dir, 'client.key'), authenticate: join(dir, 'ca.pem'), serverHostname: 'elsewhere.example' } }), ClientDisconnected);
    await assert.rejects(ClientStorage.open({ ...fast, addresses: [srv.port], waitTimeout: 1, tls: { certificate: join(dir, 'rogue.pem'), key: join(dir, 'rogue.key'), authenticate: join(dir, 'ca.pem') } }), ClientDisconnected);
    await assert.rejects(ClientStorage.open({ ...fast, addresses: [srv.port], waitTimeout: 1 }), ClientDisconnected);
    // the same through a <clientstorage> section with <ssl>
    const cfg = `%import ZEO\n<clientstorage>\n  server 127.0.0.1:${srv.port}\n  <ssl>\n    certificate ${join(dir, 'client.pem')}\n    key ${join(dir, 'client.key')}\n    authenticate ${join(dir, 'ca.pem')}\n  </ssl>\n</clientstorage>\n`;
    const viaConfig = await openClientFromConfig(cfg, { logger: silent });
    cleanups.push(() => viaConfig.close());
    assert.deepEqual((await viaConfig.load(z64)).data, rec('over tls'));
  });

  test('damaged cache files are replaced and the client answers correctly (client-cache §13 #10, #28)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = await server(dir, ['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')]);
    const path = join(dir, 'c.zec');
    let c = await client({ addresses: [srv.port], cachePath: path });
    const t1 = await commit(c, [{ oid: z64, serial: z64, data: rec('root') }, { oid: 1n, serial: z64, data: rec('one') }]);
    await c.close();
    // garbage magic
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('JUNK'), 0, 4, 0);
    closeSync(fd);
    c = await client({ addresses: [srv.port], cachePath: path });
    assert.ok(existsSync(path + '.bad'), 'damaged file moved aside');
    assert.equal(c.cache.len, 0);
    assert.deepEqual(await c.load(1n), { data: rec('one'), tid: t1 });
    await c.close();
    // truncated in the middle of a record
    truncateSync(path, 40);
    c = await client({ addresses: [srv.port], cachePath: path });
    assert.deepEqual(await c.load(1n), { data: rec('one'), tid: t1 });
    assert.deepEqual(await c.load(z64), { data: rec('root'), tid: t1 });
    await c.close();
  });

  test('a cache newer than the server is refused (CRITICAL log, never connected) (zeo5 C-3 step 4; client-cache §8)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = await server(dir, ['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')]);
    const path = join(dir, 'ahead.zec');
    const cache = await ClientCache.open(path, { size: 1 << 20, logger: silent });
    cache.store(5n, 0x0123n, null, rec('from a newer server'));
    cache.setLastTid(0x0fffffffffffffffn);
    await cache.close();
    const logs = captureLogs();
    const c = await ClientStorage.open({ ...fast, logger: logs.logger, addresses: [srv.port], cachePath: path, wait: false });
    cleanups.push(() => c.close());
    const rec1 = await logs.waitFor(/newer transactions than server/);
    assert.equal(rec1.level, 60, 'logged at CRITICAL (fatal)');
    assert.equal(c.isConnected(), false);
    await assert.rejects(c.load(9n, ), ClientDisconnected);
    assert.deepEqual((await c.load(5n)).data, rec('from a newer server'), 'cache hits still answer');
    assert.equal(c.lastTransaction(), 0x0fffffffffffffffn);
    void maxtid;
  });
});

describe('ClientStorage verification and configuration', () => {
  test('a cache too old for the invalidation queue is dropped (CRITICAL "dropping stale cache") and loads stay correct (zeo5 C-3; client-cache §8, §13 #28)', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'zeo.conf'), `<zeo>\n  address 127.0.0.1:0\n  invalidation-queue-size 1\n</zeo>\n<filestorage 1>\n  path ${join(dir, 'Data.fs')}\n</filestorage>\n`);
    const srv = await server(dir, ['-C', join(dir, 'zeo.conf')]);
    const path = join(dir, 'old.zec');
    const a = await client({ addresses: [srv.port], cachePath: path });
    const t1 = await commit(a, [{ oid: z64, serial: z64, data: rec('r1') }, { oid: 1n, serial: z64, data: rec('o1') }]);
    await a.close();
    const b = await client({ addresses: [srv.port] });
    const t2 = await commit(b, [{ oid: 1n, serial: t1, data: rec('o2') }]);
    const t3 = await commit(b, [{ oid: 1n, serial: t2, data: rec('o3') }]);
    const logs = captureLogs();
    let resets = 0;
    const c = await ClientStorage.open({ ...fast, logger: logs.logger, addresses: [srv.port], cachePath: path, wait: false });
    cleanups.push(() => c.close());
    c.onInvalidateCache(() => resets++);
    await c.waitConnected(20);
    const crit = await logs.waitFor(/dropping stale cache/);
    assert.equal(crit.level, 60);
    assert.ok(resets >= 1, 'in-memory caches were told to drop everything');
    assert.equal(c.lastTransaction(), t3);
    assert.deepEqual(await c.load(1n), { data: rec('o3'), tid: t3 });
    assert.deepEqual(await c.load(z64), { data: rec('r1'), tid: t1 });
  });

  test('<zeoclient> and <clientstorage> sections map to client options (operations §4; client-cache §13 #27)', async () => {
    const { loadClientConfig } = await import('@zeo-ts/config');
    const { storageOptionsFromConfig } = await import('../src/index.ts');
    const z = loadClientConfig('<zeoclient>\n  server 127.0.0.1:8100\n  server /tmp/zeo.sock\n  storage spam\n  client 8881\n  var /var/tmp\n  read-only-fallback true\n  cache-size 5MB\n</zeoclient>\n');
    const o = storageOptionsFromConfig(z.client!);
    assert.deepEqual(o.addresses, [{ host: '127.0.0.1', port: 8100 }, { path: '/tmp/zeo.sock' }]);
    assert.equal(o.storage, 'spam');
    assert.equal(o.cachePath, '/var/tmp/8881-spam.zec');
    assert.equal(o.cacheSize, 5 * 1024 * 1024);
    assert.equal(o.readOnlyFallback, true);
    assert.equal(o.waitTimeout, 30);
    const cs = loadClientConfig('%import ZEO\n<clientstorage>\n  server 8100\n  cache-path /tmp/c.zec\n  wait-timeout 7\n  server-sync true\n  client-label app1\n</clientstorage>\n');
    const p = storageOptionsFromConfig(cs.client!);
    assert.equal(p.cachePath, '/tmp/c.zec');
    assert.equal(p.waitTimeout, 7);
    assert.equal(p.serverSync, true);
    assert.equal(p.clientLabel, 'app1');
    assert.equal(p.tls, null);
  });
});

test('a server that accepts but never announces is given up after connectTimeout and retried (zeo5 C-1, C-12, §12.4)', async () => {
  const net = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  let second!: () => void;
  const twice = new Promise<void>((r) => (second = r));
  const mute = net.createServer((s) => {
    sockets.push(s);
    if (sockets.length === 2) second();
  });
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
  const port = (mute.address() as import('node:net').AddressInfo).port;
  const c = await ClientStorage.open({ ...fast, addresses: [port], connectTimeout: 0.2, wait: false });
  await twice;
  assert.equal(c.isConnected(), false);
  await c.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => mute.close(() => r()));
});
