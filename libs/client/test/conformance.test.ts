/**
 * The shared storage conformance suite through ClientStorage against a real runzeo child
 * process, in both encodings: Z5 (runzeo's default announcement, mirrored as Python does) and
 * M5 (server announcing M5 via ZEO_MSGPACK). One server per encoding serves one FileStorage per
 * test (storages t1, t2, ...), so each test gets a fresh empty storage; reopen is a new client
 * on the same (persisting) server storage.
 * Covers zeo5-protocol §17.3 C-1, C-2, C-5, C-6, C-8, C-9 (conflict maps raised as
 * ConflictError), C-10 and client-cache §13 #29.
 */
import { after, before } from 'node:test';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { runConformanceSuite, CONFORMANCE_TEST_IDS } from '@zeo-ts/storage/testing';
import type { IStorage } from '@zeo-ts/storage';
import { ClientStorage } from '../src/index.ts';
import { startRunzeo, tempDir, type RunzeoProcess } from '../src/testing.ts';

const logger = pino({ level: 'silent' });
const N = CONFORMANCE_TEST_IDS.length + 8;

for (const encoding of ['Z', 'M'] as const) {
  const dir = tempDir();
  let srv: RunzeoProcess | undefined;
  let next = 0;
  const names = new Map<IStorage, string>();
  before(async () => {
    let conf = `<zeo>\n  address 127.0.0.1:0\n${encoding === 'M' ? '  msgpack true\n' : ''}</zeo>\n`;
    for (let i = 1; i <= N; i++) conf += `<filestorage t${i}>\n  path ${join(dir, `t${i}.fs`)}\n</filestorage>\n`;
    writeFileSync(join(dir, 'zeo.conf'), conf);
    srv = await startRunzeo(['-C', join(dir, 'zeo.conf')], { cwd: dir });
  });
  after(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const open = async (name: string) => {
    const s = await ClientStorage.open({ addresses: [{ host: '127.0.0.1', port: srv!.port }], storage: name, waitTimeout: 20, logger });
    if (s.protocol() !== encoding) throw new Error(`expected ${encoding}5, got ${s.protocol()}5`);
    names.set(s, name);
    return s;
  };
  runConformanceSuite(`ClientStorage ${encoding}5 over runzeo/FileStorage`, {
    async create() {
      if (next >= N) throw new Error('conformance: more tests than prepared storages');
      return open(`t${++next}`);
    },
    async reopen(closed) {
      return open(names.get(closed)!);
    },
    async connect(first) {
      return open(names.get(first)!);
    },
  }, { timeout: 60_000, blobs: false });
}
