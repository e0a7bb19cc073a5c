// Shared helpers for the client-cache tests (not a test file itself).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CacheLogger } from '../src/index.ts';

export function sha1(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

export function fileSha1(path: string): string {
  return sha1(readFileSync(path));
}

/** D(seed, n): the n bytes (seed + k) mod 256 (vectors README §2). */
export function D(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let k = 0; k < n; k++) b[k] = (seed + k) & 0xff;
  return b;
}

export function hex(s: string): bigint {
  return BigInt('0x' + s);
}

export function h16(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

export function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'zeo-cache-test-'));
}

export interface LogLine {
  level: string;
  message: string;
  err?: unknown;
}

/** A logger that records what the cache logs, with Python's level names. */
export function captureLogger(): CacheLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const mk = (level: string) => (a: unknown, b?: string) => {
    if (typeof a === 'string') lines.push({ level, message: a });
    else lines.push({ level, message: b ?? '', err: (a as { err?: unknown } | null)?.err });
  };
  return { lines, info: mk('INFO'), warn: mk('WARNING'), error: mk('ERROR'), fatal: mk('CRITICAL') };
}

/** The block list of a cache file: [offset, status, size], tiling from 12 to the end. */
export function walkBlocks(file: Buffer): Array<[number, string, number]> {
  const out: Array<[number, string, number]> = [];
  let ofs = 12;
  for (let guard = 0; ofs < file.length && guard < 1_000_000; guard++) {
    const st = String.fromCharCode(file[ofs]!);
    const size = st === 'a' || st === 'f' ? file.readUInt32BE(ofs + 1) : Number(st);
    if (!(size > 0)) throw new Error(`bad block ${st} at ${ofs}`);
    out.push([ofs, st, size]);
    ofs += size;
  }
  return out;
}
