/**
 * Rough throughput of the pickle codec; prints one JSON object. Not a test.
 *   cd libs/pickle && node --import tsx bench/throughput.ts
 * Inputs are synthetic ZODB-like records (a PersistentMapping state of N (oid, class)
 * references plus small values), a small record (3 values, one reference) and a ZEO Z5
 * storea-like message. Rates are per CPU second of this process.
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

/**
 * Runs fn for at least minMs of CPU time after a warm-up; `ms` is the process CPU time (the
 * machine is shared, so wall time is not comparable between runs), `wallMs` the wall time.
 */
function time(fn: () => number, minMs = 400): { ops: number; ms: number; wallMs: number; bytes: number } {
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (let i = 0, w0 = cpuMs(); i < 1_000_000 && cpuMs() - w0 < 100; i++) fn();
  let ops = 0;
  let bytes = 0;
  const t0 = performance.now();
  const c0 = cpuMs();
  while (cpuMs() - c0 < minMs) {
    bytes += fn();
    ops++;
  }
  return { ops, ms: cpuMs() - c0, wallMs: performance.now() - t0, bytes };
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
const small = new Pickler()
  .dump(PM)
  .dump(new Map([['data', new Map<unknown, unknown>([['a', 1], ['b', new PersistentRef(tuple(Buffer.alloc(8, 1), PM))], ['c', 'xyz'.repeat(20)]])]]))
  .result();
const r2s = time(() => (referencesf(small), small.length));
results.referencesfSmallRecordsPerSec = Math.round(r2s.ops / (r2s.ms / 1000));
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
results.smallRecordBytes = small.length;
results.z5MessageBytes = msgBytes.length;
console.log(JSON.stringify(results));
