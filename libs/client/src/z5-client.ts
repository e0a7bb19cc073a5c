/**
 * The client side of Z5. Python ZEO servers pickle some error replies with globals outside the
 * server's safe-module list: a POSError subclass such as UndoError reduces to
 * `ZODB.POSException._recon(cls, instance_dict)`. The Z5 codec of @zeo-ts/wire (written for the
 * server's restricted unpickling, §7.3) refuses those and closes the connection, while Python
 * clients accept them. This codec decodes such an error reply (and only that) by taking the
 * instance dict as the error state, which errorFromWire understands (§6.5).
 */
import { Unpickler, PyGlobal, PyObject, PyTuple, dumps } from '@zeo-ts/pickle';
import { ProtocolError, Z5Codec, codecFor, unpickleValue, type EncodingLetter, type Message, type MessageCodec, type WireValue } from '@zeo-ts/wire';

const RECON = 'ZODB.POSException._recon';

/** Convert a pickle value that holds only plain data to the wire model (via a Z5 round trip). */
function plain(v: unknown): WireValue {
  return unpickleValue(dumps(v, { protocol: 3, memo: false }));
}

/**
 * Replace nested `_recon(cls, dict)` objects by their dict; the `_errs` of MultipleUndoErrors
 * (UndoError instances upstream) become (reason, oid) pairs as §6.4 states them.
 */
function normalize(v: unknown, depth: number): unknown {
  if (depth > 20) throw new ProtocolError('error state nests too deeply');
  if (v instanceof PyObject && v.className === RECON && v.args.length === 2) return normalize(v.args[1], depth + 1);
  if (v instanceof Map) {
    const out = new Map<unknown, unknown>();
    for (const [k, x] of v) {
      let y = normalize(x, depth + 1);
      if (k === '_errs' && Array.isArray(y)) {
        // upstream: a list of (oid, UndoError) pairs; §6.4: (reason, oid) pairs
        y = y.map((e) => {
          const err = e instanceof Map ? e : Array.isArray(e) && e[1] instanceof Map ? (e[1] as Map<unknown, unknown>) : null;
          if (!err) return e;
          const oid = err.get('_oid') ?? (Array.isArray(e) && Buffer.isBuffer(e[0]) ? e[0] : null);
          return PyTuple.from([err.get('_reason') ?? '', oid]);
        });
      }
      out.set(k, y);
    }
    return out;
  }
  if (v instanceof PyTuple) return PyTuple.from(v.map((x) => normalize(x, depth + 1)));
  if (Array.isArray(v)) return v.map((x) => normalize(x, depth + 1));
  return v;
}

export class ClientZ5Codec implements MessageCodec {
  readonly letter = 'Z' as const;
  private readonly inner = new Z5Codec();

  encode(msg: Message): Buffer {
    return this.inner.encode(msg);
  }

  encodeFrame(msg: Message): Buffer {
    return this.inner.encodeFrame(msg);
  }

  decode(payload: Uint8Array): Message {
    try {
      return this.inner.decode(payload);
    } catch (e) {
      if (!(e instanceof ProtocolError) || !/forbidden global ZODB\.POSException\./.test(e.message)) throw e;
      const m = this.decodeErrorReply(payload);
      if (!m) throw e;
      return m;
    }
  }

  private decodeErrorReply(payload: Uint8Array): Message | null {
    let raw: unknown;
    try {
      const u = new Unpickler(payload, { findClass: (module: string, name: string) => new PyGlobal(module, name), maxLength: payload.length });
      raw = u.load();
    } catch {
      return null;
    }
    if (!(raw instanceof PyTuple) || raw.length !== 4) return null;
    const [msgid, flags, method, args] = raw;
    if (method !== '.reply' || !flags || !(args instanceof PyTuple) || args.length !== 2 || typeof args[0] !== 'string') return null;
    const state = args[1];
    const isRecon = state instanceof PyObject && state.className === RECON && state.args.length === 2 && state.args[1] instanceof Map;
    if (!isRecon && !(state instanceof Map)) return null;
    try {
      return { msgid: plain(msgid), flags: true, method: '.reply', args: [args[0], plain(normalize(state, 0))] };
    } catch {
      return null;
    }
  }
}

/** Codec factory for the client: ClientZ5Codec for Z5, the wire defaults otherwise. */
export function clientCodecs(letter: EncodingLetter): MessageCodec | undefined {
  return letter === 'Z' ? new ClientZ5Codec() : codecFor(letter);
}
