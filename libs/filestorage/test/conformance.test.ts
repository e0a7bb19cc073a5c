// The shared storage conformance suite against FileStorage (new temp dir per storage, reopen
// supported) — filestorage §16 (numbers cited by each suite test).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IStorage } from '@zeo-ts/storage';
import { runConformanceSuite } from '@zeo-ts/storage/testing';
import { FileStorage } from '../src/index.ts';

const dirs = new WeakMap<IStorage, string>();

runConformanceSuite(
  'FileStorage',
  {
    async create() {
      const d = mkdtempSync(join(tmpdir(), 'fsconf-'));
      const s = new FileStorage(join(d, 'Data.fs'));
      dirs.set(s, d);
      return s;
    },
    async reopen(closed) {
      const d = dirs.get(closed)!;
      const s = new FileStorage(join(d, 'Data.fs'));
      dirs.set(s, d);
      return s;
    },
    async createReadOnly() {
      const d = mkdtempSync(join(tmpdir(), 'fsconf-ro-'));
      const w = new FileStorage(join(d, 'Data.fs'));
      await w.close();
      const s = new FileStorage(join(d, 'Data.fs'), { readOnly: true });
      dirs.set(s, d);
      return s;
    },
    async destroy(s) {
      const d = dirs.get(s);
      if (d) rmSync(d, { recursive: true, force: true });
    },
  },
  { persistent: true, blobs: false },
);
