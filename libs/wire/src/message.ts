/**
 * The message layer (zeo5-protocol §5): every post-handshake payload is the 4-tuple
 * `(msgid, flags, method, args)`. Pure helpers to build and classify messages.
 */
import { ProtocolError, errorToWire } from './errors.ts';
import { isWireMap, shortRepr, type WireValue } from './values.ts';

/** The literal method name of replies. */
export const REPLY = '.reply';
/** msgid of heartbeats (§5.8). */
export const HEARTBEAT_MSGID = -1;
/** msgid of one-way calls (§5.3). */
export const ONEWAY_MSGID = 0;
/** Flag of an error reply (§5.4). */
export const ERROR_FLAG = 2;

/** One decoded message: the four elements of the wire tuple, in order. */
export interface Message {
  /** normally an integer; `loadBefore` uses the `(oid, tid)` pair; echoed unchanged in replies */
  msgid: WireValue;
  /** calls: false = synchronous, true = one-way; replies: 0 = success, 2 = error */
  flags: boolean | number;
  /** method name, or ".reply" */
  method: string;
  /** positional arguments (an array) for calls; the result or (class_name, state) for replies */
  args: WireValue;
}

/** Encodes/decodes message payloads (no length prefix) in one encoding. */
export interface MessageCodec {
  /** 'M' (msgpack) or 'Z' (pickle) */
  readonly letter: 'M' | 'Z';
  encode(msg: Message): Buffer;
  /** Optional: the whole frame (4-byte length + `encode(msg)`) in one buffer, saving a copy. */
  encodeFrame?(msg: Message): Buffer;
  /** Throws ProtocolError for anything that is not a valid 4-tuple message. */
  decode(payload: Uint8Array): Message;
}

/** Python truthiness of a flag. */
export function truthy(v: WireValue): boolean {
  if (v === null || v === false || v === 0 || v === 0n || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Uint8Array) return v.length > 0;
  if (isWireMap(v)) return Object.keys(v).length > 0;
  return true;
}

export function isReply(m: Message): boolean {
  return m.method === REPLY;
}

export function isHeartbeat(m: Message): boolean {
  return m.msgid === HEARTBEAT_MSGID;
}

/** A call (not a reply) whose flag is truthy: no reply must be sent (§5.4). */
export function isOneWay(m: Message): boolean {
  return m.method !== REPLY && truthy(m.flags);
}

/** A reply whose flag is truthy: args is `(class_name, state)` (§5.6). */
export function isErrorReply(m: Message): boolean {
  return m.method === REPLY && truthy(m.flags);
}

export function call(msgid: WireValue, method: string, args: WireValue[]): Message {
  return { msgid, flags: false, method, args };
}

export function oneWay(method: string, args: WireValue[]): Message {
  return { msgid: ONEWAY_MSGID, flags: true, method, args };
}

export function reply(msgid: WireValue, result: WireValue): Message {
  return { msgid, flags: 0, method: REPLY, args: result };
}

/** The error reply for `err` (§6.4): flag 2, args `(class_name, state)`. */
export function errorReply(msgid: WireValue, err: unknown): Message {
  const [cls, state] = errorToWire(err);
  return { msgid, flags: ERROR_FLAG, method: REPLY, args: [cls, state] };
}

/** `(-1, 0, ".reply", None)` (§5.8). */
export function heartbeat(): Message {
  return { msgid: HEARTBEAT_MSGID, flags: 0, method: REPLY, args: null };
}

/** For a received error reply: its class name and state; ProtocolError if malformed. */
export function errorReplyParts(m: Message): [string, WireValue] {
  const a = m.args;
  if (!Array.isArray(a) || a.length !== 2 || typeof a[0] !== 'string') {
    throw new ProtocolError(`error reply args must be (class_name, state), got ${shortRepr(a)}`);
  }
  return [a[0], a[1] as WireValue];
}

/** Check the shape of a decoded 4-tuple and make it a Message (used by both codecs). */
export function messageFromTuple(t: unknown, encoding: string): Message {
  if (!Array.isArray(t) || t.length !== 4) {
    throw new ProtocolError(`${encoding} message is not a 4-tuple (msgid, flags, method, args): ${shortRepr(t)}`);
  }
  const [msgid, flags, method, args] = t as WireValue[];
  if (typeof method !== 'string') {
    throw new ProtocolError(`${encoding} message method name is not a str: ${shortRepr(method)}`);
  }
  if (typeof flags !== 'boolean' && typeof flags !== 'number') {
    throw new ProtocolError(`${encoding} message flags are neither bool nor int: ${shortRepr(flags)}`);
  }
  if (method !== REPLY && !Array.isArray(args)) {
    throw new ProtocolError(`${encoding} call ${JSON.stringify(method)} args are not a tuple: ${shortRepr(args)}`);
  }
  return { msgid: msgid as WireValue, flags, method, args: args as WireValue };
}
