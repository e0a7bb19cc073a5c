import { fstailMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fstailMain);
