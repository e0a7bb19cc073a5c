// MappingStorage replays the scripted history of the FileStorage vectors (stores, an undo, a
// deleteObject, with Python's exact tids) and must answer every read exactly as Python's
// FileStorage did (expected-api.json), then pack with GC at 00:05:30 and match
// expected-api-packed.json. filestorage §16 #20–#25, #37–#39, #41–#43; spec §17.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fromHex, toHex, maxtid, MappingStorage, POSKeyError, TransactionMetaData, type IStorage } from '../src/index.ts';
import { vectorsDir, vectorsSkip, undoId } from '../src/testing/index.ts';

interface ApiRecord {
  oid: string;
  tid: string;
  data_sha1: string | null;
  data_txn: string | null;
}
interface ApiTxn {
  tid: string;
  status: string;
  user: string;
  description: string;
  extension_bytes: string;
  records: ApiRecord[];
}
type Loaded = string | null | { data: string; start: string; end: string | null };
interface ApiObject {
  getTid: string;
  load: string | { data: string; tid: string };
  loadBefore: Record<string, Loaded>;
  loadSerial: Record<string, string>;
  history: Array<{ description: string; size: number; tid: string; time: number; user_name: string }>;
}
interface Api {
  tids: string[];
  lastTransaction: string;
  len: number;
  iterator: ApiTxn[];
  objects: Record<string, ApiObject>;
  undoLog: Array<{ description: string; id: string; time: number; user_name: string }>;
}

const skip = vectorsSkip('filestorage', 'expected-api.json');
const load = (name: string): Api => JSON.parse(readFileSync(vectorsDir('filestorage', name), 'utf8')) as Api;
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

async function outcome<T>(p: Promise<T>, shape: (v: T) => unknown): Promise<unknown> {
  try {
    return shape(await p);
  } catch (e) {
    if (e instanceof POSKeyError) return 'POSKeyError';
    throw e;
  }
}

/** Replay Data.fs's history (vectors README) through the storage API with Python's tids. */
async function replay(api: Api): Promise<MappingStorage> {
  const s = new MappingStorage({ name: 'vectors' });
  const stateOf = (oid: string, tid: string) => Buffer.from(api.objects[oid]!.loadSerial[tid]!, 'hex');
  for (const t of api.iterator) {
    const tid = fromHex(t.tid);
    const txn = new TransactionMetaData(t.user, t.description, Buffer.from(t.extension_bytes, 'hex'));
    await s.tpc_begin(txn, tid);
    if (t.description === 'undo T3') {
      const oids = await s.undo(undoId(fromHex(api.tids[3]!)), txn);
      assert.deepEqual(oids.map(toHex), t.records.map((r) => r.oid));
    } else {
      for (const r of t.records) {
        const oid = fromHex(r.oid);
        const serial = await s.getTid(oid).catch(() => 0n);
        if (r.data_sha1 === null) {
          await s.deleteObject(oid, serial, txn);
        } else {
          const data = stateOf(r.oid, r.tid);
          assert.equal(sha1(data), r.data_sha1, `vector data of ${r.oid}@${r.tid}`);
          await s.store(oid, serial, data, txn);
        }
      }
    }
    await s.tpc_vote(txn);
    assert.equal(await s.tpc_finish(txn), tid);
  }
  return s;
}

async function compare(s: IStorage, api: Api): Promise<void> {
  assert.equal(toHex(s.lastTransaction()), api.lastTransaction);
  assert.equal(s.len(), api.len);
  // iterator (filestorage §16 #25): statuses, metadata, records with data_txn
  const got: unknown[] = [];
  for await (const t of s.iterator()) {
    got.push({
      tid: toHex(t.tid),
      status: t.status,
      user: t.user.toString(),
      description: t.description.toString(),
      extension_bytes: t.extension.toString('hex'),
      records: t.records.map((r) => ({
        oid: toHex(r.oid),
        tid: toHex(r.tid),
        data_sha1: r.data === null ? null : sha1(r.data),
        data_txn: r.data_txn === null ? null : toHex(r.data_txn),
      })),
    });
  }
  const want = api.iterator.map((t) => ({
    tid: t.tid,
    status: t.status,
    user: t.user,
    description: t.description,
    extension_bytes: t.extension_bytes,
    records: t.records.map((r) => ({ oid: r.oid, tid: r.tid, data_sha1: r.data_sha1, data_txn: r.data_txn })),
  }));
  assert.deepEqual(got, want);
  // per-object reads (filestorage §16 #20–#24)
  for (const [oidHex, o] of Object.entries(api.objects)) {
    const oid = fromHex(oidHex);
    assert.deepEqual(await outcome(s.load(oid), (r) => ({ data: r.data.toString('hex'), tid: toHex(r.tid) })), o.load, `load ${oidHex}`);
    assert.deepEqual(await outcome(s.getTid(oid), toHex), o.getTid, `getTid ${oidHex}`);
    for (const [tidHex, expected] of Object.entries(o.loadBefore)) {
      const tid = tidHex === '7fffffffffffffff' ? maxtid : fromHex(tidHex);
      const r = await outcome(s.loadBefore(oid, tid), (v) =>
        v === null ? null : { data: v.data.toString('hex'), start: toHex(v.start), end: v.end === null ? null : toHex(v.end) },
      );
      assert.deepEqual(r, expected, `loadBefore ${oidHex} ${tidHex}`);
    }
    for (const [tidHex, expected] of Object.entries(o.loadSerial)) {
      assert.deepEqual(await outcome(s.loadSerial(oid, fromHex(tidHex)), (b) => b.toString('hex')), expected, `loadSerial ${oidHex} ${tidHex}`);
    }
    const h = await outcome(s.history(oid, 100), (hs) =>
      hs.map((e) => ({ description: e.description.toString(), size: e.size, tid: toHex(e.tid), time: e.time, user_name: e.user_name.toString() })),
    );
    assert.deepEqual(h, o.history ?? 'POSKeyError', `history ${oidHex}`);
  }
  // undoLog (filestorage §16 #37)
  const log = (await s.undoLog(0, 100)).map((e) => ({ description: e.description.toString(), id: e.id.toString(), time: e.time, user_name: e.user_name.toString() }));
  assert.deepEqual(log, api.undoLog.map((e) => ({ description: e.description, id: e.id, time: e.time, user_name: e.user_name })));
}

describe('MappingStorage against the Python FileStorage vectors', { skip }, () => {
  it('replayed history answers like Python (expected-api.json; filestorage §16 #20-#25, #37, #38)', async () => {
    const api = load('expected-api.json');
    const s = await replay(api);
    await compare(s, api);
  });

  it('pack(1704067530.0, gc) matches Python (expected-api-packed.json; filestorage §16 #41-#43, #47)', async () => {
    const s = await replay(load('expected-api.json'));
    await s.pack(1704067530.0, true);
    await compare(s, load('expected-api-packed.json'));
  });
});
