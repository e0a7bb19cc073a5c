// Corrupt input never crashes or hangs: flip bytes of the vector file (bounded, seeded) and
// check that open/load/loadBefore/history/iterator/undoLog either work or raise one of the
// storage's own errors (POSError family) — filestorage spec §3.5, brief item 4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POSError, maxtid } from '@zeo-ts/storage';
import { vectorsDir, vectorsSkip } from '@zeo-ts/storage/testing';
import pino from 'pino';
import { FileStorage } from '../src/index.ts';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('random byte damage gives storage errors, never other exceptions or hangs', { skip: vectorsSkip('filestorage') }, async () => {
  const orig = readFileSync(vectorsDir('filestorage', 'Data.fs'));
  const dir = mkdtempSync(join(tmpdir(), 'fsfuzz-'));
  const r = rng(12345);
  const silent = pino({ level: 'silent' });
  const foreign: string[] = [];
  const check = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof POSError)) foreign.push(`${what}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  for (let iter = 0; iter < 240; iter++) {
    const b = Buffer.from(orig);
    const flips = 1 + Math.floor(r() * 3);
    for (let k = 0; k < flips; k++) b[4 + Math.floor(r() * (b.length - 4))] = Math.floor(r() * 256);
    const p = join(dir, `d${iter}.fs`);
    writeFileSync(p, b);
    let fs: FileStorage | null = null;
    await check(`open #${iter}`, async () => {
      fs = new FileStorage(p, { readOnly: iter % 2 === 0, logger: silent, cacheSize: iter % 4 === 1 ? 0 : 1 << 20 });
    });
    if (!fs) continue;
    const s: FileStorage = fs;
    for (let oid = 0n; oid < 6n; oid++) {
      await check(`load ${oid} #${iter}`, () => s.load(oid));
      await check(`loadBefore ${oid} #${iter}`, () => s.loadBefore(oid, maxtid));
      await check(`loadBefore ${oid} #${iter}`, () => s.loadBefore(oid, 0x03f58e0300000001n));
      await check(`history ${oid} #${iter}`, () => s.history(oid, 100));
    }
    await check(`iterator #${iter}`, async () => {
      for await (const t of s.iterator()) void t;
    });
    await check(`undoLog #${iter}`, () => s.undoLog(0, 100));
    await s.close();
  }
  assert.deepEqual(foreign.slice(0, 20), []);
});
