/**
 * Server-side conflict resolution for the one class whose rule needs no application code:
 * `BTrees.Length.Length` (a counter; its `_p_resolveConflict(old, committed, new)` returns
 * `committed + new - old`). Used only when client-conflict-resolution is off (zeo5-protocol
 * §10.5), where the reference server resolves such conflicts itself and replies the oid in the
 * vote result. Every other class stays a ConflictError.
 *
 * Pure: bytes in, bytes out. A record is a class pickle followed by a state pickle; for Length the
 * state is a single int. The resolved record keeps the new record's class pickle byte for byte and
 * writes the state as Python's pickle protocol 3 would.
 */

const LENGTH_CLASS = 'BTrees.Length\nLength\n';

/** Split a record into [class pickle, state int] if it is a plain BTrees.Length record. */
export function parseLengthRecord(rec: Buffer): { classPickle: Buffer; value: bigint; proto: number } | null {
  // class pickle: PROTO n, GLOBAL 'BTrees.Length\nLength\n', optional BINPUT k / MEMOIZE, STOP
  let i = 0;
  let proto = 1;
  if (rec[i] === 0x80) {
    proto = rec[i + 1] ?? 0;
    i += 2;
  }
  if (rec[i] !== 0x63) return null;
  i++;
  const cls = Buffer.from(LENGTH_CLASS, 'latin1');
  if (rec.length < i + cls.length || !rec.subarray(i, i + cls.length).equals(cls)) return null;
  i += cls.length;
  if (rec[i] === 0x71) i += 2; // BINPUT
  else if (rec[i] === 0x94) i += 1; // MEMOIZE
  if (rec[i] !== 0x2e) return null;
  i++;
  const classPickle = rec.subarray(0, i);
  // state pickle: [PROTO n] int STOP
  let j = i;
  if (rec[j] === 0x80) j += 2;
  let value: bigint;
  const op = rec[j];
  if (op === 0x4b) {
    if (j + 2 > rec.length) return null;
    value = BigInt(rec[j + 1]!);
    j += 2;
  } else if (op === 0x4d) {
    if (j + 3 > rec.length) return null;
    value = BigInt(rec.readUInt16LE(j + 1));
    j += 3;
  } else if (op === 0x4a) {
    if (j + 5 > rec.length) return null;
    value = BigInt(rec.readInt32LE(j + 1));
    j += 5;
  } else if (op === 0x8a) {
    const n = rec[j + 1];
    if (n === undefined || n > 32 || j + 2 + n > rec.length) return null;
    value = leSigned(rec.subarray(j + 2, j + 2 + n));
    j += 2 + n;
  } else {
    return null;
  }
  if (rec[j] !== 0x2e || j + 1 !== rec.length) return null;
  return { classPickle, value, proto };
}

function leSigned(b: Buffer): bigint {
  if (b.length === 0) return 0n;
  let v = 0n;
  for (let k = b.length - 1; k >= 0; k--) v = (v << 8n) | BigInt(b[k]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v;
}

/** An int pickled as CPython's pickle protocol >= 2 writes it (PROTO, K/M/J/LONG1, STOP). */
export function pickleInt(v: bigint, proto = 3): Buffer {
  const head = proto >= 2 ? Buffer.from([0x80, proto]) : Buffer.alloc(0);
  let body: Buffer;
  if (v >= 0n && v < 256n) body = Buffer.from([0x4b, Number(v)]);
  else if (v >= 0n && v < 65536n) {
    body = Buffer.alloc(3);
    body[0] = 0x4d;
    body.writeUInt16LE(Number(v), 1);
  } else if (v >= -0x80000000n && v <= 0x7fffffffn) {
    body = Buffer.alloc(5);
    body[0] = 0x4a;
    body.writeInt32LE(Number(v), 1);
  } else {
    const bytes: number[] = [];
    let x = v;
    // minimal two's complement, little-endian
    for (;;) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
      const top = bytes[bytes.length - 1]!;
      if ((x === 0n && !(top & 0x80)) || (x === -1n && top & 0x80)) break;
    }
    body = Buffer.from([0x8a, bytes.length, ...bytes]);
  }
  return Buffer.concat([head, body, Buffer.from([0x2e])]);
}

/**
 * Resolve a write conflict on a BTrees.Length record: `committed + mine - old`. Returns the new
 * record, or null when any of the three is not a plain Length record.
 */
export function resolveLengthConflict(old: Buffer, committed: Buffer, mine: Buffer): Buffer | null {
  const o = parseLengthRecord(old);
  const c = parseLengthRecord(committed);
  const m = parseLengthRecord(mine);
  if (!o || !c || !m) return null;
  return Buffer.concat([m.classPickle, pickleInt(c.value + m.value - o.value, m.proto >= 2 ? m.proto : 3)]);
}
