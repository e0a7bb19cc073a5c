// vectors/client-cache/small.zec (written by a real ClientStorage session) and damaged.zec.
// client-cache §13 #5 #6 #10 #15 #16 #17 #24, §14 #5
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { ClientCache } from '../src/index.ts';
import { captureLogger, fileSha1, h16, hex, sha1, tmp, walkBlocks } from './helpers.ts';

const skip = vectorsSkip('client-cache', 'small.zec.json');
const SIZE = 204800;

function expected(name: string) {
  return JSON.parse(readFileSync(vectorsDir('client-cache', name), 'utf8'));
}

async function openCopy(src: string, name: string, memoryImage = true) {
  const dir = tmp();
  const path = join(dir, name);
  copyFileSync(vectorsDir('client-cache', src), path);
  const log = captureLogger();
  const cache = await ClientCache.open(path, { size: SIZE, logger: log, trace: false, memoryImage });
  return { dir, path, log, cache };
}

test('small.zec reopens with the indexes, last tid and write pointer the real cache reports, unchanged (client-cache §13 #5 #6)', { skip }, async () => {
  const exp = expected('small.zec.json');
  const { path, log, cache } = await openCopy('small.zec', 'small.zec');
  try {
    assert.equal(h16(cache.getLastTid()), exp.last_tid);
    assert.equal(cache.len, exp.len);
    assert.equal(cache.writePointer, exp.write_pointer);
    const file = readFileSync(path);
    const recs = cache.records().map((r) => {
      const data = file.subarray(r.offset + 35, r.offset + r.size - 8);
      return {
        offset: r.offset,
        size: r.size,
        oid: h16(r.oid),
        start_tid: h16(r.start),
        end_tid: r.end === null ? null : h16(r.end),
        data_len: data.length,
        data_sha1: sha1(data),
        index: r.end === null ? 'current' : 'noncurrent',
      };
    });
    assert.deepEqual(recs, exp.records);
    assert.equal(recs.filter((r) => r.index === 'current').length, exp.n_current);
    assert.equal([...cache.contents()].length, exp.n_current);
    const free = walkBlocks(file).filter((b) => b[1] !== 'a');
    assert.deepEqual(free, exp.free_blocks);
    assert.deepEqual(log.lines.map((l) => [l.level, l.message.replace(path, 'small.zec')]), exp.open_logs.map((l: { level: string; message: string }) => [l.level, l.message]));
  } finally {
    await cache.close();
  }
  assert.equal(fileSha1(path), exp.file_sha1, 'opening and closing leaves the file unchanged');
});

test('small.zec answers every recorded load/loadBefore query exactly, including the copy-forward of oid 0x92 (client-cache §13 #15 #16 #17 #24)', { skip }, async () => {
  const exp = expected('small.zec.json');
  assert.equal(exp.queries.length, 21);
  for (const [i, q] of exp.queries.entries()) {
    const { path, cache } = await openCopy('small.zec', 'small.zec', i % 2 === 0);
    let result: Record<string, unknown> | null;
    if (q.op === 'load') {
      const r = cache.load(hex(q.oid));
      result = r && { data_len: r.data.length, data_sha1: sha1(r.data), start_tid: h16(r.tid) };
    } else {
      const r = cache.loadBefore(hex(q.oid), hex(q.tid));
      result = r && { data_len: r.data.length, data_sha1: sha1(r.data), start_tid: h16(r.start), end_tid: r.end === null ? null : h16(r.end) };
    }
    const s = cache.getStats();
    const where = `${q.op}(${q.oid}${q.tid ? ', ' + q.tid : ''}): ${q.note}`;
    assert.deepEqual(result, q.result, where);
    assert.deepEqual([s.adds, s.addedBytes, s.evictions, s.evictedBytes, s.accesses], q.stats_after, where);
    assert.equal(cache.writePointer, q.write_pointer_after, where);
    await cache.close();
    assert.equal(fileSha1(path), q.file_sha1_after, where);
  }
});

test('damaged.zec is moved to .bad (or removed when .bad exists) and replaced by an empty cache (client-cache §13 #10, §14 #5)', { skip: vectorsSkip('client-cache', 'damaged.zec.json') }, async () => {
  const exp = expected('damaged.zec.json');
  const first = exp.first_open;
  const { dir, path, log, cache } = await openCopy('damaged.zec', 'damaged.zec');
  try {
    assert.equal(cache.len, 0);
    assert.equal(cache.getLastTid(), 0n);
    assert.equal(cache.writePointer, 12);
    assert.deepEqual(walkBlocks(readFileSync(path)), first.state_after_open.blocks);
    assert.equal(fileSha1(path), first.state_after_open.file_sha1);
    assert.equal(fileSha1(path + '.bad'), first.bad_file_sha1, 'the .bad file is the damaged file unchanged');
    assert.ok(existsSync(path + '.lock'));
    const lines = log.lines.map((l) => [l.level, l.message.replaceAll(dir + '/', '')]);
    assert.deepEqual(lines, first.logs.map((l: { level: string; message: string }) => [l.level, l.message]));
    // our message names the byte and its offset plainly (§14 #5)
    assert.match(String((log.lines[1]!.err as Error).message), /offset 2021: unknown status byte value 0x58/);
  } finally {
    await cache.close();
  }
  assert.equal(fileSha1(path), first.file_sha1_after_close);
  assert.equal(fileSha1(path), exp.new_empty_cache_sha1);

  // second open: .bad exists, so the damaged file is deleted
  copyFileSync(vectorsDir('client-cache', 'damaged.zec'), path);
  const badBefore = readFileSync(path + '.bad');
  writeFileSync(path + '.bad', badBefore);
  const log2 = captureLogger();
  const c2 = await ClientCache.open(path, { size: SIZE, logger: log2, trace: false });
  try {
    assert.equal(c2.len, 0);
    assert.equal(fileSha1(path), exp.second_open.state_after_open.file_sha1);
    assert.deepEqual(readFileSync(path + '.bad'), badBefore, 'existing .bad left alone');
    assert.deepEqual(
      log2.lines.map((l) => [l.level, l.message.replaceAll(dir + '/', '')]),
      exp.second_open.logs.map((l: { level: string; message: string }) => [l.level, l.message]),
    );
  } finally {
    await c2.close();
  }
});
