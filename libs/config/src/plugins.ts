/**
 * Storage plugins. A workspace package that adds configuration sections and storage types (ZRS,
 * ZEORaid, ...) declares a module in its package.json:
 *
 *     "zeo-ts": { "plugin": "./src/plugin.ts" }
 *
 * and that module registers its `%import` components, section types and 'storage-opener'
 * providers when it is imported. A server program calls `loadInstalledPlugins()` once before it
 * reads its configuration, so a new storage type is added without touching existing programs.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface InstalledPlugin {
  /** npm package name */
  name: string;
  /** absolute path of the plugin module */
  module: string;
}

/** The `@zeo-ts` scope directories visible from `from` upwards (nearest first). */
function scopeDirs(from: string): string[] {
  const out: string[] = [];
  let dir = resolve(from);
  for (let i = 0; i < 64; i++) {
    const scope = join(dir, 'node_modules', '@zeo-ts');
    if (existsSync(scope)) out.push(scope);
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return out;
}

/** Packages of the @zeo-ts scope that declare a plugin module, in name order. */
export function findInstalledPlugins(from: string = dirname(fileURLToPath(import.meta.url))): InstalledPlugin[] {
  const seen = new Map<string, InstalledPlugin>();
  for (const scope of scopeDirs(from)) {
    for (const entry of readdirSync(scope).sort()) {
      const name = `@zeo-ts/${entry}`;
      if (seen.has(name)) continue;
      const pkgDir = realpathSync(join(scope, entry));
      const pkgFile = join(pkgDir, 'package.json');
      if (!existsSync(pkgFile)) continue;
      let pkg: { ['zeo-ts']?: { plugin?: unknown } };
      try {
        pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
      } catch (e) {
        throw new Error(`${pkgFile}: not valid JSON: ${(e as Error).message}`);
      }
      const plugin = pkg['zeo-ts']?.plugin;
      if (plugin === undefined) continue;
      if (typeof plugin !== 'string') throw new Error(`${pkgFile}: "zeo-ts".plugin must be a path string`);
      seen.set(name, { name, module: resolve(pkgDir, plugin) });
    }
  }
  return [...seen.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

const loaded = new Set<string>();

/** Import every installed plugin module once; returns the plugins loaded by this call. */
export async function loadInstalledPlugins(from?: string): Promise<InstalledPlugin[]> {
  const done: InstalledPlugin[] = [];
  for (const p of findInstalledPlugins(from)) {
    if (loaded.has(p.module)) continue;
    loaded.add(p.module);
    await import(pathToFileURL(p.module).href);
    done.push(p);
  }
  return done;
}
