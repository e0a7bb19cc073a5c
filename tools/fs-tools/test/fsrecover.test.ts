/**
 * fsrecover on damaged copies of Data.fs (filestorage spec §10.5): the output keeps every
 * transaction that could be read and copied, passes fstest, and loads through FileStorage.
 * Expected stdout texts are what ZODB 6.3's fsrecover printed for the same damage (checked
 * when these tests were written); note Python's scan after a failed copy also skips the
 * transaction that follows it.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { POSKeyError } from '@zeo-ts/storage';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { dataFs } from './corrupt.ts';
import { runTool } from './helpers.ts';
import { fsrecoverMain, fstestMain } from '../src/main.ts';
import { StringOut } from '../src/output.ts';

const skip = vectorsSkip('filestorage');
const dir = mkdtempSync(join(tmpdir(), 'fsrecover-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const T = {
  T0: 0x03f58e0001111111n,
  T1: 0x03f58e0102222222n,
  T2: 0x03f58e0203333333n,
  T3: 0x03f58e0300000000n,
  T4: 0x03f58e0400000000n,
  T5: 0x03f58e0500000000n,
  T6: 0x03f58e0600000000n,
};

/** tids of the output (read through FileStorage), and the oids that load. */
async function survey(path: string): Promise<{ tids: bigint[]; loadable: bigint[]; deleted: bigint[] }> {
  const fs = await FileStorage.open(path, { readOnly: true });
  try {
    const tids: bigint[] = [];
    for await (const t of fs.iterator()) tids.push(t.tid);
    const loadable: bigint[] = [];
    const deleted: bigint[] = [];
    for (let oid = 0n; oid <= 4n; oid++) {
      try {
        await fs.load(oid);
        loadable.push(oid);
      } catch (e) {
        if (!(e instanceof POSKeyError)) throw e;
        deleted.push(oid);
      }
    }
    return { tids, loadable, deleted };
  } finally {
    await fs.close();
  }
}

async function fstestOk(path: string): Promise<void> {
  const out = new StringOut();
  assert.equal(await fstestMain([path], out), 0);
  assert.equal(out.text, '');
}

function damaged(name: string, f: (b: Buffer) => Buffer): string {
  writeFileSync(join(dir, name), f(Buffer.from(dataFs())));
  return join(dir, name);
}

/** fsrecover's main in this process (same code as the bin below its 4-line shim): status and stdout. */
async function recoverHere(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out = new StringOut();
  const status = await fsrecoverMain(args, out);
  return { status, stdout: out.text, stderr: '' };
}

describe('fsrecover (filestorage §10.5)', { concurrency: 1 }, () => {
  it('an intact file is copied byte for byte, with its index (§10.5, §16 #49)', { skip }, async () => {
    const r = await runTool('fsrecover', [join(vectorsDir('filestorage'), 'Data.fs'), 'same.fs'], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(join(dir, 'same.fs')).equals(dataFs()));
    assert.ok(readFileSync(join(dir, 'same.fs.index')).equals(readFileSync(join(vectorsDir('filestorage'), 'Data.fs.index'))));
    assert.match(r.stdout, /\n0 bytes removed during recovery\n$/);
  });

  it('truncated in the middle of T3: T0–T2 survive (progress output as Python)', { skip }, async () => {
    const inp = damaged('A.fs', (b) => b.subarray(0, 1500));
    const r = await recoverHere([inp, join(dir, 'A-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Recovering ${inp} into ${join(dir, 'A-out.fs')}\n` +
        '. 1.0 . 2.0 . 3.0 . 4.0 . 5.0 . 6.0 . 7.0 . 8.0 . error reading txn header: bad transaction length at 1210\n' +
        '0.0 . 1.0 . 2.0 . 3.0 . 4.0 . 5.0 . 6.0 . 7.0 . 8.0 error reading txn header: bad transaction length at 1414\n' +
        '0.0 . 1.0 . 2.0 . 3.0 . 4.0 . 5.0 . 6.0 . 7.0 . 8.0 \n' +
        '290 bytes removed during recovery\n',
    );
    const out = join(dir, 'A-out.fs');
    assert.ok(readFileSync(out).equals(dataFs().subarray(0, 1210)));
    await fstestOk(out);
    assert.deepEqual(await survey(out), { tids: [T.T0, T.T1, T.T2], loadable: [0n, 1n, 2n, 3n], deleted: [4n] });
  });

  it('garbage over the header of T2: T2 lost, T4 (backpointers into T2) fails, the rest kept (-v 1)', { skip }, async () => {
    const inp = damaged('B.fs', (b) => {
      b.fill(0xaa, 673, 700);
      return b;
    });
    const r = await recoverHere(['-v', '1', inp, join(dir, 'B-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Recovering ${inp} into ${join(dir, 'B-out.fs')}\n` +
        'begin 166 2024-01-01 00:00:00.250000 finish\n' +
        'begin 673 2024-01-01 00:01:00.500000 finish\n' +
        "error reading txn header: 'ascii' codec can't decode byte 0xaa in position 0: ordinal not in range(128)\n" +
        "error reading txn header: invalid status, '\\x00', at 866\n" +
        'error reading txn header: invalid transaction length, 0, at 1084\n' +
        'begin 1894 2024-01-01 00:03:00.000000 finish\n' +
        'begin 2135 2024-01-01 00:04:00.000000 error copying transaction: Undo error None: Invalid transaction id\n' +
        'begin 2471 2024-01-01 00:06:00.000000 finish\n' +
        '\n1017 bytes removed during recovery\n',
    );
    const out = join(dir, 'B-out.fs');
    await fstestOk(out);
    assert.deepEqual(await survey(out), { tids: [T.T0, T.T1, T.T3, T.T6], loadable: [0n, 1n, 2n, 4n], deleted: [3n] });
  });

  it('a bad transaction length in T1 (the redundant length no longer matches)', { skip }, async () => {
    const inp = damaged('C.fs', (b) => {
      b.writeBigUInt64BE(100n, 174);
      return b;
    });
    const r = await recoverHere(['-v', '2', inp, join(dir, 'C-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^error reading txn header: redundant transaction length check failed at 266\nlooking for valid txn header at 247\n/m);
    assert.match(r.stdout, /\n987 bytes removed during recovery\n$/);
    const out = join(dir, 'C-out.fs');
    await fstestOk(out);
    // T1 lost; T2 and T3 are self-contained; T4 points into T1 and fails, T5 is skipped by the scan
    assert.deepEqual((await survey(out)).tids, [T.T0, T.T2, T.T3, T.T6]);
  });

  it('-p keeps the records of T4 before its backpointer into the lost T1', { skip }, async () => {
    const inp = damaged('E.fs', (b) => {
      b.fill(0x55, 166, 190);
      return b;
    });
    const r = await recoverHere(['-p', '-v', '1', inp, join(dir, 'E-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nbegin 2135 2024-01-01 00:04:00\.000000 partial\nerror copying transaction: Undo error None: Invalid transaction id\n/);
    assert.match(r.stdout, /\n896 bytes removed during recovery\n$/);
    const out = join(dir, 'E-out.fs');
    await fstestOk(out);
    assert.deepEqual((await survey(out)).tids, [T.T0, T.T2, T.T3, T.T4, T.T6]);
  });

  it("a 'c' tail is saved to <output>.tr0 and not copied", { skip }, async () => {
    const r = await recoverHere([join(vectorsDir('filestorage'), 'Data-checkpoint.fs'), join(dir, 'K-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(join(dir, 'K-out.fs.tr0')).size, 198);
    assert.ok(readFileSync(join(dir, 'K-out.fs')).equals(dataFs()));
    assert.match(r.stdout, /\n198 bytes removed during recovery\n$/);
  });

  it('ends at a "." in the last 8 bytes after damage (Python loops forever there)', { skip }, async () => {
    const inp = damaged('F.fs', (b) => {
      b.writeBigUInt64BE(5000n, 2382);
      return Buffer.concat([b, Buffer.from('.xyz')]);
    });
    const r = await recoverHere(['-v', '1', inp, join(dir, 'F-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /error reading txn header: bad transaction length at 2374\n\n101 bytes removed during recovery\n$/);
    assert.ok(readFileSync(join(dir, 'F-out.fs')).equals(dataFs().subarray(0, 2374)));
  });

  it('refuses an existing output without -f, and a non-FileStorage input', { skip }, async () => {
    writeFileSync(join(dir, 'exists.fs'), 'x');
    const r = await runTool('fsrecover', [join(vectorsDir('filestorage'), 'Data.fs'), 'exists.fs'], dir);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'exists.fs exists\n\n');
    writeFileSync(join(dir, 'notfs.fs'), 'hello world');
    const r2 = await runTool('fsrecover', ['notfs.fs', 'n-out.fs'], dir);
    assert.equal(r2.status, 1);
    assert.equal(r2.stderr, 'input is not a file storage\n\n');
    assert.equal(existsSync(join(dir, 'n-out.fs')), false);
  });

  it('-P 0 packs the recovered output (§10.3 via FileStorage)', { skip }, async () => {
    const r = await recoverHere(['-P', '0', join(vectorsDir('filestorage'), 'Data.fs'), join(dir, 'P-out.fs')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nPacking \.\.\.\n$/);
    const out = join(dir, 'P-out.fs');
    await fstestOk(out);
    const s = await survey(out);
    assert.deepEqual(s.loadable, [0n, 1n, 2n]);
    assert.ok(statSync(out).size < dataFs().length);
  });
});
