/**
 * fstest on damaged copies of Data.fs: every check of filestorage spec §8.3 prints Python's
 * message on stderr and exits 1 (§16 #2, #32); a 'u' transaction is accepted unchecked.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { vectorsSkip } from '@zeo-ts/storage/testing';
import { corruptions, dataFs, legacyVersionFile } from './corrupt.ts';
import { runTool } from './helpers.ts';
import { ExitError } from '../src/cli/common.ts';
import { fstestMain } from '../src/main.ts';
import { StringOut } from '../src/output.ts';

const skip = vectorsSkip('filestorage');
const dir = mkdtempSync(join(tmpdir(), 'fstest-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('fstest checks (filestorage §8.3, §16 #32)', { concurrency: 6 }, () => {
  // The first two through the real bin (stderr + exit status), the rest in-process (same code
  // path below the CLI shim) to keep the run short.
  corruptions.forEach((c, i) => {
    it(`§8.3 #${c.check}: ${c.name}`, { skip }, async () => {
      const name = `case${i}.fs`;
      const path = join(dir, name);
      writeFileSync(path, c.make(dataFs()));
      if (i < 2) {
        const r = await runTool('fstest', [name], dir);
        assert.equal(r.stderr, c.message.replace('<path>', name) + '\n');
        assert.equal(r.stdout, '');
        assert.equal(r.status, 1);
      } else {
        const out = new StringOut();
        await assert.rejects(fstestMain([path], out), (e: unknown) => e instanceof ExitError && e.status === 1 && e.message === c.message.replace('<path>', path));
        assert.equal(out.text, '');
      }
    });
  });

  it("§3.2: a 'u' transaction is accepted without looking at its records", { skip }, async () => {
    const b = Buffer.from(dataFs());
    b[2374 + 16] = 0x75;
    b.writeBigUInt64BE(999999n, 2413 + 24); // its record's tloc is wrong, but nobody looks
    writeFileSync(join(dir, 'undone.fs'), b);
    const r = await runTool('fstest', ['-v', 'undone.fs'], dir);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /      2374: transaction tid 0x03f58e0600000000 #6 \nno errors detected$/);
  });

  it('§3.4: a record in the legacy version layout is skipped, the file passes', { skip }, async () => {
    const path = join(dir, 'version.fs');
    writeFileSync(path, legacyVersionFile());
    const out = new StringOut();
    assert.equal(await fstestMain(['-v', '-v', path], out), 0);
    assert.ok(out.text.endsWith('      2413: object oid 0x0000000000000003 #0\n      2374: transaction tid 0x03f58e0600000000 #6 \nno errors detected'));
  });

  it('usage errors exit 1 with the usage text on stderr', async () => {
    const r = await runTool('fstest', [], dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^usage: fstest \[-v\] data\.fs/);
    const r2 = await runTool('fstest', ['-x', 'Data.fs'], dir);
    assert.equal(r2.status, 1);
  });
});
