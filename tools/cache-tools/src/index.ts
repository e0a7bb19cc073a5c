/**
 * @zeo-ts/cache-tools: the client cache trace tools.
 *
 *   npx cache-stats [-v|-q] [-s] [-S] [-h] [-X] [-i MINUTES] TRACEFILE   (spec §10)
 *   npx cache-simul [-s MB] [-i MINUTES] [-r FACTOR] TRACEFILE             (spec §11)
 *
 * TRACEFILE may end in .gz, or be "-" for standard input. Times print in the local time zone
 * (set TZ=UTC for the golden outputs). The functions below run the tools in-process.
 */
export { cacheStats, parseStatsArgs, STATS_USAGE, type StatsOptions } from './stats.ts';
export { cacheSimul, CircularCacheSimulation, SIMUL_USAGE } from './simul.ts';
export { LineOut, parseInterval, parsePyFloat } from './output.ts';
export { addcommas, bytesRepr, ctime, pyFixed, pyInt, pyRound1Str, rjust } from './pyfmt.ts';
export { TraceInput } from './trace-input.ts';
