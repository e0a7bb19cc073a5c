/**
 * FS21 files (written by ZODB on Python 2; FS30 record layout, other magic — filestorage spec §3):
 * the tools read them (a note on stderr, outputs in the FS30 format: Python 3's tools refuse
 * them, except fstail and the verbose Dumper which never look at the magic), pickle scanning of
 * Python 2 records (§4.2–§4.4), and fsconvert-fs21 (§10.4 copyTransactionsFrom into a new FS30
 * file). Expected outputs of the Python 2 style file were compared with Python ZODB 6.3's tools
 * run on its FS30 twin when this test was written.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersistentRef, Pickler, PyGlobal, getPickleMetadata, referencesf, tuple } from '@zeo-ts/pickle';
import { FileReader, FileStorage } from '@zeo-ts/filestorage';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { runTool } from './helpers.ts';
import { CLASS_FORMAT3, CLASS_FORMAT4, CLASS_FORMAT5, L2, M1, M1_LATIN1, ROOT, T0, T1, writePy2File } from './py2-records.ts';
import { ExitError } from '../src/cli/common.ts';
import { convertFs21, type ConvertProgress } from '../src/fsconvert.ts';
import { fs21Note } from '../src/fsio.ts';
import { fsanalyzeMain, fsdumpMain, fsoidsMain, fsrecoverMain, fsrefsMain, fstailMain, fstestMain } from '../src/main.ts';
import { StringOut } from '../src/output.ts';

const V = (f: string) => vectorsDir('filestorage', f);
const skip = vectorsSkip('filestorage');
const dir = mkdtempSync(join(tmpdir(), 'fs21tools-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sub = () => mkdtempSync(join(dir, 'd'));

/** Data.fs from the vectors with the FS21 magic, in a fresh directory. */
function vectorAs21(name = 'Data.fs'): { d: string; path: string; bytes: Buffer } {
  const d = sub();
  const b = readFileSync(V(name));
  b.write('FS21', 0, 'latin1');
  const path = join(d, 'Data.fs');
  writeFileSync(path, b);
  return { d, path, bytes: Buffer.from(b) };
}

async function main(fn: (argv: string[], out: StringOut) => Promise<number>, argv: string[]): Promise<string> {
  const out = new StringOut();
  assert.equal(await fn(argv, out), 0);
  return out.text;
}

describe('tools on the Data.fs vector with the FS21 magic: the FS30 outputs, unchanged', () => {
  it('fstest: exit 0, nothing on stdout, the FS21 note on stderr (bin; §16 #2 #31 for FS21)', { skip }, async () => {
    const { d } = vectorAs21();
    const r = await runTool('fstest', ['Data.fs'], d);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, fs21Note('Data.fs') + '\n');
    assert.match(r.stderr, /FS21 file \(written by ZODB on Python 2\).*fsconvert-fs21/);
  });

  it('fstest -v -v equals fstest-vv.txt (§16 #51)', { skip }, async () => {
    const { path } = vectorAs21();
    assert.equal(await main(fstestMain, ['-v', '-v', path]), readFileSync(V('fstest-vv.txt'), 'utf8'));
  });

  it('fsdump equals fsdump.txt, fsdump -v differs only in the file identifier (§11.1)', { skip }, async () => {
    const { path } = vectorAs21();
    assert.equal(await main(fsdumpMain, [path]), readFileSync(V('fsdump.txt'), 'utf8'));
    const verbose = readFileSync(V('fsdump-verbose.txt'), 'utf8').replace("file identifier: b'FS30'", "file identifier: b'FS21'");
    assert.equal(await main(fsdumpMain, ['-v', path]), verbose);
  });

  it('fstail, fsrefs, fsoids and fsanalyze equal their vectors (§11.3–§11.7)', { skip }, async () => {
    const { d, path } = vectorAs21();
    assert.equal(await main(fstailMain, ['-n', '10', path]), readFileSync(V('fstail.txt'), 'utf8'));
    assert.equal(await main(fsrefsMain, [path]), readFileSync(V('fsrefs.txt'), 'utf8'));
    assert.equal(await main(fsanalyzeMain, [path]), readFileSync(V('analyze.txt'), 'utf8'));
    // fsoids.txt names the file as given on Python's command line ("Data.fs")
    const cwd = process.cwd();
    process.chdir(d);
    try {
      assert.equal(await main(fsoidsMain, ['Data.fs', '0', '1', '2', '3', '4', '5']), readFileSync(V('fsoids.txt'), 'utf8'));
    } finally {
      process.chdir(cwd);
    }
  });

  it('the tools leave the FS21 file and its directory untouched', { skip }, async () => {
    const { d, path, bytes } = vectorAs21();
    for (const [fn, args] of [
      [fstestMain, [path]],
      [fsdumpMain, [path]],
      [fstailMain, [path]],
      [fsrefsMain, [path]],
      [fsanalyzeMain, [path]],
      [fsoidsMain, [path, '1']],
    ] as const) await main(fn, [...args]);
    assert.deepEqual(readFileSync(path), bytes);
    assert.deepEqual(readdirSync(d), ['Data.fs']);
  });

  it('fstest still checks an FS21 file: damage is reported as for FS30 (§8.3 #5)', { skip }, async () => {
    const { path, bytes } = vectorAs21();
    writeFileSync(path, bytes.subarray(0, 2434));
    await assert.rejects(main(fstestMain, [path]), (e: unknown) => e instanceof ExitError && e.message === `${path} truncated possibly because of damaged records at 2374`);
  });

  it('fsrecover reads an FS21 input and writes an FS30 output equal to Data.fs (§10.5)', { skip }, async () => {
    const { d, path } = vectorAs21();
    const out = join(d, 'rec.fs');
    await main(fsrecoverMain, [path, out]);
    assert.deepEqual(readFileSync(out), readFileSync(V('Data.fs')));
  });
});

describe('Python 2 records (protocol 1/2, SHORT_BINSTRING oids, MARK tuples) in an FS21 file', () => {
  it('referencesf and class names of the records (§4.2–§4.4; Python gives the same)', () => {
    assert.deepEqual(referencesf(ROOT), [1n, 2n]);
    assert.deepEqual(referencesf(L2), [1n]);
    assert.deepEqual(referencesf(M1), []);
    assert.deepEqual(getPickleMetadata(ROOT), { module: 'persistent.mapping', name: 'PersistentMapping' });
    assert.deepEqual(getPickleMetadata(L2), { module: 'persistent.list', name: 'PersistentList' });
    // Python 3's noload decodes Python 2 str as ASCII and raises on b'\xe9t\xe9' (UnicodeDecodeError)
    assert.throws(() => referencesf(M1_LATIN1), /ascii/);
    assert.deepEqual(getPickleMetadata(M1_LATIN1), { module: 'persistent.mapping', name: 'PersistentMapping' });
    // ZODB 3 class descriptions: (class, None), ((module, name), None), ((module, name), ())
    assert.deepEqual(referencesf(CLASS_FORMAT5), [7n]);
    assert.deepEqual(referencesf(CLASS_FORMAT3), [7n]);
    assert.deepEqual(referencesf(CLASS_FORMAT4), []);
    assert.deepEqual(getPickleMetadata(CLASS_FORMAT5), { module: 'persistent.mapping', name: 'PersistentMapping' });
    assert.deepEqual(getPickleMetadata(CLASS_FORMAT3), { module: 'persistent.mapping', name: 'PersistentMapping' });
    assert.deepEqual(getPickleMetadata(CLASS_FORMAT4), { module: 'BTrees.OOBTree', name: 'OOBTree' });
  });

  it('protocol 1 as a Python 3 pickler writes it (our Pickler; zodbpickle gives the same bytes) is not Python 2 format: the oid becomes _codecs.encode, which referencesf refuses as Python does', () => {
    const pm = new PyGlobal('persistent.mapping', 'PersistentMapping');
    const oid = Buffer.alloc(8);
    oid[7] = 1;
    const state = new Map<unknown, unknown>([['data', new Map<unknown, unknown>([['a', new PersistentRef(tuple(oid, pm))], ['n', 1]])]]);
    const d = new Pickler({ protocol: 1 }).dump(pm).dump(state).result();
    assert.equal(d[0], 0x63); // GLOBAL, no PROTO at protocol 1
    assert.ok(d.includes(Buffer.from('c_codecs\nencode\n', 'latin1')));
    assert.ok(!d.includes(Buffer.concat([Buffer.from([0x55, 8]), oid]))); // no SHORT_BINSTRING oid
    assert.deepEqual(getPickleMetadata(d), { module: 'persistent.mapping', name: 'PersistentMapping' });
    // Python 3 ZODB: AssertionError in referencesf (the oid is not a str after noload)
    assert.throws(() => referencesf(d), /not an oid/);
  });

  it('FileStorage read-only: load, loadBefore, history, iterator, undoLog (Python 2 extension)', async () => {
    const path = join(sub(), 'Py2.fs');
    await writePy2File(path, true);
    const fs = await FileStorage.open(path, { readOnly: true });
    try {
      assert.equal(fs.fileFormat(), 'FS21');
      assert.deepEqual(await fs.load(1n), { data: M1, tid: T1 });
      assert.deepEqual(await fs.load(0n), { data: ROOT, tid: T0 });
      assert.deepEqual(await fs.loadBefore(1n, T1), { data: M1_LATIN1, start: T0, end: T1 });
      assert.deepEqual((await fs.history(1n, 5)).map((h) => h.tid), [T1, T0]);
      const txns = [];
      for await (const t of fs.iterator()) txns.push([t.tid, t.user.toString(), t.records.map((r) => r.oid)]);
      assert.deepEqual(txns, [
        [T0, 'alice', [0n, 1n, 2n]],
        [T1, 'bob', [1n]],
      ]);
      const log = await fs.undoLog(0, 10);
      assert.deepEqual(
        log.map((e) => [e.user_name.toString(), e.description.toString()]),
        [
          ['bob', 'ascii a'],
          ['alice', 'py2 records'],
        ],
      );
    } finally {
      await fs.close();
    }
  });

  it('fstest -v -v, fsdump, fstail, fsanalyze, fsrefs equal Python\'s output for the FS30 twin', async () => {
    const path = join(sub(), 'Py2.fs');
    await writePy2File(path, true);
    assert.equal(
      await main(fstestMain, ['-v', '-v', path]),
      [
        '        62: object oid 0x0000000000000000 #0',
        '       243: object oid 0x0000000000000001 #1',
        '       371: object oid 0x0000000000000002 #2',
        '         4: transaction tid 0x03f58e0001111111 #0 ',
        '       544: object oid 0x0000000000000001 #0',
        '       511: transaction tid 0x03f58e0102222222 #1 ',
        'no errors detected',
      ].join('\n'),
    );
    assert.equal(
      await main(fsdumpMain, [path]),
      [
        "Trans #00000 tid=03f58e0001111111 size=499 time=2024-01-01 00:00:00.250000 offset=62",
        "    status=' ' user=b'alice' description=b'py2 records'",
        '  data #00000 oid=0000000000000000 size=139 class=persistent.mapping.PersistentMapping',
        '  data #00001 oid=0000000000000001 size=86 class=persistent.mapping.PersistentMapping',
        '  data #00002 oid=0000000000000002 size=90 class=persistent.list.PersistentList',
        "Trans #00001 tid=03f58e0102222222 size=147 time=2024-01-01 00:01:00.500000 offset=544",
        "    status=' ' user=b'bob' description=b'ascii a'",
        '  data #00000 oid=0000000000000001 size=72 class=persistent.mapping.PersistentMapping',
        '',
      ].join('\n'),
    );
    assert.equal(
      await main(fstailMain, [path]),
      [
        '2024-01-01 00:01:00.500000: hash=b601b13da06bd444894f0e5a2eb3f54edf6f9ccf',
        "user=b'bob' description=b'ascii a' length=147 offset=511 (+33)",
        '',
        '2024-01-01 00:00:00.250000: hash=46dd2c2051c2494ff8befff1e2bb4873ac57f53e',
        "user=b'alice' description=b'py2 records' length=499 offset=4 (+58)",
        '',
        '',
      ].join('\n'),
    );
    assert.match(await main(fsanalyzeMain, [path]), /^Processed 4 records in 2 transactions\n[^]*persistent\.list\.PersistentList {23}1 {8}90  23\.3% {3}90\.00\n[^]*Old Objects {7}1 {8}0k  22\.2% {3}86\.00\n$/);
    // current revisions are ASCII: no dangling references, nothing printed
    assert.equal(await main(fsrefsMain, [path]), '');
  });

  it('fsoids stops at the non-ASCII Python 2 str of T0 as Python\'s fsoids does (UnicodeDecodeError there)', async () => {
    const path = join(sub(), 'Py2.fs');
    await writePy2File(path, true);
    await assert.rejects(main(fsoidsMain, [path, '1']), /ascii/);
  });
});

describe('fsconvert-fs21 (copyTransactionsFrom into a new FS30 file, §10.4)', () => {
  it('Data.fs as FS21 converts into exactly the Python-written Data.fs; the input is untouched', { skip }, async () => {
    const { d, path, bytes } = vectorAs21();
    const out = join(d, 'out.fs');
    const seen: ConvertProgress[] = [];
    const r = await convertFs21(path, out, { progressBytes: 1000, progress: (p) => seen.push(p) });
    assert.deepEqual(readFileSync(out), readFileSync(V('Data.fs')));
    assert.equal(r.identical, true);
    assert.equal(r.firstDifference, null);
    assert.equal(r.inputFormat, 'FS21');
    assert.equal(r.transactions, 7);
    assert.equal(r.records, 17);
    assert.equal(r.inputSize, 2471);
    assert.equal(r.outputSize, 2471);
    assert.equal(r.lastTid, 0x03f58e0600000000n);
    // one line per 1000 bytes crossed, then the end
    assert.deepEqual(
      seen.map((p) => [p.pos, p.transactions]),
      [
        [1210, 4],
        [2135, 6],
        [2471, 7],
      ],
    );
    assert.deepEqual(readFileSync(path), bytes);
    // the output index equals the one Python wrote beside Data.fs
    assert.deepEqual(readFileSync(out + '.index'), readFileSync(V('Data.fs.index')));
    assert.deepEqual(readdirSync(d).sort(), ['Data.fs', 'out.fs', 'out.fs.index', 'out.fs.lock']);
  });

  it('the converted file opens read-write and takes new transactions; fstest passes', async () => {
    const d = sub();
    const inp = join(d, 'Py2.fs');
    const twin = await writePy2File(inp, true);
    const out = join(d, 'Py3.fs');
    const r = await convertFs21(inp, out);
    assert.equal(r.identical, true);
    const got = readFileSync(out);
    assert.equal(got.subarray(0, 4).toString('latin1'), 'FS30');
    assert.deepEqual(got.subarray(4), twin.subarray(4));
    const fs = await FileStorage.open(out);
    try {
      assert.equal(fs.fileFormat(), 'FS30');
      assert.deepEqual(await fs.load(2n), { data: L2, tid: T0 });
      assert.equal(await fs.new_oid(), 3n);
    } finally {
      await fs.close();
    }
    assert.equal(await main(fstestMain, [out]), '');
  });

  it('refuses an existing output, an FS30 input and a non-FileStorage input', { skip }, async () => {
    const { d, path } = vectorAs21();
    const out = join(d, 'exists.fs');
    writeFileSync(out, 'keep me');
    await assert.rejects(convertFs21(path, out), /exists\.fs exists; refusing to overwrite it/);
    assert.equal(readFileSync(out, 'utf8'), 'keep me');
    writeFileSync(join(d, 'o2.fs.index'), 'x');
    await assert.rejects(convertFs21(path, join(d, 'o2.fs')), /o2\.fs\.index exists/);
    const fs30 = join(d, 'fs30.fs');
    copyFileSync(V('Data.fs'), fs30);
    await assert.rejects(convertFs21(fs30, join(d, 'o3.fs')), /already an FS30 file/);
    assert.ok(!existsSync(join(d, 'o3.fs')));
    writeFileSync(join(d, 'junk.fs'), 'JUNKJUNK');
    await assert.rejects(convertFs21(join(d, 'junk.fs'), join(d, 'o4.fs')), /invalid file header/);
    assert.ok(!existsSync(join(d, 'o4.fs')));
  });

  it('an unfinished tail of the input is not copied and is reported; the output is not identical', { skip }, async () => {
    const { d, path, bytes } = vectorAs21();
    writeFileSync(path, bytes.subarray(0, 2434)); // T6 cut in the middle
    const warnings: string[] = [];
    const r = await convertFs21(path, join(d, 'out.fs'), { warn: (m) => warnings.push(m) });
    assert.equal(r.transactions, 6);
    assert.equal(r.outputSize, 2374);
    assert.equal(r.identical, false);
    assert.deepEqual(warnings, [`${path}: the 60 bytes after position 2374 are not a complete committed transaction and are not copied`]);
    assert.deepEqual(readFileSync(join(d, 'out.fs')), readFileSync(V('Data.fs')).subarray(0, 2374));
  });

  it('a time-stamp reduction in the input is re-stamped as copyTransactionsFrom does, with warnings; the output is not identical', { skip }, async () => {
    const { d, path, bytes } = vectorAs21();
    // T3 (at 1210) and its records get a tid below T2's
    const low = 0x03f58e0200000000n;
    const reader = FileReader.open(V('Data.fs'));
    try {
      const t3 = [...reader.transactions(4, bytes.length)][3]!;
      assert.equal(t3.pos, 1210);
      bytes.writeBigUInt64BE(low, t3.pos);
      for (const rec of reader.records(t3)) bytes.writeBigUInt64BE(low, rec.pos + 8);
    } finally {
      reader.close();
    }
    writeFileSync(path, bytes);
    const warnings: string[] = [];
    const r = await convertFs21(path, join(d, 'out.fs'), { warn: (m) => warnings.push(m) });
    assert.equal(r.transactions, 7);
    assert.equal(r.identical, false);
    assert.equal(r.firstDifference, 1214); // the tid of T3: 03f58e0203333334, just after T2's
    assert.equal(readFileSync(join(d, 'out.fs')).readBigUInt64BE(1210), 0x03f58e0203333334n);
    assert.deepEqual(warnings, [
      `${path} time-stamp reduction at 1210`,
      'Time stamps out of order previous=2024-01-01 00:02:00.750000 tid=2024-01-01 00:02:00.000000',
      'Time stamps back in order tid=2024-01-01 00:04:00.000000',
    ]);
    assert.equal(await main(fstestMain, [join(d, 'out.fs')]), '');
  });

  it('the bin: summary on stdout, progress on stderr, exit 1 without overwriting', { skip }, async () => {
    const { d } = vectorAs21();
    const r = await runTool('fsconvert-fs21', ['-P', '1000', 'Data.fs', 'New.fs'], d);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout.replace(/ in [0-9.]+ s\n/, ' in T s\n'),
      'converted Data.fs (FS21, 2471 bytes) into New.fs (FS30, 2471 bytes): 7 transactions, 17 data records in T s\n' +
        'the output equals the input byte for byte after the magic\n' +
        'object pickles were copied unchanged: run `zodbupdate --convert-py3 --file New.fs` if Python 3 must read Python 2 str values\n',
    );
    assert.equal(
      r.stderr,
      [
        'fsconvert-fs21: 49.0% (1210 of 2471 bytes, 4 transactions)',
        'fsconvert-fs21: 86.4% (2135 of 2471 bytes, 6 transactions)',
        'fsconvert-fs21: 100.0% (2471 of 2471 bytes, 7 transactions)',
        '',
      ].join('\n'),
    );
    assert.deepEqual(readFileSync(join(d, 'New.fs')), readFileSync(V('Data.fs')));
    const again = await runTool('fsconvert-fs21', ['-q', 'Data.fs', 'New.fs'], d);
    assert.equal(again.status, 1);
    assert.equal(again.stderr, 'fsconvert-fs21: New.fs exists; refusing to overwrite it\n');
    const usage = await runTool('fsconvert-fs21', ['Data.fs'], d);
    assert.equal(usage.status, 1);
    assert.match(usage.stderr, /^usage: fsconvert-fs21/);
  });
});
