import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where the top package.json is). */
export function repoRoot(): string {
  return process.env.ZEO_TS_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** `../shared/vectors` beside the repository, optionally a sub-path inside it. */
export function vectorsDir(...parts: string[]): string {
  return join(repoRoot(), '..', 'shared', 'vectors', ...parts);
}

/** false when the vectors are there; else a skip message for node:test's `skip` option. */
export function vectorsSkip(...parts: string[]): false | string {
  const d = vectorsDir(...parts);
  return existsSync(d) ? false : `shared vectors not found at ${d} (clone ../shared beside the repo to run this test)`;
}
