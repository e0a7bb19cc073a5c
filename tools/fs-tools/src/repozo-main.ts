/** Command line of repozo (filestorage spec §12), as Python's repozo parses it. */
import { ExitError } from './cli/common.ts';
import { getopt, GetoptError } from './getopt.ts';
import { doBackup, doRecover, doVerify, RepozoError, type Mode, type RepozoOptions } from './repozo.ts';
import type { Out } from './output.ts';

export const REPOZO_USAGE = `repozo -- incremental and full backups of a FileStorage data file and its index.

Usage: repozo [options]

    Exactly one of -B, -R, or -V must be given:

    -B / --backup       back up a data file
    -R / --recover      rebuild a data file from a backup repository
    -V / --verify       check the files of the latest backup against their checksums

    -v / --verbose      report what is done on stderr
    -h / --help         print this text and exit
    -r dir / --repository=dir
                        the repository directory (required, must exist)

Backup (-B):
    -f file / --file=file   the data file to back up (required)
    -F / --full             always make a full backup (default: incremental when possible)
    -Q / --quick            compare only the last backed-up range, not the whole file
    -z / --gzip             gzip the backup files
    -k / --kill-old-on-full after a full backup, delete the older backups

Recover (-R):
    -D str / --date=str     recover the state as of this UTC date, yyyy-mm-dd[-hh[-mm[-ss]]]
                            (default: now)
    -o file / --output=file write the data file here (and its index beside it);
                            default: the data to stdout, no index
    -w / --with-verify      check sizes and checksums of the backup files while recovering

Verify (-V):
    -Q / --quick            check sizes only`;

const LONG = ['backup', 'recover', 'verify', 'verbose', 'help', 'repository=', 'file=', 'full', 'quick', 'gzip', 'kill-old-on-full', 'date=', 'output=', 'with-verify'];

function usage(code: number, out: Out, msg = ''): never {
  if (code === 0) {
    out.write(REPOZO_USAGE + '\n' + (msg ? msg + '\n' : ''));
    throw new ExitError('', 0);
  }
  throw new ExitError(REPOZO_USAGE + '\n' + msg);
}

export function parseRepozoArgs(argv: string[], out: Out, log: (s: string) => void): RepozoOptions {
  let p;
  try {
    p = getopt(argv, 'BRVvhr:f:FQzkD:o:w', LONG);
  } catch (e) {
    if (e instanceof GetoptError) usage(1, out, e.message);
    throw e;
  }
  let mode: Mode | null = null;
  let verbose = false;
  const o: Partial<RepozoOptions> & { full: boolean; quick: boolean; gzip: boolean; killold: boolean; withverify: boolean } = {
    full: false,
    quick: false,
    gzip: false,
    killold: false,
    withverify: false,
  };
  const setMode = (m: Mode) => {
    if (mode !== null) usage(1, out, '-B, -R, and -V are mutually exclusive');
    mode = m;
  };
  for (const [k, v] of p.opts) {
    switch (k) {
      case '-h': case '--help': usage(0, out); break;
      case '-v': case '--verbose': verbose = true; break;
      case '-R': case '--recover': setMode('recover'); break;
      case '-B': case '--backup': setMode('backup'); break;
      case '-V': case '--verify': setMode('verify'); break;
      case '-Q': case '--quick': o.quick = true; break;
      case '-f': case '--file': o.file = v; break;
      case '-r': case '--repository': o.repository = v; break;
      case '-F': case '--full': o.full = true; break;
      case '-D': case '--date': o.date = v; break;
      case '-o': case '--output': o.output = v; break;
      case '-z': case '--gzip': o.gzip = true; break;
      case '-k': case '--kill-old-on-full': o.killold = true; break;
      case '-w': case '--with-verify': o.withverify = true; break;
    }
  }
  if (p.args.length) usage(1, out, 'Invalid arguments: ' + p.args.join(', '));
  if (mode === null) usage(1, out, 'Either --backup, --recover or --verify is required');
  if (o.repository === undefined) usage(1, out, '--repository is required');
  const lg = verbose ? log : undefined;
  const ignore = (cond: boolean, what: string, m: string, reset: () => void) => {
    if (cond) {
      lg?.(`--${what} option is ignored in ${m} mode`);
      reset();
    }
  };
  const m: Mode = mode;
  if (m === 'backup') {
    ignore(o.date !== undefined, 'date', m, () => (o.date = undefined));
    ignore(o.output !== undefined, 'output', m, () => (o.output = undefined));
    ignore(o.withverify, 'with-verify', m, () => (o.withverify = false));
    if (!o.file) usage(1, out, '--file is required in backup mode');
  } else if (m === 'recover') {
    ignore(o.file !== undefined, 'file', m, () => (o.file = undefined));
    ignore(o.killold, 'kill-old-on-full', m, () => (o.killold = false));
  } else {
    ignore(o.date !== undefined, 'date', m, () => (o.date = undefined));
    ignore(o.output !== undefined, 'output', m, () => (o.output = undefined));
    ignore(o.full, 'full', m, () => (o.full = false));
    ignore(o.gzip, 'gzip', m, () => (o.gzip = false));
    ignore(o.file !== undefined, 'file', m, () => (o.file = undefined));
    ignore(o.killold, 'kill-old-on-full', m, () => (o.killold = false));
    ignore(o.withverify, 'with-verify', m, () => (o.withverify = false));
  }
  // ZEO_TS_REPOZO_NOW=yyyy-mm-dd-hh-mm-ss fixes the backup time (tests; Python's test_now)
  const fixed = process.env.ZEO_TS_REPOZO_NOW;
  const now = fixed && /^\d{4}(-\d\d){5}$/.test(fixed) ? fixed.split('-').map(Number) : undefined;
  return { ...o, mode: m, repository: o.repository, log: lg, now } as RepozoOptions;
}

export async function repozoMain(argv: string[], out: Out): Promise<number> {
  const o = parseRepozoArgs(argv, out, (s) => process.stderr.write(s + '\n'));
  try {
    if (o.mode === 'backup') await doBackup(o);
    else if (o.mode === 'recover') {
      await out.flush();
      await doRecover(o);
    } else await doVerify(o);
  } catch (e) {
    if (e instanceof RepozoError) throw new ExitError(e.message);
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string') throw new ExitError(`[Errno ${err.errno ? -err.errno : ''}] ${err.message}`);
    throw e;
  }
  return 0;
}
