// Blob replication between processes (zrs spec §3.1 example with blob-dir, §6.5–§6.10, §11.6 #4):
// zrs primary → relay → secondary, every <filestorage> with a blob-dir; ZEO clients with blob
// caches commit blobs on the primary and read them from the last secondary.
// zrs §14 #4, #22, #36, #47, #50.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import pino from 'pino';
import { ClientStorage } from '@zeo-ts/client';
import { BLOB_RECORD, TransactionMetaData, type Tid } from '@zeo-ts/storage';
import { ROOT_RECORD } from '@zeo-ts/storage/testing';
import { adminCommand } from '../src/promote.ts';
import { clientSeen, startZrs, tempDir, zrsConfig, type ZrsProcess } from './helpers.ts';

async function blobClient(port: number, dir: string, readOnly = false): Promise<ClientStorage> {
  return ClientStorage.open({ addresses: [{ host: '127.0.0.1', port }], cachePath: null, readOnly, wait: true, waitTimeout: 60, blobDir: dir, logger: pino({ level: 'silent' }) });
}

/** Every committed blob file under a blob directory: relative path → content. */
function blobFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string, depth: number) => {
    if (depth > 20) return;
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) {
        if (e !== 'tmp') walk(p, depth + 1);
      } else if (e.endsWith('.blob')) out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir, 0);
  return out;
}

test('zrs §14 #4, #22, #36, #50: blob files replicate primary → relay → secondary between zrs processes and are served to ZEO clients of the last secondary', async () => {
  const d = tempDir('zrs-blobs-');
  const b = (n: string) => join(d, `${n}.blobs`);
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), blobDir: b('p'), replicateTo: 0 }), d, 'p.conf');
  // the relay speaks zrs2.1 to the primary; the last secondary our native channel to the relay
  const r = await startZrs(zrsConfig({ dir: d, path: join(d, 'r.fs'), blobDir: b('r'), replicateFrom: p.replPort, replicateTo: 0, extra: '  reconnect-delay 0.1\n  native never' }), d, 'r.conf');
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), blobDir: b('s'), replicateFrom: r.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  const writer = await blobClient(p.port, join(d, 'cache-w'));
  const reader = await blobClient(s.port, join(d, 'cache-r'), true);
  const contents = [Buffer.from('some blob data'), randomBytes(300_000), randomBytes(65536)];
  let last: Tid = 0n;
  try {
    const txn = new TransactionMetaData('', 'root');
    await writer.tpc_begin(txn);
    await writer.store(0n, 0n, ROOT_RECORD, txn);
    await writer.tpc_vote(txn);
    await writer.tpc_finish(txn);
    const oids: bigint[] = [];
    for (const c of contents) {
      const t = new TransactionMetaData('', 'blob');
      const oid = await writer.new_oid();
      oids.push(oid);
      await writer.tpc_begin(t);
      const f = join(writer.temporaryDirectory(), `up-${oid}`);
      writeFileSync(f, c);
      await writer.storeBlob(oid, 0n, BLOB_RECORD, f, t);
      await writer.tpc_vote(t);
      last = await writer.tpc_finish(t);
    }
    await clientSeen(reader, last);
    for (let i = 0; i < contents.length; i++) {
      const { tid: serial } = await reader.load(oids[i]!);
      assert.deepEqual(readFileSync(await reader.loadBlob(oids[i]!, serial)), contents[i], `blob ${i} read through the last secondary`);
    }
    const st = (await adminCommand(r.admin!, 'status')) as { status: Record<string, Record<string, unknown>> };
    assert.equal(st.status['1']!.protocol, 'zrs2.1', 'a blob-enabled secondary announces zrs2.1 (§14 #4)');
  } finally {
    await writer.close();
    await reader.close();
    await s.stop();
    await r.stop();
    await p.stop();
  }
  // same data files, same blob files on all three
  const pf = readFileSync(join(d, 'p.fs'));
  assert.ok(pf.equals(readFileSync(join(d, 'r.fs'))), 'relay data file identical');
  assert.ok(pf.equals(readFileSync(join(d, 's.fs'))), 'secondary data file identical');
  const pb = blobFiles(b('p'));
  assert.equal(pb.size, contents.length);
  assert.deepEqual(blobFiles(b('r')), pb);
  assert.deepEqual(blobFiles(b('s')), pb);
});

test('zrs §14 #34-#36, #50: kill -9 a blob relay while blobs stream through it; restarted, the chain converges (same files, same blob files, no partial files left)', async () => {
  const d = tempDir('zrs-blobs-kill-');
  const b = (n: string) => join(d, `${n}.blobs`);
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), blobDir: b('p'), replicateTo: 0 }), d, 'p.conf');
  let r: ZrsProcess = await startZrs(zrsConfig({ dir: d, path: join(d, 'r.fs'), blobDir: b('r'), replicateFrom: p.replPort, replicateTo: 0, extra: '  reconnect-delay 0.1' }), d, 'r.conf');
  const rconf = zrsConfig({ dir: d, path: join(d, 'r.fs'), blobDir: b('r'), replicateFrom: p.replPort, replicateTo: r.replPort, zeoPort: r.port, extra: '  reconnect-delay 0.1' });
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), blobDir: b('s'), replicateFrom: r.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  const writer = await blobClient(p.port, join(d, 'cache-w'));
  let last: Tid = 0n;
  let n = 0;
  let stop = false;
  try {
    const load = (async () => {
      for (; !stop && n < 2000; n++) {
        const t = new TransactionMetaData('', `blob ${n}`);
        const oid = await writer.new_oid();
        await writer.tpc_begin(t);
        const f = join(writer.temporaryDirectory(), `up-${oid}`);
        writeFileSync(f, randomBytes(150_000 + n));
        await writer.storeBlob(oid, 0n, BLOB_RECORD, f, t);
        await writer.tpc_vote(t);
        last = await writer.tpc_finish(t);
      }
    })();
    await r.waitLog(/: Connected/, 'zc.zrs.secondary');
    const target = n + 10;
    for (let g = 0; n < target && g < 1e6; g++) await new Promise<void>((res) => setImmediate(res));
    await r.stop('SIGKILL');
    r = await startZrs(rconf, d, 'r.conf');
    stop = true;
    await load;
    const reader = await blobClient(s.port, join(d, 'cache-r'), true);
    await clientSeen(reader, last);
    await reader.close();
  } finally {
    await writer.close();
    await s.stop();
    await r.stop();
    await p.stop();
  }
  assert.ok(n >= 10, `${n} blob transactions`);
  const pf = readFileSync(join(d, 'p.fs'));
  assert.ok(pf.equals(readFileSync(join(d, 'r.fs'))), 'relay data file identical');
  assert.ok(pf.equals(readFileSync(join(d, 's.fs'))), 'secondary data file identical');
  const pb = blobFiles(b('p'));
  assert.equal(pb.size, n);
  assert.deepEqual(blobFiles(b('r')), pb);
  assert.deepEqual(blobFiles(b('s')), pb);
  for (const x of ['r', 's']) assert.deepEqual(readdirSync(join(b(x), 'tmp')).filter((f) => f.startsWith('secondary')), [], `no partial blob files in ${x}`);
});
