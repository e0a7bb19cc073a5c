import { fstestMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fstestMain);
