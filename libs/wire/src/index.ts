/**
 * @zeo-ts/wire — the ZEO 5 wire protocol (zeo5-protocol.md §3–§7, §9, §13).
 */
export * from './values.ts';
export * from './errors.ts';
export * from './framing.ts';
export * from './handshake.ts';
export * from './message.ts';
export * from './m5.ts';
