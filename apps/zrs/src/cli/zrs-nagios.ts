/** The `zrs-nagios` program (zrs spec §9.1). */
import { nagiosMain } from '@zeo-ts/zrs';

const code = await nagiosMain(process.argv.slice(2), (s) => void process.stdout.write(s));
process.exitCode = code;
setImmediate(() => process.exit(code));
