// Relay chains (zrs §2 "Relay / chained secondary", §3.1 construction order, §11.6 #4):
// primary → relay → secondary with real zrs processes, real ZEO clients and real files.
// zrs §14 #47 (a <zrs> with both keys is a secondary relaying through an inner primary),
// #50 (the chain converges to identical data files), #35/#42 (the relay is killed and restarted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Tid } from '@zeo-ts/storage';
import { adminCommand } from '../src/promote.ts';
import { FSTEST_BIN, clientSeen, commitOne, dumpFile, runNode, startZrs, tempDir, zeoClient, zrsConfig, type ZrsProcess } from './helpers.ts';

/** Same size, same bytes (cmp), same transactions; fstest clean. */
async function identicalFiles(a: string, b: string): Promise<void> {
  assert.equal(statSync(b).size, statSync(a).size, `${b} has the size of ${a}`);
  assert.ok(readFileSync(a).equals(readFileSync(b)), `${a} and ${b} are byte-identical`);
  for (const f of [a, b]) {
    const r = await runNode(FSTEST_BIN, [f]);
    assert.equal(r.code, 0, `fstest ${f}: ${r.stdout}${r.stderr}`);
  }
}

/** Every tid in `finished` is a transaction of the data file. */
async function hasAll(path: string, finished: Tid[]): Promise<void> {
  const tids = new Set((await dumpFile(path)).map((t) => t.tid));
  const missing = finished.filter((t) => !tids.has(t));
  assert.deepEqual(missing, [], `${path} lacks ${missing.length} of ${finished.length} committed transactions`);
}

test('zrs §14 #47, #50: primary → relay → secondary under a commit load converges to byte-identical files; a client of the last secondary sees every transaction', async () => {
  const d = tempDir('zrs-relay-');
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const r = await startZrs(zrsConfig({ dir: d, path: join(d, 'r.fs'), replicateFrom: p.replPort, replicateTo: 0, extra: '  reconnect-delay 0.1\n  keep-alive-delay 60' }), d, 'r.conf');
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: r.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  // the relay presents itself as a read-only secondary whose storage also serves secondaries
  const st = (await adminCommand(r.admin!, 'status')) as { status: Record<string, Record<string, unknown>> };
  assert.equal(st.status['1']!.role, 'secondary');
  const cp = await zeoClient(p.port);
  const cs = await zeoClient(s.port, true);
  const seenBySecondary: Tid[] = [];
  cs.onCommit((tid) => void seenBySecondary.push(tid));
  const finished: Tid[] = [];
  // three concurrent writers while the chain replicates
  await Promise.all(
    [0, 1, 2].map(async (w) => {
      for (let i = 0; i < 40; i++) finished.push(await commitOne(cp, w * 1000 + i));
    }),
  );
  const last = finished.reduce((a, b) => (a > b ? a : b));
  await clientSeen(cs, last);
  assert.equal(cs.lastTransaction(), last);
  // the client of the last secondary was told about every committed transaction, in tid order
  const told = new Set(seenBySecondary);
  assert.deepEqual(finished.filter((t) => !told.has(t)), [], 'every commit reached the client of the last secondary');
  for (let i = 1; i < seenBySecondary.length; i++) assert.ok(seenBySecondary[i - 1]! < seenBySecondary[i]!, 'invalidations in tid order');
  const obj = await cs.load(1n);
  assert.ok(obj.data.length > 0);
  await cp.close();
  await cs.close();
  await s.stop();
  await r.stop();
  await p.stop();
  await identicalFiles(join(d, 'p.fs'), join(d, 'r.fs'));
  await identicalFiles(join(d, 'p.fs'), join(d, 's.fs'));
});

test('zrs §14 #50, #35, #42: kill -9 the relay mid-stream and restart it: the chain converges', async () => {
  const d = tempDir('zrs-relay-kill-');
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  let r: ZrsProcess = await startZrs(zrsConfig({ dir: d, path: join(d, 'r.fs'), replicateFrom: p.replPort, replicateTo: 0, extra: '  reconnect-delay 0.1' }), d, 'r.conf');
  // restart the relay on the same ZEO and replication ports, so the last secondary finds it again
  const rconf = zrsConfig({ dir: d, path: join(d, 'r.fs'), replicateFrom: p.replPort, replicateTo: r.replPort, zeoPort: r.port, extra: '  reconnect-delay 0.1' });
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: r.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  const cp = await zeoClient(p.port);
  const finished: Tid[] = [];
  let stop = false;
  const load = (async () => {
    for (let i = 0; !stop && i < 5000; i++) finished.push(await commitOne(cp, i));
  })();
  for (let round = 0; round < 1; round++) {
    // wait until the relay is applying the stream, let it go on a little, then kill it
    await r.waitLog(/: Connected/, 'zc.zrs.secondary');
    const target = finished.length + 20;
    for (let g = 0; finished.length < target && g < 1e6; g++) await new Promise<void>((res) => setImmediate(res));
    await r.stop('SIGKILL');
    r = await startZrs(rconf, d, 'r.conf');
  }
  stop = true;
  await load;
  const last = finished[finished.length - 1]!;
  const cs = await zeoClient(s.port, true);
  await clientSeen(cs, last);
  assert.equal(cs.lastTransaction(), last);
  await cs.close();
  await cp.close();
  await s.stop();
  await r.stop();
  await p.stop();
  assert.ok(finished.length >= 20, `load committed ${finished.length} transactions`);
  await hasAll(join(d, 's.fs'), finished);
  await identicalFiles(join(d, 'p.fs'), join(d, 'r.fs'));
  await identicalFiles(join(d, 'p.fs'), join(d, 's.fs'));
});
