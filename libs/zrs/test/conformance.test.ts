// The shared storage conformance suite against a Primary (with a secondary replicating from it,
// as zc.zrs's PrimaryStorageTests do) and, read-only, against a Secondary. zrs §12, §14 #38.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { FileStorage } from '@zeo-ts/filestorage';
import type { IStorage } from '@zeo-ts/storage';
import { runConformanceSuite } from '@zeo-ts/storage/testing';
import { Primary, Secondary } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const silent = pino({ level: 'silent' });
const dirs = new WeakMap<IStorage, string>();
const followers = new WeakMap<IStorage, Secondary>();

class ReplicatedPrimary extends Primary {
  override async close(): Promise<void> {
    await super.close(5000);
    await followers.get(this)?.close();
  }
}

async function primaryIn(d: string): Promise<Primary> {
  const p = new ReplicatedPrimary(new FileStorage(join(d, 'p.fs'), { logger: silent }), { host: '127.0.0.1', port: 0 }, { logger: silent });
  await p.listening;
  followers.set(p, new Secondary(new FileStorage(join(d, 's.fs'), { logger: silent }), { host: '127.0.0.1', port: p.port }, { logger: silent, native: 'auto', reconnectDelay: 0.05 }));
  dirs.set(p, d);
  return p;
}

runConformanceSuite(
  'ZRS Primary',
  {
    async create() {
      return primaryIn(tempDir('zrs-conf-'));
    },
    async reopen(closed) {
      return primaryIn(dirs.get(closed)!);
    },
    async createReadOnly() {
      const d = tempDir('zrs-conf-ro-');
      // a Secondary delegates pack to its storage (zrs §6.11: secondaries are packed on their own),
      // so the read-only checks run on a Secondary over a read-only FileStorage
      await new FileStorage(join(d, 's.fs'), { logger: silent }).close();
      const s = new Secondary(new FileStorage(join(d, 's.fs'), { logger: silent, readOnly: true }), null, { logger: silent });
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
