// Storage plugins are found from package.json declarations (operations §3.4: storage types
// added by other packages; zrs §3.1 `%import zc.zrs` in a runzeo configuration).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findInstalledPlugins, loadInstalledPlugins, getProvider } from '../src/index.ts';

test('the workspace ZRS package declares a plugin module', () => {
  const names = findInstalledPlugins().map((p) => p.name);
  assert.ok(names.includes('@zeo-ts/zrs'), `plugins found: ${names.join(', ')}`);
});

test('a declared plugin is imported once and registers what it declares', async () => {
  const root = mkdtempSync(join(tmpdir(), 'zeo-ts-plugins-'));
  const pkg = join(root, 'node_modules', '@zeo-ts', 'example');
  mkdirSync(join(pkg, 'src'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@zeo-ts/example', 'zeo-ts': { plugin: './src/plugin.mjs' } }));
  writeFileSync(join(pkg, 'src', 'plugin.mjs'), `globalThis.__examplePluginLoads = (globalThis.__examplePluginLoads ?? 0) + 1;\n`);
  const found = findInstalledPlugins(join(root, 'deep', 'er'));
  assert.equal(found[0]?.name, '@zeo-ts/example');
  const first = await loadInstalledPlugins(join(root, 'deep'));
  assert.ok(first.some((p) => p.name === '@zeo-ts/example'));
  await loadInstalledPlugins(join(root, 'deep'));
  assert.equal((globalThis as Record<string, unknown>).__examplePluginLoads, 1);
  assert.equal(getProvider('storage-opener', 'no-such-type'), undefined);
});

test('a plugin field that is not a path is a clear error', () => {
  const root = mkdtempSync(join(tmpdir(), 'zeo-ts-plugins-'));
  const pkg = join(root, 'node_modules', '@zeo-ts', 'broken');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@zeo-ts/broken', 'zeo-ts': { plugin: 42 } }));
  assert.throws(() => findInstalledPlugins(root), /"zeo-ts".plugin must be a path string/);
});
