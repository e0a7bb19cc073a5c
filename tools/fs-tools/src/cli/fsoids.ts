import { fsoidsMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsoidsMain);
