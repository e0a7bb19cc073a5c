/**
 * Appends trace records to `<cache path>.trace` (client-cache spec §9). Records are buffered in a
 * bounded buffer and written when it fills, on flush() and on close().
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { encodeTraceRecord, TRACE_FIXED_SIZE } from './trace-format.ts';

const BUFFER_SIZE = 64 * 1024;
const MAX_RECORD = TRACE_FIXED_SIZE + 8;

export type TraceClock = () => number;

export class TraceWriter {
  readonly path: string;
  private fd: number;
  private readonly buf = Buffer.allocUnsafe(BUFFER_SIZE);
  private used = 0;
  private readonly clock: TraceClock;
  /** set after a write error: tracing stops, the cache goes on (spec §12.4: never fail the cache operation) */
  failed: Error | null = null;

  private constructor(path: string, fd: number, clock: TraceClock) {
    this.path = path;
    this.fd = fd;
    this.clock = clock;
  }

  /** Open (append mode) or throw the open error. */
  static open(path: string, clock: TraceClock = () => Date.now() / 1000): TraceWriter {
    const fd = openSync(path, 'a');
    return new TraceWriter(path, fd, clock);
  }

  /** Append one record; oid null for the restart record. */
  record(code: number, oid: bigint | null, start: bigint, end: bigint, dlen: number): void {
    if (this.failed || this.fd < 0) return;
    if (this.used + MAX_RECORD > BUFFER_SIZE) this.flush();
    this.used += encodeTraceRecord(this.buf, this.used, this.clock(), code, oid, start, end, dlen);
  }

  flush(): void {
    if (this.fd < 0 || this.used === 0) return;
    try {
      let done = 0;
      while (done < this.used) done += writeSync(this.fd, this.buf, done, this.used - done);
    } catch (e) {
      this.failed = e as Error;
    }
    this.used = 0;
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}
