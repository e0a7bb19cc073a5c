// Transaction extensions: filestorage spec §3.3 (exact Python bytes of {"app": "vectors"}).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeExtension, encodeExtension } from '../src/index.ts';
import { hex } from './helpers.ts';

const APP_VECTORS = hex('80 03 7d 71 00 58 03 00 00 00 61 70 70 71 01 58 07 00 00 00 76 65 63 74 6f 72 73 71 02 73 2e');

test('filestorage §16 #11, §3.3: encodeExtension gives Python bytes; {} is empty', () => {
  assert.deepEqual(encodeExtension({ app: 'vectors' }), APP_VECTORS);
  assert.equal(encodeExtension({}).length, 0);
  assert.equal(encodeExtension(new Map() as unknown as Record<string, unknown>).length, 0);
});

test('filestorage §3.3: decodeExtension of Python bytes, empty, and Python 2 strings', () => {
  assert.deepEqual(decodeExtension(APP_VECTORS), { app: 'vectors' });
  assert.deepEqual(decodeExtension(Buffer.alloc(0)), {});
  // protocol-1 dict written by Python 2: {'user': 'bob', 'raw': '\xff'} with SHORT_BINSTRING:
  // ASCII strings decode to text, the non-ASCII one stays bytes (encoding='ASCII', errors='bytes').
  const py2 = hex('7d 71 00 28 55 04 75736572 71 01 55 03 626f62 71 02 55 03 726177 71 03 55 01 ff 71 04 75 2e');
  assert.deepEqual(decodeExtension(py2), { user: 'bob', raw: Buffer.from([0xff]) });
});

test('decodeExtension refuses a pickle that is not a dict', () => {
  assert.throws(() => decodeExtension(hex('80 03 4e 2e')), /not a pickled dict/);
});
