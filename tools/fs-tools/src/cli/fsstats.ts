import { fsstatsMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsstatsMain);
