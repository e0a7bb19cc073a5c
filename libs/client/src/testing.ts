/**
 * Test and benchmark helpers: run our `runzeo` as a real child process and wait for its
 * "listening on" log line (no sleeps). Not part of the client's runtime API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchJsonLog } from '@zeo-ts/storage/testing';

/** The repository root (the directory holding node_modules/.bin/runzeo). */
export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 10; i++) {
    if (existsSync(join(d, 'apps', 'zeo-server', 'bin', 'runzeo.mjs'))) return d;
    d = resolve(d, '..');
  }
  throw new Error('cannot find the repository root (apps/zeo-server/bin/runzeo.mjs)');
}

export const RUNZEO_BIN = join(repoRoot(), 'apps', 'zeo-server', 'bin', 'runzeo.mjs');

export interface RunzeoProcess {
  proc: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
  waitLog: (rx: RegExp) => Promise<Record<string, unknown>>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function tempDir(prefix = 'zeo-ts-client-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Start runzeo with `args` (e.g. ['-a', '127.0.0.1:0', '-f', 'Data.fs']) in `cwd`; resolves once
 * it logged "listening on", with the bound port.
 */
export function startRunzeo(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<RunzeoProcess> {
  const proc = spawn(process.execPath, [RUNZEO_BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = watchJsonLog(proc, 'runzeo');
  const r: RunzeoProcess = { proc, port: 0, ...log };
  return log.waitLog(/^listening on /).then((rec) => {
    const a = rec.address as { port?: number } | undefined;
    r.port = a?.port ?? 0;
    return r;
  });
}
