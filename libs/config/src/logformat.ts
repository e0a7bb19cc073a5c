/**
 * Rendering log records with a `<logfile>`/`<syslog>` handler's `format`, `style` and
 * `dateformat` (operations spec §3.5.2), the way Python's logging.Formatter does, for servers
 * that write the classic text layout instead of (or besides) pino JSON. Pure.
 */
import { levelName } from './datatypes.ts';
import type { LogFormatStyle } from './datatypes.ts';
import { pyRepr } from './errors.ts';

/** The fields of a Python LogRecord that format strings may use. */
export interface LogRecordFields {
  name: string;
  levelno: number;
  message: string;
  /** Seconds since the epoch (float). */
  created: number;
  levelname?: string;
  pathname?: string;
  filename?: string;
  module?: string;
  lineno?: number;
  funcName?: string;
  msecs?: number;
  relativeCreated?: number;
  thread?: number;
  threadName?: string;
  process?: number;
  processName?: string;
  taskName?: string | null;
  /** Traceback text, appended on its own line(s) as logging.Formatter does. */
  exc_text?: string | null;
  /** Any other fields (used with arbitrary-fields). */
  [extra: string]: unknown;
}

export interface FormatSpec {
  format: string;
  dateformat: string;
  style: LogFormatStyle;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const pad = (n: number, w = 2, c = '0') => String(n).padStart(w, c);

/** time.strftime for the common directives, in local time (or UTC when `utc`). */
export function strftime(fmt: string, when: Date, utc = false): string {
  const Y = utc ? when.getUTCFullYear() : when.getFullYear();
  const mo = utc ? when.getUTCMonth() : when.getMonth();
  const d = utc ? when.getUTCDate() : when.getDate();
  const H = utc ? when.getUTCHours() : when.getHours();
  const Mi = utc ? when.getUTCMinutes() : when.getMinutes();
  const S = utc ? when.getUTCSeconds() : when.getSeconds();
  const wd = utc ? when.getUTCDay() : when.getDay();
  const start = utc ? Date.UTC(Y, 0, 1) : new Date(Y, 0, 1).getTime();
  const today = utc ? Date.UTC(Y, mo, d) : new Date(Y, mo, d).getTime();
  const yday = Math.round((today - start) / 86400000) + 1;
  const off = utc ? 0 : -when.getTimezoneOffset();
  let out = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== '%' || i + 1 >= fmt.length) {
      out += c;
      continue;
    }
    const k = fmt[++i]!;
    switch (k) {
      case 'Y': out += pad(Y, 4); break;
      case 'y': out += pad(Y % 100); break;
      case 'm': out += pad(mo + 1); break;
      case 'd': out += pad(d); break;
      case 'e': out += pad(d, 2, ' '); break;
      case 'H': out += pad(H); break;
      case 'I': out += pad(H % 12 === 0 ? 12 : H % 12); break;
      case 'M': out += pad(Mi); break;
      case 'S': out += pad(S); break;
      case 'p': out += H < 12 ? 'AM' : 'PM'; break;
      case 'j': out += pad(yday, 3); break;
      case 'a': out += DAYS[wd]!.slice(0, 3); break;
      case 'A': out += DAYS[wd]!; break;
      case 'b': case 'h': out += MONTHS[mo]!.slice(0, 3); break;
      case 'B': out += MONTHS[mo]!; break;
      case 'w': out += String(wd); break;
      case 'z': out += `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`; break;
      case 'Z': out += utc ? 'UTC' : (Intl.DateTimeFormat('en', { timeZoneName: 'short' }).formatToParts(when).find((p) => p.type === 'timeZoneName')?.value ?? ''); break;
      case 'F': out += `${pad(Y, 4)}-${pad(mo + 1)}-${pad(d)}`; break;
      case 'T': out += `${pad(H)}:${pad(Mi)}:${pad(S)}`; break;
      case 'D': out += `${pad(mo + 1)}/${pad(d)}/${pad(Y % 100)}`; break;
      case 'c': out += `${DAYS[wd]!.slice(0, 3)} ${MONTHS[mo]!.slice(0, 3)} ${pad(d, 2, ' ')} ${pad(H)}:${pad(Mi)}:${pad(S)} ${Y}`; break;
      case 'x': out += `${pad(mo + 1)}/${pad(d)}/${pad(Y % 100)}`; break;
      case 'X': out += `${pad(H)}:${pad(Mi)}:${pad(S)}`; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '%': out += '%'; break;
      default: out += '%' + k;
    }
  }
  return out;
}

function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  return String(v);
}

function pyReprValue(v: unknown): string {
  return typeof v === 'string' ? pyRepr(v) : pyStr(v);
}

/** One printf conversion: flags, width, precision and type as Python's % operator. */
function printf(value: unknown, flags: string, width: string, precision: string, conv: string): string {
  let s: string;
  const prec = precision === '' ? undefined : Number(precision);
  const num = typeof value === 'number' ? value : Number(value);
  const signed = (t: string, n: number) => (n >= 0 && flags.includes('+') ? '+' + t : n >= 0 && flags.includes(' ') ? ' ' + t : t);
  switch (conv) {
    case 's':
      s = pyStr(value);
      if (prec !== undefined) s = s.slice(0, prec);
      break;
    case 'r':
    case 'a':
      s = pyReprValue(value);
      if (prec !== undefined) s = s.slice(0, prec);
      break;
    case 'd':
    case 'i':
    case 'u':
      s = signed(String(Math.trunc(num)), num);
      break;
    case 'f':
    case 'F':
      s = signed(num.toFixed(prec ?? 6), num);
      break;
    case 'e':
    case 'E': {
      const t = num.toExponential(prec ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
      s = signed(conv === 'E' ? t.toUpperCase() : t, num);
      break;
    }
    case 'g':
    case 'G': {
      const p = prec === 0 ? 1 : (prec ?? 6);
      const exp = num === 0 ? 0 : Math.floor(Math.log10(Math.abs(num)));
      let t = exp < -4 || exp >= p ? num.toExponential(p - 1).replace(/e([+-])(\d)$/, 'e$10$2') : num.toPrecision(p);
      if (!flags.includes('#')) t = t.replace(/\.?0+(e|$)/, '$1');
      s = signed(conv === 'G' ? t.toUpperCase() : t, num);
      break;
    }
    case 'x':
    case 'X':
    case 'o': {
      const base = conv === 'o' ? 8 : 16;
      let t = Math.abs(Math.trunc(num)).toString(base);
      if (flags.includes('#')) t = (conv === 'o' ? '0o' : '0x') + t;
      if (conv === 'X') t = t.toUpperCase();
      s = signed(num < 0 ? '-' + t : t, num);
      break;
    }
    case 'c':
      s = typeof value === 'number' ? String.fromCodePoint(value) : pyStr(value);
      break;
    default:
      s = pyStr(value);
  }
  const w = width === '' ? 0 : Number(width);
  if (s.length < w) {
    if (flags.includes('-')) s = s.padEnd(w);
    else if (flags.includes('0') && 'diufFeEgGxXo'.includes(conv)) {
      const sign = /^[+\- ]/.test(s) ? s[0]! : '';
      s = sign + s.slice(sign.length).padStart(w - sign.length, '0');
    } else s = s.padStart(w);
  }
  return s;
}

/** Complete a record with the derived fields logging adds (levelname, msecs, asctime…). */
function completeRecord(rec: LogRecordFields, dateformat: string, startTime: number): Record<string, unknown> {
  const when = new Date(rec.created * 1000);
  return {
    levelname: levelName(rec.levelno),
    pathname: '',
    filename: '',
    module: '',
    lineno: 0,
    funcName: '',
    msecs: Math.floor((rec.created * 1000) % 1000),
    relativeCreated: (rec.created - startTime) * 1000,
    thread: 0,
    threadName: 'MainThread',
    process: process.pid,
    processName: 'MainProcess',
    taskName: null,
    ...rec,
    asctime: strftime(dateformat, when),
  };
}

/**
 * Render one record as `logging.Formatter(format, dateformat, style)` would (the exception
 * text, if any, follows on the next line). `startTime` is the process start (relativeCreated).
 */
export function formatLogRecord(spec: FormatSpec, rec: LogRecordFields, startTime = rec.created): string {
  const r = completeRecord(rec, spec.dateformat, startTime);
  let out: string;
  if (spec.style === 'classic') {
    out = spec.format.replace(/%(?:%|(?:\(([^)]*)\))?([#0\- +]*)(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa]))/g, (m, field: string | undefined, flags: string, width = '', precision = '', conv: string) => {
      if (m === '%%') return '%';
      return printf(field === undefined ? r : r[field], flags, width === '*' ? '' : width, precision === '*' ? '' : precision, conv);
    });
  } else if (spec.style === 'format') {
    out = spec.format.replace(/\{\{|\}\}|\{([^{}!:]*)(?:!([rsa]))?(?::([^{}]*))?\}/g, (m, field: string | undefined, conv: string | undefined, fmt: string | undefined) => {
      if (m === '{{') return '{';
      if (m === '}}') return '}';
      const v = r[field!];
      const base = conv === 'r' || conv === 'a' ? pyReprValue(v) : v;
      if (!fmt) return pyStr(base);
      const fm = /^(?:(.)?([<>^=]))?([+\- ])?(#)?(0)?(\d+)?(,|_)?(?:\.(\d+))?([bcdeEfFgGnosxX%])?$/.exec(fmt);
      if (!fm) return pyStr(base);
      const [, fill = ' ', align, sign = '', alt = '', zero = '', width = '', , precision = '', type = ''] = fm;
      let s = type && type !== 's' ? printf(base, sign + alt, '', precision, type === 'n' ? 'g' : type) : pyStr(base);
      if (!type || type === 's') if (precision) s = s.slice(0, Number(precision));
      const w = width ? Number(width) : 0;
      if (s.length < w) {
        const a = align ?? (typeof base === 'number' ? '>' : '<');
        const f = zero && !align ? '0' : fill;
        const n = w - s.length;
        s = a === '<' ? s + f.repeat(n) : a === '^' ? f.repeat(Math.floor(n / 2)) + s + f.repeat(n - Math.floor(n / 2)) : f.repeat(n) + s;
      }
      return s;
    });
  } else {
    out = spec.format.replace(/\$(?:(\$)|([_a-zA-Z][_a-zA-Z0-9]*)|\{([_a-zA-Z][_a-zA-Z0-9]*)\})/g, (m, dollar: string | undefined, a: string | undefined, b: string | undefined) => {
      if (dollar) return '$';
      const f = (a ?? b)!;
      if (!(f in r)) return spec.style === 'safe-template' ? m : '';
      return pyStr(r[f]);
    });
  }
  if (rec.exc_text) out += (out.endsWith('\n') ? '' : '\n') + rec.exc_text;
  return out;
}
