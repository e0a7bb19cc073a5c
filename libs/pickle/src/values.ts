/**
 * The JavaScript value model of pickled Python values (see the table in index.ts).
 */

/** Raised for malformed, truncated, refused or over-limit pickles, and for unpicklable values. */
export class PickleError extends Error {
  override name = 'PickleError';
  /** Dotted Python class of the equivalent error. */
  readonly pythonClass: string;
  /** Byte offset in the input where the problem was found (reader), or -1. */
  readonly offset: number;
  constructor(message: string, offset = -1, pythonClass = 'pickle.UnpicklingError') {
    super(offset >= 0 ? `${message} (at byte ${offset})` : message);
    this.offset = offset;
    this.pythonClass = pythonClass;
  }
}

/**
 * A Python tuple. An Array subclass, so indexing, length and iteration work as for lists;
 * `instanceof PyTuple` tells a tuple from a list (plain Array). Build one with
 * `PyTuple.of(a, b)`, `PyTuple.from(iterable)` or `tuple(a, b)` (never `new PyTuple(n)`,
 * which like `new Array(n)` makes n holes). Derived arrays (`map`, `slice`, ...) are PyTuples too.
 */
export class PyTuple<T = unknown> extends Array<T> {}

/** Make a PyTuple of the arguments. */
export function tuple(...items: unknown[]): PyTuple {
  return adoptAsTuple(items);
}

/**
 * Turn a freshly made plain array, owned by the caller and referenced nowhere else, into a
 * PyTuple in place (same object afterwards). Much cheaper than `PyTuple.from` (which goes
 * through the iterator protocol for an Array subclass) or `new PyTuple()` + push. Internal.
 */
export function adoptAsTuple<T>(items: T[]): PyTuple<T> {
  return Object.setPrototypeOf(items, PyTuple.prototype) as PyTuple<T>;
}

/** A Python float (ints are `number`/`bigint`; a float is always wrapped, so 1.0 stays a float). */
export class PyFloat {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
  toString(): string {
    return String(this.value);
  }
}

/** A global (class or function) named by a pickle; the reader never resolves it by itself. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  /** "module.name" */
  get dotted(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return this.dotted;
  }
}

/** How a PyObject was made. */
export type PyObjectKind = 'reduce' | 'newobj' | 'newobj_ex' | 'obj' | 'inst';

/**
 * An object built by the pickle (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST), never executed:
 * `cls` is the class or callable (usually a PyGlobal), `args` its positional arguments,
 * `kwargs` the keyword arguments of NEWOBJ_EX (else null), `state` the BUILD argument
 * (`undefined` when there was no BUILD; `null` is a BUILD with None), `listItems`/`dictItems`
 * what APPEND(S)/SETITEM(S) added to it (null when none).
 */
export class PyObject {
  state: unknown = undefined;
  listItems: unknown[] | null = null;
  dictItems: [unknown, unknown][] | null = null;
  constructor(
    readonly kind: PyObjectKind,
    readonly cls: unknown,
    readonly args: PyTuple,
    readonly kwargs: Map<unknown, unknown> | null = null,
  ) {}
  /** The dotted class name when `cls` is a PyGlobal, else undefined. */
  get className(): string | undefined {
    return this.cls instanceof PyGlobal ? this.cls.dotted : undefined;
  }
}

/** A persistent reference (PERSID/BINPERSID) as the reader gives it without a persistentLoad hook. */
export class PersistentRef {
  constructor(readonly id: unknown) {}
}

/** A Python frozenset (a plain `Set` is a Python set). */
export class PyFrozenSet<T = unknown> extends Set<T> {}

/** A Python bytearray (protocol 5 BYTEARRAY8); `bytes` is a plain Buffer. */
export class PyByteArray {
  constructor(readonly bytes: Buffer) {}
}

/** A Python dict. */
export type PyDict = Map<unknown, unknown>;
