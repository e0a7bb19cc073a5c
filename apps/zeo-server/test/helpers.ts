/**
 * Start runzeo as a real child process and wait for its "listening on" log line (no sleeps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  let err = '';
  let out = '';
  let partial = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ rx: RegExp; name?: string; resolve: (r: Record<string, unknown>) => void }> = [];
  const matches = (w: { rx: RegExp; name?: string }, rec: Record<string, unknown>) => w.rx.test(String(rec.msg)) && (w.name === undefined || rec.name === w.name);
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    partial += d.toString();
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
      lines.push(rec);
      for (let k = 0; k < waiters.length; k++) {
        if (matches(waiters[k]!, rec)) {
          waiters[k]!.resolve(rec);
          waiters.splice(k--, 1);
        }
      }
    }
  });
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  const waitLog = (rx: RegExp, name?: string) => {
    const found = lines.find((l) => matches({ rx, name }, l));
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((res, rej) => {
      waiters.push({ rx, name, resolve: res });
      void exited.then((code) => rej(new Error(`runzeo exited (${code}) before logging ${rx}:\n${err}`)));
    });
  };
  const r: Runzeo = {
    proc,
    port: 0,
    lines,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitLog,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  if (opts.waitListening === false) return Promise.resolve(r);
  return waitLog(/^listening on /).then((rec) => {
    const a = rec.address as { port?: number } | undefined;
    r.port = a?.port ?? 0;
    return r;
  });
}
