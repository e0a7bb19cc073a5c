/**
 * @zeo-ts/pickle — the project's pickle codec. Pure: bytes in, values out (no fs/net).
 *
 * VALUE MODEL (what `loads` returns and what `dumps` accepts)
 *
 *   Python            JavaScript
 *   ----------------  ------------------------------------------------------------------
 *   None              null
 *   bool              boolean
 *   int               number when a safe integer (|v| ≤ 2^53-1), else bigint.
 *                     dumps: any integer-valued number or any bigint is an int.
 *   float             PyFloat { value: number } (always wrapped, so 1.0 stays a float).
 *                     dumps: a PyFloat, or a number that is not an integer (NaN/±Infinity too).
 *   str               string (UTF-8 with Python's 'surrogatepass': lone surrogates survive)
 *   bytes             Buffer (a copy, never a view of the input). dumps: any Uint8Array.
 *   bytearray         PyByteArray { bytes } (protocol 5 only; reader only)
 *   tuple             PyTuple (an Array subclass: t[0], t.length; `instanceof PyTuple`).
 *                     Build with tuple(a, b) / PyTuple.from(it) / PyTuple.of(a, b).
 *   list              Array (plain; a PyTuple is never a list)
 *   dict              Map<unknown, unknown> (always a Map, in pickle order, whatever the keys).
 *                     dumps also takes a plain object as a dict of str keys (JS key order:
 *                     integer-like keys first!).
 *   set / frozenset   Set / PyFrozenSet (protocol 4 opcodes). dumps (protocols < 4) writes
 *                     them as Python does, in the Set's iteration order (Python's own order
 *                     is hash order, so byte identity needs the caller's order to match).
 *   global            PyGlobal { module, name } — never imported or resolved, unless the
 *                     `findClass` hook returns something else (or throws to refuse it).
 *   object            PyObject { kind, cls, args, kwargs, state, listItems, dictItems } for
 *                     REDUCE / NEWOBJ / NEWOBJ_EX / OBJ / INST (+ BUILD, APPENDS, SETITEMS on
 *                     it). Nothing is executed; the exception: REDUCE whose callable is a JS
 *                     function (returned by findClass) calls it with the arguments.
 *   persistent id     PersistentRef { id } (PERSID: id is a string; BINPERSID: any value),
 *                     unless a `persistentLoad` hook maps the id to something else.
 *                     dumps writes a PersistentRef as its id + BINPERSID (or a
 *                     `persistentId` hook decides).
 *
 * Python 2 string opcodes (STRING, BINSTRING, SHORT_BINSTRING) decode per `encoding`:
 * 'ascii-or-bytes' (default; ZODB's encoding='ASCII', errors='bytes': str when ASCII, else
 * bytes), 'bytes', 'ascii', 'latin1' or 'utf-8'.
 *
 * Reader: `loads(bytes, options)` reads one pickle; `new Unpickler(bytes, options, start)` with
 * repeated `.load()` reads consecutive pickles sharing one memo (a ZODB record: class, state),
 * `.position` is the next offset. Options: encoding, findClass, persistentLoad, maxProtocol,
 * maxLength, maxStack, maxMemo.
 *
 * Limits (reader): input length (maxLength, 1 GiB), stack values + marks (maxStack, 1e6),
 * memo entries (maxMemo, 1e6), decimal int literals ≤ 4300 digits (as CPython 3.11). Every
 * failure is a PickleError naming the byte offset. Note: memo references can build very deeply
 * nested (or cyclic) values from a small input; consumers that recurse must bound their depth.
 *
 * Writer: `dumps(value, {protocol, memo, persistentId})` gives CPython 3's exact bytes at
 * protocols 0-3 (zodbpickle's too at 1-3); `memo: false` is Python's fast mode (what ZEO's Z5
 * encoder uses). Identity as in CPython: objects are memoised by JS identity, globals by
 * module+name, '' / 1-character latin-1 str / b'' / 1-byte bytes by value (CPython shares those
 * objects), other strings never (each is a new object). Dict batches: MARK..SETITEMS per 1000.
 * `new Pickler().dump(a).dump(b).result()` writes two pickles with one memo (a ZODB record).
 *
 * ZODB records:
 *   referencesf(data, out?)  oids of the strong references of a record (class + state pickle),
 *                            exactly as ZODB.serialize.referencesf (order, duplicates), raising
 *                            PickleError wherever Python's noload raises (protocol > 3 or its
 *                            opcodes, non-ASCII Python 2 strings, bad literals, ...). An id that
 *                            is not 8 bytes is an error here (Python would return it).
 *   getRefs(data)            [oid, klass] as ZODB.serialize.get_refs (klass null for GLOBALs).
 *   getPickleMetadata(data)  {module, name} as ZODB.utils.get_pickle_metadata.
 *   decodeExtension / encodeExtension  transaction extension dict ⇄ bytes (Python-identical).
 */
export { PickleError, PyTuple, tuple, PyFloat, PyGlobal, PyObject, PersistentRef, PyFrozenSet, PyByteArray } from './values.ts';
export type { PyObjectKind, PyDict } from './values.ts';
export { Unpickler, loads, type LoadOptions, type StringEncoding } from './unpickler.ts';
export { Pickler, dumps, type DumpOptions } from './pickler.ts';
export { referencesf, getRefs, getPickleMetadata } from './refs.ts';
export { decodeExtension, encodeExtension } from './extension.ts';
