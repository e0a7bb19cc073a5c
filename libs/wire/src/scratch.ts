/**
 * The growable scratch buffer behind the direct M5 and Z5 writers: bytes are appended at `len`,
 * the buffer doubles when needed, and `take` copies the finished message out (with its 4-byte
 * frame size filled in when the writer left room for it). A scratch grown past 1 MiB by one big
 * message is dropped afterwards, so one huge record does not pin memory for the connection's life.
 */
const KEEP_SCRATCH_BYTES = 1024 * 1024;
const INITIAL_SCRATCH_BYTES = 4096;

export class ScratchWriter {
  protected buf: Buffer = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);
  protected len = 0;

  /** start a message; `framed` leaves room for the frame size */
  protected begin(framed: boolean): void {
    this.len = framed ? 4 : 0;
    this.ensure(4);
  }

  /** the finished message, copied out of the scratch */
  protected take(framed: boolean): Buffer {
    if (framed) this.buf.writeUInt32BE(this.len - 4, 0);
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    return out;
  }

  /** after each message, success or not */
  protected release(): void {
    if (this.buf.length > KEEP_SCRATCH_BYTES) this.buf = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);
  }

  protected ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }

  protected u8(x: number): void {
    this.ensure(1);
    this.buf[this.len++] = x;
  }
}
