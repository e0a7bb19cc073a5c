/**
 * Raw mode of the native channel (native.ts): between zeo-ts peers whose data files are
 * positionally identical, the primary sends whole transactions as the bytes of its data file and
 * the secondary appends them, after validating them, with one write per segment
 * (@zeo-ts/filestorage appendRawTransactions).
 *
 *  - RawSource (primary side, one per Primary): reads segments of whole committed transactions
 *    (up to `maxSegment` bytes, more only for one larger transaction) and keeps the encoded Raw
 *    frames of the last few in a small bounded cache keyed by file position, so a live commit is
 *    read and encoded once however many secondaries follow it.
 *  - produceRaw: one connection's sending loop over a RawSource, with the connection's
 *    back-pressure; returns 'fallback' when the data file is replaced (pack) so the caller
 *    continues on the record path.
 *  - RawReceiver (secondary side, one per connection): group durability. It appends every Raw
 *    frame already received, then one fdatasync for the batch, then one acknowledgement of the
 *    last durable tid (acks still mean durable: the primary counts a secondary for a tid only
 *    when its acked tid is that tid or later).
 *  - rawHello: what the secondary announces (end of its file, SHA-1 of its last transaction).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Logger } from 'pino';
import { toHex, type Tid } from '@zeo-ts/storage';
import { FileStorage, MAGIC_LEN, TRANS_HDR_LEN, appendRawTransactions, lastAppendedTid, rawAppendInternalsOf as internalsOf, readPos, syncRawAppends, unsyncedRawBytes } from '@zeo-ts/filestorage';
import { decodeRawFrame, encodeRawFrame, rawDigest, NativeProtocolError } from './native.ts';

/** A segment ready to send. */
export interface RawSegment {
  /** size-prefixed Raw frame */
  frame: Buffer;
  pos: number;
  end: number;
  lastTid: Tid;
  count: number;
}

export interface RawSourceOptions {
  /** bytes of whole transactions per segment (default 4 MiB) */
  maxSegment?: number;
  /** encoded frames kept for other connections (bytes, default 32 MiB) */
  cacheBytes?: number;
  /** true while commits wait for acknowledgements (semi-sync): frames then carry ack_now */
  ackNow?: () => boolean;
  /**
   * a producer that waited for a commit holds it until this many ms after its previous send
   * (default 1) or until `sendBatch` commits wait, whichever comes first: under a steady stream
   * of small commits one frame then carries several (less CPU per commit on both sides, a little
   * more lag). Never with ack_now (semi-sync), nor after a quiet spell (sent at once).
   */
  sendDelayMs?: number;
  /** most commits held back by sendDelayMs (default 4; also bounds the lag when the event loop is busy) */
  sendBatch?: number;
}

function readFully(fd: number, buf: Buffer, len: number, pos: number): number {
  let got = 0;
  for (let guard = 0; got < len && guard < len + 1; guard++) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n <= 0) break;
    got += n;
  }
  return got;
}

/** Primary side: segments of the committed data file, shared by every raw connection. */
export class RawSource {
  private fd = -1;
  private gen = -1;
  private readonly cache = new Map<number, RawSegment>();
  private cached = 0;
  readonly maxSegment: number;
  readonly cacheBytes: number;
  private readonly ackNow: () => boolean;
  readonly sendDelayMs: number;
  readonly sendBatch: number;
  /** segments read from the file / served from the cache (tests, status) */
  reads = 0;
  hits = 0;

  constructor(
    readonly fs: FileStorage,
    options: RawSourceOptions = {},
  ) {
    this.maxSegment = options.maxSegment ?? 4 << 20;
    this.cacheBytes = options.cacheBytes ?? 32 << 20;
    this.ackNow = options.ackNow ?? (() => false);
    this.sendDelayMs = options.sendDelayMs ?? 1;
    this.sendBatch = options.sendBatch ?? 4;
    if (!(this.sendDelayMs >= 0 && this.sendDelayMs <= 1000)) throw new RangeError(`RawSource: sendDelayMs must be 0..1000 ms, not ${options.sendDelayMs}`);
    if (!(Number.isInteger(this.sendBatch) && this.sendBatch >= 1 && this.sendBatch <= 1000)) throw new RangeError(`RawSource: sendBatch must be 1..1000, not ${options.sendBatch}`);
  }

  /** commits wait for acknowledgements: send and acknowledge without delay */
  get ackNowWanted(): boolean {
    return this.ackNow();
  }

  /** raw mode is impossible for blob storages (blob files are not in the data file) */
  get usable(): boolean {
    return !internalsOf(this.fs).supportsBlobs();
  }

  /** bumped by a pack of the primary: positions before and after mean nothing to each other */
  generation(): number {
    return internalsOf(this.fs).generation();
  }

  private file(): number {
    const g = this.generation();
    if (this.fd < 0 || g !== this.gen) {
      if (this.fd >= 0) closeSync(this.fd);
      this.fd = openSync(this.fs.path, 'r');
      this.gen = g;
      this.cache.clear();
      this.cached = 0;
    }
    return this.fd;
  }

  /**
   * SHA-1 and tid of the transaction that ends at `end` in the current file (null if there is
   * no well-formed transaction ending there).
   */
  lastTxnDigest(end: number): { tid: Tid; sha1: Buffer } | null {
    if (end <= MAGIC_LEN || end > this.fs.getSize()) return null;
    const fd = this.file();
    const b8 = Buffer.alloc(8);
    if (readFully(fd, b8, 8, end - 8) !== 8) return null;
    let tlen: number;
    try {
      tlen = readPos(b8, 0);
    } catch {
      return null;
    }
    const start = end - 8 - tlen;
    if (start < MAGIC_LEN || tlen < TRANS_HDR_LEN) return null;
    const b = Buffer.allocUnsafe(tlen + 8);
    if (readFully(fd, b, b.length, start) !== b.length) return null;
    if (readPos(b, 8) !== tlen) return null;
    return { tid: b.readBigUInt64BE(0), sha1: rawDigest(b) };
  }

  /** The segment of whole committed transactions starting at `pos`, or null when none yet. */
  segmentAt(pos: number): RawSegment | null {
    const fd = this.file();
    const hit = this.cache.get(pos);
    if (hit) {
      this.hits++;
      return hit;
    }
    const committed = this.fs.getSize();
    if (pos >= committed) return null;
    let want = Math.min(committed - pos, this.maxSegment);
    let buf = Buffer.allocUnsafe(want);
    let n = readFully(fd, buf, want, pos);
    let off = 0;
    let count = 0;
    let lastTid = 0n;
    for (let guard = 0; guard <= n; guard++) {
      if (off + 16 > n) break;
      const tlen = readPos(buf, off + 8);
      if (tlen < TRANS_HDR_LEN) throw new Error(`${this.fs.path}: bad transaction length ${tlen} at ${pos + off}`);
      if (off + tlen + 8 > n) {
        if (count > 0) break;
        // one transaction larger than a segment: send it alone
        want = tlen + 8;
        if (pos + want > committed) throw new Error(`${this.fs.path}: transaction at ${pos} runs past the committed end ${committed}`);
        buf = Buffer.allocUnsafe(want);
        n = readFully(fd, buf, want, pos);
        if (n !== want) throw new Error(`${this.fs.path}: short read of the transaction at ${pos}`);
        continue;
      }
      lastTid = buf.readBigUInt64BE(off);
      off += tlen + 8;
      count++;
    }
    if (count === 0) throw new Error(`${this.fs.path}: no whole transaction at ${pos} (committed end ${committed})`);
    const seg: RawSegment = { frame: encodeRawFrame(pos, lastTid, count, buf.subarray(0, off), undefined, this.ackNow()), pos, end: pos + off, lastTid, count };
    this.reads++;
    this.cache.set(pos, seg);
    this.cached += seg.frame.length;
    for (const [k, v] of this.cache) {
      if (this.cached <= this.cacheBytes && this.cache.size <= 64) break;
      this.cache.delete(k);
      this.cached -= v.frame.length;
    }
    return seg;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.cache.clear();
    this.cached = 0;
  }
}

/** What produceRaw needs from its connection. */
export interface RawProducerContext {
  log: Logger;
  /** the connection is gone or told to stop now */
  stopped(): boolean;
  /** send what is committed, then stop (primary closing) */
  finishing(): boolean;
  /** write with back-pressure */
  send(frame: Buffer): Promise<void>;
  sent(tid: Tid): void;
  waitForData(): Promise<void>;
}

/**
 * Send raw segments from `startPos` until stopped ('stopped'), everything committed was sent
 * while finishing ('done'), or the file was replaced by a pack ('fallback': continue on the
 * record path after the last tid sent).
 */
export async function produceRaw(source: RawSource, ctx: RawProducerContext, startPos: number): Promise<'done' | 'fallback' | 'stopped'> {
  const gen = source.generation();
  let pos = startPos;
  let seg: RawSegment | null = null;
  let lastSend = -Infinity;
  for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
    if (ctx.stopped()) return 'stopped';
    if (source.generation() !== gen) {
      ctx.log.info(`the data file was replaced (pack) at ${pos}: continuing on the record path`);
      return 'fallback';
    }
    if (seg === null) seg = source.segmentAt(pos);
    if (seg === null) {
      if (ctx.finishing()) return 'done';
      const wait = ctx.waitForData();
      // re-check: a commit may have landed between segmentAt and the wait
      seg = source.generation() === gen ? source.segmentAt(pos) : null;
      if (seg === null) {
        await wait;
        // a steady stream: let a few more commits join this frame (bounded in time and count)
        const hold = lastSend + source.sendDelayMs - performance.now();
        if (hold > 0 && source.sendBatch > 1 && !source.ackNowWanted && !ctx.finishing()) await holdForMore(source, ctx, hold);
        continue;
      }
    }
    // the write starts now; the next segment is read and encoded while the socket drains
    const sending = ctx.send(seg.frame);
    lastSend = performance.now();
    ctx.sent(seg.lastTid);
    pos = seg.end;
    seg = source.generation() === gen ? source.segmentAt(pos) : null;
    await sending;
  }
  return 'stopped';
}

/**
 * Wait until `ms` have passed or `sendBatch - 1` more commits arrived (a commit loop that never
 * yields to the event loop, where the timer cannot fire, still sends every few commits).
 */
async function holdForMore(source: RawSource, ctx: RawProducerContext, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeUp = new Promise<false>((r) => (timer = setTimeout(r, ms, false)));
  try {
    for (let n = 1; n < source.sendBatch; n++) {
      const more = await Promise.race([timeUp, ctx.waitForData().then(() => true)]);
      if (!more || ctx.stopped() || ctx.finishing() || source.ackNowWanted) break;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** What the secondary puts in its Hello for raw mode (null: raw mode impossible for it). */
export function rawHello(storage: unknown): { endPos: number; lastRawSha1: Buffer } | null {
  if (!(storage instanceof FileStorage)) return null;
  const x = internalsOf(storage);
  if (x.supportsBlobs() || storage.isReadOnly()) return null;
  const end = storage.getSize();
  if (end <= MAGIC_LEN) return { endPos: end, lastRawSha1: Buffer.alloc(0) };
  const src = new RawSource(storage);
  try {
    const d = src.lastTxnDigest(end);
    return d ? { endPos: end, lastRawSha1: d.sha1 } : null;
  } finally {
    src.close();
  }
}

/** Primary side: does this Hello allow raw mode at `startPos` (our position after its last tid)? */
export function rawAgreed(source: RawSource | null, hello: { lastTid: Tid; raw?: boolean; endPos?: number; lastRawSha1?: Buffer }, startPos: number): { ok: boolean; why: string } {
  if (!hello.raw) return { ok: false, why: 'not asked' };
  if (!source || !source.usable) return { ok: false, why: 'this primary cannot send raw transactions (blob storage)' };
  if (hello.endPos !== startPos) return { ok: false, why: `the secondary's file ends at ${hello.endPos}, our transaction after ${toHex(hello.lastTid)} starts at ${startPos}` };
  if (hello.lastTid === 0n) return startPos === MAGIC_LEN ? { ok: true, why: 'empty secondary' } : { ok: false, why: 'position mismatch' };
  const d = source.lastTxnDigest(startPos);
  if (!d || d.tid !== hello.lastTid) return { ok: false, why: `our transaction ending at ${startPos} is not ${toHex(hello.lastTid)}` };
  if (!hello.lastRawSha1 || !d.sha1.equals(hello.lastRawSha1)) return { ok: false, why: `the bytes of transaction ${toHex(hello.lastTid)} differ` };
  return { ok: true, why: 'same bytes at the same position' };
}

/** Raw frames are recognised by their first byte (Frame field 7). */
export function isRawPayload(m: Buffer): boolean {
  return m.length > 0 && m[0] === ((7 << 3) | 2);
}

export interface RawReceiverOptions {
  /** appends wait for the running fdatasync once this many bytes are not durable (default 64 MiB) */
  syncBytes?: number;
  /**
   * at least this long between two fdatasyncs (ms, default 1): under a steady stream of small
   * commits more transactions share one fdatasync and one ack (less CPU on both sides) for at
   * most this much more lag; a first commit after a quiet spell, and every frame marked ack_now
   * (a commit waits for it, semi-sync), are made durable at once.
   */
  syncDelayMs?: number;
}

/**
 * Secondary side of one connection: apply Raw frames with group durability. The fdatasync runs
 * off the event loop while later frames are received and appended; each completed fdatasync
 * reports (`onDurable`) how many transactions became durable and the tid to acknowledge. At most
 * one fdatasync runs at a time; when it ends, the next one covers everything appended meanwhile.
 */
export class RawReceiver {
  private readonly syncBytes: number;
  /** transactions appended whose fdatasync has not started */
  private unsyncedTxns = 0;
  private flushing: Promise<void> | null = null;
  private again = false;
  private readonly syncDelayMs: number;
  private lastSync = -Infinity;
  /** a received frame asked for its acknowledgement now (ack_now) */
  private urgent = false;
  /** ends the wait before a delayed fdatasync early (an urgent frame arrived) */
  private wake: (() => void) | null = null;
  /** a failed fdatasync: nothing more is acknowledged on this connection */
  failed: Error | null = null;

  constructor(
    readonly fs: FileStorage,
    private readonly log: Logger,
    private readonly onDurable: (transactions: number, ack: Tid) => void,
    options: RawReceiverOptions = {},
  ) {
    this.syncBytes = options.syncBytes ?? 64 << 20;
    this.syncDelayMs = options.syncDelayMs ?? 1;
    if (!(this.syncDelayMs >= 0 && this.syncDelayMs <= 60_000)) throw new RangeError(`RawReceiver: syncDelayMs must be 0..60000 ms, not ${options.syncDelayMs}`);
  }

  /**
   * Validate and append `payloads` (Raw frames, in order), then start making them durable.
   * Returns the reason when a frame is refused (null otherwise): the frames before it stay and
   * become durable, nothing of the refused one is written, the caller falls back to the record
   * path.
   */
  async apply(payloads: Buffer[]): Promise<string | null> {
    if (this.failed) throw this.failed;
    let problem: string | null = null;
    for (let i = 0; i < payloads.length; i++) {
      const m = payloads[i]!;
      let f;
      try {
        f = decodeRawFrame(m);
      } catch (e) {
        problem = e instanceof NativeProtocolError ? e.message : String(e);
        break;
      }
      if (f.ackNow) this.urgent = true;
      const expect = this.fs.getSize();
      if (f.pos !== expect) {
        problem = `raw segment for position ${f.pos}, our file ends at ${expect}`;
        break;
      }
      // bound what is not durable: wait for the running fdatasync first
      if (unsyncedRawBytes(this.fs) >= this.syncBytes && this.flushing) await this.flushing;
      // between two segments let the event loop read the socket, so the primary keeps sending
      // while we validate and write (the two processes work in parallel)
      if (i > 0) await new Promise<void>((r) => setImmediate(r));
      try {
        const r = await appendRawTransactions(this.fs, [f.data], { sync: false });
        this.unsyncedTxns += r.transactions;
      } catch (e) {
        problem = e instanceof Error ? e.message : String(e);
        break;
      }
    }
    this.requestFlush();
    if (problem !== null) this.log.error(`raw segment refused (${problem}); nothing of it was written; falling back to the record path`);
    return problem;
  }

  private requestFlush(): void {
    if (this.unsyncedTxns === 0 && unsyncedRawBytes(this.fs) === 0) return;
    if (this.flushing) {
      this.again = true;
      if (this.urgent && this.wake) this.wake();
      return;
    }
    this.flushing = (async () => {
      try {
        for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
          const wait = this.urgent ? 0 : this.lastSync + this.syncDelayMs - performance.now();
          if (wait > 0) await this.sleep(wait);
          this.urgent = false;
          this.again = false;
          const n = this.unsyncedTxns;
          this.unsyncedTxns = 0;
          const tid = lastAppendedTid(this.fs); // everything up to it is covered by this fdatasync
          await syncRawAppends(this.fs);
          this.lastSync = performance.now();
          if (n > 0) this.onDurable(n, tid);
          if (!this.again && this.unsyncedTxns === 0 && unsyncedRawBytes(this.fs) === 0) break;
        }
      } catch (e) {
        this.failed = e instanceof Error ? e : new Error(String(e));
        this.log.fatal({ err: String(e) }, 'raw transactions could not be made durable');
      } finally {
        this.flushing = null;
      }
    })();
  }

  /** wait `ms`, or less when an urgent frame arrives */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  /** Make every appended transaction durable and reported (before a record transaction, or at the end). */
  async flush(): Promise<void> {
    this.urgent = true; // nobody waits for a delay here
    if (this.wake) this.wake();
    for (let guard = 0; guard < 1_000_000; guard++) {
      this.requestFlush();
      const f = this.flushing;
      if (!f) break;
      await f;
    }
    if (this.failed) throw this.failed;
  }

  /** transactions appended whose fdatasync has not started */
  get pending(): number {
    return this.unsyncedTxns;
  }
}
