// Writer: byte-identical to Python's pickler at protocols 0-3, with and without memo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dumps, loads, PyTuple } from '../src/index.ts';
import { PY_CASES } from './python-dumps.ts';
import { fromSpec } from './helpers.ts';

for (const c of PY_CASES) {
  test(`writer matches Python: ${c.name}`, () => {
    for (const [key, expected] of Object.entries(c.hex)) {
      const protocol = Number(key[0]);
      if (protocol > 3) continue; // reader-only cases
      const memo = !key.endsWith('f');
      const got = dumps(fromSpec(c.v), { protocol, memo }).toString('hex');
      assert.equal(got, expected, `protocol ${protocol} memo ${memo}`);
    }
  });
}

test('writer: a tuple reached through itself is fetched from the memo', () => {
  const list: unknown[] = [];
  const t = PyTuple.from([list]);
  list.push(t);
  // Python: ([(...)],) → 80 03 5d 71 00 ... ; we only check it round-trips to the same shape.
  const v = loads(dumps(t)) as PyTuple;
  assert.ok(v instanceof PyTuple);
  assert.equal((v[0] as unknown[])[0], v);
});
