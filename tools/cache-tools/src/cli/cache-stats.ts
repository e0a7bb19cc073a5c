// npx cache-stats [options] TRACEFILE — see ../stats.ts
import { cacheStats } from '../stats.ts';
import { LineOut } from '../output.ts';

const out = new LineOut(1);
const err = new LineOut(2);
let status: number;
try {
  status = cacheStats(process.argv.slice(2), out, err);
} catch (e) {
  out.flush();
  err.line(`cache-stats: ${(e as Error).stack ?? e}`);
  status = 1;
}
out.flush();
err.flush();
process.exitCode = status;
