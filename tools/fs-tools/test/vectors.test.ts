/**
 * The tools against the Python-produced vectors: stdout and exit status byte for byte
 * (filestorage §16 #2, #31, #32, #50–#53; vectors README "Expected tool output").
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { pickleSkip, runTool } from './helpers.ts';

const V = vectorsDir('filestorage');
const skip = vectorsSkip('filestorage');
const expected = (e: string | (() => string)) => (typeof e === 'string' ? readFileSync(join(V, e), 'utf8') : e());

interface Case {
  title: string;
  tool: string;
  args: string[];
  /** vector file holding the expected stdout, or a function deriving it from the vectors */
  stdout?: string | (() => string);
  stderr?: string | (() => string);
  status: number;
  cwd?: string;
  needsPickle?: boolean;
}

const cases: Case[] = [
  // filestorage §16 #31, #51, §8.3
  { title: 'fstest Data.fs prints nothing (§16 #31)', tool: 'fstest', args: ['Data.fs'], stdout: 'fstest.txt', status: 0 },
  { title: 'fstest -v -v Data.fs (§16 #51)', tool: 'fstest', args: ['-v', '-v', 'Data.fs'], stdout: 'fstest-vv.txt', status: 0 },
  { title: 'fstest -vv Data-packed.fs (§16 #51)', tool: 'fstest', args: ['-vv', 'Data-packed.fs'], stdout: 'fstest-vv-packed.txt', status: 0 },
  { title: 'fstest Data-checkpoint.fs: checkpoint flag (§8.3 #6, §16 #32)', tool: 'fstest', args: ['Data-checkpoint.fs'], stderr: 'fstest-checkpoint.txt', stdout: 'fstest.txt', status: 1 },
  { title: 'fstest Data-truncated.fs: truncated (§8.3 #5, §16 #32)', tool: 'fstest', args: ['Data-truncated.fs'], stderr: 'fstest-truncated.txt', stdout: 'fstest.txt', status: 1 },
  // §11.3, §16 #52
  { title: 'fstail -n 10 Data.fs (§16 #52)', tool: 'fstail', args: ['-n', '10', 'Data.fs'], stdout: 'fstail.txt', status: 0 },
  { title: 'fstail Data-packed.fs (default -n, §16 #52)', tool: 'fstail', args: ['Data-packed.fs'], stdout: 'fstail-packed.txt', status: 0 },
  // §11.6, §16 #53
  { title: 'fsstats fsdump.txt (§16 #53)', tool: 'fsstats', args: ['fsdump.txt'], stdout: 'fsstats.txt', status: 0 },
  // §11.1 verbose Dumper
  { title: 'fsdump -v Data.fs = Dumper output (§11.1)', tool: 'fsdump', args: ['-v', 'Data.fs'], stdout: 'fsdump-verbose.txt', status: 0 },
  { title: 'fsdump -v Data-packed.fs = Dumper output (§11.1)', tool: 'fsdump', args: ['-v', 'Data-packed.fs'], stdout: 'fsdump-verbose-packed.txt', status: 0 },
  // §11.1, §16 #50 (class names need @zeo-ts/pickle)
  { title: 'fsdump Data.fs (§16 #50)', tool: 'fsdump', args: ['Data.fs'], stdout: 'fsdump.txt', status: 0, needsPickle: true },
  { title: 'fsdump Data-packed.fs (§16 #50)', tool: 'fsdump', args: ['Data-packed.fs'], stdout: 'fsdump-packed.txt', status: 0, needsPickle: true },
  {
    title: "fsdump Data-checkpoint.fs stops before the 'c' transaction (§9.9)",
    tool: 'fsdump',
    args: ['Data-checkpoint.fs'],
    stdout: 'fsdump.txt',
    status: 0,
    needsPickle: true,
  },
  {
    title: 'fsdump Data-truncated.fs: T0–T5 and a warning for the cut transaction (§9.9)',
    tool: 'fsdump',
    args: ['Data-truncated.fs'],
    stdout: () => expected('fsdump.txt').split('\n').slice(0, -4).join('\n') + '\n',
    stderr: () => 'Data-truncated.fs truncated, possibly due to damaged records at 2374\n',
    status: 0,
    needsPickle: true,
  },
  { title: 'fsdump Dangling.fs (§11.1)', tool: 'fsdump', args: ['Dangling.fs'], stdout: 'fsdump-dangling.txt', status: 0, needsPickle: true },
  { title: 'fsdump blob/Data.fs (§11.1, blob records)', tool: 'fsdump', args: ['Data.fs'], cwd: 'blob', stdout: 'fsdump-blob.txt', status: 0, needsPickle: true },
  // §11.5, §16 #53
  { title: 'fsoids Data.fs 0 1 2 3 4 5 (§16 #53)', tool: 'fsoids', args: ['Data.fs', '0', '1', '2', '3', '4', '5'], stdout: 'fsoids.txt', status: 0, needsPickle: true },
  // §11.7 (Python's ZODB.scripts.analyze, bin fsanalyze)
  { title: 'fsanalyze Data.fs = analyze.txt (§11.7)', tool: 'fsanalyze', args: ['Data.fs'], stdout: 'analyze.txt', status: 0, needsPickle: true },
  // §11.4, §16 #53
  { title: 'fsrefs Data.fs prints nothing (§11.4)', tool: 'fsrefs', args: ['Data.fs'], stdout: 'fsrefs.txt', status: 0, needsPickle: true },
  { title: 'fsrefs Data-packed.fs prints nothing (§11.4)', tool: 'fsrefs', args: ['Data-packed.fs'], stdout: 'fsrefs-packed.txt', status: 0, needsPickle: true },
  { title: 'fsrefs Dangling.fs reports the deleted oid 1 (§16 #53)', tool: 'fsrefs', args: ['Dangling.fs'], stdout: 'fsrefs-dangling.txt', status: 0, needsPickle: true },
];

// The cases are independent child processes: run several at once.
describe('tools on the filestorage vectors', { concurrency: 6 }, () => {
  for (const c of cases) {
    it(c.title, { skip: skip || (c.needsPickle ? pickleSkip() : false) }, async () => {
      const cwd = c.cwd ? join(V, c.cwd) : V;
      const r = await runTool(c.tool, c.args, cwd);
      if (c.stdout !== undefined) assert.equal(r.stdout, expected(c.stdout), `stdout of ${c.tool} ${c.args.join(' ')}`);
      assert.equal(r.stderr, c.stderr === undefined ? '' : expected(c.stderr), `stderr of ${c.tool} ${c.args.join(' ')}`);
      assert.equal(r.status, c.status, `exit status of ${c.tool} ${c.args.join(' ')}`);
    });
  }
});
