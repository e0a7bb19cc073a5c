import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getPickleMetadata } from '@zeo-ts/pickle';

export const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run one of the package's bins as a child process (node bin/<tool>.mjs args...) in `cwd`. */
export function runTool(tool: string, args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(pkgDir, 'bin', `${tool}.mjs`), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** false when @zeo-ts/pickle can name classes; else a skip message (it is written concurrently). */
export function pickleSkip(): false | string {
  try {
    getPickleMetadata(Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e', 'hex'));
    return false;
  } catch (e) {
    return `@zeo-ts/pickle not usable yet: ${(e as Error).message}`;
  }
}
