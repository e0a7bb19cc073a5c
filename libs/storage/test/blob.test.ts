// blob.ts: layouts, file names, the marker and its automatic selection, read-only files,
// is_blob_record (filestorage §13, §4.5, §16 #55).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BLOB_RECORD,
  BUSHY_LAYOUT,
  BlobDirectory,
  LAWN_LAYOUT,
  StorageError,
  autoLayoutSelect,
  getBlobLayout,
  isBlobRecord,
  registerBlobLayout,
  renameOrCopyBlob,
  reprToId,
  tidRepr,
} from '../src/index.ts';
import { ROOT_RECORD, makeRecord } from '../src/testing/index.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'blobdir-'));

test('filestorage §13 #55: bushy and lawn oid paths, tid_repr file names, and their inverses', () => {
  assert.equal(BUSHY_LAYOUT.oidToPath(1n), '0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01');
  assert.equal(BUSHY_LAYOUT.oidToPath(0x0102030405060708n), '0x01/0x02/0x03/0x04/0x05/0x06/0x07/0x08');
  assert.equal(BUSHY_LAYOUT.pathToOid('0x01/0x02/0x03/0x04/0x05/0x06/0x07/0x08'), 0x0102030405060708n);
  assert.equal(BUSHY_LAYOUT.pathToOid('0x00/0x00'), null);
  assert.equal(BUSHY_LAYOUT.pathToOid('tmp'), null);
  assert.equal(LAWN_LAYOUT.oidToPath(1n), '0x01');
  assert.equal(LAWN_LAYOUT.oidToPath(0n), '0x00');
  assert.equal(LAWN_LAYOUT.oidToPath(0x1234n), '0x1234');
  assert.equal(LAWN_LAYOUT.pathToOid('0x1234'), 0x1234n);
  assert.equal(LAWN_LAYOUT.pathToOid('tmp'), null);
  assert.equal(tidRepr(0x03f58e0100000000n), '0x03f58e0100000000');
  assert.equal(tidRepr(0x40d2ddb1124ba33n), '0x040d2ddb1124ba33');
  assert.equal(reprToId('0x03f58e0100000000'), 0x03f58e0100000000n);
  assert.equal(reprToId('03f5'), null);
  const d = new BlobDirectory(join(tmp(), 'b'));
  const f = d.blobFilename(1n, 0x03f58e0100000000n);
  assert.equal(f, join(d.dir, '0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x03f58e0100000000.blob'));
  assert.deepEqual(d.splitBlobFilename(f), { oid: 1n, tid: 0x03f58e0100000000n });
  assert.equal(d.splitBlobFilename(join(d.dir, 'tmp', 'x.blob')), null);
});

test('filestorage §13: BlobDirectory creates the directory, tmp/ and the marker; automatic selection; mismatch fails', () => {
  const root = tmp();
  assert.equal(autoLayoutSelect(join(root, 'missing')), 'bushy');
  const d = new BlobDirectory(join(root, 'missing', 'deeper'));
  assert.equal(readFileSync(join(d.dir, '.layout'), 'latin1'), 'bushy');
  assert.ok(statSync(d.tempDir).isDirectory());
  mkdirSync(join(root, 'used'));
  writeFileSync(join(root, 'used', 'stuff'), 'x');
  assert.equal(autoLayoutSelect(join(root, 'used')), 'lawn');
  mkdirSync(join(root, 'marked'));
  writeFileSync(join(root, 'marked', '.layout'), 'lawn\n');
  assert.equal(autoLayoutSelect(join(root, 'marked')), 'lawn');
  assert.equal(new BlobDirectory(join(root, 'marked')).layoutName, 'lawn');
  assert.throws(() => new BlobDirectory(join(root, 'marked'), { layout: 'bushy' }), StorageError);
  assert.throws(() => getBlobLayout('nope', '/x'), /unknown blob directory layout "nope" for \/x/);
  registerBlobLayout({ name: 'flat-test', oidToPath: (o) => o.toString(), pathToOid: (p) => (/^\d+$/.test(p) ? BigInt(p) : null) });
  const flat = new BlobDirectory(join(root, 'flat'), { layout: 'flat-test' });
  assert.equal(flat.blobFilename(7n, 1n), join(flat.dir, '7', '0x01.blob'));
});

test('filestorage §13: moved-in files are read-only with the read bits of their directory; listOids walks oid directories', () => {
  const d = new BlobDirectory(join(tmp(), 'b'));
  const src = join(d.tempDir, 'up.tmp');
  writeFileSync(src, 'data', { mode: 0o600 });
  const dst = d.blobFilename(5n, 9n);
  d.oidPath(5n, true);
  renameOrCopyBlob(src, dst);
  const mode = statSync(dst).mode & 0o777;
  assert.equal(mode & 0o222, 0);
  assert.equal(mode & 0o444, statSync(d.oidPath(5n)).mode & 0o444);
  d.oidPath(0x100n, true);
  assert.deepEqual([...d.listOids()].map(([o]) => o), [5n, 0x100n]);
  assert.deepEqual(d.tidsOf(5n), [9n]);
  assert.throws(() => renameOrCopyBlob(join(d.tempDir, 'gone.tmp'), dst), (e: unknown) => e instanceof StorageError && e.message.includes('gone.tmp'));
});

test('filestorage §4.5: isBlobRecord is true for the ZODB.blob.Blob record only', () => {
  assert.equal(BLOB_RECORD.length, 25);
  assert.equal(isBlobRecord(BLOB_RECORD), true);
  assert.equal(isBlobRecord(ROOT_RECORD), false);
  assert.equal(isBlobRecord(makeRecord({ value: 'ZODB.blob' })), false);
  assert.equal(isBlobRecord(makeRecord({ module: 'ZODB.blob', name: 'BlobFile' })), false);
  assert.equal(isBlobRecord(null), false);
  assert.equal(isBlobRecord(Buffer.from('ZODB.blob garbage')), false);
});

test('filestorage §13: createOidPath reports the directories that got new entries', () => {
  const d = new BlobDirectory(join(tmp(), 'b'));
  const first = d.createOidPath(1n);
  assert.equal(first.path, d.oidPath(1n));
  assert.equal(first.changedDirs.length, 8);
  assert.equal(first.changedDirs[7], d.dir);
  assert.equal(first.changedDirs[0], join(d.dir, '0x00/0x00/0x00/0x00/0x00/0x00/0x00'));
  const sibling = d.createOidPath(2n);
  assert.deepEqual(sibling.changedDirs, [join(d.dir, '0x00/0x00/0x00/0x00/0x00/0x00/0x00')]);
  assert.deepEqual(d.createOidPath(2n).changedDirs, []);
});
