/**
 * Loading a configuration: read the resource (source.ts), parse it (parser.ts), match it
 * against a schema (matcher.ts). Also registers the built-in components.
 */
import { ConfigError } from './errors.ts';
import { registerImport, type SchemaDef } from './schema.ts';
import { loggerComponent, LOGGER_COMPONENT } from './components/logger.ts';
import { zodbComponent, ZODB_COMPONENT } from './components/zodb.ts';
import { zeoClientComponent, zeoServerComponent, ZEO_COMPONENT, ZEO_SERVER_COMPONENT } from './components/zeo.ts';
import { zdaemonComponent, ZDAEMON_COMPONENT } from './components/zdaemon.ts';
import { parseConfig, type ConfigTree } from './parser.ts';
import { matchConfig, type MatchResult } from './matcher.ts';
import { normalizeSourceUrl, readSource } from './source.ts';
import type { Environment } from './substitution.ts';
import { pathToFileURL } from 'node:url';

registerImport(ZODB_COMPONENT, zodbComponent);
registerImport(ZEO_COMPONENT, zeoClientComponent);
registerImport(ZEO_SERVER_COMPONENT, zeoServerComponent);
registerImport(LOGGER_COMPONENT, loggerComponent);
registerImport(ZDAEMON_COMPONENT, zdaemonComponent);

/**
 * A configuration source: a path or `file:` URL, or text (with an optional URL naming it).
 * A plain string containing a newline is taken as text, not as a path.
 */
export type ConfigSource = string | { text: string; url?: string };

export interface LoadOptions {
  /** `-X path=value` overrides (§2.9). */
  overrides?: string[];
  /** Environment for `$(NAME)`; default process.env. */
  env?: Environment;
  /** Working directory for relative paths; default process.cwd(). */
  cwd?: string;
  /** Definitions in force before the file (lowercase names). */
  defines?: Record<string, string>;
}

/** Read and parse a configuration into its tree (no schema). Throws ConfigError. */
export function parseSource(source: ConfigSource, opts: LoadOptions = {}): ConfigTree {
  const cwd = opts.cwd ?? process.cwd();
  let url: string;
  let text: string;
  if (typeof source === 'string' && source.includes('\n')) source = { text: source };
  if (typeof source === 'string') {
    url = normalizeSourceUrl(source, cwd);
    text = readSource(url).text;
  } else {
    text = source.text;
    url = source.url ?? '<string>';
  }
  return parseConfig(text, url, {
    env: opts.env ?? process.env,
    defines: new Map(Object.entries(opts.defines ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    loadInclude: (u, from) => readSource(u, from),
    includeBase: pathToFileURL(cwd.endsWith('/') ? cwd : cwd + '/').href,
  });
}

/** Read, parse and match a configuration against `schema`. Throws ConfigError. */
export function loadConfig(source: ConfigSource, schema: SchemaDef, opts: LoadOptions = {}): MatchResult & { tree: ConfigTree } {
  let tree: ConfigTree;
  try {
    tree = parseSource(source, opts);
  } catch (e) {
    // Report errors in document order, as ZConfig does: a schema error before the syntax error wins.
    if (e instanceof ConfigError && e.partial) {
      matchConfig(e.partial, schema, { datatypeContext: { cwd: opts.cwd }, partial: true });
      delete e.partial;
    }
    throw e;
  }
  const result = matchConfig(tree, schema, { overrides: opts.overrides, datatypeContext: { cwd: opts.cwd } });
  return { ...result, tree };
}
