// The performance shortcuts of the codec give exactly what the general paths give (the
// general paths are the ones checked against Python in writer/reader/refs tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dumps, loads, Pickler, PyTuple, tuple, Unpickler } from '../src/index.ts';

test('safe-integer numbers are written exactly as the same value as a bigint (protocols 0-3)', () => {
  const vals = [0, 1, -1, 255, 256, 65535, 65536, -128, -129, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, 2 ** 40 + 7, -(2 ** 40) - 7, 2 ** 47, -(2 ** 47), 2 ** 53 - 1, -(2 ** 53 - 1), 140234567890123];
  // a deterministic spread over every magnitude (no Math.random: reproducible)
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const mag = 2 ** (i % 53);
    const v = Math.floor((x / 2 ** 32) * mag) * (i % 2 ? -1 : 1);
    vals.push(v === 0 ? 0 : v); // -0 is the int 0 (as before)
  }
  for (const v of vals) {
    for (const protocol of [0, 1, 2, 3]) {
      const a = dumps(v, { protocol, memo: false });
      assert.deepEqual(a, dumps(BigInt(v), { protocol, memo: false }), `${v} at protocol ${protocol}`);
      assert.equal(loads(a), v);
    }
  }
});

test('tuples read from a pickle are real PyTuples (TUPLE, TUPLE1-3, EMPTY_TUPLE)', () => {
  const value = tuple(tuple(), tuple(1), tuple(1, 2), tuple(1, 2, 3), tuple(1, 2, 3, 4), [tuple('a')]);
  for (const protocol of [0, 1, 2, 3]) {
    const back = loads(dumps(value, { protocol })) as PyTuple;
    const check = (t: unknown, n: number) => {
      assert.ok(t instanceof PyTuple && Array.isArray(t));
      assert.equal((t as PyTuple).length, n);
      assert.ok((t as PyTuple).map((y) => y) instanceof PyTuple, 'derived arrays are tuples too');
    };
    check(back, 6);
    [0, 1, 2, 3, 4].forEach((i) => check(back[i], i));
    assert.ok(!(back[5] instanceof PyTuple) && Array.isArray(back[5]), 'a list stays a list');
    check((back[5] as unknown[])[0], 1);
  }
  const t = tuple(1, 2);
  assert.ok(t instanceof PyTuple);
  assert.deepEqual([...t], [1, 2]);
});

test('ASCII and non-ASCII str, short and long, with and without memo, round-trip', () => {
  const strs = ['', 'a', 'storea', 'é', '\u20ac', 'x'.repeat(256), 'y'.repeat(257), 'ctrl\u0000\u007f', '\ud800lone'];
  for (const s of strs) {
    for (const protocol of [1, 2, 3]) {
      for (const memo of [true, false]) {
        assert.deepEqual(loads(dumps(tuple(s, s, [s]), { protocol, memo })), tuple(s, s, [s]));
      }
    }
  }
});

test('result() bytes never change when the pickler writes on', () => {
  const p = new Pickler({ memo: false });
  p.dump(tuple(1, Buffer.alloc(3000, 7)));
  const first = p.result();
  const copy = Buffer.from(first);
  p.dump(tuple(2, Buffer.alloc(5000, 9)));
  assert.deepEqual(first, copy);
  const u = new Unpickler(p.result());
  assert.deepEqual(u.load(), tuple(1, Buffer.alloc(3000, 7)));
  assert.deepEqual(u.load(), tuple(2, Buffer.alloc(5000, 9)));
});
