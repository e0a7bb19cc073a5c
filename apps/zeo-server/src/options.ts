/**
 * runzeo's command line (operations §5.1): getopt-style parsing with the reference's messages.
 */

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface RunzeoArgs {
  configure: string | null;
  address: string | null;
  filenames: string[];
  timeout: number | null;
  pidFile: string | null;
  monitor: string | null;
  overrides: string[];
  help: boolean;
  version: boolean;
  test: boolean;
}

export const USAGE = `Usage: runzeo [options]

Start the ZEO storage server.

Options:
  -C/--configure URL     configuration file or URL (zeo.conf)
  -a/--address ADDRESS   server address: [host:]port or a Unix socket path
  -f/--filename PATH     serve a FileStorage (repeatable: storages 1, 2, ...)
  -t/--timeout SECONDS   transaction timeout
  --pid-file PATH        write the process id there
  -m/--monitor ADDRESS   legacy plain-text monitor address
  -X PATH=VALUE          configuration override (needs -C; repeatable)
  --test                 start completely, then shut down at once
  -h/--help              print this text
  --version              print the version

Without a configuration file the server announces Z5 (pickle); set ZEO_MSGPACK to a non-empty
value (or 'msgpack true' in <zeo>) to announce M5 (msgpack). Conflicts are resolved by clients
(client-conflict-resolution) unless the configuration says otherwise.
`;

const SHORT: Record<string, { name: keyof RunzeoArgs | 'auth'; arg: boolean }> = {
  C: { name: 'configure', arg: true },
  a: { name: 'address', arg: true },
  f: { name: 'filenames', arg: true },
  t: { name: 'timeout', arg: true },
  m: { name: 'monitor', arg: true },
  X: { name: 'overrides', arg: true },
  h: { name: 'help', arg: false },
};

const LONG: Record<string, { name: keyof RunzeoArgs | 'auth'; arg: boolean }> = {
  configure: { name: 'configure', arg: true },
  address: { name: 'address', arg: true },
  filename: { name: 'filenames', arg: true },
  timeout: { name: 'timeout', arg: true },
  'pid-file': { name: 'pidFile', arg: true },
  monitor: { name: 'monitor', arg: true },
  help: { name: 'help', arg: false },
  version: { name: 'version', arg: false },
  test: { name: 'test', arg: false },
  'auth-protocol': { name: 'auth', arg: true },
  'auth-database': { name: 'auth', arg: true },
  'auth-realm': { name: 'auth', arg: true },
};

function parseFloatPy(s: string): number | null {
  const t = s.trim();
  if (!/^[+-]?((\d+(_\d+)*)?\.?\d*(_\d+)*([eE][+-]?\d+)?|inf(inity)?|nan)$/i.test(t) || t === '' || t === '.' || /^[+-]$/.test(t)) return null;
  const v = Number(t.replace(/_/g, '').replace(/^([+-]?)inf(inity)?$/i, '$1Infinity'));
  return Number.isNaN(v) && !/nan/i.test(t) ? null : v;
}

export function parseArgs(argv: string[]): RunzeoArgs {
  const a: RunzeoArgs = {
    configure: null,
    address: null,
    filenames: [],
    timeout: null,
    pidFile: null,
    monitor: null,
    overrides: [],
    help: false,
    version: false,
    test: false,
  };
  const seen = new Map<string, string>();
  const set = (opt: string, name: keyof RunzeoArgs | 'auth', value: string | null) => {
    switch (name) {
      case 'auth':
        throw new UsageError(`option ${opt} is not supported: ZEO digest authentication was removed; use TLS client certificates (<ssl> with authenticate) instead`);
      case 'help':
        a.help = true;
        return;
      case 'version':
        a.version = true;
        return;
      case 'test':
        a.test = true;
        return;
      case 'filenames':
        a.filenames.push(value!);
        return;
      case 'overrides':
        a.overrides.push(value!);
        return;
      case 'address':
        a.address = value!;
        return;
      case 'monitor':
        a.monitor = value!;
        return;
      default: {
        // -C, -t, --pid-file: repeating with a different value is an error
        const prev = seen.get(name);
        if (prev !== undefined && prev !== value) throw new UsageError(`conflicting command line option '${opt}'`);
        seen.set(name, value!);
        if (name === 'timeout') {
          const v = parseFloatPy(value!);
          if (v === null) throw new UsageError(`invalid value for ${opt} '${value}': could not convert string to float: '${value}'`);
          a.timeout = v;
        } else if (name === 'configure') a.configure = value!;
        else if (name === 'pidFile') a.pidFile = value!;
      }
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw new UsageError('positional arguments are not supported');
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const nm = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      // getopt accepts unique prefixes of long options
      let key = LONG[nm] ? nm : undefined;
      if (!key) {
        const matches = Object.keys(LONG).filter((k) => k.startsWith(nm));
        if (matches.length === 1) key = matches[0];
        else if (matches.length > 1 && nm.length > 0) throw new UsageError(`option --${nm} not a unique prefix`);
      }
      if (!key) throw new UsageError(`option --${nm} not recognized`);
      const spec = LONG[key]!;
      let value: string | null = null;
      if (spec.arg) {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i + 1 < argv.length) value = argv[++i]!;
        else throw new UsageError(`option --${key} requires argument`);
      } else if (eq >= 0) {
        throw new UsageError(`option --${key} must not have an argument`);
      }
      set(`--${key}`, spec.name, value);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const ch = arg[j]!;
        const spec = SHORT[ch];
        if (!spec) throw new UsageError(`option -${ch} not recognized`);
        if (spec.arg) {
          let value: string;
          if (j + 1 < arg.length) value = arg.slice(j + 1);
          else if (i + 1 < argv.length) value = argv[++i]!;
          else throw new UsageError(`option -${ch} requires argument`);
          set(`-${ch}`, spec.name, value);
          break;
        }
        set(`-${ch}`, spec.name, null);
      }
      continue;
    }
    throw new UsageError('positional arguments are not supported');
  }
  return a;
}
