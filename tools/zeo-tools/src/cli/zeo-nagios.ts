import { nagiosMain } from '../nagios.ts';

process.exitCode = await nagiosMain(process.argv.slice(2));
