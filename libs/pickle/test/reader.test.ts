// General reader: protocols 0-5 against bytes written by real Python, value model, hooks,
// Python 2 string decoding (filestorage §3.3, §4.2), and clear errors (zeo5 §7.2, §7.3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  loads,
  PersistentRef,
  PickleError,
  PyByteArray,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
  Unpickler,
} from '../src/index.ts';
import { PY_CASES } from './python-dumps.ts';
import { fromSpec, hex } from './helpers.ts';

/** Resolve the few builtins Python's own pickles of plain data use below protocol 4. */
function builtinsClass(module: string, name: string): unknown {
  const key = `${module}.${name}`;
  switch (key) {
    case 'builtins.set':
    case '__builtin__.set':
      return (items: unknown[]) => new Set(items);
    case 'builtins.frozenset':
    case '__builtin__.frozenset':
      return (items: unknown[]) => new PyFrozenSet(items);
    case 'builtins.bytes':
    case '__builtin__.bytes':
      return () => Buffer.alloc(0);
    case '_codecs.encode':
      return (s: string, enc: string) => {
        assert.equal(enc, 'latin1');
        return Buffer.from(s, 'latin1');
      };
    default:
      // Python's own reader maps Python 2 module names back (fix_imports); ours passes them raw.
      return new PyGlobal(module === '__builtin__' ? 'builtins' : module === 'copy_reg' ? 'copyreg' : module, name.replace(/!$/, ''));
  }
}

for (const c of PY_CASES) {
  test(`reader: Python's pickles of ${c.name} (protocols 0-5, memo and fast) load to the model value`, () => {
    for (const [key, h] of Object.entries(c.hex)) {
      const findClass = c.name === 'globals' ? (m: string, n: string) => builtinsClass(m, `${n}!`) : builtinsClass;
      const got = loads(hex(h), { findClass });
      assert.deepEqual(got, fromSpec(c.v), `protocol ${key}`);
    }
  });
}

test('reader: memo keeps identity (shared list / tuple loaded once)', () => {
  const c = PY_CASES.find((x) => x.name === 'shared list')!;
  const v = loads(hex(c.hex['3']!)) as PyTuple;
  assert.equal(v[0], v[1]);
  assert.equal((v[2] as unknown[])[0], v[0]);
});

test('reader: value model kinds', () => {
  const c = PY_CASES.find((x) => x.name === 'big ints')!;
  const v = loads(hex(c.hex['3']!)) as unknown[];
  assert.equal(v[0], 2147483648);
  assert.equal(typeof v[3], 'bigint'); // 2**63-1 is not a safe JS integer
  assert.equal(v[3], 9223372036854775807n);
  const f = loads(hex('80 03 47 3f f8 00 00 00 00 00 00 2e'));
  assert.ok(f instanceof PyFloat && f.value === 1.5);
  assert.ok(loads(hex('80 03 29 2e')) instanceof PyTuple);
  assert.ok(!(loads(hex('80 03 5d 2e')) instanceof PyTuple));
  assert.deepEqual(loads(hex('80 03 7d 2e')), new Map());
  assert.equal(loads(hex('80 03 88 2e')), true);
  assert.equal(loads(hex('80 03 4e 2e')), null);
});

const OBJ = {
  plain0:
    '63636f70795f7265670a5f7265636f6e7374727563746f720a70300a28636170702e6d6f64656c730a506c61696e0a70310a635f5f6275696c74696e5f5f0a6f626a6563740a70320a4e7470330a5270340a286470350a56610a70360a49310a7356620a70370a56780a70380a73622e',
  plain1:
    '63636f70795f7265670a5f7265636f6e7374727563746f720a710028636170702e6d6f64656c730a506c61696e0a7101635f5f6275696c74696e5f5f0a6f626a6563740a71024e7471035271047d71052858010000006171064b015801000000627107580100000078710875622e',
  plain2: '8002636170702e6d6f64656c730a506c61696e0a7100298171017d71022858010000006171034b015801000000627104580100000078710575622e',
  plain4:
    '8004952e000000000000008c0a6170702e6d6f64656c73948c05506c61696e9493942981947d94288c0161944b018c0162948c01789475622e',
  odict1: '63636f6c6c656374696f6e730a4f726465726564446963740a71002952710158010000006171024b01732e',
  nx4: '80049524000000000000008c0a6170702e6d6f64656c73948c024e589493944b0185947d948c016b944b027392942e',
  set4: '80049509000000000000008f94284b014b02902e',
  frozenset4: '8004950600000000000000284b0391942e',
  bytearray5: '8005950d000000000000009602000000000000006162942e',
  date3: '8003636461746574696d650a646174650a7100430407e8010271018571025271032e',
};

test('reader: objects become PyObject markers (REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, SETITEM on objects)', () => {
  // Python: pickle.dumps(app.models.Plain() with a=1, b='x', protocol) for protocols 0, 1, 2, 4.
  for (const k of ['plain0', 'plain1'] as const) {
    const v = loads(hex(OBJ[k])) as PyObject;
    assert.ok(v instanceof PyObject && v.kind === 'reduce', k);
    assert.equal(v.className, 'copy_reg._reconstructor');
    assert.deepEqual(v.args, PyTuple.from([new PyGlobal('app.models', 'Plain'), new PyGlobal('__builtin__', 'object'), null]));
    assert.deepEqual(v.state, new Map<unknown, unknown>([['a', 1], ['b', 'x']]));
  }
  for (const k of ['plain2', 'plain4'] as const) {
    const v = loads(hex(OBJ[k])) as PyObject;
    assert.equal(v.kind, 'newobj', k);
    assert.equal(v.className, 'app.models.Plain');
    assert.equal(v.args.length, 0);
    assert.deepEqual(v.state, new Map<unknown, unknown>([['a', 1], ['b', 'x']]));
  }
  const od = loads(hex(OBJ.odict1)) as PyObject;
  assert.equal(od.className, 'collections.OrderedDict');
  assert.deepEqual(od.dictItems, [['a', 1]]);
  assert.equal(od.state, undefined);
  const nx = loads(hex(OBJ.nx4)) as PyObject;
  assert.equal(nx.kind, 'newobj_ex');
  assert.deepEqual([...nx.args], [1]);
  assert.deepEqual(nx.kwargs, new Map([['k', 2]]));
  const d = loads(hex(OBJ.date3)) as PyObject;
  assert.equal(d.className, 'datetime.date');
  assert.deepEqual(d.args[0], Buffer.from('07e80102', 'hex'));
});

test('reader: protocol 4/5 sets, frozensets, bytearray', () => {
  assert.deepEqual(loads(hex(OBJ.set4)), new Set([1, 2]));
  const fs = loads(hex(OBJ.frozenset4));
  assert.ok(fs instanceof PyFrozenSet);
  assert.deepEqual([...(fs as PyFrozenSet)], [3]);
  const ba = loads(hex(OBJ.bytearray5));
  assert.ok(ba instanceof PyByteArray);
  assert.deepEqual(ba.bytes, Buffer.from('ab'));
});

test('reader: findClass can allow (value) or refuse (throw) a global — zeo5 §7.3', () => {
  const SAFE = new Set(['ZopeUndo.Prefix', 'zodbpickle', 'builtins', 'copy_reg', '__builtin__']);
  const refuse = (m: string, n: string) => {
    if (!SAFE.has(m)) throw new Error(`Module not allowed: ${m}`);
    return new PyGlobal(m, n);
  };
  assert.throws(() => loads(hex(OBJ.plain2), { findClass: refuse }), /Module not allowed: app.models/);
  assert.throws(() => loads(hex(OBJ.plain1), { findClass: refuse }), /Module not allowed: app.models/);
  const sets = PY_CASES.find((x) => x.name === 'sets')!;
  const v = loads(hex(sets.hex['2']!), { findClass: refuse }) as PyTuple;
  assert.ok(v[0] instanceof PyObject && v[0].className === '__builtin__.set');
  // the class argument is refused too when reached
  assert.throws(() => loads(hex(OBJ.plain0), { findClass: (m, n) => (m === 'app.models' ? assert.fail(n) : new PyGlobal(m, n)) }));
  // a function returned by findClass is called by REDUCE
  const date = loads(hex(OBJ.date3), { findClass: () => (b: Buffer) => `date:${b.toString('hex')}` });
  assert.equal(date, 'date:07e80102');
});

test('reader: persistent ids via persistentLoad, default PersistentRef — filestorage §4.2', () => {
  // state pickle of refs.json "tuple_ref_oid_and_class", read as one pickle after its class pickle
  const rec = hex(
    '80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e80037d710158040000006461746171027d7103580100000078710443080000000000000001710568008671065173732e',
  );
  const u = new Unpickler(rec);
  const cls = u.load();
  assert.deepEqual(cls, new PyGlobal('persistent.mapping', 'PersistentMapping'));
  const state = u.load() as Map<string, Map<string, unknown>>;
  assert.ok(u.atEnd);
  const ref = state.get('data')!.get('x');
  assert.ok(ref instanceof PersistentRef);
  const id = ref.id as PyTuple;
  assert.deepEqual(id[0], Buffer.from('0000000000000001', 'hex'));
  assert.equal(id[1], cls); // memo shared between the two pickles (BINGET 0)
  const seen: unknown[] = [];
  const u2 = new Unpickler(rec, { persistentLoad: (pid) => (seen.push(pid), 'loaded') });
  u2.load();
  assert.equal((u2.load() as Map<string, Map<string, unknown>>).get('data')!.get('x'), 'loaded');
  assert.equal(seen.length, 1);
  // PERSID (protocol 0) gives the id as text
  assert.deepEqual(loads(Buffer.from('Pabc\n.')), new PersistentRef('abc'));
});

test('reader: Python 2 string opcodes per encoding — filestorage §3.3, zeo5 §7.2', () => {
  // U (SHORT_BINSTRING) 'ab' and '\xff'
  const ascii = hex('55 02 61 62 2e');
  const high = hex('55 01 ff 2e');
  assert.equal(loads(ascii), 'ab');
  assert.deepEqual(loads(high), Buffer.from([0xff]));
  assert.deepEqual(loads(ascii, { encoding: 'bytes' }), Buffer.from('ab'));
  assert.equal(loads(high, { encoding: 'latin1' }), '\xff');
  assert.throws(() => loads(high, { encoding: 'ascii' }), PickleError);
  assert.throws(() => loads(high, { encoding: 'utf-8' }), PickleError);
  // STRING with escapes, BINSTRING
  assert.equal(loads(Buffer.from("S'a\\'b\\n\\x41'\n.")), "a'b\nA");
  assert.deepEqual(loads(Buffer.from("S'\\xff'\n.")), Buffer.from([0xff]));
  assert.equal(loads(hex('54 03 00 00 00 61 62 63 2e')), 'abc');
  // ZEO 5.0 heartbeat in protocol 1 (zeo5 §7.2)
  const hb = loads(hex('28 4a ffffffff 4b 00 55 06 2e7265706c79 4e 74 2e')) as PyTuple;
  assert.deepEqual([...hb], [-1, 0, '.reply', null]);
});

test('reader: protocol 0 text opcodes', () => {
  assert.deepEqual(loads(Buffer.from('(I1\nI00\nL12345678901234567890L\nF2.5\nVa\\u20acb\nt.')), PyTuple.from([1, false, 12345678901234567890n, new PyFloat(2.5), 'a€b']));
  const l = loads(Buffer.from('(lp0\nI1\nag0\na.')) as unknown[];
  assert.equal(l[1], l); // GET of the list inside itself
});

test('reader: errors are PickleErrors naming the byte offset', () => {
  const cases: [string, RegExp][] = [
    ['', /empty pickle/],
    ['80 03', /no STOP/],
    ['80 03 58 05 00 00 00 61 62', /truncated pickle: text needs 5 bytes, 2 left.*at byte 7/],
    ['80 03 ff 2e', /invalid pickle opcode 0xff.*at byte 2/],
    ['80 06 4e 2e', /unsupported pickle protocol: 6/],
    ['80 03 68 05 2e', /memo key 5 not found/],
    ['80 03 2e', /stack underflow/],
    ['80 03 4e 4e 61 2e', /APPEND to a value that is not a list/],
    ['80 03 4e 4b 01 4b 02 73 2e', /SETITEM on a value that is not a dict/],
    ['80 03 4e 4e 62 2e', /BUILD on a value that is not an object/],
    ['80 03 74 2e', /could not find MARK/],
    ['80 03 58 01 00 00 00 ff 2e', /invalid UTF-8/],
    ['80 03 82 01 2e', /EXT opcodes/],
    ['80 05 97 2e', /out-of-band/],
  ];
  for (const [h, re] of cases) {
    assert.throws(() => loads(hex(h)), (e: unknown) => e instanceof PickleError && re.test(e.message), h);
  }
  assert.throws(() => loads(Buffer.from('I' + '9'.repeat(5000) + '\n.')), /4300/);
  assert.throws(() => loads(hex('80 04 95 01 00 00 00 00 00 00 00 4e 2e'), { maxProtocol: 3 }), /unsupported pickle protocol: 4/);
  assert.throws(() => loads(hex('80 03 8c 01 61 2e'), { maxProtocol: 3 }), /protocol 4 opcode/);
});

test('reader: limits on input length, stack and memo', () => {
  assert.throws(() => loads(Buffer.alloc(100), { maxLength: 10 }), /exceeds the limit of 10/);
  assert.throws(() => loads(Buffer.from('(((((((((((N.'), { maxStack: 5 }), /stack exceeds the limit of 5/);
  assert.throws(() => loads(hex('80 03 4e 71 00 71 01 71 02 2e'), { maxMemo: 2 }), /memo exceeds the limit of 2/);
  // re-putting an existing key does not grow the memo
  assert.equal(loads(hex('80 03 4e 71 00 71 00 71 00 2e'), { maxMemo: 1 }), null);
});
