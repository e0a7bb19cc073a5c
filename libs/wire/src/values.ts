/**
 * The value model shared by both encodings (zeo5-protocol §0, §6.1, §7.2, §7.4).
 *
 * | Python / wire           | TypeScript                                               |
 * |-------------------------|----------------------------------------------------------|
 * | None / nil              | `null`                                                   |
 * | bool                    | `boolean`                                                |
 * | int                     | `number` when a safe integer, else `bigint`              |
 * | float                   | a non-integral `number`, or `PyFloat` (forces a float)   |
 * | str                     | `string`                                                 |
 * | bytes / bin             | `Buffer` (any `Uint8Array` is accepted when encoding)    |
 * | tuple / array           | plain `Array`                                            |
 * | list                    | an `Array` marked with `pyList()` (only Z5 tells them apart) |
 * | dict / map (str keys)   | plain object (decoders remember the wire key order when JS would differ: `mapKeys`, `toOrderedMap`) |
 *
 * Decoders always return integers as `number` when they are safe integers and as `bigint`
 * otherwise, so a txnid or msgid compares with `===` whatever encoding carried it.
 */

/** A Python float whose value happens to be integral (e.g. 1704067200.0). */
export class PyFloat {
  constructor(readonly value: number) {
    if (typeof value !== 'number') throw new TypeError(`PyFloat needs a number, got ${typeof value}`);
  }
  valueOf(): number {
    return this.value;
  }
}

export type WireMap = { [key: string]: WireValue };
export type WireValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyFloat
  | PyOpaque
  | WireValue[]
  | readonly WireValue[]
  | WireMap;

const LIST_MARK: unique symbol = Symbol('zeo-ts.wire.pyList');

/** Mark an array as a Python list (Z5 writes EMPTY_LIST/APPENDS instead of a tuple). Returns it. */
export function pyList<T extends WireValue[]>(arr: T): T {
  if (!Array.isArray(arr)) throw new TypeError('pyList() needs an array');
  Object.defineProperty(arr, LIST_MARK, { value: true, enumerable: false, configurable: true });
  return arr;
}

/** Is this array marked as a Python list? */
export function isPyList(v: unknown): boolean {
  return Array.isArray(v) && (v as unknown as Record<symbol, unknown>)[LIST_MARK] === true;
}

/** Is this value a (str-keyed) map in the value model? */
export function isWireMap(v: unknown): v is WireMap {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** A Buffer view of bytes without copying. */
export function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Normalise a decoded integer: safe integers become numbers, others stay bigints. */
export function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Python-like equality of two values (lists and tuples differ only when `strictLists`). */
export function wireEquals(a: unknown, b: unknown, strictLists = false): boolean {
  if (a === b) return true;
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    return (typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number')
      && Number.isInteger(Number(a)) && BigInt(a as number | bigint) === BigInt(b as number | bigint);
  }
  if (a instanceof PyFloat) return wireEquals(a.value, b, strictLists);
  if (b instanceof PyFloat) return wireEquals(a, b.value, strictLists);
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && asBuffer(a).equals(asBuffer(b));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    if (strictLists && isPyList(a) !== isPyList(b)) return false;
    for (let i = 0; i < a.length; i++) if (!wireEquals(a[i], b[i], strictLists)) return false;
    return true;
  }
  if (isWireMap(a) && isWireMap(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) if (!Object.hasOwn(b, k) || !wireEquals(a[k], b[k], strictLists)) return false;
    return true;
  }
  return false;
}

/** A short, bounded description of a value for error messages and logs (like ZEO's short_repr). */
export function shortRepr(v: unknown, limit = 120): string {
  let s: string;
  try {
    s = reprInner(v, 0);
  } catch {
    s = String(v);
  }
  return s.length > limit ? s.slice(0, limit - 3) + '...' : s;
}

function reprInner(v: unknown, depth: number): string {
  if (depth > 4) return '…';
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v);
  if (v instanceof PyFloat) return String(v.value);
  if (v instanceof Uint8Array) {
    const b = asBuffer(v);
    return `b'${b.subarray(0, 24).toString('hex')}${b.length > 24 ? '…' : ''}'(${b.length})`;
  }
  if (Array.isArray(v)) {
    const items = v.slice(0, 8).map((x) => reprInner(x, depth + 1));
    if (v.length > 8) items.push('…');
    return isPyList(v) ? `[${items.join(', ')}]` : `(${items.join(', ')}${v.length === 1 ? ',' : ''})`;
  }
  if (typeof v === 'object') {
    const ents = Object.entries(v as object).slice(0, 8).map(([k, x]) => `${JSON.stringify(k)}: ${reprInner(x, depth + 1)}`);
    return `{${ents.join(', ')}}`;
  }
  return typeof v;
}

/**
 * A Python object a Z5 message carried that has no place in this model (an instance or global
 * from an allowed module, §7.3, e.g. a ZopeUndo Prefix): the @zeo-ts/pickle value, passed
 * through opaquely. Z5 re-encodes it as it came; M5 cannot encode it.
 */
export class PyOpaque {
  constructor(readonly value: unknown) {}
}

const KEY_ORDER: unique symbol = Symbol('zeo-ts.wire.keyOrder');

/**
 * Remember the wire order of a decoded map's keys when JavaScript would enumerate them
 * differently (integer-like keys such as "2", "1" come first in ascending order in JS objects).
 * Used by the decoders; returns the map.
 */
export function setKeyOrder(m: WireMap, wireOrder: string[]): WireMap {
  const js = Object.keys(m);
  if (js.length === wireOrder.length && js.some((k, i) => k !== wireOrder[i])) {
    Object.defineProperty(m, KEY_ORDER, { value: wireOrder, enumerable: false, configurable: true });
  }
  return m;
}

/** A map's keys in the order they had on the wire (or JS order for maps built locally). */
export function mapKeys(m: WireMap): string[] {
  const order = (m as Record<symbol, string[] | undefined>)[KEY_ORDER];
  const js = Object.keys(m);
  if (order && order.length === js.length && order.every((k) => Object.hasOwn(m, k))) return order;
  return js;
}

/**
 * A Map of a wire map's entries in wire order — e.g. to pickle a transaction extension with
 * Python's key order (@zeo-ts/pickle's encodeExtension accepts a Map).
 */
export function toOrderedMap(m: WireMap): Map<string, WireValue> {
  return new Map(mapKeys(m).map((k) => [k, m[k]!] as [string, WireValue]));
}
