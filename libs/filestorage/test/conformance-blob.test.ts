// The shared storage conformance suite against FileStorage with a blob directory (every test,
// the blob-* ones included: filestorage §13, §16 #55–#57), and its blob tests in blobMode proxy.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IStorage } from '@zeo-ts/storage';
import { runConformanceSuite } from '@zeo-ts/storage/testing';
import { FileStorage } from '../src/index.ts';

const dirs = new WeakMap<IStorage, string>();
const open = (d: string, blobMode: 'native' | 'proxy' = 'native') => {
  const s = new FileStorage(join(d, 'Data.fs'), { blobDir: join(d, 'blobs'), blobMode });
  dirs.set(s, d);
  return s;
};

runConformanceSuite(
  'FileStorage with blobs',
  {
    async create() {
      return open(mkdtempSync(join(tmpdir(), 'fsconf-blob-')));
    },
    async reopen(closed) {
      return open(dirs.get(closed)!);
    },
    async createReadOnly() {
      const d = mkdtempSync(join(tmpdir(), 'fsconf-blob-ro-'));
      await new FileStorage(join(d, 'Data.fs')).close();
      const s = new FileStorage(join(d, 'Data.fs'), { readOnly: true, blobDir: join(d, 'blobs') });
      dirs.set(s, d);
      return s;
    },
    async destroy(s) {
      const d = dirs.get(s);
      if (d) rmSync(d, { recursive: true, force: true });
    },
  },
  { persistent: true, blobs: true },
);

// blobMode 'proxy' (what <blobstorage> opens): the blob tests only
runConformanceSuite(
  'FileStorage with blobs, proxy mode',
  {
    async create() {
      return open(mkdtempSync(join(tmpdir(), 'fsconf-blobp-')), 'proxy');
    },
    async reopen(closed) {
      return open(dirs.get(closed)!, 'proxy');
    },
    async destroy(s) {
      const d = dirs.get(s);
      if (d) rmSync(d, { recursive: true, force: true });
    },
  },
  { persistent: true, blobs: 'only' },
);
