/** The `runzeo` program (operations §5). */
import { runzeo } from '../runzeo.ts';

const code = await runzeo(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
  signals: process,
});
process.exitCode = code;
// Sockets and timers are closed by the teardown; exit explicitly in case a library left a handle.
setImmediate(() => process.exit(code));
