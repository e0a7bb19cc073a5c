// "runzeo given the same config also works" (issue: ZRS §1; zrs spec §3.1, §3.4): a plain runzeo
// process serves a <zrs> primary from a config with `%import zc.zrs`, because the ZRS package is
// an installed storage plugin; a zrs secondary replicates what a ZEO client commits to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { ClientStorage } from '@zeo-ts/client';
import { startRunzeo } from '@zeo-ts/client/testing';
import { TransactionMetaData } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import { startZrs, tempDir, zrsConfig } from './helpers.ts';

/** A port nobody listens on right now (the primary's replication address must be known in advance). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

test('runzeo serves a <zrs> primary (%import zc.zrs) and a zrs secondary replicates from it (zrs §14 #30)', async () => {
  const dir = tempDir();
  const replPort = await freePort();
  const conf = join(dir, 'primary.conf');
  writeFileSync(conf, zrsConfig({ dir, path: join(dir, 'p.fs'), replicateTo: replPort }));
  const primary = await startRunzeo(['-C', conf], { cwd: dir });
  const secondary = await startZrs(zrsConfig({ dir, path: join(dir, 's.fs'), replicateFrom: replPort }), dir, 'secondary.conf');
  const writer = await ClientStorage.open({ addresses: [{ host: '127.0.0.1', port: primary.port }], cachePath: null, wait: true, waitTimeout: 30, logger: pino({ level: 'silent' }) });
  const reader = await ClientStorage.open({ addresses: [{ host: '127.0.0.1', port: secondary.port }], cachePath: null, readOnly: true, wait: true, waitTimeout: 30, logger: pino({ level: 'silent' }) });
  try {
    const replicated = new Promise<bigint>((res) => reader.onCommit((tid) => res(tid)));
    const txn = new TransactionMetaData('', 'through runzeo');
    await writer.tpc_begin(txn);
    await writer.store(0n, 0n, makeRecord(), txn);
    await writer.tpc_vote(txn);
    const tid = await writer.tpc_finish(txn);
    assert.equal(await replicated, tid);
    const { data } = await reader.load(0n);
    assert.deepEqual(data, makeRecord());
  } finally {
    await writer.close();
    await reader.close();
    await secondary.stop();
    await primary.stop();
  }
});
