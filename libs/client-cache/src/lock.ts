/**
 * The cache's lock file (client-cache spec §2.3): `<path>.lock`, locked exclusively and without
 * waiting, content " <pid>\n", not deleted on release.
 *
 * Node has no flock(2), so the lock is held by a small helper process: util-linux `flock(1)`
 * takes LOCK_EX|LOCK_NB on the file (the same lock zc.lockfile takes, so Python and TypeScript
 * clients exclude each other) and then waits on its standard input. Closing that pipe (on
 * release, or when this process dies for any reason) ends the helper and so releases the lock.
 * If `flock(1)` is not installed, a weaker pid check is used instead (see `fallbackLock`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** zc.lockfile.LockError: the lock file is held by another process (or by this one). */
export class LockError extends Error {
  readonly pythonClass = 'zc.lockfile.LockError';
  override name = 'LockError';
}

const heldHere = new Set<string>();
const CONFLICT_EXIT = 75;

export class CacheLock {
  readonly path: string;
  private child: ChildProcess | null;
  private released = false;

  private constructor(path: string, child: ChildProcess | null) {
    this.path = path;
    this.child = child;
  }

  /** Lock `lockPath` or fail with LockError("Couldn't lock '<lockPath>'"). */
  static async acquire(lockPath: string): Promise<CacheLock> {
    const key = resolve(lockPath);
    if (heldHere.has(key)) throw new LockError(`Couldn't lock ${pyRepr(lockPath)}`);
    heldHere.add(key);
    try {
      // Create the file if missing, keeping any content until we rewrite it.
      closeSync(openSync(lockPath, 'a'));
      const child = await flockHelper(lockPath);
      if (child === 'conflict') throw new LockError(`Couldn't lock ${pyRepr(lockPath)}`);
      if (child === 'unavailable') fallbackLock(lockPath);
      writeFileSync(lockPath, ` ${process.pid}\n`);
      return new CacheLock(key, child === 'unavailable' ? null : child);
    } catch (e) {
      heldHere.delete(key);
      throw e;
    }
  }

  /** Release the lock (the file stays). Resolves when the lock is really free. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      // Keep this process alive until the helper has gone (it was unref'd while holding).
      child.ref();
      (child.stdout as unknown as { ref?: () => void } | null)?.ref?.();
      child.stdin?.end();
      await exited;
    }
    heldHere.delete(this.path);
  }
}

function flockHelper(lockPath: string): Promise<ChildProcess | 'conflict' | 'unavailable'> {
  return new Promise((res) => {
    let settled = false;
    const child = spawn(
      'flock',
      ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT_EXIT), lockPath, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    const done = (v: ChildProcess | 'conflict' | 'unavailable') => {
      if (settled) return;
      settled = true;
      res(v);
    };
    child.on('error', () => done('unavailable'));
    child.on('exit', (code) => done(code === CONFLICT_EXIT ? 'conflict' : 'unavailable'));
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('locked\n')) {
        // Held: let this process exit without waiting for the helper.
        child.unref();
        (child.stdout as unknown as { unref?: () => void }).unref?.();
        (child.stdin as unknown as { unref?: () => void }).unref?.();
        done(child);
      }
      if (seen.length > 64) seen = seen.slice(-16); // bounded
    });
  });
}

/**
 * Without flock(1): refuse if the lock file names another live process. Weaker than a real lock
 * (racy, and not seen by Python's zc.lockfile), but a stale file from a dead process is reused.
 */
function fallbackLock(lockPath: string): void {
  let text = '';
  try {
    text = readFileSync(lockPath, 'latin1');
  } catch {
    return;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
  }
  throw new LockError(`Couldn't lock ${pyRepr(lockPath)}`);
}

/** Python's repr() of a str, for log and error messages that mirror upstream's. */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}
