export * from './vectors.ts';
export * from './records.ts';
export * from './conformance.ts';
export * from './process.ts';
export * from './gate.ts';
export * from './random.ts';
