/**
 * Command-line entry points of the tools: argument parsing as the Python scripts do it
 * (getopt short options), then the tool. Each returns the exit status or throws ExitError.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { recover } from './fsrecover.ts';
import { FileStorage } from '@zeo-ts/filestorage';
import { ExitError } from './cli/common.ts';
import { fsdump, fsdumpVerbose } from './fsdump.ts';
import { fsoidsTracer } from './fsoids-main.ts';
import { fsrefs } from './fsrefs.ts';
import { fsstats } from './fsstats.ts';
import { FormatError, fstest } from './fstest.ts';
import { fstail } from './fstail.ts';
import { getopt, GetoptError } from './getopt.ts';
import { ToolError, fs21Note, type IterWarning } from './fsio.ts';
import { convertFs21 } from './fsconvert.ts';
import { analyze, writeAnalyzeReport } from './analyze.ts';
import type { Out } from './output.ts';

const stderrWarn = (w: IterWarning) => process.stderr.write(w.message + '\n');

/** The first 4 bytes of `path` ('' when it cannot be read: the tool reports that itself). */
function magicOf(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(4);
      const n = readSync(fd, b, 0, 4, 0);
      return b.subarray(0, n).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/**
 * The tools read FS21 files (Python 2; same record layout) where Python 3's refuse them: say so
 * on stderr, once, before the output (which keeps its FS30 format).
 */
function noteFs21(path: string): void {
  if (magicOf(path) === 'FS21') process.stderr.write(fs21Note(path) + '\n');
}

export const FSTEST_USAGE = `usage: fstest [-v] data.fs

Check the consistency of the transaction and data record headers of a FileStorage data file.
Stops at the first problem found, prints it and exits with status 1. A good file prints
nothing (exit status 0). -v prints a line per transaction, -v -v also a line per data record
(records before their transaction); with -v a clean run ends with "no errors detected".
Object pickles are not checked.`;

export async function fstestMain(argv: string[], out: Out): Promise<number> {
  let verbose = 0;
  let args: string[];
  try {
    const p = getopt(argv, 'v');
    args = p.args;
    if (args.length !== 1) throw new GetoptError('expected one argument');
    verbose = p.opts.length;
  } catch (e) {
    if (e instanceof GetoptError) throw new ExitError(FSTEST_USAGE);
    throw e;
  }
  noteFs21(args[0]!);
  try {
    await fstest(args[0]!, { verbose, out });
  } catch (e) {
    if (e instanceof FormatError) throw new ExitError(e.message);
    throw e;
  }
  return 0;
}

export const FSDUMP_USAGE = `usage: fsdump [-v] data.fs

Print every transaction and data record of a FileStorage data file (as Python's
ZODB.FileStorage.fsdump). -v prints every header field instead (Python's fsdump Dumper).`;

export async function fsdumpMain(argv: string[], out: Out): Promise<number> {
  let p;
  try {
    p = getopt(argv, 'v');
  } catch {
    throw new ExitError(FSDUMP_USAGE);
  }
  if (p.args.length !== 1) throw new ExitError(FSDUMP_USAGE);
  noteFs21(p.args[0]!);
  if (p.opts.length) await fsdumpVerbose(p.args[0]!, out);
  else await fsdump(p.args[0]!, { out, warn: stderrWarn });
  return 0;
}

export const FSTAIL_USAGE = `usage: fstail [-n N] data.fs

Print the last N (default 10) transactions of a FileStorage data file, newest first.`;

export async function fstailMain(argv: string[], out: Out): Promise<number> {
  let n = 10;
  let p;
  try {
    p = getopt(argv, 'n:');
  } catch (e) {
    throw new ExitError(`${(e as Error).message}\n${FSTAIL_USAGE}`);
  }
  if (p.args.length !== 1) throw new ExitError(FSTAIL_USAGE);
  for (const [k, v] of p.opts) {
    if (k === '-n') {
      if (!/^\s*[+-]?\d+\s*$/.test(v)) throw new ExitError(`invalid value for -n: ${JSON.stringify(v)}`);
      n = Number(v);
    }
  }
  noteFs21(p.args[0]!);
  await fstail(p.args[0]!, n, out);
  return 0;
}

export const FSREFS_USAGE = `usage: fsrefs [-v] data.fs

Check that the current revision of every object loads and that every object it refers to
exists, loads, and was not undone. Prints nothing when all is well. -v also prints why a
load failed.`;

export async function fsrefsMain(argv: string[], out: Out): Promise<number> {
  let p;
  try {
    p = getopt(argv, 'v');
  } catch {
    throw new ExitError(FSREFS_USAGE);
  }
  if (p.args.length !== 1) throw new ExitError(FSREFS_USAGE);
  noteFs21(p.args[0]!);
  await fsrefs(p.args[0]!, { out, verbose: p.opts.length, err: (s) => process.stderr.write(s) });
  return 0;
}

export const FSOIDS_USAGE = `usage: fsoids [-f oid_file] data.fs [oid]...

Show every occurrence of the given oids in a FileStorage data file: their revisions, the
objects they refer to, and the objects referring to them, grouped by oid and transaction.
Oids are integers in any Python notation (26, 0x1a); oid_file holds one per line.`;

export async function fsoidsMain(argv: string[], out: Out): Promise<number> {
  let p;
  try {
    p = getopt(argv, 'f:');
  } catch (e) {
    out.write(FSOIDS_USAGE + '\n');
    throw new ExitError(`getopt.GetoptError: ${(e as Error).message}`);
  }
  if (!p.args.length) {
    out.write(FSOIDS_USAGE + '\n');
    throw new ExitError('ValueError: Must specify a FileStorage');
  }
  let oidFile: string | null = null;
  for (const [k, v] of p.opts) if (k === '-f') oidFile = v;
  const extra = oidFile === null ? [] : readFileSync(oidFile, 'utf8').split('\n').filter((l, i, a) => !(i === a.length - 1 && l === ''));
  noteFs21(p.args[0]!);
  await fsoidsTracer(p.args[0]!, p.args.slice(1), extra, out, stderrWarn);
  return 0;
}

export const FSSTATS_USAGE = `usage: fsstats fsdump-output.txt

Statistics (transaction and object sizes, revisions, classes) from the text output of fsdump.`;

export async function fsstatsMain(argv: string[], out: Out): Promise<number> {
  if (argv.length < 1) throw new ExitError(FSSTATS_USAGE);
  await fsstats(argv[0]!, out);
  return 0;
}

export const FSRECOVER_USAGE = `Usage: fsrecover [-f] [-v level] [-p] [-P seconds] input output

Copy the readable transactions of a damaged FileStorage data file into a new data file,
skipping damaged data (which is lost) and reporting how many bytes were dropped.

Options:
    -f         overwrite the output file if it exists
    -v level   0: progress indicator (default); 1: one line per transaction;
               2: also one line per data record
    -p         keep the readable first records of a transaction whose later records are bad
               (otherwise the whole transaction is skipped)
    -P t       pack the output (with garbage collection) to t seconds in the past`;

function die(mess: string, usage = false): never {
  throw new ExitError(`${mess}\n${usage ? '\n' + FSRECOVER_USAGE : ''}`);
}

export async function fsrecoverMain(argv: string[], out: Out): Promise<number> {
  let p;
  try {
    p = getopt(argv, 'fv:pP:');
  } catch (e) {
    die((e as Error).message, true);
  }
  if (p.args.length !== 2) die('two positional arguments required', true);
  const [inp, outp] = p.args as [string, string];
  let force = false;
  let partial = false;
  let verbose = 0;
  let pack: string | null = null;
  for (const [k, v] of p.opts) {
    if (k === '-v') {
      if (!/^\s*[+-]?\d+\s*$/.test(v)) die(`invalid verbosity level: ${JSON.stringify(v)}`, true);
      verbose = Number(v);
    } else if (k === '-p') partial = true;
    else if (k === '-f') force = true;
    else if (k === '-P') pack = v;
  }
  let packTime: number | null = null;
  if (pack !== null) {
    const secs = Number(pack.trim());
    if (pack.trim() === '' || Number.isNaN(secs)) die(`could not convert string to float: ${JSON.stringify(pack)}`, true);
    packTime = Date.now() / 1000 - secs;
  }
  out.write(`Recovering ${inp} into ${outp}\n`);
  if (existsSync(outp) && !force) die(`${outp} exists`);
  const head = Buffer.alloc(4);
  const fd = openSync(inp, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  // an FS21 (Python 2) input is read with the same layout; the output is FS30, pickles unchanged
  if (head.toString('latin1') === 'FS21') process.stderr.write(fs21Note(inp) + '\n');
  else if (head.toString('latin1') !== 'FS30') die('input is not a file storage');
  await recover(inp, outp, { verbose, partial, out, warn: (s) => process.stderr.write(s + '\n') });
  // Like Python's closing of the output storage: open it as a FileStorage (which writes
  // <output>.index), pack it when asked, close.
  const fs = await FileStorage.open(outp);
  try {
    if (packTime !== null) {
      out.write('Packing ...\n');
      await out.flush();
      await fs.pack(packTime, true);
    }
  } finally {
    await fs.close();
  }
  return 0;
}

export const FSANALYZE_USAGE = `usage: fsanalyze data.fs

Records, bytes and average sizes per class of a FileStorage data file, and how much of it is
current versus old revisions (Python's ZODB.scripts.analyze).`;

export async function fsanalyzeMain(argv: string[], out: Out): Promise<number> {
  if (argv.length < 1) throw new ExitError(FSANALYZE_USAGE);
  noteFs21(argv[0]!);
  const rep = analyze(argv[0]!, stderrWarn);
  try {
    writeAnalyzeReport(rep, out);
  } catch (e) {
    if (e instanceof ToolError) {
      await out.flush();
      throw new ExitError(e.message);
    }
    throw e;
  }
  return 0;
}

export const FSCONVERT_FS21_USAGE = `usage: fsconvert-fs21 [-q] [-P bytes] in.fs out.fs

Copy a data file written by ZODB on Python 2 (magic FS21) into a new FS30 data file, one
transaction at a time (copyTransactionsFrom: tids, statuses, metadata and data records kept),
so that Python 3 ZODB and zeo-ts can open it read-write. The input is only read; out.fs must
not exist. The object pickles are copied unchanged (Python 2 str stays str): convert them
afterwards with \`zodbupdate --convert-py3 --file out.fs\` where Python 3 needs it.

Options:
    -q         no progress lines on stderr (the final summary is still printed)
    -P bytes   a progress line every this many input bytes (default 67108864)`;

/** fsconvert-fs21: exit 0 after a complete copy (a summary on stdout), 1 on any problem. */
export async function fsconvertFs21Main(argv: string[], out: Out): Promise<number> {
  let p;
  try {
    p = getopt(argv, 'qP:');
  } catch (e) {
    throw new ExitError(`${(e as Error).message}\n${FSCONVERT_FS21_USAGE}`);
  }
  if (p.args.length !== 2) throw new ExitError(FSCONVERT_FS21_USAGE);
  const [inp, outp] = p.args as [string, string];
  let quiet = false;
  let every = 64 * 1024 * 1024;
  for (const [k, v] of p.opts) {
    if (k === '-q') quiet = true;
    else if (k === '-P') {
      if (!/^\s*\d+\s*$/.test(v) || Number(v) < 1) throw new ExitError(`invalid value for -P: ${JSON.stringify(v)}\n${FSCONVERT_FS21_USAGE}`);
      every = Number(v);
    }
  }
  const started = Date.now();
  let r;
  try {
    r = await convertFs21(inp, outp, {
      progressBytes: every,
      progress: quiet ? undefined : (g) => process.stderr.write(`fsconvert-fs21: ${g.size > 4 ? ((100 * g.pos) / g.size).toFixed(1) : '100.0'}% (${g.pos} of ${g.size} bytes, ${g.transactions} transactions)\n`),
      warn: (m) => process.stderr.write(`fsconvert-fs21: warning: ${m}\n`),
    });
  } catch (e) {
    if (e instanceof ToolError || (e instanceof Error && e.name === 'FileStorageFormatError')) throw new ExitError(`fsconvert-fs21: ${e.message}`);
    throw e;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  out.write(`converted ${inp} (${r.inputFormat}, ${r.inputSize} bytes) into ${outp} (FS30, ${r.outputSize} bytes): ${r.transactions} transactions, ${r.records} data records in ${secs} s\n`);
  if (r.identical) out.write('the output equals the input byte for byte after the magic\n');
  else {
    const where = r.firstDifference !== null && r.firstDifference >= 0 ? `first difference at ${r.firstDifference}` : 'the sizes differ';
    out.write(`the output differs from the input after the magic (${where}): transactions were re-stamped, skipped or rewritten by copyTransactionsFrom; see the warnings above\n`);
  }
  out.write('object pickles were copied unchanged: run `zodbupdate --convert-py3 --file ' + outp + '` if Python 3 must read Python 2 str values\n');
  return 0;
}
