/**
 * Z5: the pickle encoding (zeo5-protocol §7), built on @zeo-ts/pickle's reader and writer.
 *
 * Encoding: one protocol-3 pickle of the 4-tuple without memo (Python's "fast" mode), exactly
 * as ZEO's zodbpickle Pickler(f, 3) writes it (W-9, §7.5). Arrays are tuples, `pyList()` arrays
 * are lists (§7.4), integral `PyFloat`s stay floats.
 * Decoding: any pickle the reader understands (PROTO 2-3, memo opcodes, BINSTRING as text...),
 * with globals restricted to the modules the reference server allows (§7.3:
 * ZopeUndo.Prefix, zodbpickle, builtins, copy_reg, __builtin__); any other global is a
 * ProtocolError, which closes the connection. Objects built from allowed globals (e.g. a
 * ZopeUndo Prefix in an undoInfo specification) arrive as opaque `PyOpaque` values.
 */
import {
  Unpickler, dumps, PyTuple, PyFloat as PicklePyFloat, PyGlobal, PyObject, PickleError,
} from '@zeo-ts/pickle';
import { ProtocolError } from './errors.ts';
import { encodeFrame } from './framing.ts';
import { Z5Writer, readZ5 } from './z5fast.ts';
import { messageFromTuple, type Message, type MessageCodec } from './message.ts';
import { PyFloat, PyOpaque, isPyList, isWireMap, mapKeys, pyList, setKeyOrder, shortRepr, type WireValue } from './values.ts';

/** Modules whose globals a Z5 message may name (the reference server's list, §7.3). */
export const Z5_SAFE_MODULES: readonly string[] = ['ZopeUndo.Prefix', 'zodbpickle', 'builtins', 'copy_reg', '__builtin__'];

/** Deepest nesting accepted or produced. */
const MAX_DEPTH = 100;

function restrictedFindClass(module: string, name: string): unknown {
  if (!Z5_SAFE_MODULES.includes(module)) {
    throw new ProtocolError(`Z5 message names forbidden global ${module}.${name}`);
  }
  return new PyGlobal(module, name);
}

/** Value model → pickle value model. */
function toPickle(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new TypeError(`value nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return v;
    case 'number':
      return Number.isInteger(v) ? v : new PicklePyFloat(v);
    case 'object': {
      if (v === null) return null;
      if (v instanceof Uint8Array) return v;
      if (v instanceof PyFloat) return new PicklePyFloat(v.value);
      if (v instanceof PyOpaque) return v.value;
      if (Array.isArray(v)) {
        const out: unknown[] = isPyList(v) ? [] : new PyTuple<unknown>();
        for (let i = 0; i < v.length; i++) out.push(toPickle(v[i], depth + 1));
        return out;
      }
      if (isWireMap(v)) {
        const m = new Map<unknown, unknown>();
        for (const k of mapKeys(v)) m.set(k, toPickle(v[k], depth + 1));
        return m;
      }
      throw new TypeError(`cannot encode ${Object.prototype.toString.call(v)} in a ZEO message`);
    }
    default:
      throw new TypeError(`cannot encode a ${typeof v} in a ZEO message`);
  }
}

/** Pickle value model → value model. */
function fromPickle(v: unknown, depth: number): WireValue {
  if (depth > MAX_DEPTH) throw new ProtocolError(`Z5 value nests deeper than ${MAX_DEPTH} levels`);
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'number':
    case 'bigint':
      return v;
    case 'object': {
      if (v === null) return null;
      if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v);
      if (v instanceof PicklePyFloat) return Number.isInteger(v.value) ? new PyFloat(v.value) : v.value;
      if (v instanceof PyTuple) {
        const out: WireValue[] = [];
        for (const x of v) out.push(fromPickle(x, depth + 1));
        return out;
      }
      if (Array.isArray(v)) return pyList(v.map((x) => fromPickle(x, depth + 1)));
      if (v instanceof Map) {
        const out: Record<string, WireValue> = {};
        const order: string[] = [];
        for (const [k, x] of v) {
          if (typeof k !== 'string') throw new ProtocolError(`Z5 dict key is not a str: ${shortRepr(k)}`);
          if (k === '__proto__') throw new ProtocolError('Z5 dict key __proto__ is not allowed');
          out[k] = fromPickle(x, depth + 1);
          order.push(k);
        }
        return setKeyOrder(out, order);
      }
      if (v instanceof PyObject || v instanceof PyGlobal) return new PyOpaque(v);
      throw new ProtocolError(`Z5 value of unsupported type ${Object.prototype.toString.call(v)}`);
    }
    default:
      throw new ProtocolError(`Z5 value of unsupported type ${typeof v}`);
  }
}

/** Encode any value of the model as a Z5 pickle (protocol 3, no memo). */
export function pickleValue(v: WireValue): Buffer {
  return dumps(toPickle(v, 0), { protocol: 3, memo: false });
}

/** Decode one Z5 pickle into the model, with the restricted globals; ProtocolError on anything invalid. */
export function unpickleValue(data: Uint8Array): WireValue {
  let raw: unknown;
  try {
    const u = new Unpickler(data, { findClass: restrictedFindClass, maxLength: data.length, maxStack: 1_000_000 });
    raw = u.load();
    if (!u.atEnd) throw new ProtocolError(`Z5 payload has ${data.length - u.position} bytes after the pickle's STOP`);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    if (e instanceof PickleError) throw new ProtocolError(`undecodable Z5 payload (${data.length} bytes): ${e.message}`);
    throw new ProtocolError(`undecodable Z5 payload (${data.length} bytes): ${(e as Error).message}`);
  }
  return fromPickle(raw, 0);
}

/**
 * The Z5 message codec. Common messages go through the direct writer/reader of z5fast.ts; the
 * rest (and every error) through the general @zeo-ts/pickle path. Both give the same bytes/values.
 */
export class Z5Codec implements MessageCodec {
  readonly letter = 'Z' as const;
  private readonly writer = new Z5Writer();

  encode(msg: Message): Buffer {
    const fast = this.writer.encodeMessage(msg.msgid, msg.flags, msg.method, msg.args);
    if (fast) return fast;
    const t = new PyTuple<unknown>();
    t.push(toPickle(msg.msgid, 1), msg.flags, msg.method, toPickle(msg.args, 1));
    return dumps(t, { protocol: 3, memo: false });
  }

  encodeFrame(msg: Message): Buffer {
    const fast = this.writer.encodeMessage(msg.msgid, msg.flags, msg.method, msg.args, true);
    return fast ?? encodeFrame(this.encode(msg));
  }

  decode(payload: Uint8Array): Message {
    const v = readZ5(payload) ?? unpickleValue(payload);
    if (!Array.isArray(v) || isPyList(v)) {
      throw new ProtocolError(`Z5 message is not a 4-tuple (msgid, flags, method, args): ${shortRepr(v)}`);
    }
    return messageFromTuple(v, 'Z5');
  }
}
