/**
 * Persistent-reference scanning of ZODB object records (filestorage spec §4.2-§4.4).
 *
 * A record is two pickles (class, state) sharing one memo. `referencesf` emulates zodbpickle's
 * `noload()` run twice: a small stack machine that keeps only what can matter for a persistent
 * id (bytes, text, tuples, lists, None) and never builds dicts, objects or numbers.
 */
import { decodeRawUnicodeEscape, decodeUtf8, escapeDecode } from './text.ts';
import { Unpickler } from './unpickler.ts';
import { adoptAsTuple, PickleError, PyGlobal, PyTuple } from './values.ts';

/*
 * Scan values. To keep the scan free of per-value allocations (and of closures: under tsx every
 * closure created at run time costs an esbuild `__name` call), a bytes or text value is a small
 * integer: the index of its [start, end) span of the record in the scanner's span table (no copy).
 * Everything else is an object or a symbol, so `typeof v === 'number'` means "a span".
 */
/** A str decoded from escapes (UNICODE). */
class Text {
  constructor(readonly str: string) {}
}
/** A tuple in the scan. */
class Tup {
  constructor(readonly items: unknown[]) {}
}
/** Placeholder for values that never matter (numbers, bools, instances' state...). */
const OTHER: unique symbol = Symbol('other');
/** Placeholder for a dict (noload builds real dicts: APPEND on one fails, it is unhashable). */
const DICT: unique symbol = Symbol('dict');
/** A mark on the scan stack. */
const MARK: unique symbol = Symbol('mark');
const EMPTY_TUP = new Tup([]);

const INT_RE = /^\s*[+-]?(\d[\d_]*|0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+)\s*$/;
const FLOAT_RE = /^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\s*$/i;
const MEMO_RE = /^\d{1,15}$/;

function isAscii(v: Uint8Array): boolean {
  for (let i = 0; i < v.length; i++) if (v[i]! >= 0x80) return false;
  return true;
}

/** Stack/memo caps for the scanner (the input size bounds them anyway). */
const MAX_STACK = 1_000_000;
const MAX_MEMO = 1_000_000;

class Scanner {
  private pos = 0;
  private stack: unknown[] = [];
  /** The memo: index → scan value (holes are absent keys; no scan value is undefined). */
  private readonly memo: unknown[] = [];
  private memoSize = 0;
  readonly ids: unknown[] = [];
  /** Span table: span k is d[spanS[k], spanE[k]), text when spanText[k] is 1. */
  readonly spanS: number[] = [];
  readonly spanE: number[] = [];
  readonly spanText: number[] = [];
  constructor(readonly d: Uint8Array) {}

  private fail(msg: string, at: number): never {
    throw new PickleError(`referencesf: ${msg}`, at);
  }

  private need(n: number, at: number): void {
    if (n > this.d.length - this.pos) this.fail(`truncated record: need ${n} bytes, ${this.d.length - this.pos} left`, at);
  }

  private u32(at: number): number {
    this.need(4, at);
    const d = this.d;
    const p = this.pos;
    this.pos += 4;
    return (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16)) + d[p + 3]! * 0x1000000;
  }

  /** Skip past the next newline; return the end of the line (it starts at the old position). */
  private lineEnd(at: number): number {
    const i = this.d.indexOf(0x0a, this.pos);
    if (i < 0) this.fail('truncated record: missing newline', at);
    this.pos = i + 1;
    return i;
  }

  private lineInt(at: number): number {
    const s = this.pos;
    const e = this.lineEnd(at);
    const t = Buffer.from(this.d.buffer, this.d.byteOffset + s, e - s).toString('latin1').trim();
    if (!MEMO_RE.test(t)) this.fail(`invalid memo index ${JSON.stringify(t.slice(0, 20))}`, at);
    return Number(t);
  }

  /** A new span [s, e); returns its scan value. */
  private addSpan(s: number, e: number, text: boolean): number {
    const k = this.spanS.length;
    this.spanS.push(s);
    this.spanE.push(e);
    this.spanText.push(text ? 1 : 0);
    return k;
  }

  /** A span of the next n bytes (consumed). */
  private span(n: number, at: number, text: boolean): number {
    this.need(n, at);
    const s = this.pos;
    this.pos += n;
    return this.addSpan(s, s + n, text);
  }

  /** The next n bytes as a Python 2 string as noload sees it (ASCII, or an error). */
  private asciiSpan(n: number, at: number): number {
    const k = this.span(n, at, false);
    if (!this.isAsciiSpan(this.pos - n, this.pos)) this.fail("'ascii' codec can't decode a Python 2 string byte", at);
    return k;
  }

  private skip(n: number, at: number): void {
    this.need(n, at);
    this.pos += n;
  }

  private isAsciiSpan(s: number, e: number): boolean {
    const d = this.d;
    for (let i = s; i < e; i++) if (d[i]! >= 0x80) return false;
    return true;
  }

  /** Index of the topmost MARK (the items above it are the marked items). */
  private markIndex(at: number): number {
    const k = this.stack.lastIndexOf(MARK);
    if (k < 0) this.fail('could not find MARK', at);
    return k;
  }

  /** Pop the topmost MARK and the items above it, returned as a new array. */
  private popMark(at: number): unknown[] {
    const stack = this.stack;
    const k = this.markIndex(at);
    const items = stack.slice(k + 1);
    this.truncate(k);
    return items;
  }

  /** Cut the stack back to length k (pops: cheaper than setting .length for a few items). */
  private truncate(k: number): void {
    const stack = this.stack;
    while (stack.length > k) stack.pop();
  }

  private pop(at: number): unknown {
    const stack = this.stack;
    const n = stack.length;
    if (n === 0 || stack[n - 1] === MARK) this.fail('stack underflow', at);
    return stack.pop();
  }

  private top(at: number): unknown {
    const stack = this.stack;
    const n = stack.length;
    if (n === 0 || stack[n - 1] === MARK) this.fail('stack underflow', at);
    return stack[n - 1];
  }

  private put(idx: number, at: number): void {
    const memo = this.memo;
    if (memo[idx] === undefined) {
      if (this.memoSize >= MAX_MEMO) this.fail('memo too large', at);
      this.memoSize++;
    }
    memo[idx] = this.top(at);
  }

  private get(idx: number, at: number): void {
    const v = this.memo[idx];
    // No scan value is undefined, so a miss is exactly an absent key.
    if (v === undefined) this.fail(`memo key ${idx} not found`, at);
    this.stack.push(v);
  }

  private hashable(k: unknown, at: number): void {
    if (k === DICT || Array.isArray(k)) this.fail('unhashable dict key (list or dict)', at);
  }

  /**
   * SETITEM(S): the key, value pairs at stack[from..) go into the value at stack[k - 1]; the
   * stack is cut back to length k (k < from when a MARK sits between them).
   */
  private setItems(k: number, from: number, at: number): void {
    const stack = this.stack;
    if (k === 0 || stack[k - 1] === MARK) this.fail('stack underflow', at);
    const target = stack[k - 1];
    if ((stack.length - from) % 2) this.fail('SETITEMS with an odd number of items', at);
    if (Array.isArray(target)) this.fail('SETITEM on a list (list assignment index out of range)', at);
    if (target === DICT) for (let i = from; i < stack.length; i += 2) this.hashable(stack[i], at);
    this.truncate(k);
  }

  /** Scan one pickle up to its STOP. */
  noload(): void {
    const d = this.d;
    const stack = this.stack;
    const end = d.length;
    if (this.pos >= end) this.fail('record ends before a pickle', this.pos);
    for (;;) {
      if (this.pos >= end) this.fail('truncated record: no STOP opcode', this.pos);
      if (stack.length > MAX_STACK) this.fail('stack too deep', this.pos);
      const at = this.pos;
      const op = d[this.pos++]!;
      switch (op) {
        case 0x80: {
          // PROTO: zodbpickle's noload accepts protocols 0-3 only
          this.need(1, at);
          const v = d[this.pos++]!;
          if (v > 3) this.fail(`unsupported pickle protocol: ${v}`, at);
          break;
        }
        case 0x2e: // STOP
          this.pop(at);
          stack.length = 0;
          return;
        case 0x28: // MARK
          stack.push(MARK);
          break;
        case 0x63: // GLOBAL
          this.lineEnd(at);
          this.lineEnd(at);
          stack.push(null);
          break;
        case 0x71: // BINPUT
          this.need(1, at);
          this.put(d[this.pos++]!, at);
          break;
        case 0x72: // LONG_BINPUT
          this.put(this.u32(at), at);
          break;
        case 0x70: // PUT
          this.put(this.lineInt(at), at);
          break;
        case 0x68: // BINGET
          this.need(1, at);
          this.get(d[this.pos++]!, at);
          break;
        case 0x6a: // LONG_BINGET
          this.get(this.u32(at), at);
          break;
        case 0x67: // GET
          this.get(this.lineInt(at), at);
          break;
        case 0x4e: // NONE
          stack.push(null);
          break;
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          stack.push(OTHER);
          break;
        case 0x4b: // BININT1
          this.skip(1, at);
          stack.push(OTHER);
          break;
        case 0x4d: // BININT2
          this.skip(2, at);
          stack.push(OTHER);
          break;
        case 0x4a: // BININT
          this.skip(4, at);
          stack.push(OTHER);
          break;
        case 0x8a: // LONG1
          this.need(1, at);
          this.skip(d[this.pos++]!, at);
          stack.push(OTHER);
          break;
        case 0x8b: {
          // LONG4
          const n = this.u32(at);
          if (n >= 0x80000000) this.fail('negative LONG4 length', at);
          this.skip(n, at);
          stack.push(OTHER);
          break;
        }
        case 0x49: // INT
        case 0x4c: // LONG
        case 0x46: {
          // FLOAT
          const s0 = this.pos;
          const e0 = this.lineEnd(at);
          let t = Buffer.from(d.buffer, d.byteOffset + s0, e0 - s0).toString('latin1');
          if (op === 0x4c && t.endsWith('L')) t = t.slice(0, -1);
          const re = op === 0x46 ? FLOAT_RE : INT_RE;
          if (!re.test(t)) this.fail(`invalid ${op === 0x46 ? 'float' : 'int'} literal ${JSON.stringify(t.slice(0, 40))}`, at);
          stack.push(OTHER);
          break;
        }
        case 0x47: // BINFLOAT
          this.skip(8, at);
          stack.push(OTHER);
          break;
        case 0x58: {
          // BINUNICODE (must be valid UTF-8, as noload decodes it)
          const n = this.u32(at);
          const k = this.span(n, at, true);
          const s = this.pos - n;
          if (!this.isAsciiSpan(s, this.pos) && decodeUtf8(d, s, this.pos) === undefined) this.fail('invalid UTF-8 in BINUNICODE', at);
          stack.push(k);
          break;
        }
        case 0x56: {
          // UNICODE
          const s = this.pos;
          const e = this.lineEnd(at);
          const t = decodeRawUnicodeEscape(d, s, e);
          if (t === undefined) this.fail('invalid raw-unicode-escape text', at);
          stack.push(new Text(t));
          break;
        }
        case 0x43: // SHORT_BINBYTES
          this.need(1, at);
          stack.push(this.span(d[this.pos++]!, at, false));
          break;
        case 0x55: // SHORT_BINSTRING: noload decodes it as strict ASCII; the oid bytes are the raw bytes
          this.need(1, at);
          stack.push(this.asciiSpan(d[this.pos++]!, at));
          break;
        case 0x42: // BINBYTES
          stack.push(this.span(this.u32(at), at, false));
          break;
        case 0x54: {
          // BINSTRING
          const n = this.u32(at);
          if (n >= 0x80000000) this.fail('negative BINSTRING length', at);
          stack.push(this.asciiSpan(n, at));
          break;
        }
        case 0x53: {
          // STRING
          const s = this.pos;
          const e = this.lineEnd(at);
          const q = d[s];
          if (e - s < 2 || (q !== 0x27 && q !== 0x22) || d[e - 1] !== q) this.fail('the STRING opcode argument must be quoted', at);
          const raw = escapeDecode(d, s + 1, e - 1);
          if (raw === undefined) this.fail('invalid escape in STRING', at);
          if (!isAscii(raw)) this.fail("'ascii' codec can't decode a Python 2 string byte", at);
          stack.push(raw);
          break;
        }
        case 0x7d: // EMPTY_DICT
          stack.push(DICT);
          break;
        case 0x5d: // EMPTY_LIST
          stack.push([]);
          break;
        case 0x29: // EMPTY_TUPLE (immutable: one shared value)
          stack.push(EMPTY_TUP);
          break;
        case 0x64: {
          // DICT
          const k = this.markIndex(at);
          if ((stack.length - k - 1) % 2) this.fail('DICT with an odd number of items', at);
          for (let i = k + 1; i < stack.length; i += 2) this.hashable(stack[i], at);
          this.truncate(k);
          stack.push(DICT);
          break;
        }
        case 0x6c: // LIST
          stack.push(this.popMark(at));
          break;
        case 0x74: // TUPLE
          stack.push(new Tup(this.popMark(at)));
          break;
        case 0x85: // TUPLE1
          stack.push(new Tup([this.pop(at)]));
          break;
        case 0x86: {
          // TUPLE2
          const b = this.pop(at);
          const a = this.pop(at);
          stack.push(new Tup([a, b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = this.pop(at);
          const b = this.pop(at);
          const a = this.pop(at);
          stack.push(new Tup([a, b, c]));
          break;
        }
        case 0x61: {
          // APPEND
          const v = this.pop(at);
          const t = this.top(at);
          if (Array.isArray(t)) t.push(v);
          else if (t === DICT) this.fail("APPEND to a dict ('dict' object has no attribute 'append')", at);
          break;
        }
        case 0x65: {
          // APPENDS
          const k = this.markIndex(at);
          if (k === 0 || stack[k - 1] === MARK) this.fail('stack underflow', at);
          const t = stack[k - 1];
          if (Array.isArray(t)) for (let i = k + 1; i < stack.length; i++) t.push(stack[i]);
          else if (t === DICT) this.fail("APPENDS to a dict ('dict' object has no attribute 'extend')", at);
          this.truncate(k);
          break;
        }
        case 0x73: // SETITEM
          if (stack.length < 2 || stack[stack.length - 1] === MARK || stack[stack.length - 2] === MARK) this.fail('stack underflow', at);
          this.setItems(stack.length - 2, stack.length - 2, at);
          break;
        case 0x75: {
          // SETITEMS
          const k = this.markIndex(at);
          this.setItems(k, k + 1, at);
          break;
        }
        case 0x52: // REDUCE
        case 0x81: // NEWOBJ
          this.pop(at);
          this.pop(at);
          stack.push(null);
          break;
        case 0x62: // BUILD
          this.pop(at);
          this.top(at);
          break;
        case 0x6f: {
          // OBJ
          const k = this.markIndex(at);
          this.truncate(k);
          stack.push(null);
          break;
        }
        case 0x69: {
          // INST
          this.lineEnd(at);
          this.lineEnd(at);
          const k = this.markIndex(at);
          this.truncate(k);
          stack.push(null);
          break;
        }
        case 0x30: // POP
          if (stack.length === 0) this.fail('stack underflow', at);
          stack.pop();
          break;
        case 0x31: // POP_MARK
          this.truncate(this.markIndex(at));
          break;
        case 0x32: // DUP
          stack.push(this.top(at));
          break;
        case 0x51: // BINPERSID
          this.ids.push(this.pop(at));
          stack.push(null);
          break;
        case 0x50: {
          // PERSID
          const s = this.pos;
          const e = this.lineEnd(at);
          if (!this.isAsciiSpan(s, e)) this.fail('non-ASCII PERSID', at);
          this.ids.push(this.addSpan(s, e, true));
          stack.push(null);
          break;
        }
        // Protocol 4/5 opcodes (0x8c-0x98: SHORT_BINUNICODE, BINUNICODE8, BINBYTES8, EMPTY_SET,
        // ADDITEMS, FROZENSET, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE, FRAME, BYTEARRAY8, NEXT_BUFFER,
        // READONLY_BUFFER) are refused, as zodbpickle's noload refuses them.
        case 0x82: // EXT1
          this.skip(1, at);
          stack.push(null);
          break;
        case 0x83: // EXT2
          this.skip(2, at);
          stack.push(null);
          break;
        case 0x84: // EXT4
          this.skip(4, at);
          stack.push(null);
          break;
        default:
          this.fail(`invalid pickle opcode 0x${op.toString(16).padStart(2, '0')}`, at);
      }
    }
  }
}

function scan(data: Uint8Array): Scanner {
  const s = new Scanner(data);
  s.noload();
  s.noload();
  return s;
}

/** The oid of a scan value (bytes, or ASCII text; 8 bytes), or an error. */
function oidOf(v: unknown, sc: Scanner): bigint {
  let b: Uint8Array;
  let p = 0;
  if (typeof v === 'number') {
    const s = sc.spanS[v]!;
    const e = sc.spanE[v]!;
    if (sc.spanText[v]) for (let i = s; i < e; i++) if (sc.d[i]! >= 0x80) throw new PickleError('referencesf: text oid is not ASCII', s);
    if (e - s !== 8) throw new PickleError(`referencesf: oid of ${e - s} bytes, expected 8`);
    b = sc.d;
    p = s;
  } else {
    if (v instanceof Uint8Array) b = v;
    else if (v instanceof Text) {
      if (!/^[\x00-\x7f]*$/.test(v.str)) throw new PickleError('referencesf: text oid is not ASCII');
      b = Buffer.from(v.str, 'latin1');
    } else throw new PickleError(`referencesf: persistent id element is not an oid (${kindOf(v)})`);
    if (b.length !== 8) throw new PickleError(`referencesf: oid of ${b.length} bytes, expected 8`);
  }
  const hi = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  const lo = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

function kindOf(v: unknown): string {
  if (v === null) return 'None';
  if (v === OTHER) return 'number';
  if (v === DICT) return 'dict';
  if (v instanceof Tup) return 'tuple';
  if (Array.isArray(v)) return 'list';
  return typeof v;
}

/**
 * All oids referenced by one ZODB object record (class pickle followed by state pickle), as
 * ZODB.serialize.referencesf: in encounter order, duplicates kept; strong references only
 * (bare oid and (oid, class) forms); weak, cross-database and legacy list forms are skipped.
 * Appends to `out` and returns it. filestorage spec §4.2-§4.3.
 */
export function referencesf(data: Uint8Array, out: bigint[] = []): bigint[] {
  const sc = scan(data);
  const ids = sc.ids;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id instanceof Tup) {
      if (id.items.length === 0) throw new PickleError('referencesf: empty tuple persistent id');
      out.push(oidOf(id.items[0], sc));
    } else if (Array.isArray(id)) {
      continue;
    } else out.push(oidOf(id, sc));
  }
  return out;
}

function modelOf(v: unknown, sc: Scanner): unknown {
  if (typeof v === 'number') {
    const s = sc.spanS[v]!;
    const e = sc.spanE[v]!;
    return sc.spanText[v] ? decodeUtf8(sc.d, s, e) : Buffer.from(sc.d.subarray(s, e));
  }
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v instanceof Text) return v.str;
  if (v instanceof Tup) return adoptAsTuple(v.items.map((x) => modelOf(x, sc)));
  if (Array.isArray(v)) return v.map((x) => modelOf(x, sc));
  return null;
}

/**
 * As ZODB.serialize.get_refs: [oid, klass] for each strong reference, where klass is the second
 * element of an (oid, klass) id as the scan saw it — null (None) for a class written as a
 * GLOBAL, which is every record ZODB writes — or null for a bare oid.
 */
export function getRefs(data: Uint8Array): Array<[bigint, unknown]> {
  const out: Array<[bigint, unknown]> = [];
  const sc = scan(data);
  for (const id of sc.ids) {
    if (id instanceof Tup) {
      if (id.items.length !== 2) throw new PickleError(`get_refs: persistent id tuple of ${id.items.length} items`);
      out.push([oidOf(id.items[0], sc), modelOf(id.items[1], sc)]);
    } else if (Array.isArray(id)) {
      continue;
    } else out.push([oidOf(id, sc), null]);
  }
  return out;
}

function pyStr(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return String(v);
}

/**
 * The (module, class name) of a ZODB object record, as ZODB.utils.get_pickle_metadata
 * (filestorage spec §4.4): the GLOBAL text when the class pickle starts with one, else the
 * class pickle is read (nothing imported) and the ((module, name), args) / (module, name)
 * tuple forms are used; anything unreadable gives ('', '').
 */
export function getPickleMetadata(data: Uint8Array): { module: string; name: string } {
  if (data.length === 0) throw new PickleError('get_pickle_metadata: empty record', 0);
  let p = 0;
  if (data[0] === 0x80) p = 2;
  let prefix = 0;
  if (data[p] === 0x28 && data[p + 1] === 0x63) prefix = 2;
  else if (data[p] === 0x63) prefix = 1;
  if (prefix) {
    const nl1 = data.indexOf(0x0a, p);
    const nl2 = nl1 < 0 ? -1 : data.indexOf(0x0a, nl1 + 1);
    if (nl2 < 0) throw new PickleError('get_pickle_metadata: GLOBAL without two newlines', p);
    const dec = new TextDecoder('utf-8', { fatal: true });
    try {
      return { module: dec.decode(data.subarray(p + prefix, nl1)), name: dec.decode(data.subarray(nl1 + 1, nl2)) };
    } catch {
      throw new PickleError('get_pickle_metadata: class name is not UTF-8', p);
    }
  }
  let info: unknown;
  try {
    info = new Unpickler(data, {
      encoding: 'ascii',
      maxProtocol: 3,
      persistentLoad: () => {
        throw new PickleError('no persistent_load');
      },
    }, p).load();
  } catch {
    return { module: '', name: '' };
  }
  if (info instanceof PyTuple) {
    const pair = info[0] instanceof PyTuple ? info[0] : info;
    if (pair.length !== 2) throw new PickleError(`get_pickle_metadata: expected 2 values to unpack, got ${pair.length}`);
    return { module: pyStr(pair[0]), name: pyStr(pair[1]) };
  }
  if (info instanceof PyGlobal) return { module: `<class '${info.dotted}'>`, name: '' };
  return { module: pyStr(info), name: '' };
}
