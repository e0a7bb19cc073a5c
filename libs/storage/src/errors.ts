/**
 * The errors of ZODB.POSException. Each carries `pythonClass`, the dotted name of the Python
 * exception class, so a server can send it over the wire unchanged and a client can map a
 * received exception back to the right class (see `errorFromPython`).
 */
import { oidRepr, type Oid, type Tid } from './ids.ts';
import { TimeStamp } from './timestamp.ts';

export class POSError extends Error {
  /** Dotted name of the Python class this error is on the wire. */
  readonly pythonClass: string = 'ZODB.POSException.POSError';
  override name = 'POSError';
  constructor(message = '') {
    super(message);
  }
  /** Positional args as Python's exception would hold them in `.args`. */
  pythonArgs(): unknown[] {
    return this.message ? [this.message] : [];
  }
}

/** Raised when an object (or a revision of it) does not exist. Python: subclass of KeyError; str() is the oid repr. */
export class POSKeyError extends POSError {
  override readonly pythonClass = 'ZODB.POSException.POSKeyError';
  override name = 'POSKeyError';
  readonly oid: Oid | undefined;
  /** The raw key Python puts in args (usually the 8-byte oid). */
  readonly key: Buffer | string | undefined;
  constructor(oid?: Oid, message?: string, key?: Buffer | string) {
    super(message ?? (oid === undefined ? 'POSKeyError' : oidRepr(oid)));
    this.oid = oid;
    this.key = key;
  }
}

export class StorageError extends POSError {
  override readonly pythonClass: string = 'ZODB.POSException.StorageError';
  override name = 'StorageError';
}

export class StorageTransactionError extends StorageError {
  override readonly pythonClass: string = 'ZODB.POSException.StorageTransactionError';
  override name = 'StorageTransactionError';
}

export class StorageSystemError extends StorageError {
  override readonly pythonClass: string = 'ZODB.POSException.StorageSystemError';
  override name = 'StorageSystemError';
}

export class ReadOnlyError extends StorageError {
  override readonly pythonClass: string = 'ZODB.POSException.ReadOnlyError';
  override name = 'ReadOnlyError';
}

export class ReadOnlyHistoryError extends POSError {
  override readonly pythonClass = 'ZODB.POSException.ReadOnlyHistoryError';
  override name = 'ReadOnlyHistoryError';
}

export class Unsupported extends POSError {
  override readonly pythonClass = 'ZODB.POSException.Unsupported';
  override name = 'Unsupported';
}

export class InvalidObjectReference extends POSError {
  override readonly pythonClass = 'ZODB.POSException.InvalidObjectReference';
  override name = 'InvalidObjectReference';
}

export interface ConflictInfo {
  oid?: Oid;
  /** As in Python: [serial currently committed, serial this transaction started with]. */
  serials?: [Tid, Tid];
  /** Dotted class name of the object, when known (from the pickle). */
  className?: string;
  message?: string;
}

function serialText(t: Tid): string {
  return `${oidRepr(t)} ${new TimeStamp(t).toString()}`;
}

/** Two transactions changed the same object (write/write conflict). */
export class ConflictError extends POSError {
  override readonly pythonClass: string = 'ZODB.POSException.ConflictError';
  override name = 'ConflictError';
  readonly oid: Oid | undefined;
  readonly serials: [Tid, Tid] | undefined;
  readonly className: string | undefined;
  /** The bare message part (Python's `self.message`). */
  readonly baseMessage: string;
  constructor(info: ConflictInfo = {}) {
    const base = info.message ?? 'database conflict error';
    const extras: string[] = [];
    if (info.oid !== undefined) extras.push(`oid ${oidRepr(info.oid)}`);
    if (info.className) extras.push(`class ${info.className}`);
    if (info.serials) {
      const [current, old] = info.serials;
      extras.push(`serial this txn started with ${serialText(old)}`);
      extras.push(`serial currently committed ${serialText(current)}`);
    }
    super(extras.length ? `${base} (${extras.join(', ')})` : base);
    this.oid = info.oid;
    this.serials = info.serials;
    this.className = info.className;
    this.baseMessage = base;
  }
}

/** A read of an object that changed since the transaction started (checkCurrentSerialInTransaction). */
export class ReadConflictError extends ConflictError {
  override readonly pythonClass: string = 'ZODB.POSException.ReadConflictError';
  override name = 'ReadConflictError';
  constructor(info: ConflictInfo = {}) {
    super({ ...info, message: info.message ?? 'database read conflict error' });
  }
}

export class BTreesConflictError extends ConflictError {
  override readonly pythonClass: string = 'ZODB.POSException.BTreesConflictError';
  override name = 'BTreesConflictError';
}

export class UndoError extends POSError {
  override readonly pythonClass: string = 'ZODB.POSException.UndoError';
  override name = 'UndoError';
  readonly oid: Oid | undefined;
  readonly reason: string;
  constructor(reason: string, oid?: Oid) {
    super(oid === undefined ? reason : `${oidRepr(oid)} ${reason}`);
    this.reason = reason;
    this.oid = oid;
  }
}

export class MultipleUndoErrors extends UndoError {
  override readonly pythonClass = 'ZODB.POSException.MultipleUndoErrors';
  override name = 'MultipleUndoErrors';
  readonly errors: UndoError[];
  constructor(errors: UndoError[]) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
  }
}

/** Raised by storages when the file/transport is broken in a way the caller cannot fix. */
export class StorageCorruptionError extends StorageError {
  override readonly pythonClass: string = 'ZODB.POSException.StorageError';
  override name = 'StorageCorruptionError';
}

export class TransactionTooLargeError extends StorageTransactionError {
  override readonly pythonClass = 'ZODB.POSException.TransactionTooLargeError';
  override name = 'TransactionTooLargeError';
}

/** ZEO.Exceptions.ClientDisconnected: the client has no connection to a server. */
export class ClientDisconnected extends StorageError {
  override readonly pythonClass = 'ZEO.Exceptions.ClientDisconnected';
  override name = 'ClientDisconnected';
}

/** Is this error (or one of its Python bases) the given Python class? */
export function isPythonClass(err: unknown, pythonClass: string): boolean {
  return err instanceof POSError && err.pythonClass === pythonClass;
}
