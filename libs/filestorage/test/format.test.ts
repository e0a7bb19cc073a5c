// Record codecs and the file reader against the vectors — filestorage §16 #3–#8, spec §17.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import {
  CorruptedError,
  FileReader,
  FileStorageFormatError,
  decodeDataHeader,
  decodeTxnHeader,
  encodeDataRecord,
  encodeTxnHeader,
  tidToUndoId,
  undoIdToTid,
} from '../src/index.ts';

const V = (f: string) => vectorsDir('filestorage', f);

test('filestorage §16 #3 #4 #7 #8: walk Data.fs forward and backward (§17 table)', { skip: vectorsSkip('filestorage') }, () => {
  const r = FileReader.open(V('Data.fs'));
  try {
    const size = r.size();
    assert.equal(size, 2471);
    const txns = [...r.transactions(4, size)];
    assert.deepEqual(
      txns.map((t) => [t.pos, t.tid.toString(16).padStart(16, '0')]),
      [
        [4, '03f58e0001111111'],
        [166, '03f58e0102222222'],
        [673, '03f58e0203333333'],
        [1210, '03f58e0300000000'],
        [1894, '03f58e0400000000'],
        [2135, '03f58e0500000000'],
        [2374, '03f58e0600000000'],
      ],
    );
    const back = [...r.transactionsBackward(size)].map((t) => t.pos);
    assert.deepEqual(back, [2374, 2135, 1894, 1210, 673, 166, 4]);
    for (let i = 1; i < txns.length; i++) assert.ok(txns[i]!.tid > txns[i - 1]!.tid);
    const t1 = r.readTxnMeta(txns[1]!);
    assert.equal(t1.user.toString(), 'alice');
    assert.equal(t1.description.toString(), 'create a and b');
    assert.equal(t1.extension.toString('hex'), '80037d7100580300000061707071015807000000766563746f72737102732e');
    // T4: backpointers 1->717, 2->431, 0->858, 4->0 (spec §17.3)
    const t4 = [...r.records(txns[4]!)];
    assert.deepEqual(t4.map((x) => [x.pos, Number(x.oid), x.prev, x.back, x.data]), [
      [1927, 1, 1265, 717, null],
      [1977, 2, 1406, 431, null],
      [2027, 0, 1516, 858, null],
      [2077, 4, 1760, 0, null],
    ]);
    for (const t of txns) for (const rec of r.records(t)) {
      assert.equal(rec.tid, t.tid); // #7
      assert.equal(rec.tloc, t.pos);
    }
    assert.equal(r.loadBack(1n, 717).data.length, 99);
  } finally {
    r.close();
  }
});

test('filestorage §16 #3 #5 #6: encoders reproduce the bytes of T0 (§17.1)', { skip: vectorsSkip('filestorage') }, () => {
  const file = readFileSync(V('Data.fs'));
  const h = encodeTxnHeader(0x03f58e0001111111n, 154, ' ', {
    user: Buffer.alloc(0),
    description: Buffer.from('initial database creation'),
    extension: Buffer.alloc(0),
  });
  assert.deepEqual(h, file.subarray(4, 52));
  const data = file.subarray(94, 158);
  assert.deepEqual(encodeDataRecord(0n, 0x03f58e0001111111n, 0, 4, Buffer.from(data)), file.subarray(52, 158));
  assert.deepEqual(encodeDataRecord(4n, 0x03f58e0400000000n, 1760, 1894, null, 0), file.subarray(2077, 2127));
  const th = decodeTxnHeader(file, 4);
  assert.equal(th.tlen, 154);
  assert.equal(th.status, ' ');
  const dh = decodeDataHeader(file, 52);
  assert.equal(dh.plen, 64);
  assert.throws(() => encodeTxnHeader(1n, 23, ' ', { user: Buffer.alloc(70000), description: Buffer.alloc(0), extension: Buffer.alloc(0) }), /user name too long/);
});

test('undo ids are base64(tid) without newline (spec §2.3)', () => {
  assert.equal(tidToUndoId(0x03f58e0600000000n).toString(), 'A/WOBgAAAAA=');
  assert.equal(undoIdToTid('A/WOBgAAAAA='), 0x03f58e0600000000n);
  assert.equal(undoIdToTid('nope'), null);
});

test('filestorage §16 #2: bad magic is a FileStorageFormatError', () => {
  const d = mkdtempSync(join(tmpdir(), 'fsfmt-'));
  writeFileSync(join(d, 'x.fs'), 'FS21xxxx');
  assert.throws(() => FileReader.open(join(d, 'x.fs')), FileStorageFormatError);
  writeFileSync(join(d, 'y.fs'), 'GARBAGE');
  assert.throws(() => FileReader.open(join(d, 'y.fs')), /invalid file header/);
});

test('corrupt bytes give errors naming file and position', { skip: vectorsSkip('filestorage') }, () => {
  const d = mkdtempSync(join(tmpdir(), 'fsfmt-'));
  const p = join(d, 'Data.fs');
  copyFileSync(V('Data.fs'), p);
  const b = readFileSync(p);
  b.writeUInt32BE(0, 1902 + 4); // damage T4's tlen
  b.writeUInt32BE(0x10, 1902 + 4);
  writeFileSync(p, b);
  const r = FileReader.open(p);
  try {
    assert.throws(() => [...r.transactions(4, b.length)], (e: unknown) => e instanceof CorruptedError && e.message.includes(p) && /at 1894/.test(e.message));
    assert.deepEqual([...r.transactions(4, b.length, 'lenient')].length, 4);
    // a backpointer chain that loops / goes forward
    const c = readFileSync(V('Data.fs'));
    c.writeUInt32BE(2500, 1969 + 4); // T4 oid1 back -> past itself
    writeFileSync(p, c);
    assert.throws(() => r.readRecord(1927), /backpointer 2500 does not point before the record.*|at 1927/);
  } finally {
    r.close();
  }
});
