import { fsanalyzeMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsanalyzeMain);
