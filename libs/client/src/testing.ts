/**
 * Test and benchmark helpers: run our `runzeo` as a real child process and wait for its
 * "listening on" log line (no sleeps). Not part of the client's runtime API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  let err = '';
  let partial = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ rx: RegExp; resolve: (r: Record<string, unknown>) => void }> = [];
  proc.stderr!.on('data', (d: Buffer) => {
    const s = d.toString();
    if (err.length < 1_000_000) err += s;
    partial += s;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (lines.length < 10000) lines.push(rec);
      for (let k = 0; k < waiters.length; k++) {
        if (waiters[k]!.rx.test(String(rec.msg))) {
          waiters[k]!.resolve(rec);
          waiters.splice(k--, 1);
        }
      }
    }
  });
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  const waitLog = (rx: RegExp) => {
    const found = lines.find((l) => rx.test(String(l.msg)));
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((res, rej) => {
      waiters.push({ rx, resolve: res });
      void exited.then((code) => rej(new Error(`runzeo exited (${code}) before logging ${rx}:\n${err}`)));
    });
  };
  const r: RunzeoProcess = {
    proc,
    port: 0,
    lines,
    stderr: () => err,
    exited,
    waitLog,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  return waitLog(/^listening on /).then((rec) => {
    const a = rec.address as { port?: number } | undefined;
    r.port = a?.port ?? 0;
    return r;
  });
}
