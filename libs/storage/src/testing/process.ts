import type { ChildProcess } from 'node:child_process';

/** A child process that logs pino JSON lines on stderr, as our servers do. */
export interface JsonLogWatch {
  /** parsed log records so far (bounded) */
  lines: Array<Record<string, unknown>>;
  /** raw stderr so far (bounded) */
  stderr: () => string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** the first record whose msg matches `rx` (and whose logger name is `name`, if given); rejects if the process exits first */
  waitLog: (rx: RegExp, name?: string) => Promise<Record<string, unknown>>;
  /** signal the process (SIGTERM by default) unless it has exited; resolves with the exit code */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

const MAX_LINES = 100_000;
const MAX_STDERR = 2_000_000;

/** Follow `proc`'s stderr as JSON log lines; `what` names the program in errors. No sleeps: waiters wake on lines. */
export function watchJsonLog(proc: ChildProcess, what: string): JsonLogWatch {
  if (!proc.stderr) throw new Error(`${what}: stderr must be piped`);
  let err = '';
  let partial = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ rx: RegExp; name?: string; resolve: (r: Record<string, unknown>) => void }> = [];
  const matches = (w: { rx: RegExp; name?: string }, rec: Record<string, unknown>) =>
    w.rx.test(String(rec.msg)) && (w.name === undefined || rec.name === w.name);
  proc.stderr.on('data', (d: Buffer) => {
    const s = d.toString();
    if (err.length < MAX_STDERR) err += s;
    partial += s;
    for (let i = partial.indexOf('\n'); i >= 0; i = partial.indexOf('\n')) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (lines.length < MAX_LINES) lines.push(rec);
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
      void exited.then((code) => rej(new Error(`${what} exited (${code}) before logging ${rx}:\n${err.slice(-4000)}`)));
    });
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return exited;
  };
  return { lines, stderr: () => err, exited, waitLog, stop };
}
