import { repozoMain } from '../repozo-main.ts';
import { runCli } from './common.ts';

await runCli(repozoMain);
