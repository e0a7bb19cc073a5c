/**
 * The only module of @zeo-ts/config that touches the file system: reading configuration
 * resources (spec §2.1) and the existence checks of the path datatypes (§2.10.4).
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError, pyRepr, type SourcePos } from './errors.ts';
import type { IncludedSource } from './parser.ts';

/** Python's rendering of the common open() failures (errno, strerror). */
const PY_ERRNO: Record<string, [number, string]> = {
  ENOENT: [2, 'No such file or directory'],
  EACCES: [13, 'Permission denied'],
  EISDIR: [21, 'Is a directory'],
  ENOTDIR: [20, 'Not a directory'],
  ELOOP: [40, 'Too many levels of symbolic links'],
};

/** Upper bound on the size of one configuration resource. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** Does `s` look like a URL (scheme:...) rather than a file path? */
function isUrl(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]+:/.test(s);
}

/** Turn a path or URL into the URL used for messages and relative %includes. */
export function normalizeSourceUrl(pathOrUrl: string, cwd = process.cwd()): string {
  if (!isUrl(pathOrUrl)) return pathToFileURL(resolvePath(cwd, pathOrUrl)).href;
  const u = new URL(pathOrUrl);
  if (u.hash) throw new ConfigError('fragment identifiers are not supported', { url: pathOrUrl });
  return u.href;
}

/** Read a configuration resource (a `file:` URL) as UTF-8. */
export function readSource(url: string, from?: SourcePos): IncludedSource {
  const u = new URL(url);
  if (u.protocol !== 'file:') {
    throw new ConfigError(`error opening URL ${url}: only file: URLs are supported`, from ?? { url });
  }
  const path = fileURLToPath(u);
  let data: Buffer;
  try {
    const st = statSync(path);
    if (st.isFile() && st.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(`error opening file ${path}: larger than ${MAX_CONFIG_BYTES} bytes, not a configuration file`, from ?? { url });
    }
    data = readFileSync(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const err = e as NodeJS.ErrnoException;
    const py = PY_ERRNO[err.code ?? ''];
    const text = py ? `[Errno ${py[0]}] ${py[1]}: ${pyRepr(path)}` : `${err.code ?? 'error'}: ${err.message}`;
    throw new ConfigError(`error opening file ${path}: ${text}`, from ?? { url });
  }
  return { url: u.href, text: data.toString('utf8') };
}

/** Expand a leading `~` or `~user` as os.path.expanduser does (user homes looked up as /home/<user>). */
export function expandUser(p: string): string {
  if (!p.startsWith('~')) return p;
  const slash = p.indexOf('/');
  const user = slash < 0 ? p.slice(1) : p.slice(1, slash);
  const rest = slash < 0 ? '' : p.slice(slash);
  if (user === '') return (process.env['HOME'] || homedir()) + rest;
  // Without a password-database lookup, try the conventional location; leave unchanged if absent.
  for (const base of ['/home/', '/Users/']) {
    if (isDirectory(base + user)) return base + user + rest;
  }
  if (user === 'root' && isDirectory('/root')) return '/root' + rest;
  return p;
}

export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function pathExists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}
