// Replays the cache calls recorded in vectors/client-cache/session.trace (a traced ClientStorage
// session with a 100 KiB cache) against our cache and requires the trace we write to be the
// same file, byte for byte: every hit and miss, so every eviction and copy-forward, agrees.
// client-cache §13 #23 #24 #31 #32
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { ClientCache, decodeTraceFixed, splitEncoded, TRACE_FIXED_SIZE } from '../src/index.ts';
import { captureLogger, tmp } from './helpers.ts';

test('session.trace: replaying its calls writes an identical trace (client-cache §13 #23 #24 #31 #32)', { skip: vectorsSkip('client-cache', 'session.trace') }, async () => {
  const recorded = readFileSync(vectorsDir('client-cache', 'session.trace'));
  const recs: Array<{ ts: number; code: number; dlen: number; oid: bigint | null; start: bigint; end: bigint }> = [];
  for (let at = 0; at + TRACE_FIXED_SIZE <= recorded.length; ) {
    const f = decodeTraceFixed(recorded, at);
    const { dlen, code } = splitEncoded(f.encoded);
    recs.push({
      ts: f.ts,
      code,
      dlen,
      oid: f.oidlen === 8 ? recorded.readBigUInt64BE(at + 26) : null,
      start: recorded.readBigUInt64BE(at + 10),
      end: recorded.readBigUInt64BE(at + 18),
    });
    at += TRACE_FIXED_SIZE + f.oidlen;
  }
  assert.equal(recs.length, 2208);
  const path = join(tmp(), 'traced-main.zec');
  let next = 0; // the clock gives each record the timestamp of the recorded one
  const clock = () => recs[next++]?.ts ?? 0;
  const open = () => ClientCache.open(path, { size: 102400, trace: true, traceClock: clock, logger: captureLogger() });
  let cache: ClientCache | null = null;
  for (const r of recs) {
    const before = next;
    switch (r.code) {
      case 0x00:
        await cache?.close();
        cache = await open();
        break;
      case 0x52:
        cache!.store(r.oid!, r.start, null, Buffer.alloc(r.dlen, 0x61));
        break;
      case 0x20:
      case 0x22:
        cache!.load(r.oid!);
        break;
      case 0x10:
        cache!.invalidate(r.oid!, r.start === 0n ? null : r.start);
        break;
      case 0x1c:
        cache!.invalidate(r.oid!, r.start);
        break;
      case 0x1e:
        cache!.invalidate(r.oid!, null);
        break;
      default:
        assert.fail(`unexpected code ${r.code.toString(16)}`);
    }
    assert.equal(next, before + 1, `record ${before}: exactly one trace record per call`);
  }
  await cache!.close();
  const ours = readFileSync(path + '.trace');
  if (!ours.equals(recorded)) {
    // locate the first difference for a readable failure
    let i = 0;
    while (i < ours.length && ours[i] === recorded[i]) i++;
    assert.fail(`trace differs from byte ${i} (record about ${Math.floor(i / 34)})`);
  }
});
