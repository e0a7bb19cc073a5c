// Bounded fuzzing: random, truncated and mutated pickles never crash (only PickleError), never
// hang (every loop is bounded by the input), and what loads re-dumps stably.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeExtension, dumps, getPickleMetadata, loads, PickleError, referencesf, Unpickler } from '../src/index.ts';
import { PY_CASES } from './python-dumps.ts';
import { REF_CASES } from './python-refs.ts';
import { hex } from './helpers.ts';

/** Small deterministic PRNG (mulberry32) so failures are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS: Buffer[] = [
  ...PY_CASES.flatMap((c) => Object.values(c.hex).map(hex)),
  ...REF_CASES.map((c) => hex(c.hex)),
];

/** Run fn; only PickleError may escape. Returns the value or undefined on a PickleError. */
function tolerant<T>(what: string, input: Buffer, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PickleError) return undefined;
    assert.fail(`${what} threw ${String(e)} (not a PickleError) on ${input.toString('hex').slice(0, 400)}`);
  }
}

function exercise(input: Buffer): void {
  const limits = { maxStack: 10_000, maxMemo: 10_000, maxLength: 1 << 20 };
  const v = tolerant('loads', input, () => loads(input, limits));
  tolerant('Unpickler x2', input, () => {
    const u = new Unpickler(input, limits);
    u.load();
    return u.load();
  });
  tolerant('referencesf', input, () => referencesf(input));
  tolerant('getPickleMetadata', input, () => getPickleMetadata(input));
  tolerant('decodeExtension', input, () => decodeExtension(input));
  if (v !== undefined) {
    for (const memo of [true, false]) {
      const out: Buffer | undefined = tolerant('dumps', input, (): Buffer => dumps(v, { memo, maxDepth: 200 }));
      if (out === undefined) continue;
      // What we wrote must read back and re-write to the same bytes.
      const again = loads(out);
      assert.deepEqual(dumps(again, { memo, maxDepth: 200 }), out, `unstable re-dump of ${input.toString('hex').slice(0, 400)}`);
    }
  }
}

test('fuzz: truncations of every known pickle', () => {
  let n = 0;
  for (const s of SEEDS) {
    // every length of short pickles, ~24 evenly spread lengths of longer ones
    const step = Math.max(1, Math.floor(s.length / 24));
    for (let len = 0; len < s.length; len += step) {
      exercise(s.subarray(0, len));
      n++;
    }
  }
  assert.ok(n > 1000, String(n));
});

test('fuzz: random byte mutations of known pickles (bounded, seeded)', () => {
  const r = rng(0x5eed);
  const ITER = 2000;
  for (let i = 0; i < ITER; i++) {
    const base = SEEDS[Math.floor(r() * SEEDS.length)]!;
    const b = Buffer.from(base);
    const edits = 1 + Math.floor(r() * 4);
    for (let k = 0; k < edits && b.length; k++) {
      const p = Math.floor(r() * b.length);
      const kind = r();
      if (kind < 0.6) b[p] = Math.floor(r() * 256);
      else if (kind < 0.8) b[p] = [0x28, 0x2e, 0x71, 0x68, 0x51, 0x74, 0x65, 0x75, 0x94, 0x32][Math.floor(r() * 10)]!;
      else b[p] = b[p]! ^ (1 << Math.floor(r() * 8));
    }
    exercise(b);
  }
});

test('fuzz: random opcode soup', () => {
  const r = rng(42);
  const ops = [0x28, 0x29, 0x2e, 0x30, 0x31, 0x32, 0x4e, 0x5d, 0x7d, 0x61, 0x65, 0x73, 0x75, 0x74, 0x85, 0x86, 0x87, 0x62, 0x52, 0x81, 0x51, 0x88, 0x8f, 0x90, 0x91, 0x94, 0x71, 0x68, 0x4b];
  for (let i = 0; i < 2000; i++) {
    const len = 1 + Math.floor(r() * 60);
    const b = Buffer.alloc(len);
    for (let k = 0; k < len; k++) b[k] = r() < 0.8 ? ops[Math.floor(r() * ops.length)]! : Math.floor(r() * 256);
    exercise(b);
  }
});

test('fuzz: self-referencing and deeply nested values stay bounded', () => {
  // ']q\x00' then 2000 x (']h\x00a' 'q\x00'): a 2000-deep list chain built through the memo.
  const parts = [Buffer.from([0x80, 0x03, 0x5d, 0x71, 0x00])];
  for (let i = 0; i < 2000; i++) parts.push(Buffer.from([0x5d, 0x68, 0x00, 0x61, 0x71, 0x00]));
  parts.push(Buffer.from([0x2e]));
  const deep = Buffer.concat(parts);
  const v = loads(deep);
  assert.ok(Array.isArray(v));
  assert.throws(() => dumps(v), /nested deeper than 1000/);
  // A list that contains itself writes with the memo, and fails cleanly in fast mode.
  const self: unknown[] = [];
  self.push(self);
  assert.equal(dumps(self).toString('hex'), '80035d710068006100'.slice(0, 14) + '61' + '2e');
  assert.throws(() => dumps(self, { memo: false }), PickleError);
});
