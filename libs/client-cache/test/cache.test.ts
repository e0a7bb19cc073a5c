// Behaviour of the cache file beyond the vectors: the worked example of spec §3.4, opening
// edge cases, locking, tracing switches, crash safety.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ClientCache, cachePathFor, encodeRecord, encodeTraceRecord, LockError, MAX_BLOCK_SIZE, CacheValueError } from '../src/index.ts';
import { captureLogger, D, tmp, walkBlocks } from './helpers.ts';

const here = dirname(fileURLToPath(import.meta.url));
const quiet = () => captureLogger();

function bytes(hexs: string): Buffer {
  return Buffer.from(hexs.replace(/\s+/g, ''), 'hex');
}

test('worked example of spec §3.4, byte for byte (client-cache §13 #1 #3 #4 #5 #6 #18 #21 #23)', async () => {
  const path = join(tmp(), 'ex.zec');
  let c = await ClientCache.open(path, { size: 200, logger: quiet(), trace: false });
  let f = readFileSync(path);
  assert.equal(f.length, 200);
  assert.deepEqual(f.subarray(0, 17), bytes('5a454333 0000000000000000 66000000bc'));
  assert.equal(f[199], 0x78); // §14 #2

  c.store(1n, 2n, null, Buffer.from('data'));
  f = readFileSync(path);
  assert.deepEqual(
    f.subarray(12, 64),
    bytes('610000002f 0000000000000001 0000000000000002 0000000000000000 0000 00000004 64617461 0000000000000001 660000008d'),
  );
  const before = Buffer.from(f);
  c.invalidate(1n, 3n);
  f = readFileSync(path);
  for (let i = 0; i < 200; i++) if (i < 33 || i > 40) assert.equal(f[i], before[i], `byte ${i} unchanged by invalidate`);
  assert.deepEqual(f.subarray(33, 41), bytes('0000000000000003'));

  c.setLastTid(3n);
  c.store(1n, 3n, null, Buffer.from('new'));
  f = readFileSync(path);
  assert.deepEqual(f.subarray(4, 12), bytes('0000000000000003'));
  assert.deepEqual(f.subarray(59, 64), bytes('610000002e'));
  assert.deepEqual(f.subarray(105, 110), bytes('660000005f'));
  await c.close();

  c = await ClientCache.open(path, { size: 200, logger: quiet(), trace: false });
  assert.deepEqual(c.records().map((r) => [r.offset, r.oid, r.start, r.end]), [
    [12, 1n, 2n, 3n],
    [59, 1n, 3n, null],
  ]);
  assert.equal(c.len, 2);
  assert.equal(c.writePointer, 105);
  assert.equal(c.getLastTid(), 3n);

  const d20 = D(0, 20);
  const rows: Array<[bigint, number, number, string, number]> = [
    // oid, pointer before, pointer after, surviving oids, count
    [2n, 105, 168, '1,1,2', 3],
    [3n, 168, 75, '2,3', 2],
    [4n, 75, 138, '3,4', 2],
    [5n, 138, 75, '5', 1],
  ];
  for (const [oid, ptrBefore, ptrAfter, survivors, count] of rows) {
    assert.equal(c.writePointer, ptrBefore);
    c.store(oid, 4n, null, d20);
    assert.equal(c.writePointer, ptrAfter, `after storing oid ${oid}`);
    assert.equal(c.len, count);
    assert.equal(c.records().map((r) => String(r.oid)).sort().join(','), survivors);
  }
  const blocks = walkBlocks(readFileSync(path));
  assert.deepEqual(blocks.slice(0, 2), [[12, 'a', 63], [75, 'f', 63]]);
  await c.close();
});

test('sizes below 12 become 12; tiny caches store nothing and reopen cleanly (client-cache §13 #2 #14, §14 #3)', async () => {
  const dir = tmp();
  for (const size of [0, 5, 12, 13, 14, 16, 17]) {
    const path = join(dir, `t${size}.zec`);
    const c = await ClientCache.open(path, { size, logger: quiet(), trace: false });
    assert.equal(c.maxsize, Math.max(size, 12));
    c.store(1n, 1n, null, Buffer.alloc(0));
    assert.equal(c.len, 0);
    await c.close();
    assert.equal(statSync(path).size, Math.max(size, 12));
    const log = quiet();
    const c2 = await ClientCache.open(path, { size, logger: log, trace: false });
    assert.deepEqual(log.lines.map((l) => l.level), ['INFO'], `size ${size} reopens without a .bad rename`);
    await c2.close();
  }
});

test('store rules: duplicates, current conflict, too-large objects, invalidate(None) (client-cache §13 #12 #13 #14 #19 #22)', async () => {
  const path = join(tmp(), 's.zec');
  const c = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  c.store(1n, 5n, null, D(1, 10));
  c.store(1n, 5n, null, D(1, 10));
  assert.equal(c.len, 1);
  assert.throws(() => c.store(1n, 6n, null, D(1, 10)), (e: unknown) => e instanceof CacheValueError && e.message === 'already have current data for oid');
  c.store(1n, 2n, 5n, D(2, 10));
  c.store(1n, 2n, 5n, D(2, 10));
  assert.equal(c.len, 2);
  c.store(9n, 5n, null, D(3, 945)); // 43 + 945 = 988 = maxsize - 12
  assert.equal(c.len, 2);
  assert.equal(c.load(9n), null);
  c.invalidate(9n, 7n); // harmless miss
  c.invalidate(1n, null);
  assert.equal(c.len, 1);
  assert.equal(c.load(1n), null);
  assert.equal(c.loadBefore(1n, 5n)?.start, 2n);
  const f = readFileSync(path);
  assert.equal(String.fromCharCode(f[12]!), 'f');
  assert.equal(f.readUInt32BE(13), 53);
  c.setLastTid(9n);
  c.clear();
  assert.equal(c.len, 0);
  assert.equal(c.getLastTid(), 9n);
  assert.equal(c.writePointer, 12);
  assert.equal(statSync(path).size, 1000);
  assert.deepEqual(walkBlocks(readFileSync(path)), [[12, 'f', 988]]);
  // an emptied cache accepts a smaller tid
  c.setLastTid(3n);
  assert.equal(c.getLastTid(), 3n);
  await c.close();
});

test('loadBefore examples of spec §5.5 (client-cache §13 #17)', async () => {
  const c = await ClientCache.open(null, { size: 10000, logger: quiet() });
  c.store(1n, 4n, null, Buffer.from('cur'));
  c.store(1n, 2n, 3n, Buffer.from('old'));
  assert.equal(c.loadBefore(1n, 2n), null);
  assert.deepEqual(c.loadBefore(1n, 3n), { data: Buffer.from('old'), start: 2n, end: 3n });
  assert.equal(c.loadBefore(1n, 4n), null);
  c.invalidate(1n, 5n);
  assert.deepEqual(c.loadBefore(1n, 5n), { data: Buffer.from('cur'), start: 4n, end: 5n });
  c.store(2n, 1n, null, Buffer.from('x'));
  assert.equal(c.loadBefore(2n, 1n), null);
  assert.deepEqual(c.loadBefore(2n, 2n), { data: Buffer.from('x'), start: 1n, end: null });
  assert.equal(c.load(2n, 1n), null);
  await c.close();
});

test('temporary cache: anonymous file, no lock, no trace even with ZEO_CACHE_TRACE (client-cache §13 #33)', async () => {
  process.env.ZEO_CACHE_TRACE = '1';
  try {
    const log = quiet();
    const c = await ClientCache.open(null, { size: 5000, logger: log });
    assert.equal(c.path, null);
    assert.equal(c.tracing, false);
    c.store(1n, 1n, null, Buffer.from('abc'));
    assert.deepEqual(c.load(1n)?.data, Buffer.from('abc'));
    assert.match(log.lines[0]!.message, /^created temporary cache file /);
    await c.close();
  } finally {
    delete process.env.ZEO_CACHE_TRACE;
  }
});

test('ZEO_CACHE_TRACE switches tracing for persistent caches; restart record layout (client-cache §13 #31 #32 #33, §9.2)', async () => {
  const dir = tmp();
  const path = join(dir, 'tr.zec');
  delete process.env.ZEO_CACHE_TRACE;
  let c = await ClientCache.open(path, { size: 5000, logger: quiet() });
  await c.close();
  assert.equal(existsSync(path + '.trace'), false);
  process.env.ZEO_CACHE_TRACE = '';
  c = await ClientCache.open(path, { size: 5000, logger: quiet() });
  await c.close();
  assert.equal(existsSync(path + '.trace'), false);
  process.env.ZEO_CACHE_TRACE = '1';
  try {
    const log = quiet();
    c = await ClientCache.open(path, { size: 5000, logger: log, traceClock: () => 1700000000.75 });
    assert.equal(c.tracing, true);
    assert.deepEqual(log.lines.map((l) => l.message.replace(dir + '/', '')), ["reusing persistent cache file 'tr.zec'", "opened tracefile 'tr.zec.trace'"]);
    await c.close();
    c = await ClientCache.open(path, { size: 5000, logger: quiet(), traceClock: () => 1700000060 });
    c.store(1n, 1n, null, Buffer.alloc(100));
    await c.close();
  } finally {
    delete process.env.ZEO_CACHE_TRACE;
  }
  const t = readFileSync(path + '.trace');
  assert.equal(t.length, 26 + 26 + 34, 'appended, not truncated');
  assert.deepEqual(t.subarray(0, 26), bytes('6553f100 00000000 0000' + '00'.repeat(16)));
  assert.deepEqual(
    t.subarray(52),
    bytes('6553f13c 00006452 0008 0000000000000001 0000000000000000 0000000000000001'),
  );
  // dlen is capped to 23 bits instead of failing (§12.4); timestamps wrap to signed 32 bits
  const b = Buffer.alloc(34);
  encodeTraceRecord(b, 0, 2 ** 31 + 5, 0x52, 1n, 1n, 0n, 9 * 1024 * 1024);
  assert.equal(b.readInt32BE(0), -(2 ** 31) + 5);
  assert.equal(b.readInt32BE(4), 0x7fffff52);
});

test('a second open of a locked cache fails with LockError; the lock file stays (client-cache §13 #11)', async () => {
  const dir = tmp();
  const path = join(dir, 'l.zec');
  const c = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  const log = quiet();
  await assert.rejects(ClientCache.open(path, { size: 1000, logger: log, trace: false }), (e: unknown) => e instanceof LockError && e.message === `Couldn't lock '${path}.lock'`);
  assert.deepEqual(log.lines.map((l) => [l.level, l.message]), [['ERROR', `Error locking file ${path}.lock; pid=${process.pid}`]]);
  assert.equal(readFileSync(path + '.lock', 'latin1'), ` ${process.pid}\n`);
  await c.close();
  assert.ok(existsSync(path + '.lock'));
  const c2 = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  await c2.close();

  // held by another process (flock(1), the same lock zc.lockfile takes)
  if (spawnSync('flock', ['--version']).error) return; // no util-linux here: the pid fallback is in use
  const holder = spawn('flock', ['-x', path + '.lock', 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const gone = new Promise((res) => holder.once('exit', res));
  await new Promise<void>((res, rej) => {
    holder.once('error', rej);
    holder.stdout.once('data', () => res());
  });
  const before = readFileSync(path);
  await assert.rejects(ClientCache.open(path, { size: 2000, logger: quiet(), trace: false }), LockError);
  assert.deepEqual(readFileSync(path), before, 'cache file untouched');
  holder.stdin.end();
  await gone;
  const c3 = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  await c3.close();
});

function badFileCase(name: string, build: (fd: number) => void, size = 1000) {
  test(`damaged file (${name}) is moved to .bad and replaced by an empty cache (client-cache §13 #10, §12.9)`, async () => {
    const dir = tmp();
    const path = join(dir, 'b.zec');
    const c0 = await ClientCache.open(path, { size, logger: quiet(), trace: false });
    c0.setLastTid(7n);
    await c0.close();
    const fd = openSync(path, 'r+');
    build(fd);
    closeSync(fd);
    const damaged = readFileSync(path);
    const log = quiet();
    const c = await ClientCache.open(path, { size, logger: log, trace: false });
    assert.equal(log.lines[1]?.level, 'CRITICAL', JSON.stringify(log.lines));
    assert.equal(log.lines[1]!.message, `Moving bad cache file to '${path}.bad'.`);
    assert.equal(c.len, 0);
    assert.equal(c.getLastTid(), 0n);
    assert.deepEqual(walkBlocks(readFileSync(path)), [[12, 'f', size - 12]]);
    assert.deepEqual(readFileSync(path + '.bad'), damaged);
    await c.close();
  });
}
const put = (fd: number, at: number, b: Buffer) => writeSync(fd, b, 0, b.length, at);
badFileCase('wrong magic', (fd) => put(fd, 0, Buffer.from('ZEC4')));
badFileCase('short header', (fd) => ftruncateSync(fd, 9));
badFileCase('unknown status byte', (fd) => put(fd, 12, Buffer.from('X')));
badFileCase('zero-size free block', (fd) => put(fd, 12, bytes('6600000000')));
badFileCase('undersized record', (fd) => put(fd, 12, bytes('6100000010')));
badFileCase('duplicate current oid', (fd) => {
  put(fd, 12, encodeRecord(1n, 1n, null, D(0, 10)));
  put(fd, 65, encodeRecord(1n, 2n, null, D(0, 10)));
  put(fd, 118, bytes('6600000372')); // free to 1000
});
badFileCase('non-current with start >= end', (fd) => {
  put(fd, 12, encodeRecord(1n, 5n, 5n, D(0, 10)));
  put(fd, 65, bytes('66000003a7')); // free to 1000
});
badFileCase('block overrunning a short file', (fd) => {
  ftruncateSync(fd, 500);
  put(fd, 12, Buffer.concat([Buffer.from('f'), Buffer.from([0, 0, 0x03, 0xdc])]));
});

test('a free block larger than 2^31-1 found on open is split in two (client-cache §13 #9)', async () => {
  const path = join(tmp(), 'big.zec');
  const size = MAX_BLOCK_SIZE + 1000;
  // sparse file: header, then one free block over everything (as a crash during a store leaves it)
  const fd = openSync(path, 'w+');
  put(fd, 0, Buffer.concat([Buffer.from('ZEC3'), Buffer.alloc(8)]));
  const h = Buffer.alloc(5);
  h[0] = 0x66;
  h.writeUInt32BE(size - 12, 1);
  put(fd, 12, h);
  ftruncateSync(fd, size);
  closeSync(fd);
  const c = await ClientCache.open(path, { size, logger: quiet(), trace: false });
  await c.close();
  const rfd = openSync(path, 'r');
  const b = Buffer.alloc(5);
  const readAt = (at: number) => {
    readSync(rfd, b, 0, 5, at);
    return [String.fromCharCode(b[0]!), b.readUInt32BE(1)];
  };
  assert.deepEqual(readAt(12), ['f', MAX_BLOCK_SIZE]);
  assert.deepEqual(readAt(12 + MAX_BLOCK_SIZE), ['f', size - 12 - MAX_BLOCK_SIZE]);
  closeSync(rfd);
});

test('eviction of a record whose non-current index entry is missing logs and continues (client-cache §13 #26)', async () => {
  const path = join(tmp(), 'dup.zec');
  const c0 = await ClientCache.open(path, { size: 300, logger: quiet(), trace: false });
  await c0.close();
  const fd = openSync(path, 'r+');
  // two records with the same (oid, start): the index keeps one entry
  put(fd, 12, encodeRecord(1n, 1n, 2n, D(0, 10)));
  put(fd, 65, encodeRecord(1n, 1n, 3n, D(0, 10)));
  put(fd, 118, Buffer.concat([Buffer.from('f'), Buffer.from([0, 0, 0, 182])]));
  closeSync(fd);
  const log = quiet();
  const c = await ClientCache.open(path, { size: 300, logger: log, trace: false });
  assert.equal(c.len, 2);
  c.store(2n, 5n, null, D(1, 200)); // 243 bytes + 1: wraps to 12 and evicts both
  assert.ok(log.lines.some((l) => l.level === 'ERROR' && l.message.startsWith("Couldn't find non-current")), JSON.stringify(log.lines));
  assert.deepEqual(c.load(2n)?.data, D(1, 200));
  await c.close();
});

test('killing a process in the middle of stores leaves a cache that opens cleanly (client-cache §13 #25)', async () => {
  const dir = tmp();
  const path = join(dir, 'k.zec');
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'store-forever.ts'), path, String(round)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((res) => child.once('exit', res));
    const rl = createInterface({ input: child.stdout });
    let seen = 0;
    for await (const _line of rl) {
      if (++seen >= 200 + round * 37) break;
    }
    child.kill('SIGKILL');
    await exited;
    const log = quiet();
    // rearrange 2: no copy-forward, so checking one record cannot evict another
    const c = await ClientCache.open(path, { size: 20000, logger: log, trace: false, rearrange: 2 });
    assert.deepEqual(log.lines.map((l) => l.level), ['INFO'], JSON.stringify(log.lines));
    assert.ok(c.len > 0);
    for (const [oid, tid] of [...c.contents()]) {
      const r = c.load(oid);
      assert.equal(r?.tid, tid);
      assert.ok(r.data.every((x) => x === r.data[0]));
    }
    await c.close();
  }
  assert.deepEqual(readdirSync(dir).sort(), ['k.zec', 'k.zec.lock']);
});

test('records of 8 MiB and more are traced with a capped dlen and never fail the store (§12.4)', async () => {
  const path = join(tmp(), 'huge.zec');
  const c = await ClientCache.open(path, { size: 20 * 1024 * 1024, logger: quiet(), trace: true, traceClock: () => 1 });
  const data = Buffer.alloc(9 * 1024 * 1024, 7);
  c.store(1n, 1n, null, data);
  assert.equal(c.load(1n)?.data.length, data.length);
  await c.close();
  const t = readFileSync(path + '.trace');
  assert.equal(t.readInt32BE(26 + 4), 0x7fffff52);
});

test('ValueError for a smaller last tid on a non-empty cache (client-cache §13 #21)', async () => {
  const c = await ClientCache.open(null, { size: 1000, logger: quiet() });
  c.setLastTid(0n);
  assert.equal(c.getLastTid(), 0n);
  c.setLastTid(10n);
  c.store(1n, 10n, null, Buffer.from('a'));
  c.setLastTid(10n);
  assert.throws(() => c.setLastTid(9n), { message: 'new last tid (9) must be greater than previous one (10)' });
  await c.close();
});

test('shrinking keeps the records below the new size, enlarging keeps all (client-cache §13 #7 #8, upstream testChangingCacheSize)', async () => {
  const dir = tmp();
  const recsize = 43 + 1;
  for (const extra of [2, recsize - 2]) {
    const path = join(dir, `resize-${extra}.zec`);
    const sized = (n: number) => 12 + n * recsize + extra;
    const oids = (c: ClientCache) => [...c.contents()].map(([o]) => Number(o)).sort((a, b) => a - b);
    const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
    let c = await ClientCache.open(path, { size: sized(100), logger: quiet(), trace: false });
    for (let i = 0; i < 100; i++) c.store(BigInt(i), 1n, null, Buffer.from('x'));
    assert.equal(c.len, 100);
    await c.close();
    assert.equal(statSync(path).size, sized(100));

    c = await ClientCache.open(path, { size: sized(50), logger: quiet(), trace: false });
    assert.equal(c.len, 50);
    assert.equal(statSync(path).size, sized(50));
    assert.deepEqual(oids(c), range(0, 50));
    for (let i = 100; i < 110; i++) c.store(BigInt(i), 1n, null, Buffer.from('x'));
    // one more eviction than records written, for the spare byte after each record
    let expected = [...range(11, 50), ...range(100, 110)];
    assert.equal(c.len, 49);
    assert.deepEqual(oids(c), expected);
    await c.close();
    c = await ClientCache.open(path, { size: sized(50), logger: quiet(), trace: false });
    assert.deepEqual(oids(c), expected);
    await c.close();

    c = await ClientCache.open(path, { size: sized(150), logger: quiet(), trace: false });
    assert.equal(c.len, 49);
    assert.equal(statSync(path).size, sized(150));
    assert.deepEqual(oids(c), expected);
    for (let i = 200; i < 305; i++) c.store(BigInt(i), 1n, null, Buffer.from('x'));
    expected = [...range(11, 50), ...range(106, 110), ...range(200, 305)];
    assert.equal(c.len, 148);
    assert.deepEqual(oids(c), expected);
    await c.close();
    c = await ClientCache.open(path, { size: sized(150), logger: quiet(), trace: false });
    assert.equal(c.len, 148);
    assert.deepEqual(oids(c), expected);
    await c.close();
  }
});

test('a cache filled to the last spare byte reopens and accepts stores (client-cache §5.1 full_cache_is_valid)', async () => {
  const path = join(tmp(), 'full.zec');
  let c = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  c.store(1n, 1n, null, Buffer.alloc(1000 - 12 - 43 - 1, 0x58)); // record of 987 bytes + the '1' block
  assert.equal(c.len, 1);
  await c.close();
  assert.deepEqual(walkBlocks(readFileSync(path)), [[12, 'a', 987], [999, '1', 1]]);
  c = await ClientCache.open(path, { size: 1000, logger: quiet(), trace: false });
  assert.equal(c.len, 1);
  assert.equal(c.writePointer, 999);
  c.store(2n, 2n, null, Buffer.from('XXX'));
  assert.equal(c.len, 1);
  assert.deepEqual(c.load(2n)?.data, Buffer.from('XXX'));
  await c.close();
});

test('an unwritable trace file logs a warning and the cache works untraced (client-cache §9.1)', async () => {
  const dir = tmp();
  const path = join(dir, 'w.zec');
  mkdirSync(path + '.trace'); // a directory cannot be opened for appending
  const log = quiet();
  const c = await ClientCache.open(path, { size: 1000, logger: log, trace: true });
  assert.equal(c.tracing, false);
  assert.equal(log.lines[1]!.level, 'WARNING');
  assert.match(log.lines[1]!.message, new RegExp(`^cannot write tracefile '${path}.trace' \\(`));
  c.store(1n, 1n, null, Buffer.from('a'));
  assert.ok(c.load(1n));
  await c.close();
});

test('persistent cache file names: <var or cwd>/<client>-<storage>.zec (client-cache §13 #27, §2.2)', () => {
  assert.equal(cachePathFor({ client: '8881', storage: 'spam', varDir: '/v' }), '/v/8881-spam.zec');
  assert.equal(cachePathFor({ client: 'client' }), join(process.cwd(), 'client-1.zec'));
  assert.equal(cachePathFor({ cachePath: '/x/y.zec', client: 'c' }), '/x/y.zec');
  assert.equal(cachePathFor({}), null);
  assert.equal(cachePathFor({ client: '' }), null);
});
