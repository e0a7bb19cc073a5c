import { zeopackMain } from '../zeopack.ts';

process.exitCode = await zeopackMain(process.argv.slice(2));
