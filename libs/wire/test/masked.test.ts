// zeo5 README "How to compare" / W-3, W-9: our encoders put every run-specific value (tids,
// txnids, times, undo ids, ctime) exactly where the recorded frames mark it as varying. Each
// marked value is replaced by a different value of the same width, the message re-encoded, and
// the result compared with the recording after masking the marked ranges in both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vectorsSkip } from '@zeo-ts/storage/testing';
import { M5Codec, Z5Codec, encodeFrame, encodeRuokReply, type MessageCodec } from '../src/index.ts';
import { fromRendering, zeo5Files, type VectorFrame } from './helpers.ts';

function unescape(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** Replace the value at a JSON pointer of a rendering (in place) with a same-width substitute. */
function substitute(root: unknown, pointer: string, kind: string, encoding: string): void {
  const segs = pointer.split('/').slice(1).map(unescape);
  let parent = root as Record<string, unknown>;
  for (const s of segs.slice(0, -1)) parent = parent[s] as Record<string, unknown>;
  const last = segs[segs.length - 1]!;
  const old = parent[last];
  switch (kind) {
    case 'tid':
    case 'undo-id': {
      const hex = (old as { hex: string }).hex;
      parent[last] = { hex: Buffer.from(Buffer.from(hex, 'hex').map((b) => b ^ 0x5a)).toString('hex') };
      break;
    }
    case 'txnid': {
      // same encoded width: M5 uint 64 (>= 2^32), Z5 LONG1 of 6 bytes (2^40 <= v < 2^47)
      const v = old as number;
      const sub = encoding === 'M5' ? v + 12345 : 2 ** 46 + 12345;
      assert.ok(sub !== v);
      parent[last] = sub;
      break;
    }
    case 'time':
      parent[last] = { float: 1234567890.125 };
      break;
    case 'ctime':
      parent[last] = 'Mon Jan  1 00:00:00 2001';
      break;
    case 'tid-hex':
      parent[last] = 'abcdef0123456789';
      break;
    default:
      throw new Error(`unknown varying kind ${kind}`);
  }
}

function encodeRendered(codec: MessageCodec, decoded: Record<string, unknown>): Buffer {
  if ('status_json' in decoded) return encodeFrame(encodeRuokReply(decoded['status_json'] as Record<string, Record<string, unknown>>));
  return encodeFrame(codec.encode({
    msgid: fromRendering(decoded['msgid']),
    flags: decoded['flags'] as boolean | number,
    method: decoded['method'] as string,
    args: fromRendering(decoded['args']),
  }));
}

for (const prefix of ['m5', 'z5'] as const) {
  test(`zeo5 ${prefix.toUpperCase()} varying values sit exactly at the marked byte ranges (masked comparison)`, { skip: vectorsSkip('zeo5') }, () => {
    const codec = prefix === 'm5' ? new M5Codec() : new Z5Codec();
    let checked = 0;
    for (const { name, data } of zeo5Files(prefix)) {
      const bySeq = new Map<number, VectorFrame>(data.frames.map((f) => [f.seq, f]));
      const seqs = [...new Set(data.varying.map((v) => v.seq))];
      for (const seq of seqs) {
        const frame = bySeq.get(seq)!;
        const marks = data.varying.filter((v) => v.seq === seq);
        const rendering = structuredClone(frame.decoded);
        for (const m of marks) substitute(rendering, m.path, m.kind, data.encoding);
        const ours = encodeRendered(codec, rendering);
        const expected = Buffer.from(frame.hex, 'hex');
        assert.equal(ours.length, expected.length, `${name} seq ${seq}: length`);
        const masked = (b: Buffer) => {
          const c = Buffer.from(b);
          for (const m of marks) c.fill(0, m.offset, m.offset + m.length);
          return c.toString('hex');
        };
        assert.equal(masked(ours), masked(expected), `${name} seq ${seq}: bytes outside the varying ranges`);
        // and every substituted value really landed inside its marked range
        for (const m of marks) {
          assert.ok(!ours.subarray(m.offset, m.offset + m.length).equals(expected.subarray(m.offset, m.offset + m.length)),
            `${name} seq ${seq} ${m.path}: substitute not at the marked offset`);
        }
        checked += marks.length;
      }
    }
    assert.ok(checked > 100, `checked ${checked} varying values`);
  });
}
