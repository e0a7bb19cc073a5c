/**
 * The method tables of protocol 5 (zeo5-protocol §8.0 server methods, §9 client methods) with
 * their positional parameters, and an arity check that fails like Python does
 * (`builtins.TypeError`, S-12). Pure.
 */
import { PythonError } from './errors.ts';
import type { WireValue } from './values.ts';

export interface MethodSignature {
  /** parameter names (without self), required ones first */
  params: readonly string[];
  /** how many of `params` are required */
  required: number;
  /** how the reference client calls it: 'sync' or 'oneway' (the server honours each message's flag) */
  calledAs: 'sync' | 'oneway';
}

function sig(calledAs: 'sync' | 'oneway', required: number, ...params: string[]): MethodSignature {
  return { params, required, calledAs };
}

/** Methods a client may call after `register` (§8.0; ZEO's registered_methods), plus `register`. */
export const SERVER_METHODS: Readonly<Record<string, MethodSignature>> = {
  register: sig('sync', 2, 'storage_id', 'read_only'),
  get_info: sig('sync', 0),
  lastTransaction: sig('sync', 0),
  getInvalidations: sig('sync', 1, 'tid'),
  ping: sig('sync', 0),
  server_status: sig('sync', 0),
  set_client_label: sig('oneway', 1, 'label'),
  loadBefore: sig('sync', 2, 'oid', 'tid'),
  loadSerial: sig('sync', 2, 'oid', 'serial'),
  getTid: sig('sync', 1, 'oid'),
  history: sig('sync', 1, 'tid', 'size'),
  record_iternext: sig('sync', 0, 'next'),
  new_oids: sig('sync', 0, 'n'),
  new_oid: sig('sync', 0),
  tpc_begin: sig('oneway', 4, 'id', 'user', 'description', 'ext', 'tid', 'status'),
  storea: sig('oneway', 4, 'oid', 'serial', 'data', 'id'),
  restorea: sig('oneway', 5, 'oid', 'serial', 'data', 'prev_txn', 'id'),
  deleteObject: sig('oneway', 3, 'oid', 'serial', 'id'),
  checkCurrentSerialInTransaction: sig('oneway', 3, 'oid', 'serial', 'id'),
  undoa: sig('oneway', 2, 'trans_id', 'tid'),
  vote: sig('sync', 1, 'tid'),
  tpc_finish: sig('sync', 1, 'id'),
  tpc_abort: sig('sync', 1, 'tid'),
  storeBlobStart: sig('oneway', 0),
  storeBlobChunk: sig('oneway', 1, 'chunk'),
  storeBlobEnd: sig('oneway', 4, 'oid', 'serial', 'data', 'id'),
  storeBlobShared: sig('oneway', 5, 'oid', 'serial', 'data', 'filename', 'id'),
  sendBlob: sig('sync', 2, 'oid', 'serial'),
  undoLog: sig('sync', 2, 'first', 'last'),
  undoInfo: sig('sync', 3, 'first', 'last', 'spec'),
  pack: sig('sync', 1, 'time', 'wait'),
  iterator_start: sig('sync', 2, 'start', 'stop'),
  iterator_next: sig('sync', 1, 'iid'),
  iterator_record_start: sig('sync', 2, 'txn_iid', 'tid'),
  iterator_record_next: sig('sync', 1, 'iid'),
  iterator_gc: sig('oneway', 1, 'iids'),
};

/** One-way calls a server may send to a client (§9). */
export const CLIENT_METHODS: Readonly<Record<string, MethodSignature>> = {
  invalidateTransaction: sig('oneway', 2, 'tid', 'oids'),
  info: sig('oneway', 1, 'dict'),
  receiveBlobStart: sig('oneway', 2, 'oid', 'serial'),
  receiveBlobChunk: sig('oneway', 3, 'oid', 'serial', 'chunk'),
  receiveBlobStop: sig('oneway', 2, 'oid', 'serial'),
};

function nameList(names: string[]): string {
  const q = names.map((n) => `'${n}'`);
  if (q.length === 1) return q[0]!;
  if (q.length === 2) return `${q[0]} and ${q[1]}`;
  return `${q.slice(0, -1).join(', ')}, and ${q[q.length - 1]}`;
}

/**
 * Throw `builtins.TypeError` (worded as CPython 3.11 words it, counting `self`) when `args` does
 * not fit `signature`. `qualname` is the Python method's qualified name, e.g. "ZEOStorage.register".
 */
export function checkArity(qualname: string, signature: MethodSignature, args: readonly WireValue[]): void {
  const n = args.length;
  const max = signature.params.length;
  const min = signature.required;
  if (n > max) {
    const takes = min === max
      ? `${max + 1} positional argument${max + 1 === 1 ? '' : 's'}`
      : `from ${min + 1} to ${max + 1} positional arguments`;
    throw new PythonError('builtins.TypeError', [`${qualname}() takes ${takes} but ${n + 1} ${n + 1 === 1 ? 'was' : 'were'} given`]);
  }
  if (n < min) {
    const missing = signature.params.slice(n, min);
    throw new PythonError('builtins.TypeError', [
      `${qualname}() missing ${missing.length} required positional argument${missing.length === 1 ? '' : 's'}: ${nameList(missing)}`,
    ]);
  }
}

/** checkArity against SERVER_METHODS as "ZEOStorage.<method>"; unknown methods are not checked. */
export function checkServerCallArity(method: string, args: readonly WireValue[]): void {
  const s = Object.hasOwn(SERVER_METHODS, method) ? SERVER_METHODS[method] : undefined;
  if (s) checkArity(`ZEOStorage.${method}`, s, args);
}
