// Writer: byte-identical to Python's pickler at protocols 0-3, with and without memo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PY_CASES } from './python-dumps.ts';
import { fromSpec } from './helpers.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { dumps, loads, Pickler, PersistentRef, PyGlobal, PyTuple, tuple, Unpickler } from '../src/index.ts';
import { REF_CASES } from './python-refs.ts';

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

// ZODB object records (two pickles, one memo) read and re-written byte-identically:
// filestorage §4.1-§4.2 (class GLOBAL memoised, (oid, class) ids with BINGET of the class).

function rewriteRecord(data: Buffer, protocol = 3): Buffer {
  const u = new Unpickler(data);
  const cls = u.load();
  const state = u.load();
  return new Pickler({ protocol }).dump(cls).dump(state).result().subarray(0, u.position);
}

test('writer: refs.json records re-encode to the same bytes (filestorage §4.2)', { skip: vectorsSkip() }, () => {
  const cases = JSON.parse(readFileSync(join(vectorsDir(), 'filestorage', 'refs.json'), 'utf8')) as { name: string; pickle_hex: string }[];
  for (const c of cases) {
    if (c.name === 'protocol1_py2_style') continue; // hand-written in Python 2 style, not by a Python 3 pickler
    const data = Buffer.from(c.pickle_hex, 'hex');
    assert.equal(rewriteRecord(data).toString('hex'), c.pickle_hex, c.name);
  }
});

test('writer: Python-made records of python-refs.ts re-encode to the same bytes', () => {
  for (const name of ['300 refs, long memo', 'duplicate refs kept', 'no memo', 'str oid in tuple', 'refs inside reduce args and build state']) {
    const c = REF_CASES.find((x) => x.name === name)!;
    const data = Buffer.from(c.hex, 'hex');
    const memo = name !== 'no memo';
    const u = new Unpickler(data);
    const a = u.load();
    const b = u.load();
    assert.equal(new Pickler({ memo }).dump(a).dump(b).result().toString('hex'), c.hex, name);
  }
});

test('writer: every record of Data.fs re-encodes to the same bytes', { skip: vectorsSkip() }, () => {
  const file = readFileSync(join(vectorsDir(), 'filestorage', 'Data.fs'));
  let pos = 4;
  let n = 0;
  for (let guard = 0; pos < file.length && guard < 1000; guard++) {
    const tlen = Number(file.readBigUInt64BE(pos + 8));
    let p = pos + 23 + file.readUInt16BE(pos + 17) + file.readUInt16BE(pos + 19) + file.readUInt16BE(pos + 21);
    while (p < pos + tlen) {
      const plen = Number(file.readBigUInt64BE(p + 34));
      if (plen > 0) {
        const data = file.subarray(p + 42, p + 42 + plen);
        assert.equal(rewriteRecord(data).toString('hex'), data.toString('hex'), `record at ${p}`);
        n++;
        p += 42 + plen;
      } else p += 50;
    }
    pos += tlen + 8;
  }
  assert.equal(n, 12);
});

test('writer: persistentId hook, as ZODB writes a reference (filestorage §4.2)', () => {
  const PM = new PyGlobal('persistent.mapping', 'PersistentMapping');
  class Obj {
    constructor(readonly oid: Buffer) {}
  }
  const p = new Pickler({ persistentId: (v) => (v instanceof Obj ? tuple(v.oid, PM) : undefined) });
  p.dump(PM);
  p.dump(new Map([['data', new Map([['x', new Obj(Buffer.from('0000000000000001', 'hex'))]])]]));
  // refs.json "tuple_ref_oid_and_class"
  assert.equal(
    p.result().toString('hex'),
    '80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e80037d710158040000006461746171027d7103580100000078710443080000000000000001710568008671065173732e',
  );
  // Without a hook a PersistentRef marker writes its id.
  assert.equal(dumps(new PersistentRef(Buffer.from('0000000000000007', 'hex')), { memo: false }).toString('hex'), '8003430800000000000000075 12e'.replace(' ', ''));
});

test('writer: errors for values it cannot write', () => {
  assert.throws(() => dumps(undefined), /cannot pickle undefined/);
  assert.throws(() => dumps(() => 1), /cannot pickle a function/);
  assert.throws(() => dumps(new Date()), /cannot pickle object of class Date/);
  assert.throws(() => dumps(null, { protocol: 4 }), /protocol 4 not supported/);
  assert.throws(() => dumps(new PersistentRef(5), { protocol: 0 }), /protocol 0 must be ASCII strings/);
});
