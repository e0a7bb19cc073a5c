// The direct M5/Z5 message writers and readers (m5fast.ts, z5fast.ts) against the general paths
// they replace on the hot path (packValue/unpackValue on @msgpack/msgpack, pickleValue/
// unpickleValue on @zeo-ts/pickle): same bytes for random messages, same values (or the same
// refusal) for random and mutated payloads. Covers zeo5 §6.1 (W-3..W-7) and §7.1-§7.4 (W-9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  M5Codec, Z5Codec, PyFloat, encodeFrame, ProtocolError, isPyList, mapKeys, packValue, pickleValue, pyList, unpackValue, unpickleValue,
  type WireValue,
} from '../src/index.ts';
import { readM5 } from '../src/m5fast.ts';
import { readZ5, Z5Writer } from '../src/z5fast.ts';
import { seededRandom as rng } from '@zeo-ts/storage/testing';

/** A canonical description: types, list/tuple, float/int, bytes and map key order all count. */
function describe(v: unknown): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? `i${v}` : `f${Object.is(v, -0) ? '-0' : v}`;
  if (typeof v === 'bigint') return `L${v}`;
  if (typeof v === 'string') return `s${JSON.stringify(v)}`;
  if (v instanceof PyFloat) return `F${v.value}`;
  if (v instanceof Uint8Array) return `b${Buffer.from(v).toString('hex')}`;
  if (Array.isArray(v)) return `${isPyList(v) ? 'L' : 'T'}[${v.map(describe).join(',')}]`;
  if (typeof v === 'object') {
    const m = v as Record<string, unknown>;
    return `{${mapKeys(m as Record<string, WireValue>).map((k) => `${JSON.stringify(k)}:${describe(m[k])}`).join(',')}}`;
  }
  return `?${typeof v}`;
}

const TEXTS = ['', 'a', 'loadBefore', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(255), 'w'.repeat(256), 'héllo', '€uro', '😀 emoji', 'ü'.repeat(40), '0', '1', '12', '007', 'abc'];

function randomValue(r: () => number, depth: number, opts: { bigLists: boolean }): WireValue {
  const pick = Math.floor(r() * (depth > 3 ? 9 : 13));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2: {
      const edges = [0, 1, 31, 127, 128, 255, 256, 65535, 65536, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -0x80000000, -0x80000001, -(2 ** 53 - 1)];
      return r() < 0.6 ? edges[Math.floor(r() * edges.length)]! : Math.floor((r() - 0.5) * 2 ** (1 + Math.floor(r() * 52)));
    }
    case 3: {
      const big = [2n ** 63n - 1n, 2n ** 64n - 1n, -(2n ** 63n), 2n ** 53n, -(2n ** 53n) - 1n, 5n, -7n, 0xffffffffn];
      return big[Math.floor(r() * big.length)]!;
    }
    case 4:
      return r() < 0.5 ? (r() - 0.5) * 1e6 + 0.25 : new PyFloat(r() < 0.5 ? Math.floor(r() * 1e10) : -3);
    case 5:
      return TEXTS[Math.floor(r() * TEXTS.length)]!;
    case 6:
    case 7: {
      const sizes = [0, 1, 8, 64, 65, 255, 256, 1000, 65536];
      const b = Buffer.alloc(sizes[Math.floor(r() * sizes.length)]!);
      for (let i = 0; i < b.length; i += 7) b[i] = Math.floor(r() * 256);
      return b;
    }
    case 8:
      return Buffer.from('0123456789abcdef', 'hex');
    case 9:
    case 10: {
      const n = opts.bigLists && r() < 0.1 ? [1000, 1001, 2500][Math.floor(r() * 3)]! : Math.floor(r() * 6);
      const a: WireValue[] = [];
      for (let i = 0; i < n; i++) a.push(n > 20 ? Buffer.alloc(8, i & 0xff) : randomValue(r, depth + 1, opts));
      return r() < 0.5 ? pyList(a) : a;
    }
    default: {
      const n = opts.bigLists && r() < 0.05 ? 1001 : Math.floor(r() * 5);
      const m: Record<string, WireValue> = {};
      for (let i = 0; i < n; i++) {
        const k = r() < 0.3 ? String(Math.floor(r() * 20)) : TEXTS[Math.floor(r() * TEXTS.length)]! + (n > 20 ? i : '');
        m[k] = n > 20 ? i : randomValue(r, depth + 1, opts);
      }
      return m;
    }
  }
}

function randomMessage(r: () => number, opts = { bigLists: false }): { msgid: WireValue; flags: boolean | number; method: string; args: WireValue[] } {
  const args: WireValue[] = [];
  const n = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) args.push(randomValue(r, 1, opts));
  const msgid: WireValue = r() < 0.2 ? [Buffer.alloc(8, 1), Buffer.from('7fffffffffffffff', 'hex')] : Math.floor(r() * 100000);
  return { msgid, flags: r() < 0.5 ? r() < 0.5 : [0, 2][Math.floor(r() * 2)]!, method: r() < 0.5 ? 'storea' : '.reply', args };
}

/** Same outcome of two decoders: equal values, or both refuse with a ProtocolError. */
function sameOutcome(fast: () => unknown, general: () => unknown, what: string): void {
  let a: unknown;
  let b: unknown;
  let ea: unknown;
  let eb: unknown;
  try {
    a = fast();
  } catch (e) {
    ea = e;
  }
  try {
    b = general();
  } catch (e) {
    eb = e;
  }
  // the direct reader refuses invalid UTF-8 in str, as Python's unpackb(raw=False) does; the
  // library behind unpackValue decodes it leniently
  if (ea instanceof ProtocolError && /invalid UTF-8/.test(ea.message) && !eb) return;
  if (ea || eb) {
    assert.ok(ea instanceof ProtocolError, `${what}: fast decoder threw ${String(ea)} (general: ${String(eb)})`);
    assert.ok(eb instanceof ProtocolError, `${what}: general decoder threw ${String(eb)} (fast: ${String(ea)})`);
    return;
  }
  assert.equal(describe(a), describe(b), what);
}

function mutate(r: () => number, b: Buffer): Buffer {
  const out = Buffer.from(b);
  const kind = Math.floor(r() * 3);
  if (kind === 0 && out.length) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
  else if (kind === 1) return out.subarray(0, Math.floor(r() * out.length));
  else if (out.length) out[Math.floor(r() * out.length)] ^= 1 << Math.floor(r() * 8);
  return out;
}

test('zeo5 §6.1 W-3..W-6: the direct M5 writer gives packValue\'s bytes for 3000 random messages', () => {
  const r = rng(11);
  const codec = new M5Codec();
  for (let i = 0; i < 3000; i++) {
    const m = randomMessage(r, { bigLists: i % 100 === 0 });
    const general = packValue([m.msgid, m.flags, m.method, m.args]);
    assert.equal(codec.encode(m).toString('hex'), general.toString('hex'), `message ${i}: ${describe(m.args).slice(0, 200)}`);
  }
});

test('zeo5 §3 W-1, §6.1, §7.1: encodeFrame of both codecs is the length header + encode() in one buffer', () => {
  const r = rng(14);
  for (const codec of [new M5Codec(), new Z5Codec()]) {
    for (let i = 0; i < 1000; i++) {
      const m = randomMessage(r, { bigLists: i % 100 === 0 });
      const payload = codec.encode(m);
      assert.equal(codec.encodeFrame(m).toString('hex'), encodeFrame(payload).toString('hex'), `${codec.letter}5 message ${i}`);
      // the writers' scratch state stays right when framed and unframed calls alternate
      assert.equal(codec.encode(m).toString('hex'), payload.toString('hex'), `${codec.letter}5 message ${i} again`);
    }
  }
});

test('zeo5 §6.1 W-7: the direct M5 reader agrees with unpackValue on valid, mutated and truncated payloads', () => {
  const r = rng(12);
  for (let i = 0; i < 3000; i++) {
    const bytes = packValue([...Object.values(randomMessage(r))] as WireValue[]);
    sameOutcome(() => readM5(bytes, 'M5 message'), () => unpackValue(bytes), `valid ${i}`);
    const bad = mutate(r, bytes);
    sameOutcome(() => readM5(bad, 'M5 message'), () => unpackValue(bad), `mutated ${i} ${bad.toString('hex').slice(0, 200)}`);
  }
  // extension types, non-str keys, __proto__ keys, trailing bytes, reserved 0xc1
  for (const hex of ['d40100', 'c70101aa', '81c403616263c0', '81a95f5f70726f746f5f5fc0', 'c0c0', 'c1', '92c0', 'dc0003c0']) {
    const b = Buffer.from(hex, 'hex');
    sameOutcome(() => readM5(b, 'M5 message'), () => unpackValue(b), hex);
    assert.throws(() => readM5(b, 'M5 message'), ProtocolError, hex);
  }
});

test('zeo5 §7.1 W-9: the direct Z5 writer gives the general pickler\'s bytes and handles the usual messages', () => {
  const r = rng(13);
  const codec = new Z5Codec();
  const writer = new Z5Writer();
  let fast = 0;
  for (let i = 0; i < 3000; i++) {
    const m = randomMessage(r, { bigLists: i % 100 === 0 });
    const general = pickleValue([m.msgid, m.flags, m.method, m.args]);
    assert.equal(codec.encode(m).toString('hex'), general.toString('hex'), `message ${i}: ${describe(m.args).slice(0, 200)}`);
    if (writer.encodeMessage(m.msgid, m.flags, m.method, m.args)) fast++;
  }
  assert.ok(fast > 1500, `the direct writer handled only ${fast} of 3000 messages`);
  // the hot messages take the direct path
  const oid = Buffer.alloc(8, 1);
  for (const args of [[oid, oid, Buffer.alloc(100), 7], [Buffer.alloc(100), oid, null], pyList([oid, oid]), []] as WireValue[]) {
    assert.ok(writer.encodeMessage(5, false, 'x', args), describe(args));
  }
});

test('zeo5 §7.2-§7.4: the direct Z5 reader agrees with the general unpickler or leaves the payload to it', () => {
  const r = rng(14);
  let fast = 0;
  for (let i = 0; i < 3000; i++) {
    const m = randomMessage(r);
    const bytes = pickleValue([m.msgid, m.flags, m.method, m.args]);
    const v = readZ5(bytes);
    if (v !== undefined) {
      fast++;
      assert.equal(describe(v), describe(unpickleValue(bytes)), `valid ${i}`);
    }
    const bad = mutate(r, bytes);
    const w = readZ5(bad);
    if (w !== undefined) assert.equal(describe(w), describe(unpickleValue(bad)), `mutated ${i} ${bad.toString('hex').slice(0, 200)}`);
  }
  assert.ok(fast > 1000, `the direct reader handled only ${fast} of 3000 payloads`);
  // memo opcodes, globals and protocol 4 framing are left to the general path
  for (const hex of ['8003284b0171004b01680074712e', '80036362756966c74696e730a6c656e0a2e', '8004950400000000000000294e2e']) {
    assert.equal(readZ5(Buffer.from(hex, 'hex')), undefined, hex);
  }
});
