/**
 * @zeo-ts/client-cache: the persistent ZEO client cache file (`.zec`, ZEC3) and its tracing.
 *
 * Usage (what ClientStorage needs):
 *
 *   const cache = await ClientCache.open(path | null, { size: 20 * 1024 * 1024 });
 *   cache.load(oid)                 -> { data, tid } | null          (current revision)
 *   cache.loadBefore(oid, tid)      -> { data, start, end } | null   (end null = current)
 *   cache.store(oid, start, end | null, data)
 *   cache.invalidate(oid, tid | null)
 *   cache.getLastTid() / cache.setLastTid(tid)
 *   cache.len, cache.contents(), cache.clear(), await cache.close()
 *
 * `path` null gives a temporary (anonymous, unlocked, untraced) cache. A persistent cache is
 * locked through `<path>.lock` (LockError when another process or this one holds it), moves a
 * damaged file to `<path>.bad`, and traces to `<path>.trace` when ZEO_CACHE_TRACE is non-empty.
 * oids and tids are bigints. All calls but open/close are synchronous.
 *
 * Caches up to 64 MiB keep a copy of the file in memory so a load hit is a memory copy (about
 * 600k hot loads/s here); larger ones read positionally (about 420k/s) unless opened with
 * `memoryImage: true`. `cachePathFor({ cachePath, client, storage, varDir })` gives the file a
 * ClientStorage uses (null = temporary cache).
 */
export {
  ClientCache,
  cachePathFor,
  CacheCorruptionError,
  CacheValueError,
  DEFAULT_CACHE_SIZE,
  DEFAULT_IMAGE_LIMIT,
  DEFAULT_REARRANGE,
  type CacheLoadBeforeResult,
  type CacheLoadResult,
  type CacheLogger,
  type CacheRecordInfo,
  type CacheStats,
  type ClientCacheOptions,
} from './cache.ts';
export { LockError, pyRepr } from './lock.ts';
export {
  DATA_OFFSET,
  HEADER_SIZE,
  MAGIC,
  MAX_BLOCK_SIZE,
  RECORD_OVERHEAD,
  decodeRecordHeader,
  encodeRecord,
  type RecordHeader,
} from './format.ts';
export {
  TRACE_CODE_NAMES,
  TRACE_FIXED_SIZE,
  TRACE_MAX_DLEN,
  TraceCode,
  decodeTraceFixed,
  encodeTraceRecord,
  splitEncoded,
  type TraceRecord,
} from './trace-format.ts';
export { TraceWriter, type TraceClock } from './trace-writer.ts';
