import { fsconvertFs21Main } from '../main.ts';
import { runCli } from './common.ts';

await runCli(fsconvertFs21Main);
