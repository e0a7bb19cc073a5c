/**
 * zeo-nagios: the Nagios plugin of operations §6.5 (ruok probe, level and rate metrics,
 * empty-storage warnings, exit statuses 0/1/2/3).
 */
import net from 'node:net';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { probeRuok } from '@zeo-ts/wire';
import { osErrorText, pyFloat, pyRepr, processIO, type ToolIO } from './common.ts';

const NO_TRANSACTION = '0'.repeat(16);
const LEVEL_NAMES = ['active_txns', 'connections', 'waiting'];
const RATE_NAMES = ['aborts', 'commits', 'conflicts', 'conflicts_resolved', 'loads', 'stores'];
export const TIME_UNITS: Record<string, number> = { seconds: 1, minutes: 60, hours: 3600, days: 86400 };

export type NagiosAddress = { host: string; port: number; family: 4 | 6 } | { path: string };

/** `[v6]:port`, `host:port`, or anything else as a Unix socket path (a bare `8100` is a path). */
export function parseNagiosAddress(s: string): NagiosAddress {
  let m = /^\[(\S+)\]:(\d+)$/.exec(s);
  if (m) return { host: m[1]!, port: Number(m[2]), family: 6 };
  m = /^(\S+):(\d+)$/.exec(s);
  if (m) return { host: m[1]!, port: Number(m[2]), family: 4 };
  return { path: s };
}

function label(storage: string, name: string): string {
  if (storage === '1') return name;
  return storage.includes(' ') ? `'${storage}:${name}'` : `${storage}:${name}`;
}

function fmtValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloat(v);
  return String(v);
}

function render(messages: string[], metrics: string[]): string {
  const lines = [...messages];
  if (metrics.length) lines[0] += '|' + metrics[0];
  if (metrics.length > 1) lines.push('| ' + metrics.slice(1).join('\n '));
  return lines.join('\n') + '\n';
}

function connect(a: NagiosAddress): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = 'path' in a ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port, family: a.family });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      s.destroy();
      reject(e);
    });
  });
}

/**
 * Probe `address` and print the plugin output; returns the exit status. Usable from other
 * monitors (operations §6.5 `check(address, metrics, statusPath, unit)`).
 */
export async function check(address: string, outputMetrics: boolean, statusPath: string | null, unit = 'minutes', io: ToolIO = processIO): Promise<number> {
  if (!(unit in TIME_UNITS)) {
    io.stdout(`UNKNOWN: invalid time unit ${pyRepr(unit)} (choose from 'seconds', 'minutes', 'hours', 'days')\n`);
    return 3;
  }
  let sock: net.Socket;
  try {
    sock = await connect(parseNagiosAddress(address));
  } catch (e) {
    io.stdout(render([`Can't connect ${osErrorText(e)}`], []));
    return 2;
  }
  let data: Record<string, Record<string, unknown>>;
  try {
    data = (await probeRuok(sock, { timeoutMs: 30000 })).status;
  } catch (e) {
    io.stdout(`UNKNOWN: bad status reply from ${address}: ${(e as Error).message}\n`);
    return 3;
  }
  const ids = Object.keys(data).sort();
  if (ids.length === 0) {
    io.stdout(render(['No storages'], []));
    return 1;
  }
  const metrics: string[] = [];
  const messages: string[] = [];
  let level = 0;
  if (outputMetrics) {
    for (const id of ids) for (const n of LEVEL_NAMES) metrics.push(`${label(id, n)}=${fmtValue(data[id]![n])}`);
    if (statusPath) {
      const now = Date.now() / 1000;
      if (existsSync(statusPath)) {
        let dt = now - statSync(statusPath).mtimeMs / 1000;
        if (dt > 0) {
          let old: Record<string, Record<string, number>> = {};
          try {
            old = JSON.parse(readFileSync(statusPath, 'utf8'));
          } catch (e) {
            io.stdout(`UNKNOWN: unreadable status file ${statusPath}: ${(e as Error).message}\n`);
            return 3;
          }
          dt /= TIME_UNITS[unit]!;
          for (const id of ids) {
            data[id]!['sameple-time'] = now; // sic, as upstream
            const prev = old[id];
            if (!prev) continue;
            for (const n of RATE_NAMES) metrics.push(`${label(id, n)}=${pyFloat((Number(data[id]![n]) - Number(prev[n])) / dt)}`);
          }
        }
      }
      writeFileSync(statusPath, JSON.stringify(data));
    }
  }
  for (const id of ids) {
    if (data[id]!['last-transaction'] === NO_TRANSACTION) {
      messages.push(`Empty storage ${pyRepr(id)}`);
      level = Math.max(level, 1);
    }
  }
  if (!messages.length) messages.push('OK');
  io.stdout(render(messages, metrics));
  return level;
}

export const NAGIOS_USAGE = `Usage: zeo-nagios [options] address

Where the address is an IPV6 address of the form: [addr]:port, an IPV4
address of the form: addr:port, or the name of a unix-domain socket file.

Options:
  -h, --help            show this help message and exit
  -m, --output-metrics  Output metrics.
  -s STATUS_PATH, --status-path=STATUS_PATH
                        Path to status file, needed to get rate metrics
  -u TIME_UNITS, --time-units=TIME_UNITS
                        Time unit for rate metrics
`;

/** The command line: returns the exit status (usage errors: one UNKNOWN line, status 3). */
export async function nagiosMain(argv: string[], io: ToolIO = processIO): Promise<number> {
  let metrics = false;
  let status: string | null = null;
  let unit = 'minutes';
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const takeValue = (name: string, inline: string | null): string | null => {
      if (inline !== null) return inline;
      if (i + 1 >= argv.length) return null;
      return argv[++i]!;
    };
    if (a === '-h' || a === '--help') {
      io.stdout(NAGIOS_USAGE);
      return 0;
    } else if (a === '-m' || a === '--output-metrics') metrics = true;
    else if (a.startsWith('-s') || a.startsWith('--status-path')) {
      const inline = a.startsWith('--status-path=') ? a.slice(14) : a.startsWith('-s') && a.length > 2 ? a.slice(2) : null;
      const v = takeValue('-s', inline);
      if (v === null) return usage(io, `${a} option requires an argument`);
      status = v;
    } else if (a.startsWith('-u') || a.startsWith('--time-units')) {
      const inline = a.startsWith('--time-units=') ? a.slice(13) : a.startsWith('-u') && a.length > 2 ? a.slice(2) : null;
      const v = takeValue('-u', inline);
      if (v === null) return usage(io, `${a} option requires an argument`);
      if (!(v in TIME_UNITS)) return usage(io, `option -u: invalid choice: ${pyRepr(v)} (choose from 'seconds', 'minutes', 'hours', 'days')`);
      unit = v;
    } else if (a.startsWith('-') && a !== '-') return usage(io, `no such option: ${a}`);
    else args.push(a);
  }
  if (args.length !== 1) return usage(io, args.length ? `expected one address, got ${args.length}` : 'missing address');
  return check(args[0]!, metrics, status, unit, io);
}

function usage(io: ToolIO, msg: string): number {
  io.stdout(`UNKNOWN: ${msg}\n`);
  return 3;
}
