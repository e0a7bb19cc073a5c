/**
 * Python's number and time formatting as the trace tools print it (client-cache spec §10.3,
 * §12.6): `%.Nf` / round() on the exact binary value with ties to even, `addcommas`, `ctime`.
 */

const view = new DataView(new ArrayBuffer(8));

/** Python's '%.<digits>f' % x: the exact value of the double, rounded half to even. */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const neg = x < 0 || Object.is(x, -0);
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e: number;
  if (expBits === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = expBits - 1075;
  }
  let num = mant * 10n ** BigInt(digits);
  let den = 1n;
  if (e >= 0) num <<= BigInt(e);
  else den <<= BigInt(-e);
  let q = num / den;
  const twice = (num % den) * 2n;
  if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
  let s = q.toString();
  if (digits > 0) {
    s = s.padStart(digits + 1, '0');
    s = `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  }
  return (neg ? '-' : '') + s;
}

/** str(round(x, 1)) for values printed as one-decimal floats (e.g. "13.8", "100.0"). */
export function pyRound1Str(x: number): string {
  return pyFixed(x, 1);
}

/** Python's '%d' % x for a float: truncation toward zero. */
export function pyInt(x: number): string {
  return String(Math.trunc(x));
}

/** cache_stats' addcommas: a comma every three digits from the right, keeping a leading '-'. */
export function addcommas(n: number | bigint): string {
  let s = String(n);
  let sign = '';
  if (s.startsWith('-')) {
    sign = '-';
    s = s.slice(1);
  }
  let i = s.length - 3;
  while (i > 0) {
    s = `${s.slice(0, i)},${s.slice(i)}`;
    i -= 3;
  }
  return sign + s;
}

/** '%Ns': right-align in `width` columns. */
export function rjust(s: string | number, width: number): string {
  return String(s).padStart(width, ' ');
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => String(n).padStart(2, '0');

/**
 * time.ctime(t) in the local time zone (the TZ environment variable is honoured):
 * "Www Mmm dd hh:mm:ss yyyy" with the day of month space-padded.
 */
export function ctime(t: number): string {
  const d = new Date(Math.floor(t) * 1000);
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/** Python's repr() of a bytes value. */
export function bytesRepr(b: Uint8Array): string {
  // Python picks double quotes when the value holds ' but no "
  const q = b.includes(0x27) && !b.includes(0x22) ? '"' : "'";
  let s = 'b' + q;
  for (const c of b) {
    if (c === 0x5c) s += '\\\\';
    else if (c === q.charCodeAt(0)) s += '\\' + q;
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + q;
}
