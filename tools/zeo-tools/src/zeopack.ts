/**
 * zeopack: pack storages through their ZEO servers (operations §7.1).
 */
import { hostname } from 'node:os';
import pino from 'pino';
import { ClientStorage, type AddressLike } from '@zeo-ts/client';
import { pyRepr, processIO, type ToolIO } from './common.ts';

export const ZEOPACK_USAGE = `Usage: zeopack [options] [servers]

Pack one or more storages hosted by ZEO servers.

The positional arguments specify 0 or more tcp servers to pack, where
each is of the form:

    host:port[:name]
`;

export const ZEOPACK_HELP = `${ZEOPACK_USAGE}

Options:
  -d DAYS, --days=DAYS  Pack objects that are older than this number of days
  -t TIME, --time=TIME  Time of day to pack to of the form: HH[:MM[:SS]].
                        Defaults to current time.
  -u UNIX_SOCKETS, --unix=UNIX_SOCKETS
                        A unix-domain-socket server to connect to, of the
                        form: path[:name]
  -h HOST               Deprecated: Used with the -p and -S options, specified
                        the host to connect to.
  -p PORT               Deprecated: Used with the -h and -S options, specifies
                        the port to connect to.
  -S NAME               Deprecated: Used with the -h and -p, options, or with
                        the -U option specified the storage name to use.
                        Defaults to 1.
  -U UNIX               Deprecated: Used with the -S option, Unix-domain
                        socket to connect to.
  --connect-timeout=SECONDS
                        zeo-ts addition: seconds to wait for each server
                        (default 60)
`;

class OptionError extends Error {}
class ToolError extends Error {}

type Target = { addr: AddressLike; repr: string; name: string };

function addrRepr(a: AddressLike): string {
  if (typeof a === 'string') return pyRepr(a);
  if (typeof a === 'number') return `('127.0.0.1', ${a})`;
  return 'path' in a ? pyRepr(a.path) : `(${pyRepr(a.host)}, ${a.port})`;
}

function pyInt(s: string): number | null {
  return /^\s*[+-]?\d+\s*$/.test(s) ? Number(s) : null;
}

interface Parsed {
  days: number;
  time: string | null;
  unix: string[];
  host: string | null;
  port: number | null;
  name: string;
  legacyUnix: string | null;
  connectTimeout: number;
  args: string[];
}

function parse(argv: string[]): Parsed {
  const p: Parsed = { days: 0, time: null, unix: [], host: null, port: null, name: '1', legacyUnix: null, connectTimeout: 60, args: [] };
  const takesValue: Record<string, string> = { '-d': 'days', '--days': 'days', '-t': 'time', '--time': 'time', '-u': 'unix', '--unix': 'unix', '-h': 'host', '-p': 'port', '-S': 'name', '-U': 'legacyUnix', '--connect-timeout': 'connectTimeout' };
  const longs = ['--days', '--time', '--unix', '--connect-timeout'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let opt: string;
    let value: string | null = null;
    if (a === '--') {
      p.args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(0, eq) : a;
      const matches = longs.filter((l) => l.startsWith(name));
      const full = longs.includes(name) ? name : matches.length === 1 ? matches[0]! : null;
      if (!full) throw new OptionError(matches.length > 1 ? `ambiguous option: ${name} (${matches.join(', ')}?)` : `no such option: ${name}`);
      opt = full;
      if (eq >= 0) value = a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length > 1) {
      opt = a.slice(0, 2);
      if (!(opt in takesValue)) throw new OptionError(`no such option: ${opt}`);
      if (a.length > 2) value = a.slice(2);
    } else {
      p.args.push(a);
      continue;
    }
    if (value === null) {
      if (i + 1 >= argv.length) throw new OptionError(`${opt} option requires 1 argument`);
      value = argv[++i]!;
    }
    const key = takesValue[opt]!;
    if (key === 'days' || key === 'port') {
      const n = pyInt(value);
      if (n === null) throw new OptionError(`option ${opt}: invalid integer value: ${pyRepr(value)}`);
      if (key === 'days') p.days = n;
      else p.port = n;
    } else if (key === 'connectTimeout') {
      const n = Number(value);
      if (!(n > 0)) throw new OptionError(`option ${opt}: invalid number of seconds: ${pyRepr(value)}`);
      p.connectTimeout = n;
    } else if (key === 'unix') p.unix.push(value);
    else if (key === 'time') p.time = value;
    else if (key === 'host') p.host = value;
    else if (key === 'name') p.name = value;
    else if (key === 'legacyUnix') p.legacyUnix = value;
  }
  return p;
}

/** The pack time: now, or today's local date at HH[:MM[:SS]], minus days. */
export function packTime(time: string | null, days: number, now: Date = new Date()): number {
  let t = now.getTime() / 1000;
  if (time) {
    const parts = time.split(':').map(pyInt);
    if (parts.length > 3 || parts.some((x) => x === null)) throw new ToolError(`Invalid time value: ${pyRepr(time)}`);
    const [h, m = 0, s = 0] = parts as number[];
    t = new Date(now.getFullYear(), now.getMonth(), now.getDate(), h, m, s).getTime() / 1000;
  }
  return t - days * 86400;
}

function targets(p: Parsed): Target[] {
  const out: Target[] = [];
  if (p.host) {
    if (!p.port) throw new ToolError('If host (-h) is specified then a port (-p) must be specified as well.');
    out.push({ addr: { host: p.host, port: p.port }, repr: addrRepr({ host: p.host, port: p.port }), name: p.name });
  } else if (p.port) {
    const a = { host: hostname(), port: p.port };
    out.push({ addr: a, repr: addrRepr(a), name: p.name });
  }
  if (p.legacyUnix) out.push({ addr: { path: p.legacyUnix }, repr: addrRepr(p.legacyUnix), name: p.name });
  for (const s of p.args) {
    const d = s.split(':');
    if (d.length !== 2 && d.length !== 3) throw new ToolError(`Invalid server specification: ${pyRepr(s)}`);
    const port = pyInt(d[1]!);
    if (port === null) throw new ToolError(`Invalid port in server specification: ${pyRepr(s)}`);
    const a = { host: d[0]!, port };
    out.push({ addr: a, repr: addrRepr(a), name: d.length === 3 ? d[2]! : '1' });
  }
  for (const s of p.unix) {
    const d = s.split(':');
    if (d.length > 2) throw new ToolError(`Invalid server specification: ${pyRepr(s)}`);
    out.push({ addr: { path: d[0]! }, repr: addrRepr(d[0]!), name: d[1] ?? '1' });
  }
  return out;
}

const LEVELS: Record<number, string> = { 40: 'WARNING', 50: 'ERROR', 60: 'CRITICAL' };

export async function zeopackMain(argv: string[], io: ToolIO = processIO): Promise<number> {
  if (argv.length === 0) {
    io.stdout(ZEOPACK_HELP);
    return 0;
  }
  const error = (msg: string) => {
    io.stderr(`Error:\n${msg}\n`);
    return 1;
  };
  let p: Parsed;
  try {
    p = parse(argv);
  } catch (e) {
    io.stderr(`${ZEOPACK_USAGE}\nzeopack: error: ${(e as Error).message}\n`);
    return 2;
  }
  let t: number;
  let list: Target[];
  try {
    t = packTime(p.time, p.days);
    list = targets(p);
  } catch (e) {
    return error((e as Error).message);
  }
  if (!list.length) return error('No servers specified.');
  // library records at WARNING and above go to stdout as "<logger> <LEVEL> <message>"
  const logger = pino({ level: 'warn' }, {
    write(line: string) {
      try {
        const r = JSON.parse(line) as { level: number; name?: string; msg?: string };
        io.stdout(`${r.name ?? 'ZEO.ClientStorage'} ${LEVELS[r.level] ?? 'WARNING'} ${r.msg ?? ''}\n`);
      } catch {
        io.stdout(line);
      }
    },
  });
  let found = false;
  for (const target of list) {
    let cs: ClientStorage | null = null;
    try {
      cs = await ClientStorage.open({ addresses: target.addr, storage: target.name, readOnly: true, wait: false, logger });
      try {
        await cs.waitConnected(p.connectTimeout);
      } catch {
        io.stderr(`Couldn't connect to: (${target.repr}, ${pyRepr(target.name)})\n`);
        await cs.close();
        continue;
      }
      found = true;
      await cs.pack(t, true);
      await cs.close();
    } catch (e) {
      await cs?.close().catch(() => undefined);
      io.stderr(`${(e as Error).stack ?? String(e)}\n`);
      return error(`Error packing storage ${target.name} in ${target.repr}`);
    }
  }
  if (!found) return error('Cannot connect to any of the configured ZEO servers.');
  return 0;
}
