/**
 * repozo (filestorage spec §12, §16 #54): full and incremental backups are byte ranges of the
 * data file, recovery as of a date rebuilds it byte for byte with its index, verify finds
 * damaged backups. Repository files follow Python repozo's names and .dat format (checked
 * against Python repozo in both directions when written).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { doBackup, doRecover, doVerify, NoFiles, VerificationFail, type RepozoOptions } from '../src/repozo.ts';
import { dataFs } from './corrupt.ts';
import { runTool } from './helpers.ts';

const skip = vectorsSkip('filestorage');
const root = mkdtempSync(join(tmpdir(), 'repozo-'));
after(() => rmSync(root, { recursive: true, force: true }));

function setup(name: string): { dir: string; repo: string; src: string } {
  const dir = join(root, name);
  const repo = join(dir, 'repo');
  mkdirSync(repo, { recursive: true });
  return { dir, repo, src: join(dir, 'Data.fs') };
}

const at = (s: number) => [2024, 1, 1, 0, 0, s];

describe('repozo (filestorage §12)', { concurrency: 1 }, () => {
  it('full, incremental, no-change backups; recover as of each date, with the index (§16 #54)', { skip }, async () => {
    const { dir, repo, src } = setup('a');
    const full = dataFs();
    writeFileSync(src, full.subarray(0, 1210));
    const base: RepozoOptions = { mode: 'backup', repository: repo, file: src };
    await doBackup({ ...base, now: at(1) });
    writeFileSync(src, full);
    await doBackup({ ...base, now: at(2) });
    await doBackup({ ...base, now: at(3) }); // no changes: nothing written
    assert.deepEqual(readdirSync(repo).sort(), [
      '2024-01-01-00-00-01.dat',
      '2024-01-01-00-00-01.fs',
      '2024-01-01-00-00-01.index',
      '2024-01-01-00-00-02.deltafs',
      '2024-01-01-00-00-02.index',
    ]);
    assert.equal(
      readFileSync(join(repo, '2024-01-01-00-00-01.dat'), 'utf8'),
      `${join(repo, '2024-01-01-00-00-01.fs')} 0 1210 22a4c75d7a7f34d7254eef49c6e40c58\n` +
        `${join(repo, '2024-01-01-00-00-02.deltafs')} 1210 2471 85c02e81e6249577964a6e1d70aba0f2\n`,
    );
    assert.ok(readFileSync(join(repo, '2024-01-01-00-00-02.index')).equals(readFileSync(join(vectorsDir('filestorage'), 'Data.fs.index'))));
    await doVerify({ mode: 'verify', repository: repo, now: at(9) });

    const out = join(dir, 'restored.fs');
    await doRecover({ mode: 'recover', repository: repo, output: out, withverify: true, now: at(9) });
    assert.ok(readFileSync(out).equals(full));
    assert.ok(readFileSync(out + '.index').equals(readFileSync(join(vectorsDir('filestorage'), 'Data.fs.index'))));
    await doRecover({ mode: 'recover', repository: repo, output: out, date: '2024-01-01-00-00-01', now: at(9) });
    assert.ok(readFileSync(out).equals(full.subarray(0, 1210)));
    await assert.rejects(doRecover({ mode: 'recover', repository: repo, output: out, date: '2023-12-31' }), (e: unknown) => e instanceof NoFiles && e.message === 'No files in repository before 2023-12-31');
  });

  it('-Q uses the last .dat line; a shrunk (packed) file gets a new full backup; -k removes older ones', { skip }, async () => {
    const { repo, src } = setup('b');
    const full = dataFs();
    writeFileSync(src, full.subarray(0, 1894));
    const base: RepozoOptions = { mode: 'backup', repository: repo, file: src, quick: true };
    await doBackup({ ...base, now: at(1) });
    writeFileSync(src, full);
    await doBackup({ ...base, now: at(2) });
    assert.ok(readdirSync(repo).includes('2024-01-01-00-00-02.deltafs'));
    writeFileSync(src, readFileSync(join(vectorsDir('filestorage'), 'Data-packed.fs')));
    await doBackup({ ...base, quick: false, killold: true, now: at(3) });
    assert.deepEqual(readdirSync(repo).sort(), ['2024-01-01-00-00-03.dat', '2024-01-01-00-00-03.fs', '2024-01-01-00-00-03.index']);
  });

  it('-z writes gzip files; verify reports a damaged backup as Python does', { skip }, async () => {
    const { repo, src } = setup('c');
    writeFileSync(src, dataFs());
    await doBackup({ mode: 'backup', repository: repo, file: src, gzip: true, now: at(1) });
    const fsz = join(repo, '2024-01-01-00-00-01.fsz');
    assert.ok(gunzipSync(readFileSync(fsz)).equals(dataFs()));
    await doVerify({ mode: 'verify', repository: repo, now: at(9) });
    const plain = setup('c2');
    writeFileSync(plain.src, dataFs());
    await doBackup({ mode: 'backup', repository: plain.repo, file: plain.src, now: at(1) });
    appendFileSync(join(plain.repo, '2024-01-01-00-00-01.fs'), 'x');
    const f = join(plain.repo, '2024-01-01-00-00-01.fs');
    await assert.rejects(doVerify({ mode: 'verify', repository: plain.repo, now: at(9) }), (e: unknown) => e instanceof VerificationFail && e.message === `${f} is 2472 bytes, should be 2471 bytes`);
    const b = readFileSync(f).subarray(0, 2471);
    b[100] ^= 1;
    writeFileSync(f, b);
    await assert.rejects(doVerify({ mode: 'verify', repository: plain.repo, now: at(9) }), (e: unknown) => e instanceof VerificationFail && /has checksum [0-9a-f]{32} instead of d1162f60842556b0a35198941e8f2bb2$/.test(e.message));
    await doVerify({ mode: 'verify', repository: plain.repo, quick: true, now: at(9) });
  });

  it('the bin: backup, then recover to stdout; usage errors exit 1', { skip }, async () => {
    const { dir, repo, src } = setup('d');
    writeFileSync(src, dataFs());
    const r = await runTool('repozo', ['-B', '-r', 'repo', '-f', 'Data.fs'], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readdirSync(repo).filter((f) => f.endsWith('.fs')).length, 1);
    const r2 = await runTool('repozo', ['-R', '--repository=repo'], dir);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(r2.stdout, dataFs().toString('utf8'));
    const r3 = await runTool('repozo', ['-B', '-R', '-r', 'repo'], dir);
    assert.equal(r3.status, 1);
    assert.match(r3.stderr, /\n-B, -R, and -V are mutually exclusive\n$/);
  });
});
