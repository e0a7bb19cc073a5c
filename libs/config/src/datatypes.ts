/**
 * Value datatypes (operations spec §2.10, §3.5.3). Each conversion takes the (substituted) text
 * and returns the typed value, or throws ValueConversionError whose message is the spec's
 * reason text (the matcher appends ` (line N, in URL)`).
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pyRepr, ValueConversionError } from './errors.ts';
import { expandUser, isDirectory, pathExists } from './source.ts';

export interface DatatypeContext {
  /** Directory that relative paths are checked against (default: process.cwd()). */
  cwd?: string;
}

export type Datatype<T = unknown> = (value: string, ctx: DatatypeContext) => T;

function bad(msg: string): never {
  throw new ValueConversionError(msg);
}

// ---------------------------------------------------------------- numbers

const PY_INT_RX = /^[+-]?\d+(?:_\d+)*$/;

/** Python int(text): surrounding whitespace, optional sign, digits (single `_` between digits). */
export function pyInt(text: string, base10Label = text): number {
  const t = text.trim();
  if (!PY_INT_RX.test(t)) bad(`invalid literal for int() with base 10: ${pyRepr(base10Label)}`);
  const v = Number(t.replace(/_/g, ''));
  if (!Number.isSafeInteger(v)) bad(`integer out of range: ${pyRepr(base10Label)}`);
  return v;
}

export const integer: Datatype<number> = (v) => pyInt(v);

const PY_FLOAT_RX = /^[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d+(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|\d+(?:_\d+)*\.(?:[eE][+-]?\d+(?:_\d+)*)?)$/;

/** Python float(text), including inf/infinity/nan. */
export const float: Datatype<number> = (v) => {
  const t = v.trim();
  const l = t.toLowerCase().replace(/^[+-]/, '');
  const neg = t.startsWith('-');
  if (l === 'inf' || l === 'infinity') return neg ? -Infinity : Infinity;
  if (l === 'nan') return NaN;
  if (!PY_FLOAT_RX.test(t)) bad(`could not convert string to float: ${pyRepr(v)}`);
  return Number(t.replace(/_/g, ''));
};

function rangeChecked(conv: Datatype<number>, min: number | null, max: number | null): Datatype<number> {
  return (v, ctx) => {
    const n = conv(v, ctx);
    if (min !== null && n < min) bad(`${n} is below lower bound (${min})`);
    if (max !== null && n > max) bad(`${n} is above upper bound (${max})`);
    return n;
  };
}

export const portNumber: Datatype<number> = rangeChecked(integer, 0, 0xffff);

function suffixMultiplier(table: Record<string, number>): Datatype<number> {
  const sizes = new Set(Object.keys(table).map((k) => k.length));
  if (sizes.size !== 1) throw new Error('suffix length mismatch');
  const n = [...sizes][0]!;
  return (value) => {
    const v = value.toLowerCase();
    for (const [suffix, mult] of Object.entries(table)) {
      if (v.length >= n && v.slice(-n) === suffix) {
        const rest = v.slice(0, -n);
        return pyInt(rest) * mult;
      }
    }
    return pyInt(v);
  };
}

/** byte-size: integer with an optional KB/MB/GB suffix (any case). §2.10.1 */
export const byteSize: Datatype<number> = suffixMultiplier({ kb: 1024, mb: 1024 * 1024, gb: 1024 * 1024 * 1024 });

/** time-interval: integer seconds with an optional s/m/h/d suffix. §2.10.2 */
export const timeInterval: Datatype<number> = suffixMultiplier({ s: 1, m: 60, h: 3600, d: 86400 });

// ---------------------------------------------------------------- text

export const boolean: Datatype<boolean> = (v) => {
  const s = v.toLowerCase();
  if (s === 'yes' || s === 'true' || s === 'on') return true;
  if (s === 'no' || s === 'false' || s === 'off') return false;
  return bad(`not a valid boolean value: ${pyRepr(v)}`);
};

export const string: Datatype<string> = (v) => v;

export const stringList: Datatype<string[]> = (v) => v.split(/\s+/).filter((s) => s !== '');

function regexConversion(rx: RegExp, reason: string, lower = false): Datatype<string> {
  const whole = new RegExp(`^(?:${rx.source})$`);
  return (v) => {
    if (!whole.test(v)) bad(`${reason}: ${pyRepr(v)}`);
    return lower ? v.toLowerCase() : v;
  };
}

const IDENT = '[_a-zA-Z][_a-zA-Z0-9]*';
export const basicKey: Datatype<string> = regexConversion(/[a-zA-Z][-._a-zA-Z0-9]*/, 'value did not match regular expression', true);
export const identifier: Datatype<string> = regexConversion(new RegExp(IDENT), 'not a valid Python identifier');
export const dottedName: Datatype<string> = regexConversion(new RegExp(`${IDENT}(?:\\.${IDENT})*`), 'not a valid dotted name');
export const dottedSuffix: Datatype<string> = regexConversion(
  new RegExp(`(?:${IDENT})(?:\\.${IDENT})*|(?:\\.${IDENT})+`),
  'not a valid dotted name or suffix',
);

// ---------------------------------------------------------------- socket addresses

export type SocketAddress =
  | { family: 'unix'; path: string }
  | { family: 'inet' | 'inet6'; host: string; port: number | null };

type AddressRole = 'binding' | 'connection' | 'plain';

function inetAddress(s: string, defaultHost: string, ctx: DatatypeContext): { host: string; port: number | null } {
  let host = '';
  let port: number | null = null;
  if (s.includes(':')) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i);
    let p: string | null = s.slice(i + 1);
    if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
    } else if (host.includes(':')) {
      // An unbracketed IPv6 literal: the last group is not a port.
      host = s;
      p = null;
    }
    if (p) port = portNumber(p, ctx);
    host = host.toLowerCase();
  } else {
    try {
      port = portNumber(s, ctx);
    } catch (e) {
      // [D] an all-digit value out of 0..65535 is a bad port, not a host name (spec §2.10.3).
      if (PY_INT_RX.test(s.trim())) throw e;
      if (s.split(/\s+/).filter((x) => x).length !== 1 || /\s/.test(s.trim())) bad(`not a valid host name: ${pyRepr(s)}`);
      host = s.toLowerCase();
    }
  }
  if (!host) host = defaultHost;
  return { host, port };
}

function socketAddress(role: AddressRole): Datatype<SocketAddress> {
  const defaultHost = role === 'connection' ? '127.0.0.1' : '';
  return (s, ctx) => {
    if (s.includes('/')) return { family: 'unix', path: s };
    const { host, port } = inetAddress(s, defaultHost, ctx);
    if (role === 'connection' && port === null) {
      // [D] upstream accepts this and then retries forever (spec §2.10.3).
      bad(`no port in server address: ${pyRepr(s)}`);
    }
    return { family: host.includes(':') ? 'inet6' : 'inet', host, port };
  };
}

/** `<zeo> address`, `monitor-address`: empty host means all interfaces. */
export const socketBindingAddress: Datatype<SocketAddress> = socketAddress('binding');
/** client `server`: empty host means 127.0.0.1; a port is required [D]. */
export const socketConnectionAddress: Datatype<SocketAddress> = socketAddress('connection');
/** `<syslog> address`. */
export const socketAddressType: Datatype<SocketAddress> = socketAddress('plain');

/** `inet-address` (host, port) without the Unix-socket form. */
export const inetAddressType: Datatype<{ host: string; port: number | null }> = (s, ctx) => inetAddress(s, '', ctx);

/** Python repr of an address as upstream logs it: `('127.0.0.1', 8100)` or `'/path/zeo.sock'`. */
export function formatAddress(a: SocketAddress, boundPort?: number): string {
  if (a.family === 'unix') return pyRepr(a.path);
  const port = boundPort ?? a.port;
  return `(${pyRepr(a.host)}, ${port === null ? 'None' : port})`;
}

// ---------------------------------------------------------------- paths

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  if (i < 0) return '';
  let head = p.slice(0, i + 1);
  if (!/^\/+$/.test(head)) head = head.replace(/\/+$/, '');
  return head;
}

function abs(p: string, ctx: DatatypeContext): string {
  return isAbsolute(p) ? p : resolvePath(ctx.cwd ?? process.cwd(), p);
}

/** existing-dirpath: the directory part of the path must exist (§2.10.4). Returns the expanded path. */
export const existingDirpath: Datatype<string> = (v, ctx) => {
  const nv = expandUser(v);
  const dir = dirname(nv);
  if (!dir) return nv;
  if (isDirectory(abs(dir, ctx))) return nv;
  return bad(`The directory named as part of the path ${v} does not exist.`);
};

export const existingDirectory: Datatype<string> = (v, ctx) => {
  const nv = expandUser(v);
  if (isDirectory(abs(nv, ctx))) return nv;
  return bad(`${v} is not an existing directory`);
};

export const existingPath: Datatype<string> = (v, ctx) => {
  const nv = expandUser(v);
  if (pathExists(abs(nv, ctx))) return nv;
  return bad(`${v} is not an existing path`);
};

export const existingFile: Datatype<string> = (v, ctx) => {
  const nv = expandUser(v);
  if (pathExists(abs(nv, ctx))) return nv;
  return bad(`${v} is not an existing file`);
};

// ---------------------------------------------------------------- logging (§3.5)

export const LOG_LEVELS: Readonly<Record<string, number>> = {
  critical: 50,
  fatal: 50,
  error: 40,
  warn: 30,
  warning: 30,
  info: 20,
  blather: 15,
  debug: 10,
  trace: 5,
  all: 1,
  notset: 0,
};

export const loggingLevel: Datatype<number> = (v) => {
  const s = v.toLowerCase();
  const named = LOG_LEVELS[s];
  if (named !== undefined) return named;
  const n = pyInt(s);
  if (n < 0 || n > 50) bad(`log level not in range: ${n}`);
  return n;
};

/** Python logging's level names as rendered in records (`Level <n>` for others). */
export function levelName(n: number): string {
  switch (n) {
    case 50:
      return 'CRITICAL';
    case 40:
      return 'ERROR';
    case 30:
      return 'WARNING';
    case 20:
      return 'INFO';
    case 15:
      return 'BLATHER';
    case 10:
      return 'DEBUG';
    case 5:
      return 'TRACE';
    case 0:
      return 'NOTSET';
    default:
      return `Level ${n}`;
  }
}

/** Log format strings: the two-character escapes \n \t \r \b \f become control characters. */
export const escapedString: Datatype<string> = (v) =>
  v.replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\b/g, '\b').replace(/\\f/g, '\f').replace(/\\r/g, '\r');

export const LOG_FORMAT_STYLES = ['classic', 'format', 'safe-template', 'template'] as const;
export type LogFormatStyle = (typeof LOG_FORMAT_STYLES)[number];

export const logFormatStyle: Datatype<LogFormatStyle> = (v) => {
  const l = v.toLowerCase();
  if ((LOG_FORMAT_STYLES as readonly string[]).includes(l)) return l as LogFormatStyle;
  return bad(`log_format_style must be one of ${LOG_FORMAT_STYLES.map((s) => `'${s}'`).join(', ')}; found ${pyRepr(v)}`);
};

export const SYSLOG_FACILITIES = [
  'auth', 'authpriv', 'cron', 'daemon', 'kern', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6',
  'local7', 'lpr', 'mail', 'news', 'security', 'syslog', 'user', 'uucp',
] as const;

export const syslogFacility: Datatype<string> = (v) => {
  const l = v.toLowerCase();
  if ((SYSLOG_FACILITIES as readonly string[]).includes(l)) return l;
  return bad(`Syslog facility must be one of ${SYSLOG_FACILITIES.join(', ')}`);
};

// ---------------------------------------------------------------- zdaemon (§8.3)

/** Comma-separated integers (`0, 2`); empty means an empty list. */
export const listOfInts: Datatype<number[]> = (v) => {
  if (v.trim() === '') return [];
  return v.split(',').map((p) => pyInt(p));
};

/** Base-8 integer (`022`). */
export const octal: Datatype<number> = (v) => {
  const t = v.trim();
  if (!/^[+-]?(?:0[oO])?[0-7]+(?:_[0-7]+)*$/.test(t)) bad(`invalid literal for int() with base 8: ${pyRepr(v)}`);
  const neg = t.startsWith('-');
  const digits = t.replace(/^[+-]/, '').replace(/^0[oO]/, '').replace(/_/g, '');
  const n = parseInt(digits, 8);
  return neg ? -n : n;
};

// ---------------------------------------------------------------- registry

const DATATYPES = new Map<string, Datatype>([
  ['boolean', boolean],
  ['integer', integer],
  ['float', float],
  ['string', string],
  ['null', string],
  ['string-list', stringList],
  ['byte-size', byteSize],
  ['time-interval', timeInterval],
  ['port-number', portNumber],
  ['basic-key', basicKey],
  ['identifier', identifier],
  ['dotted-name', dottedName],
  ['dotted-suffix', dottedSuffix],
  ['inet-address', inetAddressType],
  ['socket-address', socketAddressType],
  ['socket-binding-address', socketBindingAddress],
  ['socket-connection-address', socketConnectionAddress],
  ['existing-dirpath', existingDirpath],
  ['existing-directory', existingDirectory],
  ['existing-path', existingPath],
  ['existing-file', existingFile],
  ['logging-level', loggingLevel],
  ['escaped-string', escapedString],
  ['log-format-style', logFormatStyle],
  ['syslog-facility', syslogFacility],
  ['list-of-ints', listOfInts],
  ['octal', octal],
]);

/** Look up a datatype by name (throws for unknown names: a schema bug, not a configuration error). */
export function getDatatype(name: string): Datatype {
  const d = DATATYPES.get(name);
  if (!d) throw new Error(`unknown datatype name: ${pyRepr(name)}`);
  return d;
}

/** Add a named datatype for plugin schemas. Names must be new. */
export function registerDatatype(name: string, conv: Datatype): void {
  if (DATATYPES.has(name)) throw new Error(`datatype name already registered: ${pyRepr(name)}`);
  DATATYPES.set(name, conv);
}

/** Names of all known datatypes. */
export function datatypeNames(): string[] {
  return [...DATATYPES.keys()];
}
