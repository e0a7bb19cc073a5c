// zeo.conf storage sections backed by FileStorage: <filestorage> blob-dir and <blobstorage>
// (operations §3.4.1, §3.4.4; filestorage §13), through the real configuration loader and the
// storage-opener plugin registration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getProvider, loadServerConfig, type StorageOpener } from '@zeo-ts/config';
import { StorageError, isBlobStorage } from '@zeo-ts/storage';
import { FileStorage, fileStorageArgs, openFileStorageSection } from '../src/index.ts';
import '../src/plugin.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'fsconfig-'));

function storages(text: string, cwd: string) {
  return loadServerConfig({ text: `<zeo>\n  address 127.0.0.1:0\n</zeo>\n${text}` }, { cwd }).storages;
}

test('operations §3.4.1: <filestorage> with blob-dir opens a blob storage; relative paths follow the working directory', async () => {
  const d = tmp();
  const [s1, s2] = storages('<filestorage 1>\n  path Data.fs\n  blob-dir blobs\n  pack-keep-old false\n</filestorage>\n<filestorage 2>\n  path Other.fs\n  blob-dir\n</filestorage>\n', d);
  const a = fileStorageArgs(s1!, { cwd: d });
  assert.equal(a.path, join(d, 'Data.fs'));
  assert.equal(a.options.blobDir, join(d, 'blobs'));
  assert.equal(a.options.name, 'Data.fs');
  assert.equal(a.options.packKeepOld, false);
  const fs1 = await openFileStorageSection(s1!, { cwd: d });
  const fs2 = await openFileStorageSection(s2!, { cwd: d });
  try {
    assert.ok(isBlobStorage(fs1));
    assert.equal(fs1.getName(), 'Data.fs');
    assert.equal(readFileSync(join(d, 'blobs', '.layout'), 'latin1'), 'bushy');
    assert.equal(isBlobStorage(fs2), false, 'an empty blob-dir means no blob support');
  } finally {
    await fs1.close();
    await fs2.close();
  }
});

test('operations §3.4.4: <blobstorage> around a <filestorage> opens it with the blob directory (through the registered storage-opener)', async () => {
  const d = tmp();
  const [s] = storages('<blobstorage 1>\n  blob-dir b\n  <filestorage>\n    path Data.fs\n  </filestorage>\n</blobstorage>\n', d);
  const opener = getProvider<StorageOpener>('storage-opener', 'blobstorage');
  assert.ok(opener, 'the plugin registered a blobstorage opener');
  const fs = (await opener(s, { cwd: d, readOnlyServer: false })) as FileStorage;
  try {
    assert.ok(fs instanceof FileStorage);
    assert.ok(isBlobStorage(fs));
    assert.equal(fs.temporaryDirectory(), join(d, 'b', 'tmp'));
    assert.equal(fileStorageArgs(s!, { cwd: d }).options.blobMode, 'proxy');
    assert.equal(fileStorageArgs(storages('<filestorage 1>\n  path X.fs\n  blob-dir b\n</filestorage>\n', d)[0]!, { cwd: d }).options.blobMode, undefined);
    assert.ok(existsSync(join(d, 'Data.fs')));
  } finally {
    await fs.close();
  }
});

test('operations §3.4.4: <blobstorage> over a non-FileStorage base, or over a base with its own blob-dir, is refused with a clear error', () => {
  const d = tmp();
  const [m] = storages('<blobstorage 1>\n  blob-dir b\n  <mappingstorage>\n  </mappingstorage>\n</blobstorage>\n', d);
  assert.throws(() => fileStorageArgs(m!, { cwd: d }), (e: unknown) => e instanceof StorageError && /only a <filestorage> base/.test(e.message) && /mappingstorage/.test(e.message));
  const [f] = storages('<blobstorage 1>\n  blob-dir b\n  <filestorage>\n    path Data.fs\n    blob-dir c\n  </filestorage>\n</blobstorage>\n', d);
  assert.throws(() => fileStorageArgs(f!, { cwd: d }), /already has a blob-dir/);
});
