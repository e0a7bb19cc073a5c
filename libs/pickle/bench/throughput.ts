/**
 * Rough throughput of the pickle codec; prints one JSON object. Not a test.
 *   cd libs/pickle && node --import tsx bench/throughput.ts
 * Inputs are synthetic ZODB-like records (a PersistentMapping state of N (oid, class)
 * references plus small values) and a ZEO Z5 storea-like message.
 */
import { dumps, loads, PersistentRef, Pickler, PyGlobal, referencesf, tuple, Unpickler } from '../src/index.ts';

const PM = new PyGlobal('persistent.mapping', 'PersistentMapping');

function record(nrefs: number): Buffer {
  const data = new Map<unknown, unknown>();
  for (let i = 0; i < nrefs; i++) {
    const oid = Buffer.alloc(8);
    oid.writeBigUInt64BE(BigInt(i + 1));
    data.set(`key-${i}`, i % 2 ? new PersistentRef(tuple(oid, PM)) : [i, `value ${i}`, 1.5 * i]);
  }
  return new Pickler().dump(PM).dump(new Map([['data', data]])).result();
}

function time(fn: () => number, minMs = 400): { ops: number; ms: number; bytes: number } {
  let ops = 0;
  let bytes = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    bytes += fn();
    ops++;
  }
  return { ops, ms: performance.now() - t0, bytes };
}

const rec = record(1000);
const msg = tuple(7, false, 'storea', tuple(Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(4000, 1), 140234567890123));
const msgBytes = dumps(msg, { memo: false });

const results: Record<string, unknown> = {};
const mbps = (r: { ms: number; bytes: number }) => Math.round((r.bytes / 1e6 / (r.ms / 1000)) * 10) / 10;
const r1 = time(() => {
  const u = new Unpickler(rec);
  u.load();
  u.load();
  return rec.length;
});
results.decodeRecordMBps = mbps(r1);
const r2 = time(() => (referencesf(rec), rec.length));
results.referencesfMBps = mbps(r2);
results.referencesfRecordsPerSec = Math.round(r2.ops / (r2.ms / 1000));
const state = (() => {
  const u = new Unpickler(rec);
  u.load();
  return u.load();
})();
const r3 = time(() => new Pickler().dump(PM).dump(state).result().length);
results.encodeRecordMBps = mbps(r3);
const r4 = time(() => (loads(msgBytes), msgBytes.length));
results.z5DecodeMsgsPerSec = Math.round(r4.ops / (r4.ms / 1000));
const r5 = time(() => dumps(msg, { memo: false }).length);
results.z5EncodeMsgsPerSec = Math.round(r5.ops / (r5.ms / 1000));
results.recordBytes = rec.length;
results.z5MessageBytes = msgBytes.length;
console.log(JSON.stringify(results));
