// Reader and writer against the recorded ZEO 5 Z5 frames (zeo5 spec §7.1-§7.5): every payload
// decodes to the recorded value and re-encodes (protocol 3, no memo) to the identical bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import { dumps, loads, PyFloat, PyTuple, tuple } from '../src/index.ts';

function render(v: unknown): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return { int: v.toString() };
  if (v instanceof PyFloat) return { float: v.value };
  if (Buffer.isBuffer(v)) return { hex: v.toString('hex') };
  if (v instanceof PyTuple) return [...v].map(render);
  if (Array.isArray(v)) return { list: v.map(render) };
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) {
      assert.equal(typeof k, 'string');
      o[k as string] = render(x);
    }
    return o;
  }
  throw new Error(`unexpected value in a Z5 frame: ${String(v)}`);
}

function renderMessage(v: unknown): unknown {
  assert.ok(v instanceof PyTuple && v.length === 4, 'a Z5 message is a 4-tuple');
  const [msgid, flags, method, args] = v;
  let a: unknown;
  if (flags === 2 && args instanceof PyTuple && args.length === 2) {
    const [cls, state] = args;
    a = state instanceof Map ? { exception: cls, attrs: render(state) } : { exception: cls, args: render(state) };
  } else a = render(args);
  return { msgid: render(msgid), flags: render(flags), method: render(method), args: a };
}

const dir = join(vectorsDir(), 'zeo5');
const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('z5-') && f.endsWith('.json')).sort() : [];

test('zeo5 vectors present', { skip: vectorsSkip() }, () => {
  assert.ok(files.length > 0);
});

for (const f of files) {
  test(`Z5 frames of ${f}: decode to the recorded values and re-encode byte-identically (zeo5 W-9, §7)`, () => {
    const doc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      frames: { seq: number; hex: string; decoded: Record<string, unknown> }[];
    };
    let n = 0;
    for (const fr of doc.frames) {
      if ('handshake' in fr.decoded || 'status_json' in fr.decoded) continue;
      const frame = Buffer.from(fr.hex, 'hex');
      assert.equal(frame.readUInt32BE(0), frame.length - 4, `frame ${fr.seq} length prefix`);
      const payload = frame.subarray(4);
      const v = loads(payload, { findClass: (m, nm) => assert.fail(`global ${m}.${nm} in frame ${fr.seq}`) });
      assert.deepEqual(renderMessage(v), fr.decoded, `frame ${fr.seq}`);
      assert.equal(dumps(v, { protocol: 3, memo: false }).toString('hex'), payload.toString('hex'), `frame ${fr.seq} re-encoded`);
      n++;
    }
    assert.ok(n > 0);
  });
}

test('zeo5 W-9, §7.5: the three verified Z5 examples', () => {
  const examples: [unknown, string][] = [
    [tuple(1, false, 'register', tuple('1', false)), '8003284b018958080000007265676973746572580100000031898674 2e'],
    [tuple(-1, 0, '.reply', null), '8003284affffffff4b0058060000002e7265706c794e742e'],
    [
      tuple(5, 2, '.reply', tuple('ZODB.POSException.POSKeyError', tuple(Buffer.from('0000000000000001', 'hex')))),
      '8003284b054b0258060000002e7265706c79581d0000005a4f44422e504f53457863657074696f6e2e504f534b65794572726f724308000000000000000185867 42e',
    ],
  ];
  for (const [v, h] of examples) {
    const expected = h.replace(/ /g, '');
    assert.equal(dumps(v, { protocol: 3, memo: false }).toString('hex'), expected);
    assert.deepEqual(loads(Buffer.from(expected, 'hex')), v);
  }
  // §7.2: LONG1 examples
  assert.equal(dumps(140234567890123, { memo: false }).toString('hex'), '80038a06cbb49ae78a7f2e');
  assert.equal(dumps(0x80000000, { memo: false }).toString('hex'), '80038a0500000080002e');
  assert.equal(dumps(-1, { memo: false }).toString('hex'), '80034affffffff2e');
});
