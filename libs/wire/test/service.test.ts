// Our protobuf service channel (architecture rule 6; zrs acknowledgements and lag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeServiceMessage, decodeServiceMessage, lagSeconds, encodeFrame, FrameDecoder, ProtocolError, type ServiceMessage,
} from '../src/index.ts';

const T1 = 0x03f58e0000000000n; // 2024-01-01 00:00
const T2 = 0x03f58e0100000000n; // 2024-01-01 00:01

test('service: every message kind round-trips, 64-bit tids exactly, inside sized frames', () => {
  const msgs: ServiceMessage[] = [
    { kind: 'hello', hello: { service: 'zrs-ack', version: 1, peer: 'secondary-1' } },
    { kind: 'ack', ack: { storage: '1', replica: 'secondary-1', tid: 0xffffffffffffffffn, appliedAtMs: 1795306320077 } },
    { kind: 'lag', lag: { storage: '1', replica: 's', primaryTid: T2, replicaTid: T1, lagSeconds: 60, reportedAtMs: 1 } },
    { kind: 'heartbeat', heartbeat: { sentAtMs: 0 } },
  ];
  const stream = Buffer.concat(msgs.map((m) => encodeFrame(encodeServiceMessage(m))));
  const back = new FrameDecoder().push(stream).map(decodeServiceMessage);
  assert.deepEqual(back, msgs);
  // fixed64 tid on the wire: field 3, wire type 1, little-endian
  const ack = encodeServiceMessage(msgs[1]!);
  assert.ok(ack.includes(Buffer.from('19ffffffffffffffff', 'hex')));
});

test('service: bad input is a ProtocolError; bad values are refused before encoding', () => {
  assert.throws(() => decodeServiceMessage(Buffer.from('ff', 'hex')), ProtocolError);
  assert.throws(() => decodeServiceMessage(Buffer.alloc(0)), ProtocolError); // no body
  assert.throws(() => encodeServiceMessage({ kind: 'ack', ack: { storage: '1', replica: 'r', tid: -1n, appliedAtMs: 0 } }), RangeError);
  assert.throws(() => encodeServiceMessage({ kind: 'heartbeat', heartbeat: { sentAtMs: 1.5 } }), RangeError);
});

test('service: lag is the TimeStamp time difference, never negative', () => {
  assert.equal(lagSeconds(T2, T1), 60);
  assert.equal(lagSeconds(T1, T2), 0);
  assert.equal(lagSeconds(T1, T1), 0);
});
