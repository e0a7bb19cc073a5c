/**
 * Python text formatting as the ZODB tools produce it (filestorage spec §11 "Output conventions",
 * §15 rounding quirks). Everything that must print exactly like CPython lives here.
 */
import { TimeStamp } from '@zeo-ts/storage';

const HEX = '0123456789abcdef';

function hex2(b: number): string {
  return '\\x' + HEX[b >> 4]! + HEX[b & 15]!;
}

/** repr() of a Python bytes value: b'...' with Python's quote choice and escapes. */
export function bytesRepr(b: Uint8Array): string {
  let hasSingle = false;
  let hasDouble = false;
  for (const c of b) {
    if (c === 0x27) hasSingle = true;
    else if (c === 0x22) hasDouble = true;
  }
  const quote = hasSingle && !hasDouble ? '"' : "'";
  let s = 'b' + quote;
  for (const c of b) {
    if (c === 0x5c) s += '\\\\';
    else if (c === 0x27 && quote === "'") s += "\\'";
    else if (c === 0x09) s += '\\t';
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c < 0x20 || c >= 0x7f) s += hex2(c);
    else s += String.fromCharCode(c);
  }
  return s + quote;
}

/** Is the code point printable in Python's sense (approximation: not a control or separator char)? */
function isPrintable(cp: number): boolean {
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp === 0xad) return false;
  if (cp === 0x2028 || cp === 0x2029 || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  return true;
}

/** repr() of a Python str value. */
export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += '\\' + ch;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (isPrintable(cp)) out += ch;
    else if (cp < 0x100) out += hex2(cp);
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + quote;
}

/** Python's "%r" % bytes-or-str: fstail/Dumper print absent fields as the str '' (spec §15 #17). */
export function reprBytesOrEmptyStr(b: Uint8Array): string {
  return b.length === 0 ? "''" : bytesRepr(b);
}

/** repr(float) in CPython 3 ("shortest round-trip", fixed for 1e-4 <= |x| < 1e16, else exponent). */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const e = Math.abs(x).toExponential(); // shortest round-trip digits: "d.ddde+N"
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(e);
  if (!m) throw new Error(`floatRepr: unexpected form ${e}`);
  const digits = m[1]! + (m[2] ?? '');
  const exp = Number(m[3]);
  const decpt = exp + 1; // position of the decimal point relative to the digit string
  if (decpt > -4 && decpt <= 16) {
    let body: string;
    if (decpt <= 0) body = '0.' + '0'.repeat(-decpt) + digits;
    else if (decpt >= digits.length) body = digits + '0'.repeat(decpt - digits.length) + '.0';
    else body = digits.slice(0, decpt) + '.' + digits.slice(decpt);
    return sign + body;
  }
  const mant = digits.length === 1 ? digits : digits[0] + '.' + digits.slice(1);
  const ee = Math.abs(exp).toString().padStart(2, '0');
  return `${sign}${mant}e${exp < 0 ? '-' : '+'}${ee}`;
}

/** str() of a Python number that may be an int or a float (isFloat says which Python type it is). */
export function numStr(x: number, isFloat: boolean): string {
  if (!isFloat) {
    if (!Number.isInteger(x)) throw new Error(`numStr: ${x} is not an int`);
    return String(x);
  }
  return floatRepr(x);
}

/** "%d" % x for a float x (Python truncates toward zero). */
export function pctD(x: number): string {
  return String(Math.trunc(x));
}

/** "%<w>s" (right-aligned) */
export function padLeft(s: string, w: number): string {
  return s.length >= w ? s : ' '.repeat(w - s.length) + s;
}

/** "%-<w>s" (left-aligned) */
export function padRight(s: string, w: number): string {
  return s.length >= w ? s : s + ' '.repeat(w - s.length);
}

/** "%-<w>.<w>s": left-aligned, padded and truncated to w characters. */
export function fixedLeft(s: string, w: number): string {
  return padRight([...s].slice(0, w).join(''), w);
}

/** Python hex(n): 0x + lower-case hex without padding. */
export function pyHex(n: bigint): string {
  return (n < 0n ? '-0x' + (-n).toString(16) : '0x' + n.toString(16));
}

/** "%016x" */
export function hex16(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/** ZODB.utils.oid_repr / tid_repr: 0x + hex padded to an even number of digits (0x00 for zero). */
export function oidRepr(n: bigint): string {
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  return '0x' + h;
}

/** str(TimeStamp(tid)) with C rounding of the seconds. */
export function tsText(tid: bigint): string {
  return new TimeStamp(tid).toString();
}

/** The text Python's `str(exc)` would show for our own errors (message only). */
export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * "%.<d>f" % x as C/Python print it: the exact binary value rounded half to even at `d`
 * decimals (JavaScript's toFixed rounds exact ties up).
 */
export function fixed(x: number, d: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  // exact value of ax = mant * 2^exp
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, ax);
  const bits = buf.getBigUint64(0);
  const e = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = e === 0 ? frac : frac | (1n << 52n);
  const exp = (e === 0 ? 1 : e) - 1075;
  let num = mant * 10n ** BigInt(d);
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  let q = num / den;
  const r = num % den;
  if (2n * r > den || (2n * r === den && q % 2n === 1n)) q += 1n;
  let s = q.toString().padStart(d + 1, '0');
  if (d > 0) s = s.slice(0, s.length - d) + '.' + s.slice(s.length - d);
  return (neg ? '-' : '') + s;
}
