// The secondary's reconnect delay from configuration (our <zrs> keys reconnect-delay and
// reconnect-max-delay, docs/zrs-configuration.md; zrs spec §3.1 "MAY add them as optional keys",
// §6.12 reconnect policy). zrs §14 #42 (failed and lost connections are retried after the delay),
// #49 (reconnect delay defaults to 60 s, no backoff).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadServerConfig } from '@zeo-ts/config';
import { FileStorage } from '@zeo-ts/filestorage';
import { commit, makeRecord } from '@zeo-ts/storage/testing';
import { Primary, Secondary, openStorageSection, registerZrsConfig } from '../src/index.ts';
import { FakePrimary, memoryLogger, tempDir, until } from './helpers.ts';

function conf(body: string): string {
  return `%import zc.zrs\n<zeo>\n  address 127.0.0.1:0\n</zeo>\n${body}`;
}

function secondaryConf(dir: string, port: number, keys: string): string {
  return conf(`<zrs 1>\n  replicate-from 127.0.0.1:${port}\n${keys}  <filestorage>\n    path ${join(dir, 's.fs')}\n  </filestorage>\n</zrs>\n`);
}

test('zrs §14 #49: reconnect-delay / reconnect-max-delay parse, default to upstream (60 s, no backoff) and reject bad values clearly', () => {
  registerZrsConfig();
  const d = tempDir();
  const o = loadServerConfig({ text: secondaryConf(d, 9, '') }).storages[0]!.options;
  assert.equal(o.reconnect_delay, 60);
  assert.equal(o.reconnect_max_delay, null);
  const o2 = loadServerConfig({ text: secondaryConf(d, 9, '  reconnect-delay 0.5\n  reconnect-max-delay 30\n') }).storages[0]!.options;
  assert.equal(o2.reconnect_delay, 0.5);
  assert.equal(o2.reconnect_max_delay, 30);
  const bad: Array<[string, RegExp]> = [
    ['  reconnect-delay 0\n', /reconnect-delay must be a number of seconds greater than 0 and at most 86400, not 0/],
    ['  reconnect-delay -1\n', /reconnect-delay must be a number of seconds greater than 0/],
    ['  reconnect-delay 100000\n', /reconnect-delay must be .* at most 86400, not 100000/],
    ['  reconnect-delay 10\n  reconnect-max-delay 5\n', /reconnect-max-delay \(5\) must not be less than reconnect-delay \(10\)/],
    ['  reconnect-max-delay 90000\n', /reconnect-max-delay must be .* at most 86400/],
    ['  keep-alive-delay -1\n', /keep-alive-delay must not be negative/],
  ];
  for (const [keys, rx] of bad) assert.throws(() => loadServerConfig({ text: secondaryConf(d, 9, keys) }), rx, keys);
  assert.throws(() => loadServerConfig({ text: secondaryConf(d, 9, '  reconnect-delay soon\n') }), /soon/);
  assert.throws(() => new Secondary(new FileStorage(join(d, 'x.fs')), null, { reconnectDelay: Number.NaN }), /reconnectDelay must be a finite number/);
});

/** Delays the secondary scheduled, from its "reconnecting … in N s" log lines. */
function scheduled(m: ReturnType<typeof memoryLogger>): number[] {
  return m.lines.filter((l) => /^reconnecting to .* in [0-9.e-]+ s$/.test(l.msg)).map((l) => l.reconnectDelay as number);
}

test('zrs §14 #42: a configured secondary retries lost connections after reconnect-delay, doubling up to reconnect-max-delay', async () => {
  registerZrsConfig();
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const m = memoryLogger('info');
  const sec = (await openStorageSection(loadServerConfig({ text: secondaryConf(d, port, '  native never\n  reconnect-delay 0.01\n  reconnect-max-delay 0.04\n') }).storages[0]!, { logger: m.log })) as Secondary;
  try {
    assert.equal(sec.reconnectDelay, 0.01);
    assert.equal(sec.maxReconnectDelay, 0.04);
    // the fake primary takes the handshake, then hangs up before sending anything: each
    // connection is a failure; every attempt is a real new connection sending the handshake (§6.1)
    for (let k = 0; k < 5; k++) {
      const c = await fake.connection(k);
      await c.waitCount(2);
      assert.equal(c.received[0]!.toString('latin1'), 'zrs2.0');
      assert.equal(c.received[1]!.length, 8);
      c.sock.destroy();
    }
    await until(() => scheduled(m).length >= 5, () => sec.changed(), 'five reconnection delays');
    assert.deepEqual(scheduled(m).slice(0, 5), [0.01, 0.02, 0.04, 0.04, 0.04]);
  } finally {
    await sec.close();
    await fake.close();
  }
});

test('zrs §14 #42, #49: without reconnect-max-delay the delay is fixed (upstream); after progress it starts again from reconnect-delay', async () => {
  registerZrsConfig();
  const d = tempDir();
  const pfs = new FileStorage(join(d, 'p.fs'));
  const primary = new Primary(pfs, { host: '127.0.0.1', port: 0 }, { logger: memoryLogger('silent').log });
  await primary.listening;
  const m = memoryLogger('info');
  const sec = (await openStorageSection(loadServerConfig({ text: secondaryConf(d, primary.port, '  native never\n  reconnect-delay 0.01\n') }).storages[0]!, { logger: m.log })) as Secondary;
  try {
    assert.equal(sec.maxReconnectDelay, 0.01, 'no backoff by default');
    const tid = await commit(primary, [{ oid: 0n, serial: 0n, data: makeRecord() }]);
    await until(() => sec.lastTransaction() === tid, () => sec.changed(), 'first transaction replicated');
    // lose the connection three times: each time the secondary comes back after the same delay
    for (let k = 1; k <= 3; k++) {
      primary.disconnectAll();
      await until(() => sec.connections === k + 1 && sec.state === 'connected', () => sec.changed(), `reconnection ${k}`);
    }
    assert.deepEqual(scheduled(m), [0.01, 0.01, 0.01]);
    const tid2 = await commit(primary, [{ oid: 0n, serial: tid, data: makeRecord({ value: 'two' }) }]);
    await until(() => sec.lastTransaction() === tid2, () => sec.changed(), 'replication after reconnecting');
  } finally {
    await sec.close();
    await primary.close();
  }
});
