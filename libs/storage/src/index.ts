export * from './ids.ts';
export * from './timestamp.ts';
export * from './errors.ts';
export * from './interface.ts';
export * from './mapping.ts';
export * from './copy.ts';
export * from './blob.ts';
