// zeo5 §16/§17.1: the M5 codec against every frame recorded between the real Python ZEO
// client and server (W-1, W-3, W-4, W-5, W-6, W-7), plus the §16 hex vectors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vectorsSkip } from '@zeo-ts/storage/testing';
import {
  M5Codec, FrameDecoder, encodeFrame, wireEquals, shortRepr, announcement, parseClientHandshake, clientAnswer,
  encodeRuokReply, decodeRuokReply, type Message,
} from '../src/index.ts';
import { fromRendering, payloadOf, zeo5Files } from './helpers.ts';

const skip = vectorsSkip('zeo5');

function expectedMessage(d: Record<string, unknown>): Message {
  return {
    msgid: fromRendering(d['msgid']),
    flags: d['flags'] as boolean | number,
    method: d['method'] as string,
    args: fromRendering(d['args']),
  };
}

test('zeo5 W-3/W-4/W-5/W-6/W-7: every recorded M5 frame decodes to its logged value and re-encodes byte for byte', { skip }, () => {
  const codec = new M5Codec();
  let messages = 0;
  let handshakes = 0;
  let statuses = 0;
  const files = zeo5Files('m5');
  assert.equal(files.length, 12);
  for (const { name, data } of files) {
    assert.equal(data.encoding, 'M5');
    for (const f of data.frames) {
      const where = `${name} seq ${f.seq}`;
      const payload = payloadOf(f);
      if ('handshake' in f.decoded) {
        const h = f.decoded['handshake'] as string;
        assert.equal(payload.toString('latin1'), h, where);
        if (f.dir === 's2c') {
          assert.deepEqual(announcement('M'), payload, where);
          assert.deepEqual(clientAnswer(payload).answer, payload, where); // client mirrors (C-1)
        } else {
          const parsed = parseClientHandshake(payload);
          assert.equal(parsed.kind, h === 'ruok' ? 'ruok' : 'protocol', where);
        }
        handshakes++;
        continue;
      }
      if ('status_json' in f.decoded) {
        assert.deepEqual(decodeRuokReply(payload), f.decoded['status_json'], where);
        // our Python-style JSON formatting reproduces the reference bytes (S-3)
        assert.deepEqual(encodeRuokReply(f.decoded['status_json'] as Record<string, Record<string, unknown>>), payload, where);
        statuses++;
        continue;
      }
      const expected = expectedMessage(f.decoded);
      const got = codec.decode(payload);
      assert.ok(wireEquals(got.msgid, expected.msgid), `${where}: msgid ${shortRepr(got.msgid)}`);
      assert.ok(wireEquals(got.flags, expected.flags), `${where}: flags ${String(got.flags)}`);
      assert.equal(got.method, expected.method, where);
      assert.ok(wireEquals(got.args, expected.args), `${where}: args ${shortRepr(got.args)} != ${shortRepr(expected.args)}`);
      const again = codec.encode(expected);
      assert.equal(again.toString('hex'), payload.toString('hex'), `${where}: re-encoding differs`);
      // and re-encoding what we decoded gives the same bytes (round trip)
      assert.equal(codec.encode(got).toString('hex'), payload.toString('hex'), `${where}: round trip differs`);
      messages++;
    }
  }
  assert.ok(messages > 400, `checked ${messages} messages`);
  assert.ok(handshakes > 20 && statuses >= 2);
});

test('zeo5 W-1: a whole recorded session streamed through FrameDecoder in odd-sized chunks yields every frame', { skip }, () => {
  for (const { name, data } of zeo5Files('m5')) {
    // both directions of connection A tcp 1, as the bytes would arrive on each side
    for (const dir of ['c2s', 's2c'] as const) {
      const frames = data.frames.filter((f) => f.conn === 'A' && f.tcp === 1 && f.dir === dir);
      const stream = Buffer.concat(frames.map((f) => Buffer.from(f.hex, 'hex')));
      for (const step of [1, 3, 7, 64, stream.length]) {
        const dec = new FrameDecoder();
        const got: Buffer[] = [];
        for (let i = 0; i < stream.length; i += step) got.push(...dec.push(stream.subarray(i, i + step)));
        assert.equal(got.length, frames.length, `${name} ${dir} step ${step}`);
        got.forEach((p, i) => assert.equal(encodeFrame(p).toString('hex'), frames[i]!.hex));
        assert.equal(dec.pendingBytes, 0);
      }
    }
  }
});

// zeo5 §16 vectors 1-10, checked independently of the session files (W-3)
const T1 = Buffer.from('03f58e0000000000', 'hex');
const T2 = Buffer.from('03f58e0100000000', 'hex');
const oid = Buffer.from('0000000000000001', 'hex');
const maxtid = Buffer.from('7fffffffffffffff', 'hex');
const txnid = 140234567890123;
const REC = Buffer.from('REC1');

const section16: [string, Message, string][] = [
  ['vector 2 register', { msgid: 1, flags: false, method: 'register', args: ['1', false] }, '000000109401c2a8726567697374657292a131c2'],
  ['vector 2 reply', { msgid: 1, flags: 0, method: '.reply', args: T1 }, '00000014940100a62e7265706c79c40803f58e0000000000'],
  ['vector 3 loadBefore', { msgid: [oid, maxtid], flags: false, method: 'loadBefore', args: [oid, maxtid] },
    '000000379492c4080000000000000001c4087fffffffffffffffc2aa6c6f61644265666f726592c4080000000000000001c4087fffffffffffffff'],
  ['vector 3 reply', { msgid: [oid, maxtid], flags: 0, method: '.reply', args: [REC, T1, null] },
    '000000309492c4080000000000000001c4087fffffffffffffff00a62e7265706c7993c40452454331c40803f58e0000000000c0'],
  ['vector 4 POSKeyError', { msgid: [oid, maxtid], flags: 2, method: '.reply', args: ['ZODB.POSException.POSKeyError', [oid]] },
    '000000489492c4080000000000000001c4087fffffffffffffff02a62e7265706c7992bd5a4f44422e504f53457863657074696f6e2e504f534b65794572726f7291c4080000000000000001'],
  ['vector 5 tpc_begin', { msgid: 0, flags: true, method: 'tpc_begin', args: [txnid, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' '] },
    '0000001f9400c3a97470635f626567696e96cf00007f8ae79ab4cbc400c40080c0a120'],
  ['vector 5 storea', { msgid: 0, flags: true, method: 'storea', args: [oid, T1, REC, txnid] },
    '0000002e9400c3a673746f72656194c4080000000000000001c40803f58e0000000000c40452454331cf00007f8ae79ab4cb'],
  ['vector 6 vote', { msgid: 5, flags: false, method: 'vote', args: [txnid] }, '000000129405c2a4766f746591cf00007f8ae79ab4cb'],
  ['vector 6 reply', { msgid: 5, flags: 0, method: '.reply', args: [] }, '0000000b940500a62e7265706c7990'],
  ['vector 7 ConflictError', { msgid: 5, flags: 2, method: '.reply', args: ['ZODB.POSException.ConflictError', {
    message: 'database conflict error', oid, class_name: 'persistent.mapping.PersistentMapping', serials: [T2, T1] }] },
  '000000a8940502a62e7265706c7992bf5a4f44422e504f53457863657074696f6e2e436f6e666c6963744572726f7284a76d657373616765b7646174616261736520636f6e666c696374206572726f72a36f6964c4080000000000000001aa636c6173735f6e616d65d92470657273697374656e742e6d617070696e672e50657273697374656e744d617070696e67a773657269616c7392c40803f58e0100000000c40803f58e0000000000'],
  ['vector 8 ccr vote reply', { msgid: 5, flags: 0, method: '.reply', args: [{ oid, serials: [T2, T1], data: REC }] },
    '00000042940500a62e7265706c799183a36f6964c4080000000000000001a773657269616c7392c40803f58e0100000000c40803f58e0000000000a464617461c40452454331'],
  ['vector 9 invalidateTransaction', { msgid: 0, flags: true, method: 'invalidateTransaction', args: [T2, [oid]] },
    '0000002f9400c3b5696e76616c69646174655472616e73616374696f6e92c40803f58e010000000091c4080000000000000001'],
  ['vector 9 info', { msgid: 0, flags: true, method: 'info', args: [{ length: 1, size: 166 }] }, '000000199400c3a4696e666f9182a66c656e67746801a473697a65cca6'],
  ['vector 10 heartbeat', { msgid: -1, flags: 0, method: '.reply', args: null }, '0000000b94ff00a62e7265706c79c0'],
];

for (const [label, msg, hex] of section16) {
  test(`zeo5 §16 ${label} (W-3)`, () => {
    const codec = new M5Codec();
    assert.equal(encodeFrame(codec.encode(msg)).toString('hex'), hex);
    const back = codec.decode(Buffer.from(hex, 'hex').subarray(4));
    assert.ok(wireEquals(back.args, msg.args) && wireEquals(back.msgid, msg.msgid) && back.flags === msg.flags && back.method === msg.method);
  });
}

test('zeo5 §16 vector 1: handshake frames', () => {
  assert.equal(encodeFrame(announcement('M')).toString('hex'), '000000024d35');
  assert.equal(encodeFrame(clientAnswer(announcement('M')).answer).toString('hex'), '000000024d35');
  assert.equal(encodeFrame(Buffer.from('ruok')).toString('hex'), '0000000472756f6b');
});

test('zeo5 §6.1 map order: M5 keeps the wire order of integer-like keys through decode and re-encode', async () => {
  const { mapKeys, toOrderedMap, unpackValue, packValue } = await import('../src/index.ts');
  // msgpack.packb((0, True, 'tpc_begin', (1, b'', b'', {'2': 1, '1': {'9': 0, '8': 1}, 'a': 3}, None, ' ')), use_bin_type=True)
  const codec = new M5Codec();
  const msg: Message = { msgid: 0, flags: true, method: 'tpc_begin', args: [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' '] };
  const hex = '9400c3a97470635f626567696e9601c400c40083a13201a13182a13900a13801a16103c0a120';
  const m = codec.decode(Buffer.from(hex, 'hex'));
  const ext = (m.args as never[])[3] as Record<string, unknown>;
  assert.deepEqual(mapKeys(ext as never), ['2', '1', 'a']);
  assert.deepEqual(mapKeys(ext['1'] as never), ['9', '8']);
  assert.deepEqual([...toOrderedMap(ext as never).keys()], ['2', '1', 'a']);
  assert.equal(codec.encode(m).toString('hex'), hex);
  assert.equal(packValue(unpackValue(Buffer.from('82a132c0a131c0', 'hex'))).toString('hex'), '82a132c0a131c0');
  void msg;
});
