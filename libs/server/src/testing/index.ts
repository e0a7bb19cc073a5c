/** Test helpers of @zeo-ts/server: replay of the recorded ZEO 5 sessions against a live server. */
export { replayVector, type VectorFile, type VectorFrame, type Varying, type ReplayResult, type ReplayOptions } from './replay.ts';
export { DirBlobStorage } from './blob-storage.ts';
