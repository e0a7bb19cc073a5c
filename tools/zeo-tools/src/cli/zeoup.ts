import { zeoupMain } from '../zeoup.ts';

process.exitCode = await zeoupMain(process.argv.slice(2));
