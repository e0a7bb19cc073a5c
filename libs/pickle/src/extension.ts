/**
 * Transaction extensions (filestorage spec §3.3): empty bytes for {}, else the protocol-3 pickle
 * of a dict, written with the memo exactly as Python ZODB does.
 */
import { dumps } from './pickler.ts';
import { loads } from './unpickler.ts';
import { PickleError } from './values.ts';

/**
 * Decode a transaction extension (empty, or a pickled dict) into a plain object. Values follow
 * the value model of index.ts; Python 2 strings decode as ZODB does (ASCII text, else bytes).
 * Keys that are not str become strings (bytes keys as UTF-8 text, numbers in decimal).
 * Like ZODB's loads (zodbpickle), protocols above 3 are refused.
 */
export function decodeExtension(ext: Uint8Array): Record<string, unknown> {
  if (ext.length === 0) return {};
  const v = loads(ext, { encoding: 'ascii-or-bytes', maxProtocol: 3 });
  if (!(v instanceof Map)) throw new PickleError('transaction extension is not a pickled dict', 0);
  const out: Record<string, unknown> = {};
  for (const [k, val] of v) {
    const key = typeof k === 'string' ? k : Buffer.isBuffer(k) ? k.toString('utf8') : String(k);
    Object.defineProperty(out, key, { value: val, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Encode a transaction extension exactly as Python ZODB does (empty for {}): protocol 3, with
 * memo, keys in the object's own key order.
 */
export function encodeExtension(ext: Record<string, unknown>): Buffer {
  const size = ext instanceof Map ? ext.size : Object.keys(ext).length;
  if (size === 0) return Buffer.alloc(0);
  return dumps(ext, { protocol: 3 });
}
