// Recorded zc.zrs streams (shared/vectors/zrs): our primary must send the recorded messages,
// our secondary fed them must build the recorded file. zrs §14 #4, #5, #9–#14, #17–#21, #26–#27,
// #33, #35.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { FileStorage } from '@zeo-ts/filestorage';
import { fromHex, toHex } from '@zeo-ts/storage';
import { Primary, Secondary, TidTooHigh } from '../src/index.ts';
import { FakePrimary, RawClient, copyTo, loadMessages, memoryLogger, tempDir, until } from './helpers.ts';

const skip = vectorsSkip('zrs');
const V = (...p: string[]) => vectorsDir('zrs', ...p);

async function primaryOn(file: string) {
  const d = tempDir();
  const fs = new FileStorage(copyTo(file, d));
  const m = memoryLogger();
  const p = new Primary(fs, { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  return { p, m, d };
}

for (const [scenario, file] of [
  ['fresh-secondary', 'fresh-secondary-primary.fs'],
  ['resume', 'resume-primary.fs'],
] as const) {
  test(`zrs §14 #9-#13, #17-#21, #26, #27: our primary sends exactly the recorded ${scenario} stream`, { skip }, async () => {
    const msgs = loadMessages(V(`${scenario}.json`)).filter((m) => m.conn === 1);
    const s2p = msgs.filter((m) => m.dir === 's2p' && m.kind !== 'keep-alive');
    const p2s = msgs.filter((m) => m.dir === 'p2s');
    const { p, m } = await primaryOn(V('data', file));
    const c = new RawClient(p.port);
    await c.ready;
    for (const x of s2p) c.send(Buffer.from(x.hex, 'hex'));
    c.send(Buffer.alloc(0)); // a keep-alive is ignored (§14 #8)
    const got = await c.waitCount(p2s.length);
    assert.equal(got.length, p2s.length);
    for (let i = 0; i < p2s.length; i++) assert.equal(got[i]!.toString('hex'), p2s[i]!.hex, `payload ${i} (seq ${p2s[i]!.seq}, ${p2s[i]!.kind})`);
    assert.ok(m.has(/start [0-9a-f]{16} \(/));
    c.close();
    await c.gone;
    await p.close();
  });
}

test('zrs §14 #14: the bad-start secondary (ahead of the primary) gets nothing and is disconnected', { skip }, async () => {
  const msgs = loadMessages(V('bad-start.json')).filter((m) => m.conn === 1 && m.dir === 's2p');
  const { p, m } = await primaryOn(V('data', 'resume-primary.fs'));
  const c = new RawClient(p.port);
  await c.ready;
  for (const x of msgs) c.send(Buffer.from(x.hex, 'hex'));
  await c.gone;
  assert.equal(c.received.length, 0);
  assert.ok(m.lines.some((l) => l.level === 50 && /TidTooHigh/.test(l.msg)));
  await p.close();
});

/** Feed a secondary the recorded p2s payloads of connection 1 from a fake primary. */
async function feedSecondary(scenario: string, startFile: string | null, expectFile: string) {
  const msgs = loadMessages(V(`${scenario}.json`)).filter((m) => m.conn === 1);
  const s2p = msgs.filter((m) => m.dir === 's2p' && m.kind !== 'keep-alive');
  const p2s = msgs.filter((m) => m.dir === 'p2s');
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const path = startFile ? copyTo(startFile, d) : join(d, 'Data.fs');
  const fs = new FileStorage(path);
  const m = memoryLogger();
  const sec = new Secondary(fs, { host: '127.0.0.1', port }, { logger: m.log, native: 'never', reconnectDelay: 3600 });
  const c = await fake.connection(0);
  await c.waitCount(2);
  assert.deepEqual(c.received.map((b) => b.toString('hex')), s2p.map((x) => x.hex), 'handshake (§14 #4, #5)');
  for (const x of p2s) c.send(Buffer.from(x.hex, 'hex'));
  const lastT = [...p2s].reverse().find((x) => x.kind === 'T')!;
  const lastTid = fromHex((lastT.decoded as [string, [{ hex: string }]])[1][0].hex);
  await until(() => fs.lastTransaction() === lastTid, () => sec.changed(), `tid ${toHex(lastTid)}`);
  assert.ok(!m.has(/Input data error/));
  await sec.close();
  await fake.close();
  assert.deepEqual(readFileSync(path), readFileSync(expectFile), 'same data file byte for byte');
  return { sec, m };
}

test('zrs §14 #4, #5, #26-#28, #33, #37: our secondary fed the fresh-secondary stream writes the same file', { skip }, async () => {
  await feedSecondary('fresh-secondary', null, V('data', 'fresh-secondary-secondary.fs'));
});

test('zrs §14 #35: our secondary resumes from its own last tid and writes the resume file', { skip }, async () => {
  await feedSecondary('resume', V('data', 'fresh-secondary-secondary.fs'), V('data', 'resume-secondary.fs'));
});

test('zrs §14 #28, #39: a wrong checksum aborts the open transaction and drops the connection', { skip }, async () => {
  const msgs = loadMessages(V('fresh-secondary.json')).filter((m) => m.conn === 1 && m.dir === 'p2s');
  const fake = new FakePrimary();
  const port = await fake.listening;
  const d = tempDir();
  const fs = new FileStorage(join(d, 'Data.fs'));
  const m = memoryLogger();
  const sec = new Secondary(fs, { host: '127.0.0.1', port }, { logger: m.log, native: 'never', reconnectDelay: 3600 });
  const c = await fake.connection(0);
  await c.waitCount(2);
  const firstC = msgs.findIndex((x) => x.kind === 'C');
  for (let i = 0; i < firstC; i++) c.send(Buffer.from(msgs[i]!.hex, 'hex'));
  const bad = Buffer.from(msgs[firstC]!.hex, 'hex');
  bad[30] ^= 1;
  c.send(bad);
  await c.gone;
  await m.waitFor(/Input data error/);
  assert.equal(fs.lastTransaction(), 0n);
  assert.equal(statSync(join(d, 'Data.fs')).size, 4);
  await sec.close();
  await fake.close();
});

test('fsiterator: TidTooHigh for a tid after the last one', { skip }, async () => {
  const { p } = await primaryOn(V('data', 'resume-primary.fs'));
  const { FileIterator } = await import('../src/index.ts');
  const it = new FileIterator(p.storage.path, { committedEnd: () => p.getSize(), lastTransaction: () => p.lastTransaction() });
  assert.throws(() => it.locate(p.lastTransaction() + 1n), TidTooHigh);
  it.locate(p.lastTransaction());
  assert.equal(it.pos, p.getSize());
  assert.equal(it.next(), null);
  it.close();
  await p.close();
});
