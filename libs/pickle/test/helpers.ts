/** Test helpers: build model values from the JSON descriptions of python-dumps.ts. */
import { PyFloat, PyFrozenSet, PyGlobal, PyTuple } from '../src/index.ts';

export function fromSpec(spec: unknown, shared: Map<string, unknown> = new Map()): unknown {
  if (spec === null || typeof spec === 'boolean' || typeof spec === 'string') return spec;
  if (typeof spec === 'number') return spec;
  const o = spec as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => k !== 'as');
  if (keys.length !== 1) throw new Error(`bad spec ${JSON.stringify(spec)}`);
  const k = keys[0]!;
  const v = o[k];
  let r: unknown;
  switch (k) {
    case 'ref':
      return shared.get(v as string);
    case 'int': {
      const b = BigInt(v as string);
      r = b >= -9007199254740991n && b <= 9007199254740991n ? Number(b) : b;
      break;
    }
    case 'float':
      r = new PyFloat(Number(v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v));
      break;
    case 'bytes':
      r = Buffer.from(v as string, 'hex');
      break;
    case 'tuple':
      r = PyTuple.from((v as unknown[]).map((x) => fromSpec(x, shared)));
      break;
    case 'list':
      r = (v as unknown[]).map((x) => fromSpec(x, shared));
      break;
    case 'dict':
      r = new Map((v as [unknown, unknown][]).map(([a, b]) => [fromSpec(a, shared), fromSpec(b, shared)]));
      break;
    case 'set':
      r = new Set((v as unknown[]).map((x) => fromSpec(x, shared)));
      break;
    case 'frozenset':
      r = new PyFrozenSet((v as unknown[]).map((x) => fromSpec(x, shared)));
      break;
    case 'global': {
      const [m, n] = v as [string, string];
      r = new PyGlobal(m, n);
      break;
    }
    default:
      throw new Error(`bad spec kind ${k}`);
  }
  if (typeof o.as === 'string') shared.set(o.as, r);
  return r;
}

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
