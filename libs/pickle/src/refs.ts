/**
 * Persistent-reference scanning of ZODB object records (filestorage spec §4.2-§4.4).
 *
 * A record is two pickles (class, state) sharing one memo. `referencesf` emulates zodbpickle's
 * `noload()` run twice: a small stack machine that keeps only what can matter for a persistent
 * id (bytes, text, tuples, lists, None) and never builds dicts, objects or numbers.
 */
import { decodeRawUnicodeEscape, decodeUtf8, escapeDecode } from './text.ts';
import { Unpickler } from './unpickler.ts';
import { PickleError, PyGlobal, PyTuple } from './values.ts';

/**
 * A bytes or text value as a span [s, e) of the record (no copy). `text` marks str values
 * (BINUNICODE, PERSID), whose oid form is their ASCII encoding.
 */
class Span {
  constructor(
    readonly s: number,
    readonly e: number,
    readonly text: boolean,
  ) {}
}
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

const INT_RE = /^\s*[+-]?(\d[\d_]*|0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+)\s*$/;
const FLOAT_RE = /^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\s*$/i;

function isAscii(v: Uint8Array): boolean {
  for (let i = 0; i < v.length; i++) if (v[i]! >= 0x80) return false;
  return true;
}

/** Stack/memo caps for the scanner (the input size bounds them anyway). */
const MAX_STACK = 1_000_000;
const MAX_MEMO = 1_000_000;

class Scanner {
  private pos = 0;
  readonly memo = new Map<number, unknown>();
  readonly ids: unknown[] = [];
  constructor(private readonly d: Uint8Array) {}

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

  /** Skip past the next newline; return [start, end) of the line without it. */
  private line(at: number): [number, number] {
    const d = this.d;
    const s = this.pos;
    const i = d.indexOf(0x0a, s);
    if (i < 0) this.fail('truncated record: missing newline', at);
    this.pos = i + 1;
    return [s, i];
  }

  private lineInt(at: number): number {
    const [s, e] = this.line(at);
    const t = Buffer.from(this.d.buffer, this.d.byteOffset + s, e - s).toString('latin1').trim();
    if (!/^\d{1,15}$/.test(t)) this.fail(`invalid memo index ${JSON.stringify(t.slice(0, 20))}`, at);
    return Number(t);
  }

  /** A Python 2 string as noload sees it (ASCII, or an error). */
  private ascii<T extends Span | Uint8Array>(v: T, at: number): T {
    const ok = v instanceof Span ? this.isAsciiSpan(v.s, v.e) : isAscii(v);
    if (!ok) this.fail("'ascii' codec can't decode a Python 2 string byte", at);
    return v;
  }

  /** A span of the next n bytes (consumed). */
  private span(n: number, at: number, text: boolean): Span {
    this.need(n, at);
    const v = new Span(this.pos, this.pos + n, text);
    this.pos += n;
    return v;
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

  /** Scan one pickle up to its STOP. */
  noload(): void {
    const d = this.d;
    const stack: unknown[] = [];
    const memo = this.memo;
    const end = d.length;
    if (this.pos >= end) this.fail('record ends before a pickle', this.pos);
    const popMark = (at: number): unknown[] => {
      const k = stack.lastIndexOf(MARK);
      if (k < 0) this.fail('could not find MARK', at);
      const items = stack.splice(k);
      items.shift();
      return items;
    };
    const pop = (at: number): unknown => {
      if (stack.length === 0 || stack[stack.length - 1] === MARK) this.fail('stack underflow', at);
      return stack.pop();
    };
    const top = (at: number): unknown => {
      if (stack.length === 0 || stack[stack.length - 1] === MARK) this.fail('stack underflow', at);
      return stack[stack.length - 1];
    };
    const put = (idx: number, at: number): void => {
      if (!memo.has(idx) && memo.size >= MAX_MEMO) this.fail('memo too large', at);
      memo.set(idx, top(at));
    };
    const get = (idx: number, at: number): void => {
      if (!memo.has(idx)) this.fail(`memo key ${idx} not found`, at);
      stack.push(memo.get(idx));
    };
    const hashable = (k: unknown, at: number): void => {
      if (Array.isArray(k) || k === DICT) this.fail('unhashable dict key (list or dict)', at);
    };
    const setItems = (target: unknown, items: unknown[], at: number): void => {
      if (items.length % 2) this.fail('SETITEMS with an odd number of items', at);
      if (Array.isArray(target)) this.fail('SETITEM on a list (list assignment index out of range)', at);
      if (target === DICT) for (let i = 0; i < items.length; i += 2) hashable(items[i], at);
    };
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
          pop(at);
          return;
        case 0x28: // MARK
          stack.push(MARK);
          break;
        case 0x63: // GLOBAL
          this.line(at);
          this.line(at);
          stack.push(null);
          break;
        case 0x71: // BINPUT
          this.need(1, at);
          put(d[this.pos++]!, at);
          break;
        case 0x72: // LONG_BINPUT
          put(this.u32(at), at);
          break;
        case 0x70: // PUT
          put(this.lineInt(at), at);
          break;
        case 0x68: // BINGET
          this.need(1, at);
          get(d[this.pos++]!, at);
          break;
        case 0x6a: // LONG_BINGET
          get(this.u32(at), at);
          break;
        case 0x67: // GET
          get(this.lineInt(at), at);
          break;
        case 0x4e: // NONE
          stack.push(null);
          break;
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          stack.push(OTHER);
          break;
        case 0x4b: // BININT1
          this.need(1, at);
          this.pos += 1;
          stack.push(OTHER);
          break;
        case 0x4d: // BININT2
          this.need(2, at);
          this.pos += 2;
          stack.push(OTHER);
          break;
        case 0x4a: // BININT
          this.need(4, at);
          this.pos += 4;
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
          const [s0, e0] = this.line(at);
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
          const v = this.span(this.u32(at), at, true);
          if (!this.isAsciiSpan(v.s, v.e) && decodeUtf8(d, v.s, v.e) === undefined) this.fail('invalid UTF-8 in BINUNICODE', at);
          stack.push(v);
          break;
        }
        case 0x56: {
          // UNICODE
          const [s, e] = this.line(at);
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
          stack.push(this.ascii(this.span(d[this.pos++]!, at, false), at));
          break;
        case 0x42: // BINBYTES
          stack.push(this.span(this.u32(at), at, false));
          break;
        case 0x54: {
          // BINSTRING
          const n = this.u32(at);
          if (n >= 0x80000000) this.fail('negative BINSTRING length', at);
          stack.push(this.ascii(this.span(n, at, false), at));
          break;
        }
        case 0x53: {
          // STRING
          const [s, e] = this.line(at);
          const q = d[s];
          if (e - s < 2 || (q !== 0x27 && q !== 0x22) || d[e - 1] !== q) this.fail('the STRING opcode argument must be quoted', at);
          const raw = escapeDecode(d, s + 1, e - 1);
          if (raw === undefined) this.fail('invalid escape in STRING', at);
          stack.push(this.ascii(raw, at));
          break;
        }
        case 0x7d: // EMPTY_DICT
          stack.push(DICT);
          break;
        case 0x5d: // EMPTY_LIST
          stack.push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          stack.push(new Tup([]));
          break;
        case 0x64: {
          // DICT
          const items = popMark(at);
          if (items.length % 2) this.fail('DICT with an odd number of items', at);
          for (let i = 0; i < items.length; i += 2) hashable(items[i], at);
          stack.push(DICT);
          break;
        }
        case 0x6c: // LIST
          stack.push(popMark(at));
          break;
        case 0x74: // TUPLE
          stack.push(new Tup(popMark(at)));
          break;
        case 0x85: // TUPLE1
          stack.push(new Tup([pop(at)]));
          break;
        case 0x86: {
          // TUPLE2
          const b = pop(at);
          const a = pop(at);
          stack.push(new Tup([a, b]));
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = pop(at);
          const b = pop(at);
          const a = pop(at);
          stack.push(new Tup([a, b, c]));
          break;
        }
        case 0x61: {
          // APPEND
          const v = pop(at);
          const t = top(at);
          if (Array.isArray(t)) t.push(v);
          else if (t === DICT) this.fail("APPEND to a dict ('dict' object has no attribute 'append')", at);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = popMark(at);
          const t = top(at);
          if (Array.isArray(t)) for (const x of items) t.push(x);
          else if (t === DICT) this.fail("APPENDS to a dict ('dict' object has no attribute 'extend')", at);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = pop(at);
          const k = pop(at);
          setItems(top(at), [k, v], at);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = popMark(at);
          setItems(top(at), items, at);
          break;
        }
        case 0x52: // REDUCE
        case 0x81: // NEWOBJ
          pop(at);
          pop(at);
          stack.push(null);
          break;
        case 0x62: // BUILD
          pop(at);
          top(at);
          break;
        case 0x6f: // OBJ
          popMark(at);
          stack.push(null);
          break;
        case 0x69: // INST
          this.line(at);
          this.line(at);
          popMark(at);
          stack.push(null);
          break;
        case 0x30: // POP
          if (stack.length === 0) this.fail('stack underflow', at);
          stack.pop();
          break;
        case 0x31: // POP_MARK
          popMark(at);
          break;
        case 0x32: // DUP
          stack.push(top(at));
          break;
        case 0x51: // BINPERSID
          this.ids.push(pop(at));
          stack.push(null);
          break;
        case 0x50: {
          // PERSID
          const [s, e] = this.line(at);
          for (let i = s; i < e; i++) if (d[i]! >= 0x80) this.fail('non-ASCII PERSID', at);
          this.ids.push(new Span(s, e, true));
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

function scan(data: Uint8Array): unknown[] {
  const s = new Scanner(data);
  s.noload();
  s.noload();
  return s.ids;
}

/** The oid of a scan value (bytes, or ASCII text; 8 bytes), or an error. */
function oidOf(v: unknown, d: Uint8Array): bigint {
  let b: Uint8Array;
  if (v instanceof Span) {
    if (v.text) for (let i = v.s; i < v.e; i++) if (d[i]! >= 0x80) throw new PickleError('referencesf: text oid is not ASCII', v.s);
    b = d.subarray(v.s, v.e);
  } else if (v instanceof Uint8Array) b = v;
  else if (v instanceof Text) {
    if (!/^[\x00-\x7f]*$/.test(v.str)) throw new PickleError('referencesf: text oid is not ASCII');
    b = Buffer.from(v.str, 'latin1');
  } else throw new PickleError(`referencesf: persistent id element is not an oid (${kindOf(v)})`);
  if (b.length !== 8) throw new PickleError(`referencesf: oid of ${b.length} bytes, expected 8`);
  const hi = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  const lo = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
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
  for (const id of scan(data)) {
    if (id instanceof Tup) {
      if (id.items.length === 0) throw new PickleError('referencesf: empty tuple persistent id');
      out.push(oidOf(id.items[0], data));
    } else if (Array.isArray(id)) {
      continue;
    } else out.push(oidOf(id, data));
  }
  return out;
}

function modelOf(v: unknown, d: Uint8Array): unknown {
  if (v instanceof Span) return v.text ? decodeUtf8(d, v.s, v.e) : Buffer.from(d.subarray(v.s, v.e));
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v instanceof Text) return v.str;
  if (v instanceof Tup) return PyTuple.from(v.items.map((x) => modelOf(x, d)));
  if (Array.isArray(v)) return v.map((x) => modelOf(x, d));
  return null;
}

/**
 * As ZODB.serialize.get_refs: [oid, klass] for each strong reference, where klass is the second
 * element of an (oid, klass) id as the scan saw it — null (None) for a class written as a
 * GLOBAL, which is every record ZODB writes — or null for a bare oid.
 */
export function getRefs(data: Uint8Array): Array<[bigint, unknown]> {
  const out: Array<[bigint, unknown]> = [];
  for (const id of scan(data)) {
    if (id instanceof Tup) {
      if (id.items.length !== 2) throw new PickleError(`get_refs: persistent id tuple of ${id.items.length} items`);
      out.push([oidOf(id.items[0], data), modelOf(id.items[1], data)]);
    } else if (Array.isArray(id)) {
      continue;
    } else out.push([oidOf(id, data), null]);
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
