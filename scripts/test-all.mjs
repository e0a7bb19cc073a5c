#!/usr/bin/env node
// The project's test command: runs every package's `test` target through Nx, then prints one
// closing line "N passed, N failed, N skipped" summed over all packages.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// A directory of this run's own, so concurrent test runs never mix their counts.
const resultsDir = join(root, '.test-results', `run-${process.pid}`);
rmSync(resultsDir, { recursive: true, force: true });

const env = { ...process.env, ZEO_TS_RESULTS_DIR: resultsDir, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false', NX_SKIP_NX_CACHE: 'true' };
const nx = join(root, 'node_modules', '.bin', 'nx');
const r = spawnSync(nx, ['run-many', '-t', 'test', '--outputStyle=static', '--parallel=2', ...process.argv.slice(2)], {
  stdio: 'inherit', cwd: root, env,
});

let passed = 0, failed = 0, skipped = 0;
const failures = [];
if (existsSync(resultsDir)) {
  for (const f of readdirSync(resultsDir).sort()) {
    if (!f.endsWith('.json')) continue;
    const text = readFileSync(join(resultsDir, f), 'utf8').trim();
    if (!text) { failed++; failures.push(`${f}: no results (test process died?)`); continue; }
    const c = JSON.parse(text);
    passed += c.passed; failed += c.failed; skipped += c.skipped + c.todo;
    failures.push(...c.failures);
  }
}
if (r.status !== 0 && failed === 0) { failed = 1; failures.push('nx run-many failed outside any test (see above)'); }
if (failures.length) {
  console.log('\nFailures:');
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
rmSync(resultsDir, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
