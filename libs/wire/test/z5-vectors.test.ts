// zeo5 §7 / W-9: the Z5 codec against every frame recorded between the real Python ZEO client
// and server in pickle mode (decode; re-encode byte for byte; tuple/list fidelity §7.4), and the
// §7.5 examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vectorsSkip } from '@zeo-ts/storage/testing';
import {
  Z5Codec, encodeFrame, wireEquals, shortRepr, isPyList, pyList, unpickleValue, pickleValue, ProtocolError, PyOpaque,
  PyFloat, type Message,
} from '../src/index.ts';
import { fromRendering, payloadOf, zeo5Files } from './helpers.ts';

const skip = vectorsSkip('zeo5');

/** §7.2: the opcodes a Z5 encoder may emit (walked with their argument lengths). */
function opcodesOf(p: Buffer): string[] {
  const ops: string[] = [];
  let i = 0;
  const fixed: Record<number, number> = { 0x80: 1, 0x4b: 1, 0x4d: 2, 0x4a: 4, 0x47: 8 };
  while (i < p.length) {
    const op = p[i++]!;
    ops.push(op.toString(16));
    if (op in fixed) i += fixed[op]!;
    else if (op === 0x8a) i += 1 + p[i]!;
    else if (op === 0x58 || op === 0x42) i += 4 + p.readUInt32LE(i);
    else if (op === 0x43) i += 1 + p[i]!;
    else if (op === 0x2e) break;
  }
  return ops;
}
const ALLOWED = new Set(['80', '4e', '88', '89', '4b', '4d', '4a', '8a', '47', '58', '43', '42', '29', '85', '86', '87', '28', '74', '5d', '61', '65', '7d', '73', '75', '2e']);

test('zeo5 W-9 §7.4: every recorded Z5 frame decodes to its logged value (tuples vs lists) and re-encodes byte for byte', { skip }, () => {
  const codec = new Z5Codec();
  let messages = 0;
  const files = zeo5Files('z5');
  assert.equal(files.length, 12);
  for (const { name, data } of files) {
    assert.equal(data.encoding, 'Z5');
    for (const f of data.frames) {
      const where = `${name} seq ${f.seq}`;
      if ('handshake' in f.decoded || 'status_json' in f.decoded) continue; // encoding-independent (m5-vectors.test.ts)
      const payload = payloadOf(f);
      const expected: Message = {
        msgid: fromRendering(f.decoded['msgid']),
        flags: f.decoded['flags'] as boolean | number,
        method: f.decoded['method'] as string,
        args: fromRendering(f.decoded['args']),
      };
      const got = codec.decode(payload);
      assert.ok(wireEquals(got.msgid, expected.msgid, true), `${where}: msgid ${shortRepr(got.msgid)}`);
      assert.equal(got.flags, expected.flags, where);
      assert.equal(got.method, expected.method, where);
      assert.ok(wireEquals(got.args, expected.args, true), `${where}: args ${shortRepr(got.args)} != ${shortRepr(expected.args)}`);
      assert.equal(codec.encode(expected).toString('hex'), payload.toString('hex'), `${where}: re-encoding differs`);
      assert.equal(codec.encode(got).toString('hex'), payload.toString('hex'), `${where}: round trip differs`);
      for (const op of opcodesOf(payload)) assert.ok(ALLOWED.has(op), `${where}: opcode ${op}`);
      messages++;
    }
  }
  assert.ok(messages > 400, `checked ${messages} messages`);
});

const oid1 = Buffer.from('0000000000000001', 'hex');

test('zeo5 §7.5 W-9: the three Z5 examples byte for byte', () => {
  const c = new Z5Codec();
  const reg = encodeFrame(c.encode({ msgid: 1, flags: false, method: 'register', args: ['1', false] }));
  assert.equal(reg.toString('hex'), '0000001d' + '8003284b01895808000000726567697374657258010000003189' + '86742e');
  const hb = encodeFrame(c.encode({ msgid: -1, flags: 0, method: '.reply', args: null }));
  assert.equal(hb.toString('hex'), '00000018' + '8003284affffffff4b0058060000002e7265706c794e742e');
  const err = encodeFrame(c.encode({ msgid: 5, flags: 2, method: '.reply', args: ['ZODB.POSException.POSKeyError', [oid1]] }));
  assert.equal(err.toString('hex'), '00000042' + '8003284b054b0258060000002e7265706c79'
    + '581d0000005a4f44422e504f53457863657074696f6e2e504f534b65794572726f72' + '4308000000000000000185' + '86742e');
  // decode back
  const back = c.decode(err.subarray(4));
  assert.ok(wireEquals(back.args, ['ZODB.POSException.POSKeyError', [oid1]], true));
});

test('zeo5 §7.2: integer, float, bytes and container opcodes as the reference writes them', () => {
  const h = (v: Parameters<typeof pickleValue>[0]) => pickleValue(v).toString('hex').slice(4, -2);
  assert.equal(h(-1), '4affffffff');
  assert.equal(h(140234567890123), '8a06cbb49ae78a7f');
  assert.equal(h(0x80000000), '8a050000008000');
  assert.equal(h(2n ** 64n - 1n), '8a09ffffffffffffffff00');
  assert.equal(h(1.5), '473ff8000000000000');
  assert.equal(h(new PyFloat(2)), '474000000000000000');
  assert.equal(h(Buffer.alloc(300)).slice(0, 10), '422c010000');
  assert.equal(h([]), '29');
  assert.equal(h(pyList([])), '5d');
  assert.equal(h(pyList([1])), '5d4b0161');
  assert.equal(h(pyList([1, 2])), '5d284b014b0265');
  assert.equal(h({}), '7d');
  assert.equal(h({ a: 1 }), '7d5801000000614b0173');
  assert.equal(h([1, 2, 3, 4]), '284b014b024b034b0474');
  assert.ok(isPyList(unpickleValue(pickleValue(pyList([1])))));
  assert.ok(!isPyList(unpickleValue(pickleValue([1]))));
});

test('zeo5 §7.2 decoder: memo opcodes, PROTO 2 and the ZEO 5.0 protocol-1 heartbeat are accepted', () => {
  const c = new Z5Codec();
  // ZEO 5.0 heartbeat: (-1, 0, '.reply', None) as a protocol-1 pickle with SHORT_BINSTRING
  const m = c.decode(Buffer.from('284affffffff4b0055062e7265706c794e742e', 'hex'));
  assert.deepEqual(m, { msgid: -1, flags: 0, method: '.reply', args: null });
  // PROTO 2 with BINPUT/BINGET (Python's default pickler with memo): (1, False, 'abc', ('abc', 'abc'))
  const memo = c.decode(Buffer.from('8002284b018958030000006162637100680068008671017471022e', 'hex'));
  assert.deepEqual(memo, { msgid: 1, flags: false, method: 'abc', args: ['abc', 'abc'] });
});

test('zeo5 §7.3: globals outside the allowlist are protocol errors; allowed ones pass opaquely', () => {
  // (0, True, 'x', (posix.system,)) as Python pickles it (GLOBAL 'posix system')
  const bad = Buffer.from('8003284b0088580100000078710063706f7369780a73797374656d0a71018571027471032e', 'hex');
  assert.throws(() => new Z5Codec().decode(bad), (e: unknown) => e instanceof ProtocolError && /posix\.system/.test((e as Error).message));
  // an exception instance of a non-allowed module (_pickle.PickleError)
  const exc = Buffer.from('8003284b00885801000000787100635f7069636b6c650a5069636b6c654572726f720a710158010000006171028571035271048571057471062e', 'hex');
  assert.throws(() => new Z5Codec().decode(exc), ProtocolError);
  // (0, True, 'x', ({1},)): builtins.set is allowed and arrives opaquely
  const ok = Buffer.from('8003284b00885801000000787100636275696c74696e730a7365740a71015d71024b01618571035271048571057471062e', 'hex');
  const m = new Z5Codec().decode(ok);
  assert.ok(Array.isArray(m.args) && m.args[0] instanceof PyOpaque);
  // re-encodable in Z5
  assert.doesNotThrow(() => new Z5Codec().encode(m));
  // trailing garbage after STOP, non-tuples, lists as the message: protocol errors
  assert.throws(() => new Z5Codec().decode(Buffer.concat([pickleValue([1, false, 'x', []]), Buffer.from('00', 'hex')])), ProtocolError);
  assert.throws(() => new Z5Codec().decode(pickleValue(pyList([1, false, 'x', []]))), ProtocolError);
  assert.throws(() => new Z5Codec().decode(pickleValue({ a: 1 })), ProtocolError);
  assert.throws(() => new Z5Codec().decode(Buffer.from('8003', 'hex')), ProtocolError);
});

test('zeo5 §7.2 dict order: Z5 keeps the wire order of integer-like keys (transaction extensions stay byte-identical)', async () => {
  const { toOrderedMap, mapKeys } = await import('../src/index.ts');
  // (0, True, 'tpc_begin', (1, b'', b'', {'2': 1, '1': 2, 'a': 3}, None, ' ')) as ZEO's fast pickler writes it
  const hex = '8003284b008858090000007470635f626567696e284b01430043007d285801000000324b015801000000314b025801000000614b03754e58010000002074742e';
  const c = new Z5Codec();
  const m = c.decode(Buffer.from(hex, 'hex'));
  const ext = (m.args as Record<string, unknown>[])[3]!;
  assert.deepEqual(Object.keys(ext), ['1', '2', 'a']); // JavaScript's own order
  assert.deepEqual(mapKeys(ext as never), ['2', '1', 'a']); // the wire order, remembered
  assert.deepEqual([...toOrderedMap(ext as never).keys()], ['2', '1', 'a']);
  assert.equal(c.encode(m).toString('hex'), hex);
});
