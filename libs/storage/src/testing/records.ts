/**
 * Tiny builder of real ZODB object records for tests: a class pickle followed by a state pickle,
 * protocol 3, sharing one memo (filestorage spec §4.1), with persistent references in the forms of
 * spec §4.2 so that pack's reachability GC (referencesf) can follow them.
 *
 * The state built is that of a persistent.mapping.PersistentMapping: {'data': {key: value, ...}}.
 * Python's pickle module loads these bytes (checked with pickletools while writing this file).
 */
import type { Oid } from '../ids.ts';

/** The exact 64-byte root record ZODB.DB writes for a new database (spec §4.1). */
export const ROOT_RECORD: Buffer = Buffer.from(
  '80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e' +
    '80037d710158040000006461746171027d7103732e',
  'hex',
);

export interface RecordSpec {
  /** strong references (oid, klass) — followed by GC */
  refs?: Oid[];
  /** bare-oid strong references — followed by GC */
  bareRefs?: Oid[];
  /** persistent weak references ['w', (oid,)] — not followed by GC */
  weakRefs?: Oid[];
  /** cross-database references ['n', (db, oid)] — not followed by GC */
  crossRefs?: Array<{ database: string; oid: Oid }>;
  /** a text value stored under 'value' (makes records distinguishable) */
  value?: string;
  /** class of the record; default persistent.mapping PersistentMapping */
  module?: string;
  name?: string;
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function unicode(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([0x58]), u32le(body.length), body]); // BINUNICODE
}

function oidBytes(oid: Oid): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(oid, 0);
  return Buffer.concat([Buffer.from([0x43, 8]), b]); // SHORT_BINBYTES 8
}

/** Build a ZODB object record (class pickle + state pickle). */
export function makeRecord(spec: RecordSpec = {}): Buffer {
  const module = spec.module ?? 'persistent.mapping';
  const name = spec.name ?? 'PersistentMapping';
  if (module.includes('\n') || name.includes('\n')) throw new RangeError('makeRecord: class names must not contain newlines');
  const parts: Buffer[] = [];
  // class pickle: PROTO 3, GLOBAL module\nname\n, BINPUT 0, STOP
  parts.push(Buffer.from([0x80, 3, 0x63]), Buffer.from(`${module}\n${name}\n`, 'latin1'), Buffer.from([0x71, 0, 0x2e]));
  // state pickle: PROTO 3, EMPTY_DICT, BINPUT 1, 'data', BINPUT 2, EMPTY_DICT, BINPUT 3
  parts.push(Buffer.from([0x80, 3, 0x7d, 0x71, 1]), unicode('data'), Buffer.from([0x71, 2, 0x7d, 0x71, 3]));
  const items: Buffer[] = [];
  (spec.refs ?? []).forEach((oid, i) => {
    // key, (oid, klass) with klass = BINGET 0 (the memoised class), TUPLE2, BINPERSID
    items.push(unicode(`ref${i}`), oidBytes(oid), Buffer.from([0x68, 0, 0x86, 0x51]));
  });
  (spec.bareRefs ?? []).forEach((oid, i) => {
    items.push(unicode(`bare${i}`), oidBytes(oid), Buffer.from([0x51]));
  });
  (spec.weakRefs ?? []).forEach((oid, i) => {
    // ['w', (oid,)]: MARK 'w' oid TUPLE1 LIST BINPERSID
    items.push(unicode(`weak${i}`), Buffer.from([0x28]), unicode('w'), oidBytes(oid), Buffer.from([0x85, 0x6c, 0x51]));
  });
  (spec.crossRefs ?? []).forEach((x, i) => {
    // ['n', (database, oid)]: MARK 'n' database oid TUPLE2 LIST BINPERSID
    items.push(unicode(`cross${i}`), Buffer.from([0x28]), unicode('n'), unicode(x.database), oidBytes(x.oid), Buffer.from([0x86, 0x6c, 0x51]));
  });
  if (spec.value !== undefined) items.push(unicode('value'), unicode(spec.value));
  if (items.length > 0) parts.push(Buffer.from([0x28]), ...items, Buffer.from([0x75])); // MARK ... SETITEMS
  parts.push(Buffer.from([0x73, 0x2e])); // SETITEM (data -> dict), STOP
  return Buffer.concat(parts);
}

/** The strong references a makeRecord() record was built with, in encounter order (what referencesf must return). */
export function expectedRefs(spec: RecordSpec): Oid[] {
  return [...(spec.refs ?? []), ...(spec.bareRefs ?? [])];
}
