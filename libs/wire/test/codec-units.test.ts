// Unit tests of framing (§3), handshake (§4) and error mapping (§6.4/§6.5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConflictError, ReadConflictError, POSKeyError, ReadOnlyError, StorageTransactionError, MultipleUndoErrors, UndoError,
  p64,
} from '@zeo-ts/storage';
import {
  FrameDecoder, FrameTooLargeError, encodeFrame, frameHeader, announcement, parseClientHandshake, clientAnswer,
  ProtocolError, errorToWire, errorFromWire, errorReply, getWireState, withWireState, PythonError, ServerException,
  M5Codec, wireEquals, pyList, isPyList, pythonJson, packValue, unpackValue, PyFloat, truthy, isOneWay, isErrorReply,
} from '../src/index.ts';

test('zeo5 W-1: FrameDecoder reassembles split and coalesced frames, including empty payloads', () => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(1000, 7), Buffer.from('xyz')];
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
  const dec = new FrameDecoder();
  const got: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) got.push(...dec.push(stream.subarray(i, i + 1)));
  assert.deepEqual(got, frames);
  assert.equal(dec.streamOffset, stream.length);
  assert.deepEqual(new FrameDecoder().push(stream), frames);
});

test('zeo5 W-2: a header beyond the maximum throws FrameTooLargeError before the payload arrives; decoder stays failed', () => {
  const dec = new FrameDecoder(1024);
  assert.deepEqual(dec.push(encodeFrame(Buffer.alloc(1024))).length, 1);
  assert.throws(() => dec.push(frameHeader(1025)), (e: unknown) => e instanceof FrameTooLargeError && e instanceof ProtocolError
    && e.length === 1025 && e.streamOffset === 1028 && /1025/.test(e.message));
  assert.throws(() => dec.push(Buffer.from('x')), FrameTooLargeError);
  // default maximum is 256 MiB (W-2: at least 256 MiB accepted)
  const big = new FrameDecoder();
  assert.equal(big.maxFrame, 256 * 1024 * 1024);
  assert.deepEqual(big.push(frameHeader(256 * 1024 * 1024)), []);
  assert.throws(() => new FrameDecoder().push(Buffer.from('ffffffff', 'hex')), FrameTooLargeError);
});

test('zeo5 §4.1/§4.3 S-1/S-2: announcements and the server acceptance rule', () => {
  assert.equal(announcement('M').toString('hex'), '4d35');
  assert.equal(announcement('Z').toString('hex'), '5a35');
  assert.deepEqual(parseClientHandshake(Buffer.from('M5')), { kind: 'protocol', letter: 'M' });
  assert.deepEqual(parseClientHandshake(Buffer.from('Z5')), { kind: 'protocol', letter: 'Z' });
  assert.deepEqual(parseClientHandshake(Buffer.from('ruok')), { kind: 'ruok' });
  for (const bad of ['M4', 'Z4', 'Z3101', 'X5', 'M55', '', 'm5', 'RUOK']) {
    assert.throws(() => parseClientHandshake(Buffer.from(bad)), ProtocolError, bad);
  }
  // a server without pickle refuses Z5
  assert.throws(() => parseClientHandshake(Buffer.from('Z5'), ['M']), ProtocolError);
});

test('zeo5 §4.2 C-1: the client answer uses min(offered, "5") byte-wise and mirrors the letter', () => {
  assert.equal(clientAnswer(Buffer.from('M5')).answer.toString(), 'M5');
  assert.equal(clientAnswer(Buffer.from('Z5')).answer.toString(), 'Z5');
  assert.equal(clientAnswer(Buffer.from('M99999')).answer.toString(), 'M5'); // b"99999" > b"5"
  assert.throws(() => clientAnswer(Buffer.from('M4')), ProtocolError);
  assert.throws(() => clientAnswer(Buffer.from('Z310')), ProtocolError); // b"310" < b"5"
  assert.throws(() => clientAnswer(Buffer.from('Q5')), ProtocolError);
  assert.throws(() => clientAnswer(Buffer.alloc(0)), ProtocolError);
  // a client without pickle answers M5 to a Z5 announcement (§4.3 MAY)
  assert.deepEqual(clientAnswer(Buffer.from('Z5'), ['M']), { answer: Buffer.from('M5'), letter: 'M' });
  assert.deepEqual(clientAnswer(Buffer.from('M5'), ['Z']), { answer: Buffer.from('Z5'), letter: 'Z' });
  assert.throws(() => clientAnswer(Buffer.from('M5'), []), ProtocolError);
});

test('zeo5 §4.4: ruok JSON uses Python formatting and escapes non-ASCII', () => {
  assert.equal(pythonJson({ '1': { a: 1, b: null, c: 'x', d: [1, 2], e: 1.5, f: true } }), '{"1": {"a": 1, "b": null, "c": "x", "d": [1, 2], "e": 1.5, "f": true}}');
  assert.equal(pythonJson('é\u007f😀'), '"\\u00e9\\u007f\\ud83d\\ude00"');
});

const oid = p64(1n);
const T1 = 0x03f58e0000000000n;
const T2 = 0x03f58e0100000000n;

test('zeo5 §6.4 S-7/S-8: exceptions become (class_name, state) with the reference shapes', () => {
  assert.deepEqual(errorToWire(new ConflictError({ oid: 1n, serials: [T2, T1], className: 'persistent.mapping.PersistentMapping' })),
    ['ZODB.POSException.ConflictError', { message: 'database conflict error', oid, class_name: 'persistent.mapping.PersistentMapping', serials: [p64(T2), p64(T1)] }]);
  const [cls, st] = errorToWire(new ReadConflictError({ oid: 1n, serials: [T2, T1] }));
  assert.equal(cls, 'ZODB.POSException.ReadConflictError');
  assert.deepEqual(Object.keys(st), ['message', 'oid', 'class_name', 'serials']);
  assert.equal((st as Record<string, unknown>)['message'], 'database read conflict error');
  assert.equal((st as Record<string, unknown>)['class_name'], null);
  assert.deepEqual(errorToWire(new POSKeyError(1n)), ['ZODB.POSException.POSKeyError', [oid]]);
  assert.deepEqual(errorToWire(new ReadOnlyError()), ['ZODB.POSException.ReadOnlyError', []]);
  assert.deepEqual(errorToWire(withWireState(new StorageTransactionError('x'), [null, 42])), ['ZODB.POSException.StorageTransactionError', [null, 42]]);
  assert.deepEqual(errorToWire(new StorageTransactionError('Already voting (locked)')), ['ZODB.POSException.StorageTransactionError', ['Already voting (locked)']]);
  assert.deepEqual(errorToWire(new PythonError('builtins.ValueError', ['unknown storage: x'])), ['builtins.ValueError', ['unknown storage: x']]);
  assert.deepEqual(errorToWire(new UndoError('no', 1n)), ['ZODB.POSException.UndoError', { _reason: 'no', _oid: oid }]);
  const mu = errorToWire(new MultipleUndoErrors([new UndoError('a', 1n), new UndoError('b')]));
  assert.deepEqual(mu, ['ZODB.POSException.MultipleUndoErrors', { _reason: 'a', _oid: oid, _errs: [['a', oid], ['b', null]] }]);
  assert.ok(isPyList((mu[1] as Record<string, unknown>)['_errs']));
  assert.deepEqual(errorToWire(new Error('disk on fire')), ['ZODB.POSException.StorageError', ['Error: disk on fire']]);
  // the §16 vector 7 bytes come out of errorReply
  const frame = encodeFrame(new M5Codec().encode(errorReply(5, new ConflictError({ oid: 1n, serials: [T2, T1], className: 'persistent.mapping.PersistentMapping' }))));
  assert.equal(frame.toString('hex').slice(0, 8), '000000a8');
});

test('zeo5 §6.5 C-6: received error replies map back to local error classes; unknown classes to ServerException', () => {
  const ce = errorFromWire('ZODB.POSException.ConflictError', { message: 'database conflict error', oid, class_name: 'a.B', serials: [p64(T2), p64(T1)] });
  assert.ok(ce instanceof ConflictError && !(ce instanceof ReadConflictError));
  assert.equal((ce as ConflictError).oid, 1n);
  assert.deepEqual((ce as ConflictError).serials, [T2, T1]);
  assert.equal((ce as ConflictError).className, 'a.B');
  const rce = errorFromWire('ZODB.POSException.ReadConflictError', { message: 'database read conflict error', oid, class_name: null, serials: [p64(T2), p64(T1)] });
  assert.ok(rce instanceof ReadConflictError);
  const pk = errorFromWire('ZODB.POSException.POSKeyError', [oid]);
  assert.ok(pk instanceof POSKeyError && pk.oid === 1n);
  assert.ok(errorFromWire('ZODB.POSException.ReadOnlyError', []) instanceof ReadOnlyError);
  const ste = errorFromWire('ZODB.POSException.StorageTransactionError', [null, 5]);
  assert.ok(ste instanceof StorageTransactionError);
  assert.deepEqual(getWireState(ste), [null, 5]);
  assert.deepEqual(errorToWire(ste), ['ZODB.POSException.StorageTransactionError', [null, 5]]); // relays unchanged
  const ke = errorFromWire('builtins.KeyError', [3]);
  assert.ok(ke instanceof PythonError && ke.pythonClass === 'builtins.KeyError');
  const mu = errorFromWire('ZODB.POSException.MultipleUndoErrors', { _reason: 'a', _oid: oid, _errs: [['a', oid]] });
  assert.ok(mu instanceof MultipleUndoErrors);
  const se = errorFromWire('builtins.AttributeError', ["'ZEOStorage' object has no attribute 'new_oid'"]);
  assert.ok(se instanceof ServerException && se.remoteClass === 'builtins.AttributeError');
  assert.deepEqual(errorToWire(se), ['builtins.AttributeError', ["'ZEOStorage' object has no attribute 'new_oid'"]]);
  // a conflict error whose state is not a map cannot be built: generic server error, no crash
  assert.ok(errorFromWire('ZODB.POSException.ConflictError', ['x']) instanceof ServerException);
});

test('zeo5 §6.1 W-5/W-6: integer families, bigints, floats and rejects', () => {
  const h = (v: Parameters<typeof packValue>[0]) => packValue(v).toString('hex');
  assert.equal(h(0), '00');
  assert.equal(h(-1), 'ff');
  assert.equal(h(255), 'ccff');
  assert.equal(h(0xffffffff), 'ceffffffff');
  assert.equal(h(0x100000000), 'cf0000000100000000');
  assert.equal(h(2n ** 64n - 1n), 'cfffffffffffffffff');
  assert.equal(h(-(2n ** 63n)), 'd38000000000000000');
  assert.equal(h(5n), '05');
  assert.equal(h(-0x80000001), 'd3ffffffff7fffffff');
  assert.equal(h(1.5), 'cb3ff8000000000000');
  assert.equal(h(new PyFloat(2.5)), 'cb4004000000000000');
  // a Python float on a whole second (history/undoLog `time`) is still float 64, as Python writes it
  assert.equal(h(new PyFloat(1700000000)), 'cb41d954fc40000000');
  assert.equal(h([new PyFloat(3), 3, new PyFloat(-0)]), '93cb400800000000000003cb8000000000000000');
  const m5 = new M5Codec();
  const frame = m5.encode({ msgid: 1, flags: 0, method: 'x', args: [new PyFloat(3)] } as never);
  assert.ok(frame.toString('hex').endsWith('91cb4008000000000000'), frame.toString('hex'));
  assert.equal(unpackValue(Buffer.from('cfffffffffffffffff', 'hex')), 2n ** 64n - 1n);
  assert.equal(unpackValue(Buffer.from('cf00007f8ae79ab4cb', 'hex')), 140234567890123);
  assert.throws(() => packValue(2n ** 64n), RangeError);
  assert.throws(() => packValue(new Date() as never), TypeError);
  // extension types, bin map keys and trailing bytes are protocol errors
  assert.throws(() => unpackValue(Buffer.from('d6ff00000000', 'hex')), ProtocolError);
  assert.throws(() => unpackValue(Buffer.from('81c40161c0', 'hex')), ProtocolError);
  assert.throws(() => unpackValue(Buffer.from('c0c0', 'hex')), ProtocolError);
  assert.throws(() => unpackValue(Buffer.from('92', 'hex')), ProtocolError);
  assert.ok(wireEquals(pyList([1]), [1]) && !wireEquals(pyList([1]), [1], true));
});

test('zeo5 §5.2/§5.4: message classification and shape checks', () => {
  const c = new M5Codec();
  assert.ok(isOneWay(c.decode(c.encode({ msgid: 0, flags: true, method: 'storea', args: [] }))));
  assert.ok(!isOneWay(c.decode(c.encode({ msgid: 1, flags: false, method: 'vote', args: [] }))));
  assert.ok(isErrorReply({ msgid: 1, flags: 2, method: '.reply', args: ['x', []] }));
  assert.ok(!truthy(0) && !truthy(false) && truthy(2) && truthy(true));
  for (const bad of ['93010203', '940100a178910000', '9401c2019100', '9401c0a17890', '9401c2a178c0']) {
    assert.throws(() => c.decode(Buffer.from(bad, 'hex')), ProtocolError, bad);
  }
});

test('zeo5 S-12 §8.0: arity checks fail with builtins.TypeError worded like CPython 3.11', async () => {
  const { checkServerCallArity, SERVER_METHODS, CLIENT_METHODS } = await import('../src/index.ts');
  const msg = (m: string, a: unknown[]) => {
    try {
      checkServerCallArity(m, a as never);
      return null;
    } catch (e) {
      assert.ok(e instanceof PythonError && e.pythonClass === 'builtins.TypeError');
      return e.args[0];
    }
  };
  assert.equal(msg('register', ['1', 0, 'c']), 'ZEOStorage.register() takes 3 positional arguments but 4 were given');
  assert.equal(msg('register', ['1']), "ZEOStorage.register() missing 1 required positional argument: 'read_only'");
  assert.equal(msg('history', []), "ZEOStorage.history() missing 1 required positional argument: 'tid'");
  assert.equal(msg('history', [1, 2, 3]), 'ZEOStorage.history() takes from 2 to 3 positional arguments but 4 were given');
  assert.equal(msg('ping', [1]), 'ZEOStorage.ping() takes 1 positional argument but 2 were given');
  assert.equal(msg('storea', []), "ZEOStorage.storea() missing 4 required positional arguments: 'oid', 'serial', 'data', and 'id'");
  assert.equal(msg('storea', [1]), "ZEOStorage.storea() missing 3 required positional arguments: 'serial', 'data', and 'id'");
  assert.equal(msg('tpc_begin', [1, 2, 3, 4]), null);
  assert.equal(msg('tpc_begin', [1, 2, 3, 4, 5, 6]), null);
  assert.equal(msg('no_such', [1]), null);
  assert.equal(Object.keys(SERVER_METHODS).length, 36); // registered_methods (35) + register
  assert.deepEqual(Object.keys(CLIENT_METHODS), ['invalidateTransaction', 'info', 'receiveBlobStart', 'receiveBlobChunk', 'receiveBlobStop']);
});

test('zeo5 §13 S-31/C-5: the info map reproduces the recorded get_info reply; capabilities read back', async () => {
  const { infoMap, capabilitiesFromInfo, mergeInfo, clientInfoDefaults, interfacePairs } = await import('../src/index.ts');
  const fsCaps = { restore: true, iteration: true, undo: true, recordIteration: true, externalGC: true };
  const info = infoMap({ length: 0, size: 4, name: 'Data.fs' }, fsCaps);
  // the M5 get_info reply of m5-connect-and-create (seq 6), byte for byte
  const hex = new M5Codec().encode({ msgid: 2, flags: 0, method: '.reply', args: info }).toString('hex');
  assert.equal(hex, '940200a62e7265706c7986a66c656e67746800a473697a6504a46e616d65a7446174612e6673ac737570706f727473556e646fc3b8737570706f7274735f7265636f72645f697465726e657874c3aa696e74657266616365739792af5a4f44422e696e7465726661636573b34953746f72616765526573746f726561626c6592af5a4f44422e696e7465726661636573b14953746f72616765497465726174696f6e92af5a4f44422e696e7465726661636573b04953746f72616765556e646f61626c6592af5a4f44422e696e7465726661636573be4953746f7261676543757272656e745265636f7264497465726174696f6e92af5a4f44422e696e7465726661636573ab4945787465726e616c474392af5a4f44422e696e7465726661636573a84953746f7261676592ae7a6f70652e696e74657266616365a9496e74657266616365');
  const { Z5Codec } = await import('../src/index.ts');
  assert.equal(new Z5Codec().encode({ msgid: 2, flags: 0, method: '.reply', args: info }).toString('hex'), '8003284b024b0058060000002e7265706c797d2858060000006c656e6774684b00580400000073697a654b0458040000006e616d655807000000446174612e6673580c000000737570706f727473556e646f885818000000737570706f7274735f7265636f72645f697465726e65787488580a000000696e746572666163657328580f0000005a4f44422e696e746572666163657358130000004953746f72616765526573746f726561626c6586580f0000005a4f44422e696e746572666163657358110000004953746f72616765497465726174696f6e86580f0000005a4f44422e696e746572666163657358100000004953746f72616765556e646f61626c6586580f0000005a4f44422e696e7465726661636573581e0000004953746f7261676543757272656e745265636f7264497465726174696f6e86580f0000005a4f44422e696e7465726661636573580b0000004945787465726e616c474386580f0000005a4f44422e696e746572666163657358080000004953746f7261676586580e0000007a6f70652e696e746572666163655809000000496e74657266616365867475742e');
  assert.deepEqual(capabilitiesFromInfo(info), { ...fsCaps, blobs: false, blobRestore: false });
  assert.deepEqual(interfacePairs({ blobs: true, blobRestore: true }).slice(0, 2).map((p) => p[1]), ['IBlobStorageRestoreable', 'IBlobStorage']);
  assert.deepEqual(interfacePairs({}), [['ZODB.interfaces', 'IStorage'], ['zope.interface', 'Interface']]);
  const mine = mergeInfo(clientInfoDefaults(), info);
  mergeInfo(mine, { length: 1, size: 166 });
  assert.equal(mine['length'], 1);
  assert.equal(mine['name'], 'Data.fs');
});
