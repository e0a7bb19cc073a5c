/**
 * Sized-message framing (zeo5-protocol §3): every message is a 4-byte big-endian payload length
 * followed by the payload. Pure: bytes in, frames out.
 */
import { ProtocolError } from './errors.ts';

/** Default maximum payload accepted by a FrameDecoder: 256 MiB (§3: SHOULD accept at least that). */
export const DEFAULT_MAX_FRAME = 256 * 1024 * 1024;
/** The largest payload the 4-byte length can express. */
export const MAX_FRAME_LIMIT = 0xffffffff;

/** A frame header announced a payload larger than the configured maximum (W-2). */
export class FrameTooLargeError extends ProtocolError {
  override name = 'FrameTooLargeError';
  constructor(readonly length: number, readonly maxFrame: number, readonly streamOffset: number) {
    super(`frame at stream offset ${streamOffset} announces ${length} payload bytes, more than the maximum of ${maxFrame}`);
  }
}

/** The 4-byte big-endian length header for a payload of `length` bytes. */
export function frameHeader(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_LIMIT) {
    throw new RangeError(`cannot frame a payload of ${length} bytes (limit ${MAX_FRAME_LIMIT})`);
  }
  const h = Buffer.allocUnsafe(4);
  h.writeUInt32BE(length, 0);
  return h;
}

/** Length prefix + payload as one Buffer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(payload.length), payload]);
}

/**
 * Incremental decoder: feed it whatever the stream delivered, get back complete payloads in
 * order. Handles frames split across reads and several frames in one read (W-1). A header
 * announcing more than `maxFrame` bytes throws FrameTooLargeError before any of that payload is
 * buffered (W-2); after an error the decoder refuses further input.
 */
export class FrameDecoder {
  readonly maxFrame: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** payload length of the frame being read, or -1 while reading a header */
  private want = -1;
  private consumed = 0;
  private failed: Error | null = null;

  constructor(maxFrame: number = DEFAULT_MAX_FRAME) {
    if (!Number.isInteger(maxFrame) || maxFrame < 0 || maxFrame > MAX_FRAME_LIMIT) {
      throw new RangeError(`maxFrame must be an integer in 0..${MAX_FRAME_LIMIT}, got ${maxFrame}`);
    }
    this.maxFrame = maxFrame;
  }

  /** Bytes received but not yet returned as part of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Total bytes consumed from the stream so far (offset of the next unread byte). */
  get streamOffset(): number {
    return this.consumed;
  }

  /** Append received bytes; returns every payload completed by them (possibly none). */
  push(data: Uint8Array): Buffer[] {
    if (this.failed) throw this.failed;
    const out: Buffer[] = [];
    if (data.length) {
      this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      this.buffered += data.length;
    }
    // Each iteration consumes a header or a payload, so the loop ends after at most
    // 2 * (bytes / 4 + 1) rounds.
    for (;;) {
      if (this.want < 0) {
        if (this.buffered < 4) break;
        const header = this.take(4);
        const length = header.readUInt32BE(0);
        if (length > this.maxFrame) {
          this.failed = new FrameTooLargeError(length, this.maxFrame, this.consumed - 4);
          this.chunks = [];
          this.buffered = 0;
          throw this.failed;
        }
        this.want = length;
      }
      if (this.buffered < this.want) break;
      out.push(this.take(this.want));
      this.want = -1;
    }
    return out;
  }

  /** Take exactly n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    this.buffered -= n;
    this.consumed += n;
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
