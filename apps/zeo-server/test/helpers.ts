/**
 * Start runzeo as a real child process and wait for its "listening on" log line (no sleeps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchJsonLog } from '@zeo-ts/storage/testing';

export const RUNZEO = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'runzeo.mjs');

export interface Runzeo {
  proc: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  stdout: () => string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** wait for a log record whose msg matches (and whose logger name is `name`, if given) */
  waitLog: (rx: RegExp, name?: string) => Promise<Record<string, unknown>>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function tempDir(prefix = 'zeo-ts-server-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function startRunzeo(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; waitListening?: boolean }): Promise<Runzeo> {
  const proc = spawn(process.execPath, [RUNZEO, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ZEO_TS_LOG_LEVEL: 'debug', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const log = watchJsonLog(proc, 'runzeo');
  const r: Runzeo = { proc, port: 0, ...log, stdout: () => out };
  if (opts.waitListening === false) return Promise.resolve(r);
  return log.waitLog(/^listening on /).then((rec) => {
    const a = rec.address as { port?: number } | undefined;
    r.port = a?.port ?? 0;
    return r;
  });
}
