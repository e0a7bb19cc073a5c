/**
 * zrs-nagios (zrs spec §9.1): compare the last transaction times of every storage on a primary
 * and a secondary ZEO server (queried with ZEO's `ruok`), print a Nagios line and exit 0/1/2.
 */
import net from 'node:net';
import { TimeStamp, fromHex } from '@zeo-ts/storage';
import { SizedMessageDecoder, encodeSized } from './framing.ts';

export const NAGIOS_USAGE = 'Usage: zrs-nagios [options] PRIMARY_ADDRESS SECONDARY_ADDRESS\n    \n';

export interface NagiosOptions {
  metrics: boolean;
  warning: number;
  error: number;
}

/** Python's repr of a str (single quotes unless the text has one and no double quote). */
function pyStrRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch < ' ' || ch === '\x7f') out += '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
}

/** Python's repr of a float. */
export function pyFloat(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return x.toFixed(1);
  const s = String(x);
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

/** "%.4f" with round-half-even on the exact binary value (close enough to C's printf for lags). */
function f4(x: number): string {
  return x.toFixed(4);
}

/** The check itself (pure): storage name → last transaction time on each side. */
export function evaluate(primary: Map<string, number>, secondary: Map<string, number>, o: NagiosOptions): { output: string; code: number } {
  if (primary.size === 0 && secondary.size === 0) return { output: 'No storages', code: 1 };
  const output: string[] = [];
  const metrics: string[] = [];
  let level = 0;
  const sortStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  for (const sid of [...primary.keys()].sort(sortStr)) {
    const ts = primary.get(sid)!;
    const shown = sid === '1' ? '' : ` (${pyStrRepr(sid)})`;
    const sts = secondary.get(sid);
    if (sts === undefined) {
      output.push(`Storage ${pyStrRepr(sid)} in primary, but not secondary`);
      level = 2;
      continue;
    }
    const delta = ts - sts;
    if (o.metrics) metrics.push(`'lag${sid === '1' ? '' : sid}'=${f4(delta)}seconds`);
    if (delta < 0) {
      output.push(`Primary${shown} behind secondary by ${pyFloat(delta)} seconds`);
      level = 2;
    } else if (delta > 0) {
      output.push(`Secondary${shown} behind primary by ${f4(delta)} seconds`);
      if (o.error && delta > o.error) {
        output[output.length - 1] += ` > ${o.error}`;
        level = 2;
      } else if (o.warning && delta > o.warning) {
        output[output.length - 1] += ` > ${o.warning}`;
        level = Math.max(level, 1);
      }
    } else {
      output.push(`Secondary${shown} up to date.`);
    }
  }
  for (const sid of [...secondary.keys()].sort(sortStr)) {
    if (!primary.has(sid)) {
      output.push(`Storage ${pyStrRepr(sid)} in secondary, but not primary`);
      level = 2;
    }
  }
  if (metrics.length) output[0] += '|' + metrics.shift();
  if (metrics.length) {
    if (output.length === 1) output.push('');
    output[output.length - 1] += '| ' + metrics.join('\n ');
  }
  return { output: output.join('\n'), code: level };
}

const ERRNO: Record<string, [number, string]> = {
  ECONNREFUSED: [111, 'Connection refused'],
  ENOENT: [2, 'No such file or directory'],
  ETIMEDOUT: [110, 'Connection timed out'],
  EHOSTUNREACH: [113, 'No route to host'],
  ENETUNREACH: [101, 'Network is unreachable'],
  ECONNRESET: [104, 'Connection reset by peer'],
  EACCES: [13, 'Permission denied'],
  ENOTSOCK: [88, 'Socket operation on non-socket'],
};

export class NagiosConnectError extends Error {}

function pyErr(e: NodeJS.ErrnoException): string {
  const m = e.code ? ERRNO[e.code] : undefined;
  if (m) return `[Errno ${m[0]}] ${m[1]}`;
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return '[Errno -2] Name or service not known';
  return e.message;
}

function connectOptions(addr: string): net.NetConnectOpts {
  let m = /^\[(\S+)\]:(\d+)$/.exec(addr);
  if (m) return { host: m[1]!, port: Number(m[2]), family: 6 };
  m = /^(\S+):(\d+)$/.exec(addr);
  if (m) return { host: m[1]!, port: Number(m[2]), family: 4 };
  return { path: addr };
}

/** ZEO `ruok`: storage name → last transaction time. Throws NagiosConnectError with the §9.1 text. */
export function ruokTimes(addr: string, role: 'primary' | 'secondary', timeoutMs = 30000): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(connectOptions(addr));
    const dec = new SizedMessageDecoder(64 << 20);
    const msgs: Buffer[] = [];
    let connected = false;
    s.setTimeout(timeoutMs, () => s.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    s.on('connect', () => {
      connected = true;
      s.write(encodeSized(Buffer.from('ruok')));
    });
    s.on('data', (d) => {
      msgs.push(...dec.push(d));
      if (msgs.length >= 2) {
        s.destroy();
        try {
          const doc = JSON.parse(msgs[1]!.toString('ascii')) as Record<string, { 'last-transaction': string }>;
          resolve(new Map(Object.entries(doc).map(([k, v]) => [k, new TimeStamp(fromHex(v['last-transaction'])).timeTime()])));
        } catch (e) {
          reject(e);
        }
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) reject(new NagiosConnectError(`Can't connect to ${role} at ${pyStrRepr(addr)}: ${pyErr(e)}`));
      else reject(e);
    });
    s.on('close', () => reject(new Error(`${role} at ${pyStrRepr(addr)} closed the connection before answering ruok`)));
  });
}

/** Parse optparse-style arguments; null = print usage, exit 2. */
export function parseNagiosArgs(argv: string[]): { o: NagiosOptions; primary: string; secondary: string } | null {
  const o: NagiosOptions = { metrics: false, warning: 0, error: 0 };
  const pos: string[] = [];
  const int = (v: string | undefined) => {
    if (v === undefined || !/^[+-]?\d+$/.test(v)) throw new Error(`option requires an integer value: ${v}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-m' || a === '--output-metrics') o.metrics = true;
    else if (a === '-w' || a === '--warning') o.warning = int(argv[++i]);
    else if (a.startsWith('--warning=')) o.warning = int(a.slice(10));
    else if (a.startsWith('-w')) o.warning = int(a.slice(2));
    else if (a === '-e' || a === '--error') o.error = int(argv[++i]);
    else if (a.startsWith('--error=')) o.error = int(a.slice(8));
    else if (a.startsWith('-e')) o.error = int(a.slice(2));
    else if (a.startsWith('-m') && a.length > 2) {
      o.metrics = true;
      argv.splice(i + 1, 0, '-' + a.slice(2));
    } else pos.push(a);
  }
  if (pos.length !== 2 || !(o.metrics || o.warning || o.error)) return null;
  return { o, primary: pos[0]!, secondary: pos[1]! };
}

/** The whole program: returns the exit code; writes to `out`. */
export async function nagiosMain(argv: string[], out: (s: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseNagiosArgs([...argv]);
  } catch (e) {
    out(`zrs-nagios: error: ${(e as Error).message}\n`);
    return 2;
  }
  if (!parsed) {
    out(NAGIOS_USAGE);
    return 2;
  }
  let sec: Map<string, number>;
  let pri: Map<string, number>;
  try {
    sec = await ruokTimes(parsed.secondary, 'secondary');
    pri = await ruokTimes(parsed.primary, 'primary');
  } catch (e) {
    out(`${(e as Error).message}\n`);
    return 2;
  }
  const r = evaluate(pri, sec, parsed.o);
  out(r.output + '\n');
  return r.code;
}
