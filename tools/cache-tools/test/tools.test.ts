// cache-stats and cache-simul run as child processes against the recorded session.trace
// outputs (vectors) and the golden examples of client-cache spec §10.4 / §11.5.
// client-cache §13 #34 #35 #36 #37 #38 #39, §12.5 §12.6 §12.7 §12.8
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { ClientCache, encodeTraceRecord } from '@zeo-ts/client-cache';
import { addcommas, bytesRepr, cacheSimul, cacheStats, LineOut, parseInterval, pyFixed, pyRound1Str } from '../src/index.ts';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');

function run(bin: 'cache-stats' | 'cache-simul', args: string[], opts: { cwd?: string; input?: Buffer; tz?: string } = {}) {
  const r = spawnSync(process.execPath, [join(pkg, 'bin', `${bin}.mjs`), ...args], {
    cwd: opts.cwd ?? pkg,
    input: opts.input,
    env: { ...process.env, TZ: opts.tz ?? 'UTC' },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The same tools run inside this process (output through files), for the many small cases; the
 * recorded-vector goldens and exit statuses above use real child processes.
 */
process.env.TZ = 'UTC';
function runIn(bin: 'cache-stats' | 'cache-simul', args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-run-'));
  const o = openSync(join(dir, 'out'), 'w+');
  const e = openSync(join(dir, 'err'), 'w+');
  const out = new LineOut(o);
  const err = new LineOut(e);
  const status = (bin === 'cache-stats' ? cacheStats : cacheSimul)(args, out, err);
  out.flush();
  err.flush();
  closeSync(o);
  closeSync(e);
  return { status, stdout: readFileSync(join(dir, 'out'), 'utf8'), stderr: readFileSync(join(dir, 'err'), 'utf8') };
}

/** The elapsed time is the tool's own run time; goldens show 0.0. */
const noElapsed = (s: string) => s.replace(/ in \d+\.\d seconds$/m, ' in 0.0 seconds');

const skip = vectorsSkip('client-cache', 'session.trace');

test('cache-stats on session.trace equals the recorded outputs: plain, -v, -h -s (client-cache §13 #34 #35)', { skip }, () => {
  const cwd = vectorsDir('client-cache');
  for (const [args, golden] of [
    [[], 'session.stats.txt'],
    [['-v'], 'session.stats-v.txt'],
    [['-h', '-s'], 'session.stats-h-s.txt'],
  ] as const) {
    const r = run('cache-stats', [...args, 'session.trace'], { cwd });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(noElapsed(r.stdout), readFileSync(join(cwd, golden), 'utf8'), `cache-stats ${args.join(' ')}`);
  }
});

test('cache-simul on session.trace equals the recorded outputs for -s 0.05 and -s 0.2 (client-cache §13 #37 #38)', { skip }, () => {
  const cwd = vectorsDir('client-cache');
  for (const size of ['0.05', '0.2']) {
    const r = run('cache-simul', ['-s', size, 'session.trace'], { cwd });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, readFileSync(join(cwd, `session.simul-${size}.txt`), 'utf8'), `cache-simul -s ${size}`);
  }
});

test('gzip input and standard input give the same output (client-cache §10.1)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  const raw = readFileSync(vectorsDir('client-cache', 'session.trace'));
  writeFileSync(join(dir, 't.trace.gz'), gzipSync(raw));
  const golden = readFileSync(vectorsDir('client-cache', 'session.simul-0.05.txt'), 'utf8');
  assert.equal(run('cache-simul', ['-s', '0.05', 't.trace.gz'], { cwd: dir }).stdout, golden);
  assert.equal(run('cache-simul', ['-s', '0.05', '-'], { input: raw }).stdout, golden);
  const stats = readFileSync(vectorsDir('client-cache', 'session.stats.txt'), 'utf8');
  assert.equal(noElapsed(run('cache-stats', ['t.trace.gz'], { cwd: dir }).stdout), stats);
});

// ---- the 19-record trace of spec §10.4 ------------------------------------------------------

const T0 = 1700000000;
const SPEC_TRACE: Array<[number, number, number | null, number, number, number]> = [
  // +t, code, oid (null = empty), start, end, dlen
  [0, 0x00, null, 0, 0, 0],
  [60, 0x52, 1, 1, 0, 100],
  [120, 0x22, 1, 1, 0, 100],
  [180, 0x20, 2, 0, 0, 0],
  [240, 0x52, 2, 1, 0, 200],
  [300, 0x1c, 1, 2, 0, 0],
  [360, 0x52, 1, 2, 0, 150],
  [420, 0x10, 3, 3, 0, 0],
  [480, 0x52, 3, 3, 0, 300],
  [540, 0x22, 1, 2, 0, 150],
  [600, 0x52, 4, 3, 0, 250],
  [660, 0x20, 2, 0, 0, 0],
  [720, 0x52, 2, 1, 0, 200],
  [780, 0x54, 1, 1, 2, 100],
  [840, 0x1e, 2, 0, 0, 0],
  [1740, 0x00, null, 0, 0, 0],
  [1800, 0x22, 4, 3, 0, 250],
  [1860, 0x20, 3, 0, 0, 0],
  [1920, 0x20, 9, 0, 0, 0],
];

function specTrace(prefix = Buffer.alloc(0)): string {
  const b = Buffer.alloc(SPEC_TRACE.length * 34);
  let at = 0;
  for (const [t, code, oid, start, end, dlen] of SPEC_TRACE) {
    at += encodeTraceRecord(b, at, T0 + t, code, oid === null ? null : BigInt(oid), BigInt(start), BigInt(end), dlen);
  }
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  const p = join(dir, 'spec.trace');
  writeFileSync(p, Buffer.concat([prefix, b.subarray(0, at)]));
  assert.equal(at, 630);
  return p;
}

const STATS_GOLDEN = `                   loads    hits  inv(h)  writes hitrate
Nov 14 22:13-13       0       0       0       0     n/a
Nov 14 22:13:20 ==================== Restart ====================
Nov 14 22:13-14       0       0       0       1     n/a
Nov 14 22:15-27       4       2       2       6   50.0%
Nov 14 22:42-42       0       0       0       0     n/a
Nov 14 22:42:20 ==================== Restart ====================
Nov 14 22:42-44       2       1       0       0   50.0%
Nov 14 22:45-45       1       0       0       0    0.0%

Read 19 trace records (630 bytes) in 0.0 seconds
Versions:   0 records used a version
First time: Tue Nov 14 22:13:20 2023
Last time:  Tue Nov 14 22:45:20 2023
Duration:   1,920 seconds
Data recs:  10 (52.6%), average size 180 bytes
Hit rate:   42.9% (load hits / loads)

        Count Code Function (action)
            2  00  _setup_trace (initialization)
            1  10  invalidate (miss)
            1  1c  invalidate (hit, saving non-current)
            1  1e  invalidate (hit, discarding current or non-current)
            4  20  load (miss)
            3  22  load (hit)
            6  52  store (current, non-version)
            1  54  store (non-current)
`;

const VERBOSE_HEAD = `                   loads    hits  inv(h)  writes hitrate
Nov 14 22:13:20 00 b'' 0000000000000000 0000000000000000 -
Nov 14 22:13-13       0       0       0       0     n/a
Nov 14 22:13:20 ==================== Restart ====================
Nov 14 22:14:20 52                1 0000000000000001 0000000000000000 - 100
Nov 14 22:15:20 22                1 0000000000000001 0000000000000000 - 100
Nov 14 22:16:20 20                2 0000000000000000 0000000000000000 -
Nov 14 22:17:20 52                2 0000000000000001 0000000000000000 - 200
Nov 14 22:18:20 1c                1 0000000000000002 0000000000000000 -
Nov 14 22:19:20 52                1 0000000000000002 0000000000000000 - 150
Nov 14 22:13-19       2       1       1       3   50.0%
Nov 14 22:20:20 10                3 0000000000000003 0000000000000000 -
`;

const HIST_TAIL = `Histogram of object load frequency
Unique oids: 5
Total loads: 7
loads objects   %obj  %load   %cum
    1       3  60.0%  42.9%  42.9%
    2       2  40.0%  57.1% 100.0%

Histograms of object sizes


Unique sizes written: 5
      size   objs writes
       100      1      2
       150      1      1
       200      1      2
       250      1      1
       300      1      1

Unique sizes loaded: 3
      size   objs  loads
       100      1      1
       150      1      1
       250      1      1
`;

test('cache-stats golden examples of spec §10.4: plain, -v -i 10, -q -h -s (client-cache §13 #34 #35 #39)', () => {
  const p = specTrace();
  let r = run('cache-stats', ['-X', p]); // -X is accepted and changes nothing
  assert.equal(r.status, 0);
  assert.equal(noElapsed(r.stdout), STATS_GOLDEN);
  r = runIn('cache-stats', ['-v', '-i', '10', p]);
  assert.ok(r.stdout.startsWith(VERBOSE_HEAD), r.stdout.slice(0, 1500));
  r = runIn('cache-stats', ['-q', '-h', '-s', p]);
  const lines = STATS_GOLDEN.split('\n');
  const summary = lines.slice(lines.indexOf('') + 1).join('\n');
  assert.equal(noElapsed(r.stdout), `${lines[0]}\n\n${summary}\n${HIST_TAIL}`);
  // -S drops the summary; combined short flags work as with argparse
  r = runIn('cache-stats', ['-qSh', p]);
  assert.equal(r.stdout, `${lines[0]}\n\n${HIST_TAIL.split('\n\nHistograms')[0]}\n`);
  // -v and -q exclude each other
  r = runIn('cache-stats', ['-v', '-q', p]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /not allowed with argument/);
});

test('cache-stats skips 8 bytes at a zero timestamp, quiet or not (client-cache §10.2, §12.5)', () => {
  const p = specTrace(Buffer.alloc(8));
  let r = runIn('cache-stats', [p]);
  assert.equal(r.status, 0);
  assert.equal(noElapsed(r.stdout), `${STATS_GOLDEN.split('\n')[0]}\nSkipping 8 bytes at offset 0\n${STATS_GOLDEN.split('\n').slice(1).join('\n')}`.replace('(630 bytes)', '(638 bytes)'));
  r = runIn('cache-stats', ['-q', p]);
  assert.match(r.stdout, /^Read 19 trace records \(638 bytes\)/m);
  assert.doesNotMatch(r.stdout, /Skipping/);
});

test('cache-stats on an empty trace: header, one zero line, "No records processed", exit 1 (client-cache §13 #36)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  writeFileSync(join(dir, 'empty.trace'), Buffer.alloc(0));
  const r = run('cache-stats', ['empty.trace'], { cwd: dir });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'No records processed\n');
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[1]!, /^\w{3} [ \d]\d \d\d:\d\d-\d\d       0       0       0       0     n\/a$/);
  const q = runIn('cache-stats', ['-q', join(dir, 'empty.trace')]);
  assert.equal(q.status, 1);
  assert.equal(q.stdout, STATS_GOLDEN.split('\n')[0] + '\n');
  assert.equal(run('cache-stats', ['--help']).status, 2);
});

test('cache-stats with no data records prints average size 0 (client-cache §12.7)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  const b = Buffer.alloc(34 * 2);
  encodeTraceRecord(b, 0, T0, 0x20, 1n, 0n, 0n, 0);
  encodeTraceRecord(b, 34, T0 + 1, 0x10, 1n, 5n, 0n, 0);
  writeFileSync(join(dir, 'nodata.trace'), b);
  const r = runIn('cache-stats', [join(dir, 'nodata.trace')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Data recs:  0 \(0\.0%\), average size 0 bytes$/m);
  assert.match(r.stdout, /^Hit rate:   0\.0% \(load hits \/ loads\)$/m);
});

const SIMUL_GOLDENS: Array<[string[], string]> = [
  [
    ['-s', '0.001'],
    `CircularCacheSimulation, cache size 1,048 bytes
  START TIME   DUR.   LOADS    HITS INVALS WRITES HITRATE  EVICTS   INUSE
Nov 14 22:14      0       0       0      0      1     n/a       0    13.8
Nov 14 22:15  12:00       4       2      2      6   50.0%       4    42.1
Nov 14 22:43   1:00       2       1      0      1   50.0%       0    75.2
Nov 14 22:45      0       1       0      0      0    0.0%       0    75.2
--------------------------------------------------------------------------
Nov 14 22:43   2:00       3       1      0      1   33.3%       0    75.2
`,
  ],
  [
    ['-s', '0.001', '-i', '5'],
    `CircularCacheSimulation, cache size 1,048 bytes
  START TIME   DUR.   LOADS    HITS INVALS WRITES HITRATE  EVICTS   INUSE
Nov 14 22:14      0       0       0      0      1     n/a       0    13.8
Nov 14 22:15   4:00       2       1      1      2   50.0%       0    55.9
Nov 14 22:20   4:00       2       1      0      3   50.0%       3    84.8
Nov 14 22:25   2:00       0       0      1      1     n/a       1    42.1
Nov 14 22:43   1:00       2       1      0      1   50.0%       0    75.2
Nov 14 22:45      0       1       0      0      0    0.0%       0    75.2
--------------------------------------------------------------------------
Nov 14 22:43   2:00       3       1      0      1   33.3%       0    75.2
`,
  ],
  [
    [],
    `CircularCacheSimulation, cache size 20,971,520 bytes
  START TIME   DUR.   LOADS    HITS INVALS WRITES HITRATE  EVICTS   INUSE
Nov 14 22:14      0       0       0      0      1     n/a       0     0.0
Nov 14 22:15  12:00       4       3      2      4   75.0%       0     0.0
Nov 14 22:43   1:00       2       2      0      0  100.0%       0     0.0
Nov 14 22:45      0       1       0      0      0    0.0%       0     0.0
--------------------------------------------------------------------------
Nov 14 22:45      0       1       0      0      0    0.0%       0     0.0
`,
  ],
];

test('cache-simul golden examples of spec §11.5 and the empty trace (client-cache §13 #37 #38 #39)', () => {
  const p = specTrace();
  for (const [args, golden] of SIMUL_GOLDENS) {
    const r = runIn('cache-simul', [...args, p]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, golden, `cache-simul ${args.join(' ')}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  writeFileSync(join(dir, 'empty.trace'), Buffer.alloc(0));
  const r = run('cache-simul', ['empty.trace'], { cwd: dir });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, SIMUL_GOLDENS[2]![1].split('\n').slice(0, 2).join('\n') + '\n' + '-'.repeat(74) + '\n');
});

test('cache-simul treats objects larger than the simulated cache as not cached (client-cache §12.8)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  const b = Buffer.alloc(34 * 3);
  encodeTraceRecord(b, 0, T0, 0x52, 1n, 1n, 0n, 5000);
  encodeTraceRecord(b, 34, T0 + 1, 0x52, 2n, 1n, 0n, 100);
  encodeTraceRecord(b, 68, T0 + 2, 0x22, 2n, 1n, 0n, 100);
  writeFileSync(join(dir, 'big.trace'), b);
  const r = runIn('cache-simul', ['-s', '0.001', join(dir, 'big.trace')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout.split('\n')[2]!, /^Nov 14 22:13      2       1       1      0      1  100\.0%       0    13\.8$/);
});

test('a trace written by the cache reads back in cache-stats (client-cache §13 #32)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-tools-'));
  let t = T0;
  const c = await ClientCache.open(join(dir, 'c.zec'), {
    size: 10000,
    trace: true,
    traceClock: () => (t += 60),
    logger: { info() {}, warn() {}, error() {}, fatal() {} },
  });
  c.store(1n, 1n, null, Buffer.alloc(100));
  c.load(1n);
  c.load(2n);
  c.loadBefore(2n, 5n);
  c.invalidate(1n, 2n);
  c.loadBefore(1n, 2n);
  c.invalidate(1n, null);
  await c.close();
  const r = runIn('cache-stats', ['-v', join(dir, 'c.zec.trace')]);
  assert.equal(r.status, 0, r.stderr);
  const codes = r.stdout.split('\n').filter((l) => /^\w{3} [ \d]\d \d\d:\d\d:\d\d [0-9a-f]{2} /.test(l)).map((l) => l.slice(16, 18));
  assert.deepEqual(codes, ['00', '52', '22', '20', '20', '24', '1c', '26', '10']);
  assert.match(r.stdout, /^Hit rate:   40\.0% \(load hits \/ loads\)$/m);
});

test('Python number formatting: ties to even on the exact binary value, commas, intervals (client-cache §13 #35 #39, §12.6)', () => {
  assert.equal(pyFixed((100 * 49) / 400, 1), '12.2');
  assert.equal(pyFixed(0.125, 2), '0.12');
  assert.equal(pyFixed(0.375, 2), '0.38');
  assert.equal(pyFixed(2.675, 2), '2.67');
  assert.equal(pyFixed(0.05, 1), '0.1');
  assert.equal(pyFixed(99.95, 1), '100.0');
  assert.equal(pyFixed(100, 1), '100.0');
  assert.equal(pyFixed(0, 1), '0.0');
  assert.equal(pyRound1Str(0.25), '0.2');
  assert.equal(pyRound1Str(13.75), '13.8');
  assert.equal(addcommas(20971520), '20,971,520');
  // repr() of odd-length oids in -v output: quote choice and escapes as Python's
  assert.equal(bytesRepr(Buffer.from([0xea, 0x27, 0x78])), `b"\\xea'x"`);
  assert.equal(bytesRepr(Buffer.from('a"b')), `b'a"b'`);
  assert.equal(bytesRepr(Buffer.from(`'"\\\n`)), `b'\\'"\\\\\\n'`);
  assert.equal(bytesRepr(Buffer.alloc(0)), "b''");
  assert.equal(addcommas(-1234), '-1,234');
  assert.equal(addcommas(999), '999');
  assert.equal(parseInterval('15'), 900);
  assert.equal(parseInterval('0'), 60);
  assert.equal(parseInterval('-3'), 60);
  assert.equal(parseInterval('0.001'), 60);
  assert.equal(parseInterval('61'), 3600);
  assert.equal(parseInterval('2.5'), 150);
});
