/**
 * Reading a trace file for the tools: a path (gzip when it ends in ".gz") or "-" for standard
 * input. Plain files are read in bounded chunks; a gzip file or standard input is read whole.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const CHUNK = 1 << 20;

export class TraceInput {
  private fd: number;
  private buf: Buffer;
  /** window [start, end) of buf holds bytes from file position `base` */
  private start = 0;
  private end = 0;
  private base = 0;
  private eof = false;

  private constructor(fd: number, whole: Buffer | null) {
    this.fd = fd;
    if (whole) {
      this.buf = whole;
      this.end = whole.length;
      this.eof = true;
    } else {
      this.buf = Buffer.allocUnsafe(CHUNK);
    }
  }

  /** Open `name`; throws the system error (ENOENT …) for the caller to report. */
  static open(name: string): TraceInput {
    if (name === '-') return new TraceInput(-1, maybeGunzip(readFileSync(0), false));
    if (name.endsWith('.gz')) return new TraceInput(-1, maybeGunzip(readFileSync(name), true));
    return new TraceInput(openSync(name, 'r'), null);
  }

  /** Stream position (bytes consumed). */
  tell(): number {
    return this.base + this.start;
  }

  /** Up to n bytes (fewer only at end of input); valid until the next call. */
  read(n: number): Buffer {
    if (this.end - this.start < n && !this.eof) this.fill(n);
    const k = Math.min(n, this.end - this.start);
    const out = this.buf.subarray(this.start, this.start + k);
    this.start += k;
    return out;
  }

  /** Step back k bytes of what was just read (k <= the last read's length). */
  back(k: number): void {
    if (k > this.start) throw new RangeError(`cannot step back ${k} bytes`);
    this.start -= k;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private fill(n: number): void {
    // keep the unread bytes, then read more until n are available or the file ends
    const left = this.end - this.start;
    if (this.buf.length < n + CHUNK) {
      const nb = Buffer.allocUnsafe(n + CHUNK);
      this.buf.copy(nb, 0, this.start, this.end);
      this.buf = nb;
    } else {
      this.buf.copy(this.buf, 0, this.start, this.end);
    }
    this.base += this.start;
    this.start = 0;
    this.end = left;
    while (this.end < n && !this.eof) {
      const got = readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
      if (got <= 0) this.eof = true;
      else this.end += got;
    }
  }
}

function maybeGunzip(b: Buffer, gz: boolean): Buffer {
  return gz ? gunzipSync(b) : b;
}
