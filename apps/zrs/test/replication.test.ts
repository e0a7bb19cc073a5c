// zrs app end to end: real zrs server processes, real ZEO clients, real files.
// zrs §14 #30, #35, #37, #42, #47, #52, #53; the brief's failure scenarios (kill -9 secondary,
// primary restart, semi-sync + kill -9 primary + promotion).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Tid } from '@zeo-ts/storage';
import { FSTEST_BIN, NAGIOS_BIN, ZRS_BIN, commitOne, dumpFile, runNode, startZrs, tempDir, zeoClient as client, clientSeen as seen, zrsConfig, type ZrsProcess } from './helpers.ts';
import { adminCommand } from '../src/promote.ts';


async function sameFiles(a: string, b: string): Promise<void> {
  const [da, db] = await Promise.all([dumpFile(a), dumpFile(b)]);
  assert.equal(db.length, da.length, 'same number of transactions');
  assert.deepEqual(db, da, 'same tids and records');
  for (const f of [a, b]) {
    const r = await runNode(FSTEST_BIN, [f]);
    assert.equal(r.code, 0, `fstest ${f}: ${r.stdout}${r.stderr}`);
  }
}

test('zrs app §14 #30, #37, #47, #52, #53: primary and secondary processes; the secondary serves read-only clients with invalidations; ruok and nagios', async () => {
  const d = tempDir();
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: p.replPort, extra: '  reconnect-delay 0.1\n  keep-alive-delay 1' }), d, 's.conf');
  const cp = await client(p.port);
  const cs = await client(s.port, true);
  let last = 0n;
  for (let i = 0; i < 20; i++) last = await commitOne(cp, i);
  await seen(cs, last);
  assert.equal(cs.lastTransaction(), last);
  const st = (await adminCommand(s.admin!, 'status')) as { status: Record<string, Record<string, unknown>> };
  assert.equal(st.status['1']!.role, 'secondary');
  assert.equal(st.status['1']!.protocol, 'zts1.0');
  const ps = (await adminCommand(p.admin!, 'status')) as { status: Record<string, { secondaries: Array<Record<string, unknown>> }> };
  assert.equal(ps.status['1']!.secondaries.length, 1);
  const n = await runNode(NAGIOS_BIN, ['-m', '-w', '30', `127.0.0.1:${p.port}`, `127.0.0.1:${s.port}`]);
  assert.equal(n.stdout, "Secondary up to date.|'lag'=0.0000seconds\n");
  assert.equal(n.code, 0);
  await cp.close();
  await cs.close();
  await s.stop();
  await p.stop();
  await sameFiles(join(d, 'p.fs'), join(d, 's.fs'));
});

test('zrs app: kill -9 the secondary repeatedly during a commit load; it reconnects and converges (same transactions, fstest clean)', async () => {
  const d = tempDir();
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const sconf = zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: p.replPort, extra: '  reconnect-delay 0.1' });
  let s: ZrsProcess = await startZrs(sconf, d, 's.conf');
  const cp = await client(p.port);
  let last = 0n;
  let i = 0;
  let stop = false;
  const load = (async () => {
    for (; !stop && i < 5000; i++) last = await commitOne(cp, i);
  })();
  for (let round = 0; round < 3; round++) {
    // let the secondary apply something, then kill it mid-stream
    await s.waitLog(/Connected/);
    const target = i + 25;
    for (let g = 0; i < target && g < 1e6; g++) await new Promise<void>((r) => setImmediate(r));
    await s.stop('SIGKILL');
    s = await startZrs(sconf, d, 's.conf');
  }
  stop = true;
  await load;
  const cs = await client(s.port, true);
  await seen(cs, last);
  await cs.close();
  await cp.close();
  await s.stop();
  await p.stop();
  assert.ok(i >= 75, `load committed ${i} transactions`);
  await sameFiles(join(d, 'p.fs'), join(d, 's.fs'));
});

test('zrs app: restart the primary during load; the secondary resumes without a full copy', async () => {
  const d = tempDir();
  let p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const zeoPort = p.port;
  const replPort = p.replPort!;
  const pconf = zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: replPort, zeoPort });
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  let cp = await client(zeoPort);
  let last = 0n;
  for (let i = 0; i < 30; i++) last = await commitOne(cp, i);
  await cp.close();
  await p.stop('SIGTERM');
  p = await startZrs(pconf, d, 'p.conf');
  cp = await client(zeoPort);
  const rec = await p.waitLog(/: start [0-9a-f]{16}/);
  assert.notEqual(/start ([0-9a-f]{16})/.exec(String(rec.msg))![1], '0000000000000000', 'resumed from its last tid, not a full copy');
  for (let i = 30; i < 60; i++) last = await commitOne(cp, i);
  const cs = await client(s.port, true);
  await seen(cs, last);
  await cs.close();
  await cp.close();
  await s.stop();
  await p.stop();
  await sameFiles(join(d, 'p.fs'), join(d, 's.fs'));
});

test('zrs app semi-sync (ack-quorum 1): kill -9 the primary under load, promote the secondary: every finished transaction is there', async () => {
  for (let round = 0; round < 2; round++) {
    const d = tempDir();
    const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0, extra: '  ack-quorum 1\n  ack-timeout 60' }), d, 'p.conf');
    const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: p.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
    await p.waitLog(/: start 0000000000000000/);
    const cp = await client(p.port);
    const finished: Tid[] = [];
    const killAt = 20 + Math.floor(Math.random() * 60);
    const workers = [0, 1, 2].map(async (w) => {
      for (let i = 0; i < 10000; i++) {
        try {
          finished.push(await commitOne(cp, w * 100000 + i));
        } catch {
          return; // the primary is gone
        }
        if (finished.length === killAt) void p.stop('SIGKILL');
      }
    });
    await p.exited;
    await cp.close().catch(() => undefined);
    await Promise.all(workers);
    const r = await adminCommand(s.admin!, 'promote 1');
    assert.equal(r.ok, true, JSON.stringify(r));
    // the promoted secondary accepts commits
    const cn = await client(s.port);
    const after = await commitOne(cn, 999999);
    await cn.close();
    await s.stop();
    const tids = new Set((await dumpFile(join(d, 's.fs'))).map((t) => t.tid));
    const missing = finished.filter((t) => !tids.has(t));
    assert.deepEqual(missing, [], `round ${round}: ${finished.length} finished before the kill at ${killAt}`);
    assert.ok(tids.has(after));
  }
});

test('zrs CLI: usage and version', async () => {
  const r = await runNode(ZRS_BIN, ['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /zrs/);
  const n = await runNode(NAGIOS_BIN, ['127.0.0.1:1', '127.0.0.1:2']);
  assert.equal(n.code, 2);
  assert.equal(n.stdout, 'Usage: zrs-nagios [options] PRIMARY_ADDRESS SECONDARY_ADDRESS\n    \n'); // zrs §14 #51
  const c = await runNode(NAGIOS_BIN, ['-m', '127.0.0.1:1', '127.0.0.1:2']);
  assert.equal(c.code, 2);
  assert.equal(c.stdout, "Can't connect to secondary at '127.0.0.1:2': [Errno 111] Connection refused\n"); // zrs §14 #54
});
