/** @zeo-ts/zeo-server — the runzeo program (operations §5). */
export { runzeo, VERSION, type RunzeoIO } from './runzeo.ts';
export { parseArgs, UsageError, USAGE, type RunzeoArgs } from './options.ts';
