/** Shared helpers for the config tests: temp dirs and error assertions. */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { rmSync } from 'node:fs';
import { ConfigError } from '../src/index.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test file. */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'zeo-ts-config-'));
  dirs.push(d);
  return d;
}

/** Write `files` (relative path → text) under `dir`; returns dir. */
export function writeFiles(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  return dir;
}

/** Assert that `fn` throws a ConfigError whose reason contains `reason`; returns the error. */
export function throwsConfig(fn: () => unknown, reason: string | RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ConfigError matching ${String(reason)}, nothing was thrown`);
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`);
  const err = caught as ConfigError;
  if (typeof reason === 'string') assert.ok(err.reason.includes(reason), `reason ${JSON.stringify(err.reason)} does not contain ${JSON.stringify(reason)}`);
  else assert.match(err.reason, reason);
  return err;
}

/** A minimal valid server body to append storage/eventlog sections to. */
export const ZEO_8100 = '<zeo>\n  address 8100\n</zeo>\n';
