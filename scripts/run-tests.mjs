#!/usr/bin/env node
// Runs one package's tests with node's test runner (TypeScript through tsx).
// Usage (from a package directory): node ../../scripts/run-tests.mjs [file-or-dir ...]
// Prints the spec reporter to stdout and writes the package's counts to
// <root>/.test-results/<package>.json for scripts/test-all.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = process.cwd();
const pkgName = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).name;

function collect(p, out) {
  if (!existsSync(p)) return;
  if (statSync(p).isDirectory()) {
    for (const e of readdirSync(p).sort()) {
      if (e === 'node_modules' || e === 'fixtures') continue;
      collect(join(p, e), out);
    }
  } else if (/\.test\.(ts|mts|mjs|js)$/.test(p)) {
    out.push(p);
  }
}

const targets = process.argv.slice(2);
const files = [];
for (const t of targets.length ? targets : ['test']) collect(resolve(pkgDir, t), files);

const resultsDir = process.env.ZEO_TS_RESULTS_DIR ?? join(root, '.test-results', 'single');
mkdirSync(resultsDir, { recursive: true });
const resultFile = join(resultsDir, `${pkgName.replace(/[^a-zA-Z0-9_.-]/g, '_')}.json`);

if (files.length === 0) {
  console.log(`${pkgName}: no test files`);
  process.exit(0);
}

const args = [
  '--import', 'tsx',
  '--test',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${join(root, 'scripts', 'count-reporter.mjs')}`, `--test-reporter-destination=${resultFile}`,
  ...files.map((f) => relative(pkgDir, f)),
];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: pkgDir, env: { ...process.env, ZEO_TS_ROOT: root } });
process.exit(r.status ?? 1);
