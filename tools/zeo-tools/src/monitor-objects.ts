/**
 * The objects zeoup's write mode touches (operations §7.2): root['monitor'], a
 * persistent.mapping.PersistentMapping, holding 'zeoup', a ZODB.tests.MinPO.MinPO whose state is
 * {'value': n}. Records are written as ZODB writes them (class pickle + state pickle, protocol 3,
 * one memo; references as (oid, class) persistent ids) so Python applications still load them.
 */
import { Pickler, PersistentRef, PyGlobal, PyTuple, Unpickler, tuple } from '@zeo-ts/pickle';
import { ConflictError, POSKeyError, TransactionMetaData, p64, u64, z64, type IStorage, type Oid, type Tid } from '@zeo-ts/storage';

const PM = new PyGlobal('persistent.mapping', 'PersistentMapping');
const MINPO = new PyGlobal('ZODB.tests.MinPO', 'MinPO');

/** A clear refusal: the database holds something zeoup must not overwrite. */
export class UnexpectedObjectError extends Error {
  override name = 'UnexpectedObjectError';
}

function classOf(meta: unknown): PyGlobal | null {
  if (meta instanceof PyGlobal) return meta;
  if (meta instanceof PyTuple && meta[0] instanceof PyGlobal) return meta[0];
  return null;
}

function record(meta: unknown, state: unknown): Buffer {
  return new Pickler({ protocol: 3 }).dump(meta).dump(state).result();
}

function decode(data: Buffer, want: PyGlobal, what: string): { meta: unknown; state: Map<unknown, unknown> } {
  const u = new Unpickler(data, {});
  const meta = u.load();
  const cls = classOf(meta);
  if (!cls || cls.dotted !== want.dotted) throw new UnexpectedObjectError(`${what} is a ${cls?.dotted ?? 'non-class record'}, not a ${want.dotted}; not touching it`);
  const state = u.load();
  if (!(state instanceof Map)) throw new UnexpectedObjectError(`${what} has a state that is not a dict; not touching it`);
  return { meta, state };
}

function refOid(v: unknown, what: string): Oid {
  if (!(v instanceof PersistentRef)) throw new UnexpectedObjectError(`${what} is not a persistent reference`);
  const id = v.id;
  const raw = id instanceof PyTuple ? id[0] : id;
  if (!Buffer.isBuffer(raw) || raw.length !== 8) throw new UnexpectedObjectError(`${what} is not a plain (oid, class) reference`);
  return u64(raw);
}

function ref(oid: Oid, cls: PyGlobal): PersistentRef {
  return new PersistentRef(tuple(p64(oid), cls));
}

async function loadOrNull(s: IStorage, oid: Oid): Promise<{ data: Buffer; tid: Tid } | null> {
  try {
    return await s.load(oid);
  } catch (e) {
    if (e instanceof POSKeyError) return null;
    throw e;
  }
}

/**
 * Increment root['monitor']['zeoup'].value in one transaction (creating what is missing, the root
 * included). Returns the new value, or null when a ConflictError stopped the commit (which zeoup
 * counts as success).
 */
export async function bumpZeoupCounter(s: IStorage, description = 'zeoup'): Promise<number | null> {
  const writes: Array<{ oid: Oid; serial: Tid; data: Buffer }> = [];
  const root = await loadOrNull(s, z64);
  let rootMeta: unknown = PM;
  let rootState = new Map<unknown, unknown>([['data', new Map()]]);
  if (root) ({ meta: rootMeta, state: rootState } = decode(root.data, PM, 'the root object'));
  const rootData = rootState.get('data');
  if (!(rootData instanceof Map)) throw new UnexpectedObjectError('the root mapping has no data dict');
  let monitorOid: Oid;
  let monitorMeta: unknown = PM;
  let monitorState = new Map<unknown, unknown>([['data', new Map()]]);
  let monitorSerial: Tid = z64;
  if (rootData.has('monitor')) {
    monitorOid = refOid(rootData.get('monitor'), "root['monitor']");
    const m = await s.load(monitorOid);
    ({ meta: monitorMeta, state: monitorState } = decode(m.data, PM, "root['monitor']"));
    monitorSerial = m.tid;
  } else {
    monitorOid = await s.new_oid();
    rootData.set('monitor', ref(monitorOid, PM));
    writes.push({ oid: z64, serial: root ? root.tid : z64, data: record(rootMeta, rootState) });
  }
  const monitorData = monitorState.get('data');
  if (!(monitorData instanceof Map)) throw new UnexpectedObjectError("root['monitor'] has no data dict");
  let counterOid: Oid;
  let counterSerial: Tid = z64;
  let value = 0;
  let counterMeta: unknown = MINPO;
  let counterState = new Map<unknown, unknown>();
  if (monitorData.has('zeoup')) {
    counterOid = refOid(monitorData.get('zeoup'), "root['monitor']['zeoup']");
    const c = await s.load(counterOid);
    ({ meta: counterMeta, state: counterState } = decode(c.data, MINPO, "root['monitor']['zeoup']"));
    counterSerial = c.tid;
    const v = counterState.get('value');
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new UnexpectedObjectError("root['monitor']['zeoup'].value is not an int");
    value = Number(v);
  } else {
    counterOid = await s.new_oid();
  }
  value += 1;
  // monitor['zeoup'] = obj marks the monitor changed, as in upstream
  monitorData.set('zeoup', ref(counterOid, MINPO));
  writes.push({ oid: monitorOid, serial: monitorSerial, data: record(monitorMeta, monitorState) });
  counterState.set('value', value);
  writes.push({ oid: counterOid, serial: counterSerial, data: record(counterMeta, counterState) });
  const txn = new TransactionMetaData('', description);
  await s.tpc_begin(txn);
  try {
    for (const w of writes) await s.store(w.oid, w.serial, w.data, txn);
    await s.tpc_vote(txn);
    await s.tpc_finish(txn);
    return value;
  } catch (e) {
    await s.tpc_abort(txn);
    if (e instanceof ConflictError) return null;
    throw e;
  }
}
