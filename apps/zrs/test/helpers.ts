/** Real zrs server processes for tests and the benchmark (no sleeps: wait for log lines). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchJsonLog } from '@zeo-ts/storage/testing';
import { FileStorage } from '@zeo-ts/filestorage';
import pino from 'pino';
import { ClientStorage } from '@zeo-ts/client';
import { TransactionMetaData, type IStorage, type Tid } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';

export const APP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(APP_DIR, '..', '..');
export const ZRS_BIN = join(APP_DIR, 'bin', 'zrs.mjs');
export const NAGIOS_BIN = join(APP_DIR, 'bin', 'zrs-nagios.mjs');
export const FSTEST_BIN = join(ROOT, 'tools', 'fs-tools', 'bin', 'fstest.mjs');

export function tempDir(prefix = 'zrs-app-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface ZrsProcess {
  proc: ChildProcess;
  /** ZEO port */
  port: number;
  /** replication port (primaries) */
  replPort: number | null;
  admin: string | null;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
  waitLog: (rx: RegExp, name?: string) => Promise<Record<string, unknown>>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface ZrsConf {
  dir: string;
  path: string;
  zeoPort?: number;
  replicateTo?: number | null;
  replicateFrom?: number | null;
  extra?: string;
  /** blob-dir of the <filestorage> */
  blobDir?: string;
}

export function zrsConfig(c: ZrsConf): string {
  const lines = ['%import zc.zrs', '<zeo>', `  address 127.0.0.1:${c.zeoPort ?? 0}`, '</zeo>', '<zrs 1>'];
  if (c.replicateTo !== undefined && c.replicateTo !== null) lines.push(`  replicate-to 127.0.0.1:${c.replicateTo}`);
  if (c.replicateFrom !== undefined && c.replicateFrom !== null) lines.push(`  replicate-from 127.0.0.1:${c.replicateFrom}`);
  if (c.extra) lines.push(c.extra);
  lines.push('  <filestorage>', `    path ${c.path}`, ...(c.blobDir ? [`    blob-dir ${c.blobDir}`] : []), '  </filestorage>', '</zrs>', '');
  return lines.join('\n');
}

/** Start `zrs -C <conf> --admin 127.0.0.1:0`; resolves once it listens (and, for primaries, replicates). */
export async function startZrs(conf: string, dir: string, name = 'zrs.conf', args: string[] = []): Promise<ZrsProcess> {
  const cfg = join(dir, name);
  writeFileSync(cfg, conf);
  const proc = spawn(process.execPath, [ZRS_BIN, '-C', cfg, '--admin', '127.0.0.1:0', ...args], { cwd: dir, env: { ...process.env, ZEO_TS_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const log = watchJsonLog(proc, 'zrs');
  const r: ZrsProcess = { proc, port: 0, replPort: null, admin: null, ...log };
  const rec = await log.waitLog(/^zrs ready: /);
  r.port = (rec.address as { port: number }).port;
  const adm = rec.admin as { address: string; port: number } | null;
  r.admin = adm ? `127.0.0.1:${adm.port}` : null;
  if (/replicate-to/.test(conf)) {
    const l = await log.waitLog(/^listening for secondaries on /);
    r.replPort = (l.replication as { port: number }).port;
  }
  return r;
}

/** Every transaction of a data file (tid, status, metadata, records), for comparisons. */
export async function dumpFile(path: string): Promise<Array<{ tid: Tid; status: string; user: string; description: string; extension: string; records: string[] }>> {
  const fs = new FileStorage(path, { readOnly: true });
  const out = [];
  try {
    for await (const t of fs.iterator()) {
      out.push({
        tid: t.tid,
        status: t.status,
        user: t.user.toString('hex'),
        description: t.description.toString('hex'),
        extension: t.extension.toString('hex'),
        records: t.records.map((r) => `${r.oid}:${r.tid}:${r.data === null ? '-' : r.data.toString('hex')}`),
      });
    }
  } finally {
    await fs.close();
  }
  return out;
}

export function runNode(bin: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

/** A ZEO client of a server process (read-only for secondaries). */
export async function zeoClient(port: number, readOnly = false): Promise<ClientStorage> {
  return ClientStorage.open({ addresses: [{ host: '127.0.0.1', port }], cachePath: null, readOnly, wait: true, waitTimeout: 60, logger: pino({ level: 'silent' }) });
}

/** One small transaction through a client; returns the tid tpc_finish gave back. */
export async function commitOne(s: IStorage, i: number): Promise<Tid> {
  const txn = new TransactionMetaData('', `load ${i}`);
  const oid = await s.new_oid();
  await s.tpc_begin(txn);
  try {
    await s.store(oid, 0n, makeRecord(), txn);
    await s.tpc_vote(txn);
    return await s.tpc_finish(txn);
  } catch (e) {
    await s.tpc_abort(txn).catch(() => undefined);
    throw e;
  }
}

/** Wait until a (read-only) client has seen `tid` through invalidations. */
export async function clientSeen(c: ClientStorage, tid: Tid): Promise<void> {
  for (let i = 0; i < 1_000_000 && c.lastTransaction() < tid; i++) {
    await new Promise<void>((r) => {
      const off = c.onCommit(() => {
        off();
        r();
      });
      if (c.lastTransaction() >= tid) {
        off();
        r();
      }
    });
  }
}
