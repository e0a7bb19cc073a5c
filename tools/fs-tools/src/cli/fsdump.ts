import { fsdumpMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsdumpMain);
