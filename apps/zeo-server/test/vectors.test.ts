// Conformance evidence: replay the client side of every recorded ZEO 5 session
// (/work/shared/vectors/zeo5, both encodings) against runzeo running as a child process over
// FileStorage, and compare every server frame byte for byte (varying fields masked, symbols
// checked). Checklist: zeo5-protocol S-1..S-9, S-11..S-16, S-19..S-24, S-26, S-29..S-31, S-35..S-37;
// operations #79..#81, #85.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { TransactionMetaData, z64 } from '@zeo-ts/storage';
import { FileStorage } from '@zeo-ts/filestorage';
import { replayVector, type VectorFile } from '@zeo-ts/server/testing';
import { startRunzeo, tempDir } from './helpers.ts';
import { runzeo } from '../src/runzeo.ts';

const skip = vectorsSkip('zeo5');
const files = skip ? [] : readdirSync(vectorsDir('zeo5')).filter((f) => f.endsWith('.json')).sort();

/** zeo.conf for a scenario's server options. */
function zeoConf(v: VectorFile): string {
  const options = [...v.server_options];
  // the recordings without this option ran with upstream's default (false); ours is true
  if (!options.some((o) => o.startsWith('client-conflict-resolution'))) options.push('client-conflict-resolution false');
  const opts = options.map((o) => `  ${o}`).join('\n');
  return `<zeo>\n  address 127.0.0.1:0\n  msgpack ${v.encoding === 'M5' ? 'true' : 'false'}\n${opts}\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n`;
}

/** read-only-server starts from a storage holding one transaction (root and root["obj"]). */
async function prepareReadOnlyServer(dir: string, v: VectorFile): Promise<void> {
  const records = new Map<bigint, Buffer>();
  for (const f of v.frames) {
    const d = f.decoded as { method?: string; msgid?: unknown; args?: unknown };
    if (f.dir === 's2c' && d.method === '.reply' && Array.isArray(d.msgid) && Array.isArray(d.args)) {
      const oid = BigInt('0x' + (d.msgid[0] as { hex: string }).hex);
      records.set(oid, Buffer.from((d.args[0] as { hex: string }).hex, 'hex'));
    }
  }
  const info = v.frames.map((f) => f.decoded as { args?: { size?: number; name?: string } }).find((d) => d.args?.name === 'Data.fs');
  const size = info!.args!.size!;
  // file = 4 magic + txn header 23 + user + description + 8 + per record (42 + data)
  let recBytes = 0;
  for (const r of records.values()) recBytes += 42 + r.length;
  const descLen = size - 4 - 23 - 8 - recBytes;
  assert.ok(descLen >= 0);
  const fs = await FileStorage.open(join(dir, 'Data.fs'), { create: true, name: 'Data.fs' });
  const t = new TransactionMetaData('', 'x'.repeat(descLen));
  await fs.tpc_begin(t);
  for (const [oid, data] of [...records.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) await fs.store(oid, z64, data, t);
  await fs.tpc_vote(t);
  await fs.tpc_finish(t);
  await fs.close();
}

async function replayInProcess(file: string): Promise<void> {
  const v = JSON.parse(readFileSync(vectorsDir('zeo5', file), 'utf8')) as VectorFile;
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), zeoConf(v));
  if (v.scenario === 'read-only-server') await prepareReadOnlyServer(dir, v);
  const signals = new EventEmitter();
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  let err = '';
  const done = runzeo(['-C', 'zeo.conf'], {
    stdout: () => undefined,
    stderr: (t) => (err += t),
    env: { ...process.env, ZEO_TS_LOG_LEVEL: 'silent' },
    cwd: dir,
    signals,
    onListening: (a) => {
      port = 'port' in a ? a.port : 0;
      listening();
    },
  });
  await Promise.race([ready, done.then((c) => assert.fail(`runzeo exited early (${c}): ${err}`))]);
  try {
    const res = await replayVector(v, { connect: () => net.connect(port, '127.0.0.1') });
    assert.deepEqual(res.mismatches, [], `${file}: ${res.mismatches.length} mismatching frames:\n${res.mismatches.join('\n')}`);
    assert.ok(res.framesChecked > 0);
  } finally {
    signals.emit('SIGTERM');
    assert.equal(await done, 0, err);
  }
}

async function replayChild(file: string): Promise<void> {
  const v = JSON.parse(readFileSync(vectorsDir('zeo5', file), 'utf8')) as VectorFile;
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), zeoConf(v));
  const rz = await startRunzeo(['-C', 'zeo.conf'], { cwd: dir });
  try {
    const res = await replayVector(v, { connect: () => net.connect(rz.port, '127.0.0.1') });
    assert.deepEqual(res.mismatches, [], `${file}: ${res.mismatches.length} mismatching frames:\n${res.mismatches.join('\n')}`);
  } finally {
    assert.equal(await rz.stop('SIGTERM'), 0, rz.stderr());
  }
}

describe('zeo5 vectors against runzeo (in-process, FileStorage)', { concurrency: 4 }, () => {
  for (const file of files) {
    test(`zeo5 vector ${file} replays byte for byte`, { timeout: 60_000 }, () => replayInProcess(file));
  }
});

describe('zeo5 vectors against runzeo as a child process', { concurrency: 2, skip }, () => {
  for (const file of ['m5-two-clients-invalidation.json', 'z5-two-clients-invalidation.json', 'm5-conflict-ccr.json', 'z5-conflict.json']) {
    test(`zeo5 vector ${file} replays against a runzeo process`, { timeout: 60_000 }, () => replayChild(file));
  }
});
