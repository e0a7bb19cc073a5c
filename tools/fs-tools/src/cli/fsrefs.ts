import { fsrefsMain } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsrefsMain);
