/** Test helpers: loading the recorded ZEO 5 sessions of ../shared/vectors/zeo5. */
import { readFileSync, readdirSync } from 'node:fs';
import { vectorsDir } from '@zeo-ts/storage/testing';
import { PyFloat, pyList, type WireValue } from '../src/index.ts';

export interface VectorFrame {
  seq: number;
  dir: 'c2s' | 's2c';
  conn: string;
  tcp: number;
  hex: string;
  decoded: Record<string, unknown>;
}

export interface VectorFile {
  scenario: string;
  encoding: 'Z5' | 'M5';
  frames: VectorFrame[];
  varying: { seq: number; path: string; kind: string; symbol: string; offset: number; length: number }[];
}

export function zeo5Files(prefix: 'm5' | 'z5'): { name: string; data: VectorFile }[] {
  const dir = vectorsDir('zeo5');
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix + '-') && f.endsWith('.json'))
    .sort()
    .map((name) => ({ name, data: JSON.parse(readFileSync(`${dir}/${name}`, 'utf8')) as VectorFile }));
}

/** The JSON rendering of the vectors (README "Value rendering") back to the value model. */
export function fromRendering(v: unknown): WireValue {
  if (v === null) return null;
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
  if (Array.isArray(v)) return v.map(fromRendering);
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === 'hex' && typeof o['hex'] === 'string') return Buffer.from(o['hex'], 'hex');
    if (keys.length === 1 && keys[0] === 'float' && typeof o['float'] === 'number') return new PyFloat(o['float']);
    if (keys.length === 1 && keys[0] === 'int' && typeof o['int'] === 'string') return BigInt(o['int']);
    if (keys.length === 1 && keys[0] === 'list' && Array.isArray(o['list'])) return pyList((o['list'] as unknown[]).map(fromRendering));
    if (keys.length === 2 && typeof o['exception'] === 'string' && ('args' in o || 'attrs' in o)) {
      return [o['exception'], fromRendering('args' in o ? o['args'] : o['attrs'])];
    }
    const out: Record<string, WireValue> = {};
    for (const k of keys) out[k] = fromRendering(o[k]);
    return out;
  }
  throw new Error(`unexpected rendering ${JSON.stringify(v)}`);
}

/** The payload bytes of a recorded frame (after checking its length prefix). */
export function payloadOf(f: VectorFrame): Buffer {
  const b = Buffer.from(f.hex, 'hex');
  if (b.readUInt32BE(0) !== b.length - 4) throw new Error(`frame ${f.seq}: bad length prefix`);
  return b.subarray(4);
}
