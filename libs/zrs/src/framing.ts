/**
 * Sized messages (zrs spec §4): a u32 big-endian length, then that many payload bytes.
 * Pure: bytes in, payloads out.
 */

export class MessageTooLarge extends Error {
  override name = 'MessageTooLarge';
  constructor(
    readonly limit: number,
    readonly size: number,
  ) {
    // the phrase operators search for (spec §10)
    super(`message too large: (${limit}, ${size})`);
  }
}

/** The 4-byte length prefix followed by the payload. */
export function encodeSized(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

export function sizePrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/**
 * Reassembles sized messages from arbitrary fragments (§14 #1, #2). `limit` is the largest
 * payload accepted: a larger announced length throws MessageTooLarge as soon as the prefix is
 * seen, before its payload arrives (§14 #3). Buffered bytes never exceed limit + 4 plus one
 * incoming chunk.
 */
export class SizedMessageDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need: number | null = null;

  /** may be changed between messages (the primary raises it for the native channel) */
  limit: number;

  constructor(limit: number = 0xffffffff) {
    this.limit = limit;
  }

  /** Feed bytes; returns every complete payload, in order. */
  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.feed(data, (m) => void out.push(m));
    return out;
  }

  /**
   * Feed bytes; `onMessage` runs for each complete payload before the next length prefix is
   * looked at, so it may change `limit` for what follows. Stops early if it returns false.
   */
  feed(data: Buffer, onMessage: (m: Buffer) => boolean | void): void {
    if (data.length) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    for (let guard = 0; guard < 1e9; guard++) {
      if (this.need === null) {
        if (this.buffered < 4) break;
        const n = this.take(4).readUInt32BE(0);
        if (n > this.limit) throw new MessageTooLarge(this.limit, n);
        this.need = n;
      }
      if (this.buffered < this.need) break;
      const m = this.take(this.need);
      this.need = null;
      if (onMessage(m) === false) break;
    }
  }

  /** Bytes of an incomplete message held. */
  get pending(): number {
    return this.buffered;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const r = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return Buffer.from(r);
    }
    const r = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(r, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return r;
  }
}
