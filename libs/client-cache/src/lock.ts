/**
 * The cache's lock file (client-cache spec §2.3): `<path>.lock`, locked exclusively and without
 * waiting, content " <pid>\n", not deleted on release.
 *
 * Node has no flock(2) call, so this process opens the lock file and lends that descriptor to
 * util-linux `flock(1)` (`flock --nonblock 3`), which takes LOCK_EX|LOCK_NB on it and exits. A
 * flock lock belongs to the open file description, which this process keeps open: the lock is
 * held until `release()` closes it, or until this process dies (the kernel then drops it at
 * once). It is the same lock zc.lockfile takes, so Python and TypeScript clients exclude each
 * other. If `flock(1)` is not installed, a weaker pid check is used instead (see `fallbackLock`).
 */
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';

/** zc.lockfile.LockError: the lock file is held by another process (or by this one). */
export class LockError extends Error {
  readonly pythonClass = 'zc.lockfile.LockError';
  override name = 'LockError';
}

const heldHere = new Set<string>();

export class CacheLock {
  readonly path: string;
  private fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** Lock `lockPath` or fail with LockError("Couldn't lock '<lockPath>'"). */
  static async acquire(lockPath: string): Promise<CacheLock> {
    const key = resolve(lockPath);
    if (heldHere.has(key)) throw new LockError(`Couldn't lock ${pyRepr(lockPath)}`);
    heldHere.add(key);
    let fd = -1;
    try {
      // Create the file if missing, keeping any content until we rewrite it.
      fd = openSync(lockPath, 'a+');
      const r = await flockFd(fd);
      if (r === 'conflict') throw new LockError(`Couldn't lock ${pyRepr(lockPath)}`);
      if (r === 'unavailable') fallbackLock(lockPath);
      const text = Buffer.from(` ${process.pid}\n`, 'latin1');
      ftruncateSync(fd, 0);
      writeSync(fd, text, 0, text.length, 0);
      return new CacheLock(key, fd);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      heldHere.delete(key);
      throw e;
    }
  }

  /** Release the lock (the file stays). */
  async release(): Promise<void> {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    heldHere.delete(this.path);
  }
}

/** Have flock(1) lock our descriptor (its fd 3). */
function flockFd(fd: number): Promise<'locked' | 'conflict' | 'unavailable'> {
  return new Promise((res) => {
    let settled = false;
    const done = (v: 'locked' | 'conflict' | 'unavailable') => {
      if (!settled) {
        settled = true;
        res(v);
      }
    };
    const child = spawn('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', '75', '3'], {
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    child.on('error', () => done('unavailable'));
    child.on('exit', (code) => done(code === 0 ? 'locked' : code === 75 ? 'conflict' : 'unavailable'));
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
