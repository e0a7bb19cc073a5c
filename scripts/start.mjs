#!/usr/bin/env node
// `npm start`: run the ZEO server on ./var/Data.fs at 127.0.0.1:8100 (creating ./var).
// Extra arguments are passed to runzeo, e.g. `npm start -- -t 30`.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const varDir = join(root, 'var');
mkdirSync(varDir, { recursive: true });
const runzeo = join(root, 'apps', 'zeo-server', 'bin', 'runzeo.mjs');
const args = ['-a', '127.0.0.1:8100', '-f', join(varDir, 'Data.fs'), ...process.argv.slice(2)];
const child = spawn(process.execPath, [runzeo, ...args], { stdio: 'inherit', cwd: root });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2']) {
  process.on(sig, () => child.kill(sig));
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
