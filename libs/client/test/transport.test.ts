// Plain sockets read through net's onread buffer (ClientStorage.plainSocket): bytes are copied
// out of the one read buffer, frames larger than it and frames split across reads arrive intact,
// over TCP and over a Unix socket (zeo5 §3 W-1, §12.1 addresses; C-10 cache updates in order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { TransactionMetaData, z64, type Oid, type Tid } from '@zeo-ts/storage';
import { ClientStorage, type AddressLike } from '../src/index.ts';
import { startRunzeo, tempDir } from '../src/testing.ts';

const silent = pino({ level: 'silent' });

async function commit(s: ClientStorage, writes: Array<[Oid, Tid, Buffer]>): Promise<Tid> {
  const txn = new TransactionMetaData('t', 'transport');
  await s.tpc_begin(txn);
  for (const [oid, serial, data] of writes) await s.store(oid, serial, data, txn);
  await s.tpc_vote(txn);
  return s.tpc_finish(txn);
}

for (const kind of ['tcp', 'unix'] as const) {
  test(`${kind}: objects of 1 B to 300 KB (larger than the 64 KiB read buffer) load intact, cold, pipelined and cached (zeo5 §3 W-1)`, async () => {
    const dir = tempDir();
    const sockPath = join(dir, 'zeo.sock');
    const srv = await startRunzeo(['-a', kind === 'tcp' ? '127.0.0.1:0' : sockPath, '-f', join(dir, 'Data.fs')], { cwd: dir });
    const address: AddressLike = kind === 'tcp' ? srv.port : { path: sockPath };
    const opened: ClientStorage[] = [];
    const open = async () => {
      const s = await ClientStorage.open({ addresses: [address], logger: silent });
      opened.push(s);
      return s;
    };
    try {
      const w = await open();
      const sizes = [1, 100, 65535, 65536, 65537, 131072 + 7, 300 * 1024];
      const objs = new Map<Oid, Buffer>();
      sizes.forEach((n, i) => objs.set(BigInt(i + 1), randomBytes(n)));
      const tid = await commit(w, [[z64, z64, Buffer.from('root')], ...[...objs].map(([o, d]): [Oid, Tid, Buffer] => [o, z64, d])]);
      await w.close();
      // cold loads, one round trip each
      const cold = await open();
      for (const [oid, data] of objs) assert.deepEqual(await cold.load(oid), { data, tid }, `cold load of ${data.length} bytes`);
      await cold.close();
      // pipelined: all answers in flight at once (many frames per read, frames across reads)
      const pipe = await open();
      await pipe.prefetch([...objs.keys()]);
      assert.equal(pipe.cache.len, objs.size);
      for (const [oid, data] of objs) assert.deepEqual(pipe.cache.load(oid), { data, tid }, `cached ${data.length} bytes`);
      await pipe.close();
    } finally {
      // a failed assertion must not leave a client reconnecting (the test process would not end)
      for (const s of opened) await s.close();
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
