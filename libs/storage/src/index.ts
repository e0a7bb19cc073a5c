export * from './ids.ts';
export * from './timestamp.ts';
export * from './errors.ts';
export * from './interface.ts';
