/** @zeo-ts/zeo-tools — zeoup, zeopack and zeo-nagios (operations §6.5, §7.1, §7.2). */
export { check, nagiosMain, parseNagiosAddress, NAGIOS_USAGE, TIME_UNITS, type NagiosAddress } from './nagios.ts';
export { zeopackMain, packTime, ZEOPACK_HELP, ZEOPACK_USAGE } from './zeopack.ts';
export { zeoupMain, ZEOUP_USAGE, type ZeoupOptions } from './zeoup.ts';
export { bumpZeoupCounter, UnexpectedObjectError } from './monitor-objects.ts';
export { getopt, GetoptError, osErrorText, pyFloat, pyRepr, processIO, type ToolIO } from './common.ts';
