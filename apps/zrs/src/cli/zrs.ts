/** The `zrs` program: the ZRS-enabled ZEO server, or `zrs promote ...`. */
import { runZrsServer } from '../server.ts';
import { promoteMain } from '../promote.ts';

const argv = process.argv.slice(2);
const io = { stdout: (s: string) => void process.stdout.write(s), stderr: (s: string) => void process.stderr.write(s) };
const code =
  argv[0] === 'promote'
    ? await promoteMain(argv.slice(1), io)
    : await runZrsServer(argv, { ...io, env: process.env, cwd: process.cwd(), signals: process });
process.exitCode = code;
setImmediate(() => process.exit(code));
