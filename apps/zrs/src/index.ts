/** @zeo-ts/zrs-app — the zrs server program, `zrs promote`, `zrs-nagios`. */
export { runZrsServer, replicationOf, USAGE, VERSION, type ZrsIO } from './server.ts';
export { promoteMain, promoteConfigText, adminCommand, PROMOTE_USAGE, type PromoteIO } from './promote.ts';
