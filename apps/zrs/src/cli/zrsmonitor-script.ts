/** The `zrsmonitor-script CONFIG_PATH` program (zrs spec §9.2): reports as pino JSON lines on stdout. */
import { readFileSync } from 'node:fs';
import { monitorMain } from '../monitor.ts';

const stopped = new Promise<void>((r) => {
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => r());
});
const code = await monitorMain(process.argv.slice(2), {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  readFile: (p) => readFileSync(p, 'utf8'),
  stopped,
});
process.exitCode = code;
setImmediate(() => process.exit(code));
