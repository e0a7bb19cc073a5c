/**
 * Errors the server sends that are not plain POSException classes, or whose Python `args`
 * differ from the default of @zeo-ts/storage (zeo5-protocol §6.4 table).
 *
 * Every error here has `pythonClass` and `pythonArgs()` like the POSError classes, so a transport
 * encodes them all the same way: `(pythonClass, state)`.
 */
import { POSKeyError, StorageTransactionError, type Oid } from '@zeo-ts/storage';

/** A Python builtin exception (builtins.ValueError, builtins.TypeError, ...). */
export class PyBuiltinError extends Error {
  readonly pythonClass: string;
  readonly args: unknown[];
  constructor(pythonName: 'ValueError' | 'TypeError' | 'KeyError' | 'AttributeError' | 'AssertionError' | 'Exception', args: unknown[]) {
    super(args.map((a) => (Buffer.isBuffer(a) ? a.toString('hex') : String(a))).join(', '));
    this.pythonClass = `builtins.${pythonName}`;
    this.name = pythonName;
    this.args = args;
  }
  pythonArgs(): unknown[] {
    return this.args;
  }
}

/** POSKeyError whose Python args are `(oid_bytes,)`, as the reference sends for loads (§6.4). */
export class OidKeyError extends POSKeyError {
  readonly oidBytes: Buffer;
  constructor(oid: Oid, oidBytes: Buffer) {
    super(oid, undefined, oidBytes);
    this.oidBytes = oidBytes;
  }
  override pythonArgs(): unknown[] {
    return [this.oidBytes];
  }
}

/** StorageTransactionError with the `(current_txnid_or_None, txnid)` args of the transaction check (§8.0). */
export class TxnMismatchError extends StorageTransactionError {
  readonly current: unknown;
  readonly given: unknown;
  constructor(current: unknown, given: unknown) {
    super(`transaction id mismatch: current ${current === null ? 'None' : String(current)}, given ${String(given)}`);
    this.current = current;
    this.given = given;
  }
  override pythonArgs(): unknown[] {
    return [this.current, this.given];
  }
}

/** Raised (and logged) when a connection violates the protocol; the connection is closed. */
export class ProtocolViolation extends Error {
  override name = 'ProtocolViolation';
}
