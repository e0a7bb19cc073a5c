/**
 * The logical values the server core hands to a transport (zeo5-protocol §5, §6, §7.4).
 *
 * The core stays independent of any codec: replies and one-way arguments are built from
 *  - `Buffer`            → bytes (msgpack bin, pickle SHORT_BINBYTES/BINBYTES)
 *  - `string`            → text (msgpack str, pickle BINUNICODE)
 *  - `number` integer / `bigint` → int
 *  - `PyFloat`           → float (float 64 / BINFLOAT), e.g. `time`, `lock_time`
 *  - `boolean`, `null`
 *  - plain `Array`       → tuple (msgpack array / pickle TUPLE*)
 *  - `PyListValue`       → list (msgpack array / pickle EMPTY_LIST+APPENDS); built with `pyList`
 *  - `Map<string, V>` or a plain object → dict with str keys, in insertion order
 * The transport adapter (net.ts) converts these to the value model of the wire codec in use.
 */

/** A Python float (so that integral floats such as 1.0 stay floats on the wire). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A Python list (Z5 distinguishes lists from tuples; §7.4). */
export class PyListValue {
  constructor(readonly items: unknown[]) {}
}

export function pyFloat(v: number): PyFloat {
  return new PyFloat(v);
}

export function pyList(items: unknown[]): PyListValue {
  return new PyListValue(items);
}

/** A plain dict with str keys whose order is the insertion order. */
export type PyDict = Record<string, unknown>;

/** 8 raw bytes of an oid/tid argument, validated. */
export function asBytes8(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v) && v.length === 8) return v;
  if (v instanceof Uint8Array && v.length === 8) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`${what} must be 8 bytes, got ${describe(v)}`);
}

export function asBytes(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw new TypeError(`${what} must be bytes, got ${describe(v)}`);
}

export function asOptBytes8(v: unknown, what: string): Buffer | null {
  return v === null || v === undefined ? null : asBytes8(v, what);
}

export function asInt(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new TypeError(`${what} must be an integer, got ${describe(v)}`);
}

export function asNumber(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object' && 'value' in v && typeof (v as { value: unknown }).value === 'number') {
    return (v as { value: number }).value;
  }
  throw new TypeError(`${what} must be a number, got ${describe(v)}`);
}

export function asStr(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  throw new TypeError(`${what} must be a str, got ${describe(v)}`);
}

/** Python truthiness of a decoded value. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === 0n || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (Buffer.isBuffer(v)) return v.length > 0;
  return true;
}

/** An opaque, comparable key for a txnid (ints of any size). */
export function txnKey(v: unknown): string {
  if (typeof v === 'number' && Number.isInteger(v)) return `i${v}`;
  if (typeof v === 'bigint') return `i${v}`;
  if (typeof v === 'boolean') return `i${v ? 1 : 0}`;
  if (typeof v === 'string') return `s${v}`;
  if (Buffer.isBuffer(v)) return `b${v.toString('hex')}`;
  throw new TypeError(`transaction id must be an integer, got ${describe(v)}`);
}

export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Buffer.isBuffer(v)) return `bytes(${v.length}) ${v.subarray(0, 16).toString('hex')}${v.length > 16 ? '…' : ''}`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return `${typeof v} ${String(v).slice(0, 40)}`;
}
