// Codec tests: framing (zrs §14 #1, #2), pickled messages (#29), running checksum (#26, #27).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MessageTooLarge, RunningChecksum, SizedMessageDecoder, decodeMessage, encodeC, encodeS, encodeSized, encodeT, encodeFrame, decodeFrame } from '../src/index.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const TID = 0x036c6b90f3333333n;
const S_105 = hex(`28 58 01 00 00 00 53 28 63 5f 63 6f 64 65 63 73 0a 65 6e 63 6f 64 65 0a
28 58 08 00 00 00 00 00 00 00 00 00 00 00 58 06 00 00 00 6c 61 74 69 6e
31 74 52 63 5f 63 6f 64 65 63 73 0a 65 6e 63 6f 64 65 0a 28 58 0a 00 00
00 03 6c 6b c2 90 c3 b3 33 33 33 58 06 00 00 00 6c 61 74 69 6e 31 74 52
58 00 00 00 00 4e 74 74 2e`);
const T_144 = hex(`28 58 01 00 00 00 54 28 63 5f 63 6f 64 65 63 73 0a 65 6e 63 6f 64 65 0a
28 58 0a 00 00 00 03 6c 6b c2 90 c3 b3 33 33 33 58 06 00 00 00 6c 61 74
69 6e 31 74 52 58 01 00 00 00 20 63 5f 5f 62 75 69 6c 74 69 6e 5f 5f 0a
62 79 74 65 73 0a 29 52 63 5f 63 6f 64 65 63 73 0a 65 6e 63 6f 64 65 0a
28 58 19 00 00 00 69 6e 69 74 69 61 6c 20 64 61 74 61 62 61 73 65 20 63
72 65 61 74 69 6f 6e 58 06 00 00 00 6c 61 74 69 6e 31 74 52 7d 74 74 2e`);
const C_70 = hex(`28 58 01 00 00 00 43 28 63 5f 63 6f 64 65 63 73 0a 65 6e 63 6f 64 65 0a
28 58 18 00 00 00 5e c3 b1 3c c3 a4 c2 bf 0c c3 81 01 c2 b5 c3 98 59 32
c2 90 49 c3 bb 18 58 06 00 00 00 6c 61 74 69 6e 31 74 52 74 74 2e`);
const DATA_64 = hex(`80 03 63 70 65 72 73 69 73 74 65 6e 74 2e 6d 61 70 70 69 6e 67 0a 50 65
72 73 69 73 74 65 6e 74 4d 61 70 70 69 6e 67 0a 71 00 2e 80 03 7d 71 01
58 04 00 00 00 64 61 74 61 71 02 7d 71 03 73 2e`);

test('zrs §14 #29: T, S and C are the canonical protocol-1 pickles of spec §6.8', () => {
  assert.deepEqual(encodeS(0n, TID, null), S_105);
  assert.deepEqual(encodeT(TID, ' ', Buffer.alloc(0), Buffer.from('initial database creation'), new Map()), T_144);
  assert.deepEqual(encodeC(hex('5ef13ce4bf0cc101b5d859329049fb18')), C_70);
  assert.deepEqual(encodeC(null), hex('28 58 01 00 00 00 43 29 74 2e'));
});

test('zrs §14 #26, #27, #29: running MD5 of the §6.7 example', () => {
  const sum = new RunningChecksum(Buffer.alloc(8));
  for (const p of [T_144, S_105, DATA_64]) sum.update(p);
  assert.equal(sum.digest().toString('hex'), '5ef13ce4bf0cc101b5d859329049fb18');
  sum.update(C_70);
  assert.equal(sum.digest().toString('hex'), '0432dc1fcc6eaa7d312c1a3be00f7ada');
  assert.equal(createHash('md5').update(Buffer.alloc(8)).digest('hex'), '7dea362b3fac8e00956a4952a3d4f474');
});

test('zrs §14 #29: decoding round-trips T/S/C and rejects junk', () => {
  const t = decodeMessage(T_144);
  assert.equal(t.type, 'T');
  if (t.type === 'T') {
    assert.equal(t.tid, TID);
    assert.equal(t.status, ' ');
    assert.equal(t.description.toString(), 'initial database creation');
    assert.equal(t.extension.size, 0);
  }
  assert.deepEqual(decodeMessage(S_105), { type: 'S', oid: 0n, tid: TID, version: '', dataTxn: null });
  assert.deepEqual(decodeMessage(C_70), { type: 'C', checksum: hex('5ef13ce4bf0cc101b5d859329049fb18') });
  assert.deepEqual(decodeMessage(encodeC(null)), { type: 'C', checksum: null });
  assert.throws(() => decodeMessage(Buffer.from('xx')));
  // a global other than _codecs.encode / bytes in a field position is refused, never executed
  const evil = Buffer.from("(X\x01\x00\x00\x00S(cos\nsystem\n(X\x02\x00\x00\x00idtRNNNtt.", 'latin1');
  assert.throws(() => decodeMessage(evil));
});

test('zrs §14 #1, #2: sized messages reassemble from any fragmentation, several per read', () => {
  const payloads = [Buffer.from('zrs2.0'), Buffer.alloc(0), Buffer.alloc(8, 1), Buffer.alloc(300, 7)];
  const wire = Buffer.concat(payloads.map(encodeSized));
  assert.deepEqual(encodeSized(Buffer.from('zrs2.0')), hex('00 00 00 06 7a 72 73 32 2e 30'));
  for (const step of [1, 2, 3, 4, 8, 16, 1000]) {
    const d = new SizedMessageDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...d.push(wire.subarray(i, i + step)));
    assert.deepEqual(got, payloads, `step ${step}`);
    assert.equal(d.pending, 0);
  }
});

test('zrs §14 #3: a length prefix above the limit is refused before its payload arrives', () => {
  const d = new SizedMessageDecoder(8);
  assert.deepEqual(d.push(encodeSized(Buffer.from('zrs2.0'))), [Buffer.from('zrs2.0')]);
  assert.throws(() => d.push(hex('00 00 00 0f')), (e: unknown) => e instanceof MessageTooLarge && e.message === 'message too large: (8, 15)');
});

test('native channel: frames round-trip; a corrupted transaction fails its per-transaction checksum', () => {
  const txn = { tid: TID, status: ' ', user: Buffer.from('u'), description: Buffer.from('d'), extension: Buffer.alloc(0), records: [{ oid: 1n, tid: TID, data: Buffer.from('abc'), dataTxn: null }, { oid: 2n, tid: TID, data: null, dataTxn: 5n }], endPos: 123 };
  const enc = encodeFrame({ kind: 'txn', txn });
  assert.deepEqual(decodeFrame(enc), { kind: 'txn', txn });
  const i = enc.indexOf(Buffer.from('abc'));
  const bad = Buffer.from(enc);
  bad[i] = 0x41;
  assert.throws(() => decodeFrame(bad), /checksum mismatch/);
  assert.deepEqual(decodeFrame(encodeFrame({ kind: 'ack', tid: 7n })), { kind: 'ack', tid: 7n });
});
