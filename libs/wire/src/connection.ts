/**
 * RpcConnection: one ZEO 5 connection over a net.Socket or tls.TLSSocket, usable by servers and
 * clients (zeo5-protocol §3–§5, §9). The only module of @zeo-ts/wire that touches sockets.
 *
 * Responsibilities: framing with a maximum frame size, the handshake of either side, dispatch of
 * incoming calls to a handler (in arrival order, one at a time, with explicitly delayed replies),
 * replies and error replies, one-way calls, outgoing calls with msgid bookkeeping, heartbeats,
 * write back-pressure with a bounded queue, and closing (only this connection) on any protocol
 * violation.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import { ConnectionClosedError, ProtocolError, errorFromWire, PythonError } from './errors.ts';
import { FrameDecoder, DEFAULT_MAX_FRAME, frameHeader, FrameTooLargeError } from './framing.ts';
import {
  RUOK, announcement, clientAnswer, decodeRuokReply, encodeRuokReply, parseClientHandshake, type EncodingLetter,
} from './handshake.ts';
import {
  HEARTBEAT_MSGID, REPLY, errorReply, errorReplyParts, heartbeat, isErrorReply, reply, truthy,
  type Message, type MessageCodec,
} from './message.ts';
import { availableEncodings, codecFor } from './codecs.ts';
import { asBuffer, shortRepr, type WireValue } from './values.ts';

/** A reply that will be sent later, while the connection goes on processing messages (§5.5 rule 7). */
export class Delayed {
  constructor(readonly promise: Promise<WireValue | undefined>) {}
}

/** Wrap a promise so its call's reply is sent when it settles, without holding up later messages. */
export function delayed(promise: Promise<WireValue | undefined>): Delayed {
  return new Delayed(promise);
}

/**
 * A reply whose position in this connection's output is fixed when the handler returns: any
 * message written to the connection afterwards (invalidations, other replies) waits until this
 * reply is sent. Later incoming messages are processed meanwhile. Use it for loads whose data is
 * read asynchronously, so an invalidation can never overtake the reply (§11.2, S-25).
 */
export class Ordered {
  constructor(readonly promise: Promise<WireValue | undefined>) {}
}

/**
 * Handler result meaning "no automatic reply": the application answers this synchronous call
 * itself later with `sendReply` / `sendError` (or an OutputSlot). Nothing is held up meanwhile.
 */
export const REPLY_LATER: unique symbol = Symbol('zeo-ts.wire.replyLater');

/** Wrap a promise as an Ordered reply (see Ordered). */
export function ordered(promise: Promise<WireValue | undefined>): Ordered {
  return new Ordered(promise);
}

/**
 * A reserved position in a connection's output (RpcConnection.reserveOutput): frames written
 * after the reservation are held until the slot is filled (reply/error/send) or cancelled.
 */
export class OutputSlot {
  /** the payload to write at this position, null when cancelled, undefined while pending */
  payload: Buffer | null | undefined = undefined;
  constructor(private readonly conn: RpcConnection) {}
  get done(): boolean {
    return this.payload !== undefined;
  }
  /** Fill with a reply (falls back to the "Couldn't pickle response" error when unencodable). */
  reply(msgid: WireValue, result: WireValue): void {
    this.conn.fillSlot(this, { kind: 'reply', msgid, value: result });
  }
  /** Fill with an error reply for err (§6.4). */
  error(msgid: WireValue, err: unknown): void {
    this.conn.fillSlot(this, { kind: 'error', msgid, err });
  }
  /** Fill with any message. */
  send(msg: Message): void {
    this.conn.fillSlot(this, { kind: 'message', msg });
  }
  /** Release the position without writing anything. */
  cancel(): void {
    this.conn.fillSlot(this, null);
  }
}

type SlotFill =
  | { kind: 'reply'; msgid: WireValue; value: WireValue }
  | { kind: 'error'; msgid: WireValue; err: unknown }
  | { kind: 'message'; msg: Message }
  | null;

export interface IncomingCall {
  readonly connection: RpcConnection;
  readonly msgid: WireValue;
  /** true for a one-way call: nothing is sent back; a failure closes the connection (server role) */
  readonly oneWay: boolean;
}

/**
 * Handles one incoming call. Return the result (a value, `undefined` = None, a Promise, or
 * `delayed(promise)`). A returned Promise holds up the processing of later messages of this
 * connection until it settles (so one-way calls like storea apply in order); `delayed()` does not.
 * Throwing (or rejecting) sends an error reply for a synchronous call (§5.5 rule 5); a
 * ProtocolError instead closes the connection without a reply (e.g. a method not allowed, §4.5).
 */
export type CallHandler = (method: string, args: WireValue[], call: IncomingCall) =>
  WireValue | undefined | void | Promise<WireValue | undefined | void> | Delayed | Ordered | typeof REPLY_LATER;

export type CodecFactory = (letter: EncodingLetter) => MessageCodec | undefined;

export interface RpcConnectionOptions {
  /** 'server' announces and accepts; 'client' waits for the announcement and answers. */
  role: 'server' | 'client';
  /** server: the letter announced (default 'M', §4.3). */
  announce?: EncodingLetter;
  /** Encodings this side can speak. Default: both, ['M', 'Z']. */
  encodings?: EncodingLetter[];
  /** Codec for an encoding letter. Default: codecFor (M5Codec for 'M', Z5Codec for 'Z'). */
  codecs?: CodecFactory;
  /** Incoming calls (server: client requests; client: invalidateTransaction, info, receiveBlob*). */
  handler?: CallHandler;
  /** server: the status document answered to `ruok` (§4.4). Without it a `ruok` probe is just closed. */
  ruok?: () => Record<string, Record<string, unknown>>;
  /** Largest accepted frame payload (default 256 MiB, W-2). */
  maxFrame?: number;
  /** Outgoing synchronous calls awaiting a reply (default 10000); more are refused. */
  maxPendingCalls?: number;
  /** Bytes allowed to wait for the socket to drain (default 512 MiB); beyond, the peer is too slow: close. */
  maxOutgoingBytes?: number;
  /** Received but unprocessed bytes above which reading pauses (default 64 MiB). */
  maxInboundBytes?: number;
  /** client: heartbeat period in ms (default 60000, §5.8 / C-7); 0 disables. Servers never send heartbeats. */
  heartbeatInterval?: number;
  /** Close one-way call failures? Default: true for servers (§5.5 rule 5), false for clients (logged). */
  closeOnOneWayError?: boolean;
  logger?: Logger;
  /** Name for logs (default: the peer address). */
  label?: string;
}

export interface CallOptions {
  /** msgid to use instead of the next counter value (e.g. `[oid, tid]` for loadBefore, §5.3). Identical in-flight msgids share one call. */
  msgid?: WireValue;
  /**
   * Called synchronously with the result (and the call's msgid) when the reply is processed,
   * before any later message is (§5.7). One function shared by many calls can tell them apart by
   * the msgid, so a hot path needs no closure per call.
   */
  onReply?: ReplyCallback;
}

/** See CallOptions.onReply. */
export type ReplyCallback = (result: WireValue, msgid: WireValue) => void;

/** An outgoing call awaiting its reply (a class: one shape for every call). */
class Pending {
  resolve!: (v: WireValue) => void;
  reject!: (e: Error) => void;
  readonly promise: Promise<WireValue>;
  /** the first onReply callback, and any further ones of merged identical calls */
  onReply: ReplyCallback | null;
  moreOnReply: ReplyCallback[] | null = null;
  constructor(readonly method: string, readonly msgid: WireValue, onReply: ReplyCallback | undefined) {
    this.promise = new Promise<WireValue>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.onReply = onReply ?? null;
  }
  addOnReply(cb: ReplyCallback): void {
    if (this.onReply === null) this.onReply = cb;
    else (this.moreOnReply ??= []).push(cb);
  }
}

/** A batch reaching this many bytes is written at once instead of at the end of the tick. */
const BATCH_FLUSH_BYTES = 256 * 1024;
/** Buffers are joined (copied) into runs of at most this many bytes; larger ones are written as they are. */
const JOIN_LIMIT = 64 * 1024;

/**
 * Write `parts` in order with as few socket writes as possible: runs of small buffers are
 * joined into one; several writes are corked into one writev. Returns socket.write's verdict
 * for the last write (false: the socket buffers more than its high-water mark).
 */
function writeJoined(socket: Socket, parts: Buffer[]): boolean {
  if (parts.length === 1) return socket.write(parts[0]!);
  let total = 0;
  for (const p of parts) total += p.length;
  if (total <= JOIN_LIMIT) return socket.write(Buffer.concat(parts, total));
  socket.cork();
  let ok = true;
  let run: Buffer[] = [];
  let runBytes = 0;
  for (const p of parts) {
    if (p.length > JOIN_LIMIT / 2) {
      if (run.length) ok = socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
      ok = socket.write(p);
      continue;
    }
    if (runBytes + p.length > JOIN_LIMIT) {
      ok = socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
    }
    run.push(p);
    runBytes += p.length;
  }
  if (run.length) ok = socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
  socket.uncork();
  return ok;
}

let defaultLogger: Logger | undefined;
function getDefaultLogger(): Logger {
  defaultLogger ??= pino({ name: 'zeo-wire', level: process.env['ZEO_TS_LOG_LEVEL'] ?? 'info' });
  return defaultLogger;
}

/** A canonical string for a msgid, so array msgids such as (oid, tid) can key a Map. */
export function msgidKey(v: WireValue): string {
  if (v === null) return 'N';
  switch (typeof v) {
    case 'number':
      return Number.isInteger(v) ? `i${v}` : `f${v}`;
    case 'bigint':
      return `i${v}`;
    case 'boolean':
      return v ? 'i1' : 'i0'; // Python: True == 1 as a dict key
    case 'string':
      return `s${JSON.stringify(v)}`;
    default:
      if (v instanceof Uint8Array) return `b${asBuffer(v).toString('hex')}`;
      if (Array.isArray(v)) {
        // a loop rather than map/join: (oid, tid) msgids are keyed twice per loadBefore
        let s = '(';
        for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + msgidKey(v[i] as WireValue);
        return s + ')';
      }
      return `o${shortRepr(v, 1000)}`;
  }
}

type State = 'handshake' | 'open' | 'closing' | 'closed';

/**
 * Events: 'handshake' (letter) once the encoding is agreed; 'heartbeat' when a heartbeat arrives;
 * 'readPaused' / 'readResumed' when inbound back-pressure stops / restarts reading;
 * 'close' (error or undefined) once, when the socket is gone.
 */
export class RpcConnection extends EventEmitter {
  readonly role: 'server' | 'client';
  readonly socket: Socket;
  readonly log: Logger;
  /** The agreed encoding letter, once the handshake is done. */
  letter: EncodingLetter | undefined;
  /** Why the connection closed (undefined for a normal close). */
  closeReason: Error | undefined;
  /** Resolves with the letter when the handshake is done; rejects if the connection closes first. */
  readonly ready: Promise<EncodingLetter>;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<Error | undefined>;

  private readonly opts: Required<Pick<RpcConnectionOptions, 'maxPendingCalls' | 'maxOutgoingBytes' | 'maxInboundBytes' | 'heartbeatInterval' | 'closeOnOneWayError'>>;
  private readonly encodings: EncodingLetter[];
  private readonly codecs: CodecFactory;
  private readonly handler: CallHandler | undefined;
  private readonly ruokStatus: (() => Record<string, Record<string, unknown>>) | undefined;
  private readonly decoder: FrameDecoder;
  private codec: MessageCodec | undefined;
  private state: State = 'handshake';
  private messageId = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly preHandshake: { msg: Message; key: string | undefined }[] = [];
  /** output held behind reserved slots (§11.2): frames and slots in write order */
  private readonly held: (Buffer | OutputSlot)[] = [];
  private heldBytes = 0;
  private readonly inbound: Buffer[] = [];
  private inboundBytes = 0;
  private readingPaused = false;
  private pumping = false;
  private peerEnded = false;
  private readonly outbound: Buffer[] = [];
  private outboundBytes = 0;
  private writePaused = false;
  /** frames written during the current tick, handed to the socket together (one syscall) */
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private readonly flushBatchOnTick = (): void => {
    this.flushScheduled = false;
    this.flushBatch();
  };
  private drainWaiters: (() => void)[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private endAfterFlush = false;
  private resolveReady!: (l: EncodingLetter) => void;
  private rejectReady!: (e: Error) => void;
  private resolveClosed!: (e: Error | undefined) => void;

  constructor(socket: Socket, options: RpcConnectionOptions) {
    super();
    this.role = options.role;
    this.socket = socket;
    const label = options.label ?? `${socket.remoteAddress ?? 'unix'}:${socket.remotePort ?? ''}`;
    this.log = (options.logger ?? getDefaultLogger()).child({ conn: label, role: this.role });
    this.codecs = options.codecs ?? codecFor;
    this.encodings = options.encodings ?? availableEncodings();
    if (!this.encodings.length) throw new RangeError('RpcConnection needs at least one encoding');
    if (this.role === 'server' && !this.encodings.includes(options.announce ?? 'M')) {
      throw new RangeError(`announced encoding ${options.announce ?? 'M'}5 is not among the accepted encodings (${this.encodings.join(', ')})`);
    }
    this.handler = options.handler;
    this.ruokStatus = options.ruok;
    this.decoder = new FrameDecoder(options.maxFrame ?? DEFAULT_MAX_FRAME);
    this.opts = {
      maxPendingCalls: options.maxPendingCalls ?? 10000,
      maxOutgoingBytes: options.maxOutgoingBytes ?? 512 * 1024 * 1024,
      maxInboundBytes: options.maxInboundBytes ?? 64 * 1024 * 1024,
      heartbeatInterval: options.heartbeatInterval ?? (this.role === 'client' ? 60000 : 0),
      closeOnOneWayError: options.closeOnOneWayError ?? this.role === 'server',
    };
    this.ready = new Promise((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.ready.catch(() => undefined); // a failed handshake is reported through 'close' as well
    this.closed = new Promise((res) => {
      this.resolveClosed = res;
    });

    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err: Error) => {
      if (!this.closeReason) this.closeReason = err;
      this.log.debug({ err: err.message }, 'socket error');
    });
    socket.on('end', () => {
      // the peer finished sending: process what already arrived, then close (no half-open connections)
      this.peerEnded = true;
      if (!this.pumping && !this.inbound.length && this.state !== 'closed') this.finishClose();
    });
    socket.on('close', () => this.onSocketClose());

    if (this.role === 'server') {
      this.writeFrame(announcement(options.announce ?? 'M'));
    }
    if (this.opts.heartbeatInterval > 0) {
      this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatInterval);
      this.heartbeatTimer.unref();
    }
  }

  /** Is reading paused because unprocessed input exceeds maxInboundBytes? */
  get readPaused(): boolean {
    return this.readingPaused;
  }

  /** Is the connection usable (handshake may still be in progress)? */
  get isOpen(): boolean {
    return this.state === 'handshake' || this.state === 'open';
  }

  /** Outgoing synchronous calls awaiting replies. */
  get pendingCalls(): number {
    return this.pending.size;
  }

  /** Bytes queued or held by us (not yet handed to the socket) plus the socket's own buffer. */
  get outgoingBytes(): number {
    return this.heldBytes + this.batchBytes + this.outboundBytes + this.socket.writableLength;
  }

  /** False while the socket is not accepting more data without buffering (back-pressure). */
  get writable(): boolean {
    return !this.writePaused && this.isOpen;
  }

  /** Resolves once queued output has been handed to the socket and it drained (or the connection closed). */
  waitDrain(): Promise<void> {
    if (!this.writePaused || !this.isOpen) return Promise.resolve();
    return new Promise((res) => this.drainWaiters.push(res));
  }

  // ---------------------------------------------------------------- outgoing

  /** A synchronous call: resolves with the reply's value, rejects with the mapped error (§6.5). */
  call(method: string, args: WireValue[], options: CallOptions = {}): Promise<WireValue> {
    if (!this.isOpen) return Promise.reject(new ConnectionClosedError(`connection closed${this.closeReason ? `: ${this.closeReason.message}` : ''}`));
    let msgid: WireValue;
    if (options.msgid !== undefined) {
      msgid = options.msgid;
      if (msgid === HEARTBEAT_MSGID || msgid === 0) throw new RangeError(`msgid ${String(msgid)} is reserved`);
    } else {
      msgid = ++this.messageId;
    }
    const key = msgidKey(msgid);
    const existing = this.pending.get(key);
    if (existing) {
      // identical in-flight call (the reference merges loadBefore calls this way)
      if (options.onReply) existing.addOnReply(options.onReply);
      return existing.promise;
    }
    if (this.pending.size >= this.opts.maxPendingCalls) {
      return Promise.reject(new ProtocolError(`too many calls in flight (${this.pending.size}); refusing ${method}`));
    }
    const p = new Pending(method, msgid, options.onReply);
    this.pending.set(key, p);
    const msg: Message = { msgid, flags: false, method, args };
    if (this.state === 'handshake') {
      // queued behind the handshake (the reference writes its answer and register back to back)
      this.queueBeforeHandshake(msg, key);
    } else {
      this.sendMessageOrFail(msg, key);
    }
    return p.promise;
  }

  /** A one-way call `(0, True, method, args)`: nothing comes back (§5.2, §9). */
  callOneWay(method: string, args: WireValue[]): void {
    if (!this.isOpen) throw new ConnectionClosedError(`connection closed; cannot send ${method}`);
    const msg: Message = { msgid: 0, flags: true, method, args };
    if (this.state === 'handshake') {
      this.queueBeforeHandshake(msg, undefined);
    } else {
      this.sendMessage(msg);
    }
  }

  private queueBeforeHandshake(msg: Message, key: string | undefined): void {
    if (this.preHandshake.length >= this.opts.maxPendingCalls) {
      throw new ProtocolError(`too many messages queued before the handshake (${this.preHandshake.length})`);
    }
    this.preHandshake.push({ msg, key });
  }

  /** Send `(-1, 0, ".reply", None)` (§5.8). */
  sendHeartbeat(): void {
    if (this.state !== 'open') return;
    this.sendMessage(heartbeat());
  }

  /** Send a reply (for handlers that answer out of band). */
  sendReply(msgid: WireValue, result: WireValue): void {
    if (this.state !== 'open') return;
    const codec = this.codec!;
    if (codec.encodeFrame !== undefined && this.held.length === 0) {
      // the common case in one buffer; an unencodable result takes the general path below
      let frame: Buffer | undefined;
      try {
        frame = codec.encodeFrame(reply(msgid, result));
      } catch {
        frame = undefined;
      }
      if (frame !== undefined) {
        this.writeNow(frame, true);
        return;
      }
    }
    this.writeFrame(this.replyPayload(msgid, result));
  }

  /** Send an error reply for `err` (§6.4). */
  sendError(msgid: WireValue, err: unknown): void {
    if (this.state !== 'open') return;
    this.writeFrame(this.errorPayload(msgid, err));
  }

  /**
   * Reserve the current position in the output (§11.2): everything written after this call is
   * held until the slot is filled or cancelled. Held output counts against maxOutgoingBytes.
   */
  reserveOutput(): OutputSlot {
    const slot = new OutputSlot(this);
    if (this.isOpen) this.held.push(slot);
    else slot.payload = null;
    return slot;
  }

  /** @internal used by OutputSlot */
  fillSlot(slot: OutputSlot, fill: SlotFill): void {
    if (slot.done) throw new Error('output slot already filled');
    let payload: Buffer | null = null;
    if (fill && this.state === 'open') {
      try {
        payload = fill.kind === 'reply' ? this.replyPayload(fill.msgid, fill.value)
          : fill.kind === 'error' ? this.errorPayload(fill.msgid, fill.err)
            : this.codec!.encode(fill.msg);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'unencodable message for a reserved slot');
        payload = null;
      }
    }
    slot.payload = payload;
    this.flushHeld();
  }

  private replyPayload(msgid: WireValue, result: WireValue): Buffer {
    try {
      return this.codec!.encode(reply(msgid, result));
    } catch (e) {
      this.log.error({ err: (e as Error).message, result: shortRepr(result) }, 'unencodable response');
      return this.errorPayload(msgid, new PythonError('builtins.ValueError', ["Couldn't pickle response"]));
    }
  }

  private errorPayload(msgid: WireValue, err: unknown): Buffer {
    try {
      return this.codec!.encode(errorReply(msgid, err));
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'unencodable error reply');
      return this.codec!.encode(errorReply(msgid, new PythonError('builtins.ValueError', ["Couldn't pickle response"])));
    }
  }

  /** Write held frames up to the first pending slot. */
  private flushHeld(): void {
    // bounded: each round removes one element of `held`
    while (this.held.length) {
      const head = this.held[0]!;
      if (head instanceof OutputSlot) {
        if (!head.done) return;
        this.held.shift();
        if (head.payload) this.writeNow(head.payload);
      } else {
        this.held.shift();
        this.heldBytes -= head.length;
        this.writeNow(head);
      }
    }
  }

  private sendMessageOrFail(msg: Message, key: string): void {
    try {
      this.sendMessage(msg);
    } catch (e) {
      const p = this.pending.get(key);
      this.pending.delete(key);
      p?.reject(e as Error);
    }
  }

  private sendMessage(msg: Message): void {
    if (this.state !== 'open') throw new ConnectionClosedError(`connection closed; cannot send ${msg.method}`);
    const codec = this.codec!;
    // the codec's one-buffer frame when it has one (no separate header, no copy when written)
    if (codec.encodeFrame !== undefined && this.held.length === 0) this.writeNow(codec.encodeFrame(msg), true);
    else this.writeFrame(codec.encode(msg));
  }

  /** Frame and write a payload after any reserved slots; close when the peer reads too slowly. */
  private writeFrame(payload: Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    if (this.held.length) {
      this.held.push(payload);
      this.heldBytes += payload.length;
      if (this.heldBytes + this.outboundBytes + this.socket.writableLength > this.opts.maxOutgoingBytes) {
        this.abort(new ProtocolError(`more than ${this.opts.maxOutgoingBytes} bytes of output held or queued (peer not reading, or a reserved reply never came)`));
      }
      return;
    }
    this.writeNow(payload);
  }

  /**
   * Frame a payload and queue it for the socket, respecting back-pressure. Frames written during
   * one tick (a burst of replies, invalidations to many clients, pipelined calls) are handed to
   * the socket together at the end of the tick: one write system call instead of one per frame.
   * Order is kept: the batch, then `outbound` (only used while the socket is paused).
   */
  private writeNow(payload: Buffer, framed = false): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    // `framed`: payload already starts with its 4-byte length header
    const bytes = framed ? payload.length : payload.length + 4;
    if (this.writePaused) {
      if (framed) this.outbound.push(payload);
      else this.outbound.push(frameHeader(payload.length), payload);
      this.outboundBytes += bytes;
      if (this.outboundBytes + this.socket.writableLength > this.opts.maxOutgoingBytes) {
        this.abort(new ProtocolError(`peer is not reading: more than ${this.opts.maxOutgoingBytes} bytes of output queued`));
      }
      return;
    }
    if (framed) this.batch.push(payload);
    else this.batch.push(frameHeader(payload.length), payload);
    this.batchBytes += bytes;
    if (this.batchBytes >= BATCH_FLUSH_BYTES) {
      this.flushBatch();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBatchOnTick);
    }
  }

  /** Hand the batched frames to the socket now (small ones joined into one buffer). */
  private flushBatch(): void {
    if (!this.batch.length) return;
    const parts = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    if (this.socket.destroyed) return;
    const ok = writeJoined(this.socket, parts);
    if (!ok) {
      this.writePaused = true;
      if (this.socket.writableLength > this.opts.maxOutgoingBytes) {
        this.abort(new ProtocolError(`peer is not reading: more than ${this.opts.maxOutgoingBytes} bytes of output queued`));
      }
    }
  }

  private onDrain(): void {
    this.writePaused = false;
    // hand the queued buffers over in joined runs until the socket pushes back again
    const q = this.outbound;
    let i = 0;
    // bounded: each round consumes at least one queued buffer
    while (i < q.length && !this.writePaused) {
      let j = i;
      let bytes = 0;
      while (j < q.length && (j === i || bytes + q[j]!.length <= JOIN_LIMIT)) bytes += q[j++]!.length;
      const run = q.slice(i, j);
      i = j;
      this.outboundBytes -= bytes;
      if (!writeJoined(this.socket, run)) this.writePaused = true;
    }
    q.splice(0, i);
    if (!this.writePaused) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
      if (this.endAfterFlush) this.socket.end();
    }
  }

  // ---------------------------------------------------------------- incoming

  /**
   * Hand a received chunk to the connection, for a socket made with net's `onread` option (which
   * delivers data to a callback instead of 'data' events, saving the stream machinery per read).
   * The chunk must not be reused by the caller afterwards.
   */
  feed(chunk: Buffer): void {
    this.onData(chunk);
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.abort(e as Error);
      return;
    }
    for (const f of frames) {
      this.inbound.push(f);
      this.inboundBytes += f.length + 4;
    }
    if (this.inboundBytes > this.opts.maxInboundBytes && !this.readingPaused) {
      this.readingPaused = true;
      this.socket.pause();
      this.emit('readPaused');
    }
    this.pump();
  }

  /**
   * Process queued frames one at a time, in order; awaits handlers that return promises.
   * Frames are processed synchronously until a handler returns a promise; only then does the
   * loop continue asynchronously (no async function per received chunk).
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.pumpSome();
    } catch (e) {
      this.abort(e instanceof Error ? e : new Error(String(e)));
    }
    if (waiting) {
      void this.pumpAfter(waiting);
      return;
    }
    this.pumping = false;
    this.pumpDone();
  }

  /** Process queued frames until one's handler returns a promise (returned) or none are left. */
  private pumpSome(): Promise<void> | undefined {
    // bounded: each round removes one queued frame
    while (this.inbound.length && (this.state === 'open' || this.state === 'handshake')) {
      const frame = this.inbound.shift()!;
      this.inboundBytes -= frame.length + 4;
      if (this.readingPaused && this.inboundBytes <= this.opts.maxInboundBytes / 2) {
        this.readingPaused = false;
        this.socket.resume();
        this.emit('readResumed');
      }
      const r = this.processFrame(frame);
      if (r) return r;
    }
    return undefined;
  }

  private async pumpAfter(first: Promise<void>): Promise<void> {
    try {
      let r: Promise<void> | undefined = first;
      // bounded: each round awaits one handler and then consumes at least one frame or stops
      while (r) {
        await r;
        r = this.pumpSome();
      }
    } catch (e) {
      this.abort(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.pumping = false;
    }
    this.pumpDone();
  }

  private pumpDone(): void {
    if (this.inbound.length && this.state === 'open') this.pump();
    else if (this.peerEnded && this.state !== 'closed') this.finishClose();
  }

  private processFrame(frame: Buffer): Promise<void> | undefined {
    if (this.state === 'handshake') {
      this.processHandshake(frame);
      return undefined;
    }
    let msg: Message;
    try {
      msg = this.codec!.decode(frame);
    } catch (e) {
      // §5.5 rule 1: undecodable payload closes the connection
      this.abort(e instanceof ProtocolError ? e : new ProtocolError(`undecodable message: ${(e as Error).message}`));
      return undefined;
    }
    if (msg.msgid === HEARTBEAT_MSGID) {
      // §5.5 rule 2 / S-5: ignored whatever the other fields are
      this.emit('heartbeat');
      return undefined;
    }
    if (msg.method === REPLY) {
      this.processReply(msg);
      return undefined;
    }
    return this.processCall(msg);
  }

  private processHandshake(frame: Buffer): void {
    if (this.role === 'server') {
      let hs;
      try {
        hs = parseClientHandshake(frame, this.encodings);
      } catch (e) {
        this.log.error({ handshake: shortRepr(frame) }, 'bad handshake');
        this.abort(e as Error);
        return;
      }
      if (hs.kind === 'ruok') {
        // §4.4 / S-3: one JSON frame, then close
        this.state = 'closing';
        if (this.ruokStatus) {
          try {
            this.writeFrame(encodeRuokReply(this.ruokStatus()));
          } catch (e) {
            this.abort(e as Error);
            return;
          }
        }
        this.closeGracefully();
        return;
      }
      this.startEncoding(hs.letter);
      this.log.info({ protocol: `${hs.letter}5` }, 'received handshake');
      return;
    }
    let ans;
    try {
      ans = clientAnswer(frame, this.encodings);
    } catch (e) {
      this.abort(e as Error);
      return;
    }
    this.startEncoding(ans.letter, ans.answer);
  }

  private startEncoding(letter: EncodingLetter, answer?: Buffer): boolean {
    const codec = this.codecs(letter);
    if (!codec) {
      this.abort(new ProtocolError(`no codec for encoding ${letter}5`));
      return false;
    }
    this.codec = codec;
    this.letter = letter;
    this.state = 'open';
    if (answer) this.writeFrame(answer);
    // messages queued before the handshake go out first, in order
    for (const { msg, key } of this.preHandshake.splice(0)) {
      if (key === undefined) this.sendMessage(msg);
      else this.sendMessageOrFail(msg, key);
    }
    this.resolveReady(letter);
    this.emit('handshake', letter);
    return true;
  }

  private processReply(msg: Message): void {
    const key = msgidKey(msg.msgid);
    const p = this.pending.get(key);
    if (!p) {
      if (this.role === 'server') {
        // a server has no outstanding calls: ".reply" is not an allowed method (§5.5 rule 3)
        this.abort(new ProtocolError(`unexpected reply message with msgid ${shortRepr(msg.msgid)}`));
      } else {
        this.log.error({ msgid: shortRepr(msg.msgid) }, 'reply to no outstanding call');
      }
      return;
    }
    this.pending.delete(key);
    if (isErrorReply(msg)) {
      let err: Error;
      try {
        const [cls, state] = errorReplyParts(msg);
        err = errorFromWire(cls, state);
      } catch (e) {
        err = e as Error;
      }
      p.reject(err);
      return;
    }
    if (p.onReply !== null) this.runOnReply(p, p.onReply, msg.args);
    if (p.moreOnReply !== null) for (const cb of p.moreOnReply) this.runOnReply(p, cb, msg.args);
    p.resolve(msg.args);
  }

  private runOnReply(p: Pending, cb: ReplyCallback, result: WireValue): void {
    try {
      cb(result, p.msgid);
    } catch (e) {
      this.log.error({ err: (e as Error).message, method: p.method }, 'onReply callback failed');
    }
  }

  private processCall(msg: Message): Promise<void> | undefined {
    const oneWay = truthy(msg.flags);
    if (!this.handler) {
      if (this.role === 'client' && oneWay) {
        // §5.6 / §9: a client logs server one-way calls it does not handle and stays connected
        this.log.warn({ method: msg.method }, 'ignoring one-way call from the server: no handler');
      } else {
        this.abort(new ProtocolError(`unexpected call ${JSON.stringify(msg.method)}: no handler`));
      }
      return undefined;
    }
    const call: IncomingCall = { connection: this, msgid: msg.msgid, oneWay };
    let result: ReturnType<CallHandler>;
    try {
      result = this.handler(msg.method, msg.args as WireValue[], call);
    } catch (e) {
      this.callFailed(msg, oneWay, e);
      return undefined;
    }
    if (result === REPLY_LATER) return undefined;
    if (result instanceof Ordered) {
      const slot = oneWay ? undefined : this.reserveOutput();
      result.promise.then(
        (v) => {
          if (slot) slot.reply(msg.msgid, v === undefined ? null : v);
        },
        (e) => {
          if (slot && !(e instanceof ProtocolError)) slot.error(msg.msgid, e);
          else {
            slot?.cancel();
            this.callFailed(msg, oneWay, e);
          }
        },
      );
      return undefined;
    }
    if (result instanceof Delayed) {
      result.promise.then(
        (v) => this.callSucceeded(msg, oneWay, v),
        (e) => this.callFailed(msg, oneWay, e),
      );
      return undefined;
    }
    if (result instanceof Promise || (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function')) {
      return Promise.resolve(result as PromiseLike<WireValue | undefined | void>).then(
        (v) => this.callSucceeded(msg, oneWay, v as WireValue | undefined),
        (e) => this.callFailed(msg, oneWay, e),
      );
    }
    this.callSucceeded(msg, oneWay, result as WireValue | undefined);
    return undefined;
  }

  private callSucceeded(msg: Message, oneWay: boolean, value: WireValue | undefined): void {
    if (oneWay || this.state !== 'open') return;
    this.sendReply(msg.msgid, value === undefined ? null : value);
  }

  private callFailed(msg: Message, oneWay: boolean, err: unknown): void {
    if (this.state !== 'open') return;
    if (err instanceof ProtocolError) {
      this.log.error({ method: msg.method, err: err.message }, 'protocol violation');
      this.abort(err);
      return;
    }
    if (oneWay) {
      this.log.error({ method: msg.method, err: (err as Error)?.message }, 'one-way call failed');
      if (this.opts.closeOnOneWayError) this.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.sendError(msg.msgid, err);
  }

  // ---------------------------------------------------------------- closing

  /** Close after queued output is written (replies already produced still reach the peer). */
  close(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.state = 'closing';
    this.closeGracefully();
  }

  /** Close at once because of `err` (logged); output still queued is dropped. */
  abort(err: Error): void {
    if (this.state === 'closed') return;
    if (!this.closeReason) this.closeReason = err;
    if (err instanceof FrameTooLargeError || err instanceof ProtocolError) {
      this.log.error({ err: err.message }, 'closing connection: protocol error');
    } else {
      this.log.error({ err: err.message }, 'closing connection');
    }
    this.finishClose();
    this.socket.destroy();
  }

  private closeGracefully(): void {
    this.failPending();
    this.stopHeartbeat();
    this.flushBatch();
    if (this.writePaused) this.endAfterFlush = true;
    else this.socket.end();
  }

  private finishClose(): void {
    if (this.state !== 'closing') this.state = 'closing';
    this.failPending();
    this.stopHeartbeat();
    this.inbound.length = 0;
    this.inboundBytes = 0;
    // frames already written by the application in this tick still go out (as before batching)
    if (!this.writePaused) this.flushBatch();
    this.batch = [];
    this.batchBytes = 0;
    this.outbound.length = 0;
    this.outboundBytes = 0;
    this.held.length = 0;
    this.heldBytes = 0;
    this.preHandshake.length = 0;
    if (!this.socket.destroyed) this.socket.end();
  }

  private failPending(): void {
    const reason = this.closeReason;
    this.rejectReady(new ConnectionClosedError(`connection closed before the handshake completed${reason ? `: ${reason.message}` : ''}`));
    if (!this.pending.size) return;
    const err = new ConnectionClosedError(`connection closed${reason ? `: ${reason.message}` : ''}`);
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private onSocketClose(): void {
    if (this.state === 'closed') return;
    this.finishClose();
    this.state = 'closed';
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
    this.resolveClosed(this.closeReason);
    this.emit('close', this.closeReason);
  }
}

/**
 * The `ruok` status probe (§4.4) over a connected socket: sends `ruok` at once, reads the server
 * announcement and the JSON status frame, and closes. Rejects with ProtocolError when the
 * server closes first or sends something else; `timeoutMs` (default 30 s) bounds an idle wait.
 */
export function probeRuok(socket: Socket, options: { maxFrame?: number; timeoutMs?: number } = {}): Promise<{ announcement: string; status: Record<string, Record<string, unknown>> }> {
  return new Promise((resolve, reject) => {
    const dec = new FrameDecoder(options.maxFrame ?? 16 * 1024 * 1024);
    const frames: Buffer[] = [];
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) {
        reject(err);
        return;
      }
      try {
        resolve({ announcement: frames[0]!.toString('latin1'), status: decodeRuokReply(frames[1]!) });
      } catch (e) {
        reject(e as Error);
      }
    };
    socket.setTimeout(options.timeoutMs ?? 30000, () => finish(new ProtocolError('ruok probe timed out')));
    socket.on('data', (d: Buffer) => {
      try {
        frames.push(...dec.push(d));
      } catch (e) {
        finish(e as Error);
        return;
      }
      if (frames.length >= 2) finish(null);
    });
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new ProtocolError(`server closed after ${frames.length} frame(s) without a ruok status`)));
    socket.write(Buffer.concat([frameHeader(RUOK.length), RUOK]));
  });
}
