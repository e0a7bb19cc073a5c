// npx cache-simul [options] TRACEFILE — see ../simul.ts
import { cacheSimul } from '../simul.ts';
import { LineOut } from '../output.ts';

const out = new LineOut(1);
const err = new LineOut(2);
let status: number;
try {
  status = cacheSimul(process.argv.slice(2), out, err);
} catch (e) {
  out.flush();
  err.line(`cache-simul: ${(e as Error).stack ?? e}`);
  status = 1;
}
out.flush();
err.flush();
process.exitCode = status;
