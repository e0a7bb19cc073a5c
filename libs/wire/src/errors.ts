/**
 * Errors of the wire layer, and the mapping between exceptions and the `(class_name, state)`
 * pair of an error reply (zeo5-protocol §6.4 server side, §6.5 client side).
 */
import {
  BTreesConflictError,
  ConflictError,
  MultipleUndoErrors,
  POSError,
  POSKeyError,
  ReadConflictError,
  ReadOnlyError,
  StorageError,
  StorageTransactionError,
  UndoError,
  ClientDisconnected,
  p64,
  u64,
  type Tid,
} from '@zeo-ts/storage';
import { isBytes, isWireMap, pyList, shortRepr, asBuffer, type WireMap, type WireValue } from './values.ts';

/**
 * A violation of the protocol (bad frame, bad handshake, undecodable message, forbidden global,
 * wrong message shape). Python: ZEO.Exceptions.ProtocolError. The connection that saw it is closed.
 */
export class ProtocolError extends StorageError {
  override readonly pythonClass: string = 'ZEO.Exceptions.ProtocolError';
  override name = 'ProtocolError';
}

/** The peer went away (or we closed): pending calls fail with this (a ClientDisconnected). */
export class ConnectionClosedError extends ClientDisconnected {
  override name = 'ConnectionClosedError';
}

/**
 * An exception of a Python class that is not a POSException (e.g. `builtins.ValueError`,
 * `builtins.TypeError`, `builtins.KeyError`, `builtins.AttributeError`), with its positional args.
 * Servers throw it to send such an error reply; clients receive builtins.KeyError/TypeError as it.
 */
export class PythonError extends Error {
  override name = 'PythonError';
  readonly pythonClass: string;
  readonly args: WireValue[];
  constructor(pythonClass: string, args: WireValue[] = []) {
    super(`${pythonClass}: ${args.length === 1 && typeof args[0] === 'string' ? args[0] : shortRepr(args)}`);
    this.pythonClass = pythonClass;
    this.args = args;
  }
}

/** ZEO.Exceptions.ServerException: an error reply of a class the client has no factory for. */
export class ServerException extends StorageError {
  override readonly pythonClass: string = 'ZEO.Exceptions.ServerException';
  override name = 'ServerException';
  constructor(readonly remoteClass: string, readonly state: WireValue) {
    super(`${remoteClass}: ${shortRepr(state)}`);
  }
}

const WIRE_STATE: unique symbol = Symbol('zeo-ts.wire.state');

/**
 * Attach an explicit error-reply state to an error (array = Python args, map = instance dict).
 * It wins over the state errorToWire would compute, e.g.
 * `withWireState(new StorageTransactionError('no txn'), [null, txnid])`. Returns the error.
 */
export function withWireState<E extends Error>(err: E, state: WireValue[] | WireMap): E {
  Object.defineProperty(err, WIRE_STATE, { value: state, enumerable: false, configurable: true });
  return err;
}

/** The state an error was received with (errorFromWire) or given by withWireState, if any. */
export function getWireState(err: unknown): WireValue[] | WireMap | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  return (err as Record<symbol, WireValue[] | WireMap | undefined>)[WIRE_STATE];
}

function oidOrNull(oid: bigint | undefined): Buffer | null {
  return oid === undefined ? null : p64(oid);
}

/**
 * The `(class_name, state)` pair of an error reply for `err` (§6.4):
 *  - ConflictError / ReadConflictError: map {message, oid, class_name, serials};
 *  - BTreesConflictError: map {p1, p2, p3, reason} (-1 where unknown);
 *  - UndoError: map {_reason, _oid}; MultipleUndoErrors: map {_reason, _oid, _errs};
 *  - POSKeyError: (oid,) (the raw key when it has one);
 *  - ReadOnlyError: () when it has no message;
 *  - other POSErrors: their pythonArgs(); PythonError: its args;
 *  - anything else (a bug or an I/O failure): ZODB.POSException.StorageError with its message.
 */
export function errorToWire(err: unknown): [string, WireValue[] | WireMap] {
  const explicit = getWireState(err);
  if (err instanceof ServerException) return [err.remoteClass, (explicit ?? err.state) as WireValue[] | WireMap];
  if (err instanceof POSError) {
    const cls = err.pythonClass;
    if (explicit !== undefined) return [cls, explicit];
    if (err instanceof BTreesConflictError) {
      const e = err as unknown as Record<string, unknown>;
      const num = (k: string): number => (typeof e[k] === 'number' ? (e[k] as number) : -1);
      return [cls, { p1: num('p1'), p2: num('p2'), p3: num('p3'), reason: num('reason') }];
    }
    if (err instanceof ConflictError) {
      return [cls, {
        message: err.baseMessage,
        oid: oidOrNull(err.oid),
        class_name: err.className ?? null,
        serials: err.serials ? [p64(err.serials[0]), p64(err.serials[1])] : null,
      }];
    }
    if (err instanceof MultipleUndoErrors) {
      const first = err.errors[0];
      return [cls, {
        _reason: first ? first.reason : err.reason,
        _oid: first ? oidOrNull(first.oid) : null,
        _errs: pyList(err.errors.map((e) => [e.reason, oidOrNull(e.oid)])),
      }];
    }
    if (err instanceof UndoError) return [cls, { _reason: err.reason, _oid: oidOrNull(err.oid) }];
    if (err instanceof POSKeyError) {
      if (err.key !== undefined) return [cls, [err.key]];
      if (err.oid !== undefined) return [cls, [p64(err.oid)]];
      return [cls, err.pythonArgs() as WireValue[]];
    }
    if (err instanceof ReadOnlyError && (err.message === '' || err.message === 'ReadOnlyError')) return [cls, []];
    return [cls, err.pythonArgs() as WireValue[]];
  }
  if (err instanceof PythonError) return [err.pythonClass, explicit ?? err.args];
  if (err instanceof Error) {
    const cls = (err as { pythonClass?: unknown }).pythonClass;
    if (typeof cls === 'string') return [cls, explicit ?? [err.message]];
    return ['ZODB.POSException.StorageError', [`${err.name}: ${err.message}`]];
  }
  return ['ZODB.POSException.StorageError', [shortRepr(err)]];
}

function bytes8(v: WireValue | undefined): bigint | undefined {
  return isBytes(v) && v.length === 8 ? u64(v) : undefined;
}

function serialPair(v: WireValue | undefined): [Tid, Tid] | undefined {
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const a = bytes8(v[0]);
  const b = bytes8(v[1]);
  return a !== undefined && b !== undefined ? [a, b] : undefined;
}

function str(v: WireValue | undefined): string | undefined {
  return typeof v === 'string' ? v : isBytes(v) ? asBuffer(v).toString('utf8') : undefined;
}

function argsText(args: readonly WireValue[]): string {
  if (args.length === 0) return '';
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return shortRepr(args, 400);
}

/**
 * The local error for a received error reply `(class_name, state)` (§6.5). Known ZODB classes
 * become the classes of @zeo-ts/storage (ConflictError with oid/serials/className, POSKeyError
 * with oid, ...); builtins.KeyError/TypeError become PythonError; anything else a
 * ServerException carrying the class name and state. The raw state stays available through
 * getWireState(err), so a proxy can relay it unchanged.
 */
export function errorFromWire(className: string, state: WireValue): Error {
  const arr = Array.isArray(state) ? (state as WireValue[]) : undefined;
  const map = isWireMap(state) ? state : undefined;
  let err: Error;
  switch (className) {
    case 'ZODB.POSException.ConflictError':
    case 'ZODB.POSException.ReadConflictError': {
      if (!map) {
        err = new ServerException(className, state);
        break;
      }
      const info = {
        message: str(map['message']),
        oid: bytes8(map['oid']),
        serials: serialPair(map['serials']),
        className: str(map['class_name']),
      };
      err = className === 'ZODB.POSException.ConflictError' ? new ConflictError(info) : new ReadConflictError(info);
      break;
    }
    case 'ZODB.POSException.BTreesConflictError': {
      const e = new BTreesConflictError({ message: 'BTrees conflict error' });
      if (map) for (const k of ['p1', 'p2', 'p3', 'reason']) (e as unknown as Record<string, unknown>)[k] = map[k];
      err = e;
      break;
    }
    case 'ZODB.POSException.POSKeyError': {
      if (arr && arr.length === 1 && bytes8(arr[0]) !== undefined) {
        err = new POSKeyError(bytes8(arr[0]), undefined, asBuffer(arr[0] as Uint8Array));
      } else if (arr && arr.length === 3 && bytes8(arr[1]) !== undefined) {
        // blob form: (message, oid, serial)
        err = new POSKeyError(bytes8(arr[1]), str(arr[0]));
      } else {
        err = new POSKeyError(undefined, arr ? argsText(arr) : shortRepr(state));
      }
      break;
    }
    case 'ZODB.POSException.ReadOnlyError':
      err = new ReadOnlyError(arr ? argsText(arr) : '');
      break;
    case 'ZODB.POSException.StorageTransactionError':
      err = new StorageTransactionError(arr ? argsText(arr) : shortRepr(state));
      break;
    case 'ZODB.POSException.MultipleUndoErrors': {
      const errs = map && Array.isArray(map['_errs']) ? (map['_errs'] as WireValue[]) : [];
      const list: UndoError[] = [];
      for (const pair of errs) {
        if (Array.isArray(pair)) list.push(new UndoError(str(pair[0]) ?? '', bytes8(pair[1])));
      }
      err = list.length ? new MultipleUndoErrors(list) : new ServerException(className, state);
      break;
    }
    case 'ZODB.POSException.UndoError':
      err = map ? new UndoError(str(map['_reason']) ?? '', bytes8(map['_oid'])) : new UndoError(arr ? argsText(arr) : '');
      break;
    case 'builtins.KeyError':
    case 'builtins.TypeError':
    case 'exceptions.KeyError':
    case 'exceptions.TypeError':
      err = new PythonError(className, arr ?? [state]);
      break;
    default:
      err = new ServerException(className, state);
  }
  if (arr || map) withWireState(err, (arr ?? map)!);
  return err;
}
