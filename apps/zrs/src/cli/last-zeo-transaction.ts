/** The `last-zeo-transaction HOST:PORT …` program (zrs spec §9.3). */
import { lastZeoMain } from '../monitor.ts';

const code = await lastZeoMain(process.argv.slice(2), { stdout: (s) => void process.stdout.write(s), stderr: (s) => void process.stderr.write(s) });
process.exitCode = code;
setImmediate(() => process.exit(code));
