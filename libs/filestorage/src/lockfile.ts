/**
 * Data.fs.lock compatible with Python's zc.lockfile (spec §7): an exclusive, non-blocking
 * flock(2) on the lock file, whose content becomes " <pid>\n".
 *
 * Node has no flock(); we let the util-linux `flock` command take the lock on a file descriptor
 * that we pass to it. A flock lock belongs to the open file description, which the child shares
 * with us, so the lock stays held by our descriptor after the child exits and is released when
 * we close it (or when this process dies) — exactly the lifetime zc.lockfile gives.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { LockError } from './errors.ts';

const FLOCK_CANDIDATES = ['/usr/bin/flock', '/bin/flock', 'flock'];

export class LockFile {
  readonly path: string;
  private fd: number | null;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** Lock `path` (created if missing) or throw LockError naming the holder's pid. */
  static acquire(path: string): LockFile {
    const fd = openSync(path, 'a+');
    let result: ReturnType<typeof spawnSync> | undefined;
    for (const cmd of FLOCK_CANDIDATES) {
      result = spawnSync(cmd, ['--exclusive', '--nonblock', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
      if (!(result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT')) break;
    }
    if (!result || result.error) {
      closeSync(fd);
      throw new LockError(`Couldn't lock '${path}': the flock command is not available (${result?.error?.message ?? 'unknown'}); refusing to open read-write without a lock`);
    }
    if (result.status !== 0) {
      closeSync(fd);
      let holder = '';
      try {
        holder = readFileSync(path, 'latin1').trim();
      } catch {
        // unreadable: leave the holder unnamed
      }
      throw new LockError(`Couldn't lock '${path}'${holder ? `: held by pid ${holder}` : ''}`);
    }
    ftruncateSync(fd, 0);
    const content = Buffer.from(` ${process.pid}\n`, 'latin1');
    writeSync(fd, content, 0, content.length, 0);
    return new LockFile(path, fd);
  }

  /** Release the lock (the file stays, as with zc.lockfile). */
  release(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
