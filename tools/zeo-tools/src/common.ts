/** Shared bits of the operator tools: IO, getopt, Python-style reprs and OS error texts. */
import { constants } from 'node:os';

export interface ToolIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const processIO: ToolIO = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

export class GetoptError extends Error {
  override name = 'GetoptError';
}

/**
 * POSIX getopt as Python's getopt.getopt: `short` like 'p:h:U:S:1', `long` like ['nowrite', 'days=']
 * (exact or unique-prefix match). Stops at the first non-option argument.
 */
export function getopt(argv: string[], short: string, long: string[] = []): { opts: Array<[string, string]>; args: string[] } {
  const opts: Array<[string, string]> = [];
  let i = 0;
  // bounded: every round consumes at least one argument
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const exact = long.filter((l) => l.replace(/=$/, '') === name);
      const matches = exact.length ? exact : long.filter((l) => l.startsWith(name));
      if (matches.length === 0) throw new GetoptError(`option --${name} not recognized`);
      if (matches.length > 1) throw new GetoptError(`option --${name} not a unique prefix`);
      const m = matches[0]!;
      const full = m.replace(/=$/, '');
      if (m.endsWith('=')) {
        if (eq >= 0) opts.push([`--${full}`, a.slice(eq + 1)]);
        else {
          if (i + 1 >= argv.length) throw new GetoptError(`option --${full} requires argument`);
          opts.push([`--${full}`, argv[++i]!]);
        }
      } else {
        if (eq >= 0) throw new GetoptError(`option --${full} must not have an argument`);
        opts.push([`--${full}`, '']);
      }
      i++;
      continue;
    }
    if (a.startsWith('-') && a !== '-') {
      let j = 1;
      while (j < a.length) {
        const c = a[j]!;
        const k = short.indexOf(c);
        if (k < 0 || c === ':') throw new GetoptError(`option -${c} not recognized`);
        if (short[k + 1] === ':') {
          if (j + 1 < a.length) opts.push([`-${c}`, a.slice(j + 1)]);
          else {
            if (i + 1 >= argv.length) throw new GetoptError(`option -${c} requires argument`);
            opts.push([`-${c}`, argv[++i]!]);
          }
          j = a.length;
        } else {
          opts.push([`-${c}`, '']);
          j++;
        }
      }
      i++;
      continue;
    }
    break;
  }
  return { opts, args: argv.slice(i) };
}

/** Python repr of a str. */
export function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return q + out + q;
}

const STRERROR: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ENOENT: 'No such file or directory',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EACCES: 'Permission denied',
  ENOTSOCK: 'Socket operation on non-socket',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ECONNABORTED: 'Software caused connection abort',
  EPIPE: 'Broken pipe',
};

/** An OS error as Python prints an OSError: `[Errno 111] Connection refused`. */
export function osErrorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  if (code && code in constants.errno) {
    const n = (constants.errno as Record<string, number>)[code]!;
    return `[Errno ${n}] ${STRERROR[code] ?? err.message.replace(/^\S+ \S+ /, '')}`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return '[Errno -2] Name or service not known';
  return err?.message ?? String(e);
}

/** Python's repr of a float (shortest round trip; integral values get '.0'). */
export function pyFloat(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e16) return `${v}.0`;
  let s = String(v);
  const m = /^(-?[\d.]+)e([+-])(\d+)$/.exec(s);
  if (m) s = `${m[1]}e${m[2]}${m[3]!.padStart(2, '0')}`;
  return s;
}
