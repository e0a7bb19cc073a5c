/**
 * Text helpers matching Python's codecs as pickle uses them: UTF-8 with 'surrogatepass'
 * (BINUNICODE), raw-unicode-escape (UNICODE), and bytes-literal escapes (STRING).
 */

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decode UTF-8 as Python's 'utf-8'/'surrogatepass'. Returns undefined when the bytes are invalid. */
export function decodeUtf8(b: Uint8Array, start: number, end: number): string | undefined {
  // Fast path: pure ASCII.
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    if (end - start < 64) {
      let s = '';
      for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
      return s;
    }
    return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');
  }
  try {
    return fatalUtf8.decode(b.subarray(start, end));
  } catch {
    return decodeUtf8SurrogatePass(b, start, end);
  }
}

function decodeUtf8SurrogatePass(b: Uint8Array, start: number, end: number): string | undefined {
  const units: number[] = [];
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      units.push(c);
      i++;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (i + 1 >= end || (b[i + 1]! & 0xc0) !== 0x80) return undefined;
      units.push(((c & 0x1f) << 6) | (b[i + 1]! & 0x3f));
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (i + 2 >= end || (b[i + 1]! & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80) return undefined;
      const cp = ((c & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
      if (cp < 0x800) return undefined;
      units.push(cp); // surrogates allowed ('surrogatepass')
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (i + 3 >= end || (b[i + 1]! & 0xc0) !== 0x80 || (b[i + 2]! & 0xc0) !== 0x80 || (b[i + 3]! & 0xc0) !== 0x80) {
        return undefined;
      }
      const cp = ((c & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
      if (cp < 0x10000 || cp > 0x10ffff) return undefined;
      const v = cp - 0x10000;
      units.push(0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
      i += 4;
    } else {
      return undefined;
    }
  }
  let s = '';
  for (let k = 0; k < units.length; k += 4096) s += String.fromCharCode(...units.slice(k, k + 4096));
  return s;
}

const LONE_SURROGATE = /\p{Cs}/u;

/** Encode a string as Python's 'utf-8'/'surrogatepass' (lone surrogates as 3-byte sequences). */
export function encodeUtf8(s: string): Buffer {
  if (!LONE_SURROGATE.test(s)) return Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Buffer.from(out);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Python's raw-unicode-escape decoding. Returns undefined on a malformed escape. */
export function decodeRawUnicodeEscape(b: Uint8Array, start: number, end: number): string | undefined {
  let s = '';
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c !== 0x5c) {
      s += String.fromCharCode(c);
      i++;
      continue;
    }
    // A run of backslashes: only an odd-length run escapes a following u/U.
    let j = i;
    while (j < end && b[j] === 0x5c) j++;
    const run = j - i;
    const next = j < end ? b[j]! : -1;
    if (run % 2 === 1 && (next === 0x75 || next === 0x55)) {
      s += '\\'.repeat(run - 1);
      const n = next === 0x75 ? 4 : 8;
      if (j + 1 + n > end) return undefined;
      let cp = 0;
      for (let k = j + 1; k < j + 1 + n; k++) {
        if (!isHex(b[k]!)) return undefined;
        cp = cp * 16 + parseInt(String.fromCharCode(b[k]!), 16);
      }
      if (cp > 0x10ffff) return undefined;
      s += String.fromCodePoint(cp);
      i = j + 1 + n;
    } else {
      s += '\\'.repeat(run);
      i = j;
    }
  }
  return s;
}

/** Python 3 pickle's protocol-0 UNICODE encoding: raw-unicode-escape with \ \0 \n \r \x1a escaped. */
export function encodeRawUnicodeEscape(s: string): Buffer {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x5c || cp === 0 || cp === 0x0a || cp === 0x0d || cp === 0x1a) {
      out += '\\u' + cp.toString(16).padStart(4, '0');
    } else if (cp < 0x100) {
      out += ch;
    } else if (cp < 0x10000) {
      out += '\\u' + cp.toString(16).padStart(4, '0');
    } else {
      out += '\\U' + cp.toString(16).padStart(8, '0');
    }
  }
  return Buffer.from(out, 'latin1');
}

/**
 * Python's codecs.escape_decode (bytes-literal escapes), as the STRING opcode uses.
 * Returns undefined on an invalid \x escape.
 */
export function escapeDecode(b: Uint8Array, start: number, end: number): Buffer | undefined {
  const out = Buffer.allocUnsafe(end - start);
  let n = 0;
  let i = start;
  while (i < end) {
    const c = b[i++]!;
    if (c !== 0x5c) {
      out[n++] = c;
      continue;
    }
    if (i >= end) return undefined; // trailing backslash: Python raises "Trailing \ in string"
    const e = b[i++]!;
    switch (e) {
      case 0x0a: // backslash-newline: dropped
        break;
      case 0x5c:
      case 0x27:
      case 0x22:
        out[n++] = e;
        break;
      case 0x61: out[n++] = 0x07; break; // \a
      case 0x62: out[n++] = 0x08; break; // \b
      case 0x66: out[n++] = 0x0c; break; // \f
      case 0x6e: out[n++] = 0x0a; break; // \n
      case 0x72: out[n++] = 0x0d; break; // \r
      case 0x74: out[n++] = 0x09; break; // \t
      case 0x76: out[n++] = 0x0b; break; // \v
      case 0x78: {
        // \xhh: exactly two hex digits
        if (i + 2 > end || !isHex(b[i]!) || !isHex(b[i + 1]!)) return undefined;
        out[n++] = parseInt(String.fromCharCode(b[i]!, b[i + 1]!), 16);
        i += 2;
        break;
      }
      default:
        if (e >= 0x30 && e <= 0x37) {
          let v = e - 0x30;
          for (let k = 0; k < 2 && i < end && b[i]! >= 0x30 && b[i]! <= 0x37; k++) v = v * 8 + (b[i++]! - 0x30);
          out[n++] = v & 0xff;
        } else {
          out[n++] = 0x5c;
          out[n++] = e;
        }
    }
  }
  return Buffer.from(out.subarray(0, n));
}
