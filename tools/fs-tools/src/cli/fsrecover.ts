import { fsrecoverMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsrecoverMain);
