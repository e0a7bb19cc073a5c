// The test-record builder makes real ZODB records (filestorage spec §4.1, §4.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { getPickleMetadata, referencesf } from '@zeo-ts/pickle';
import { ROOT_RECORD, expectedRefs, makeRecord, vectorsDir, vectorsSkip, type RecordSpec } from '../src/testing/index.ts';

test('ROOT_RECORD is the 64-byte root record of the vector Data.fs at 94 (filestorage §4.1, §17.1)', { skip: vectorsSkip('filestorage', 'Data.fs') }, () => {
  const file = readFileSync(vectorsDir('filestorage', 'Data.fs'));
  assert.equal(ROOT_RECORD.length, 64);
  assert.deepEqual(ROOT_RECORD, file.subarray(94, 158));
  assert.deepEqual(makeRecord(), ROOT_RECORD, 'an empty makeRecord() is the root record');
});

const specs: RecordSpec[] = [
  {},
  { refs: [1n, 2n], value: 'two refs' },
  { bareRefs: [0x0102030405060708n] },
  { refs: [3n], bareRefs: [4n], weakRefs: [5n], crossRefs: [{ database: 'other', oid: 6n }], value: 'mixed' },
  { weakRefs: [7n, 8n], crossRefs: [{ database: 'x', oid: 9n }] },
  { module: 'BTrees.OOBTree', name: 'OOBTree', refs: [10n] },
];

test('referencesf of built records gives the strong refs only, in order (filestorage §4.3, §16 #43)', () => {
  for (const spec of specs) assert.deepEqual(referencesf(makeRecord(spec)), expectedRefs(spec), JSON.stringify(spec, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
});

test('getPickleMetadata of built records names the class (filestorage §4.4)', () => {
  assert.deepEqual(getPickleMetadata(makeRecord({ value: 'x' })), { module: 'persistent.mapping', name: 'PersistentMapping' });
  assert.deepEqual(getPickleMetadata(makeRecord({ module: 'BTrees.OOBTree', name: 'OOBTree' })), { module: 'BTrees.OOBTree', name: 'OOBTree' });
});

test('makeRecord refuses class names with newlines', () => {
  assert.throws(() => makeRecord({ name: 'a\nb' }), RangeError);
});
