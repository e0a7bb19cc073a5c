/**
 * The ZConfig configuration language (operations spec §2.1–§2.6) parsed into a tree.
 *
 * The parser is pure: it never touches the file system. `%include` asks the caller-supplied
 * `loadInclude(url)` for the text of the included resource (see source.ts for the file-backed
 * implementation); `$(NAME)` reads the caller-supplied environment.
 *
 * The tree keeps everything the schema layer needs, in document order, with the file URL and
 * line of every element: key/value lines (value already substituted), sections (type and name
 * lowercased) and `%import` directives (their effect depends on the schema, so they are matched
 * in order with the rest). `%define` and `%include` are fully resolved here.
 */
import { ConfigError, pyRepr, type SourcePos } from './errors.ts';
import { isSubstitutionName, substitute, SubstitutionError, type Environment } from './substitution.ts';

export interface KeyNode {
  kind: 'key';
  /** The key as written (not lowercased; validation and lowercasing happen in the matcher). */
  key: string;
  /** The value after substitution (empty string for a key alone on its line). */
  value: string;
  pos: SourcePos;
}

export interface SectionNode {
  kind: 'section';
  /** Section type, lowercased. */
  type: string;
  /** Section name, lowercased, or null for an unnamed section. */
  name: string | null;
  children: ConfigNode[];
  /** Position of the section start line. */
  pos: SourcePos;
  /** Position of the section end line (same as `pos` for `<type/>`). */
  endPos: SourcePos;
  /** Only in the partial tree of a failed parse: the section was still open at the error. */
  open?: boolean;
}

export interface ImportNode {
  kind: 'import';
  /** The component name after substitution (case-sensitive). */
  name: string;
  pos: SourcePos;
}

export type ConfigNode = KeyNode | SectionNode | ImportNode;

export interface ConfigTree {
  url: string;
  children: ConfigNode[];
  /** The %define table at the end of parsing (lowercased names). */
  defines: Map<string, string>;
  /** Every URL read, the main one first, then includes in the order they were read. */
  urls: string[];
}

export interface IncludedSource {
  /** The resolved URL of the resource (used for messages and nested includes). */
  url: string;
  text: string;
}

export interface ParseOptions {
  /** Environment for `$(NAME)`; defaults to none (every `$(NAME)` fails). */
  env?: Environment;
  /** Definitions made before the text (lowercased names). Mutated as the text defines more. */
  defines?: Map<string, string>;
  /** Reads an included resource. Required only if the text uses %include. */
  loadInclude?: (url: string, from: SourcePos) => IncludedSource;
  /** Base for relative %include when `url` is not a URL (e.g. text labelled `<string>`): a file: URL of a directory. */
  includeBase?: string;
  /** Upper bound on %include nesting (default 32). */
  maxIncludeDepth?: number;
  /** Upper bound on the number of %include directives processed in total (default 1000). */
  maxIncludes?: number;
}

const NAME = String.raw`[^\s()]+`;
const KEYVALUE_RX = new RegExp(String.raw`^(${NAME})\s*([^\s].*)?$`, 's');
const SECTION_START_RX = new RegExp(String.raw`^(${NAME})(?:\s+(${NAME}))?$`, 's');
const DIRECTIVES = new Set(['define', 'include', 'import']);

/** Resolve `ref` relative to `base` (a URL, or a non-URL label such as `<string>` meaning the cwd). */
export function resolveUrl(ref: string, base: string, cwdUrl = 'file:///'): string {
  let baseUrl: URL;
  try {
    baseUrl = new URL(base);
  } catch {
    baseUrl = new URL(cwdUrl.endsWith('/') ? cwdUrl : cwdUrl + '/');
  }
  const u = new URL(ref, baseUrl);
  if (u.hash) throw new ConfigError('fragment identifiers are not supported', { url: u.href });
  return u.href;
}

interface Frame {
  section: SectionNode | null;
  children: ConfigNode[];
}

/**
 * Parse `text` (the contents of `url`) into a tree. Throws ConfigError with file and line.
 */
export function parseConfig(text: string, url: string, opts: ParseOptions = {}): ConfigTree {
  const state: ParserState = {
    env: opts.env ?? {},
    defines: opts.defines ?? new Map(),
    loadInclude: opts.loadInclude,
    maxDepth: opts.maxIncludeDepth ?? 32,
    includesLeft: opts.maxIncludes ?? 1000,
    includeBase: opts.includeBase ?? 'file:///',
    includeStack: [url],
    urls: [url],
  };
  const root: ConfigNode[] = [];
  try {
    parseInto(state, text, url, root);
  } catch (e) {
    // Keep what was read before the error: a loader can match it to report an earlier schema
    // error first, as ZConfig (which matches while it reads) would.
    if (e instanceof ConfigError) e.partial = { url, children: root, defines: state.defines, urls: state.urls };
    throw e;
  }
  return { url, children: root, defines: state.defines, urls: state.urls };
}

interface ParserState {
  env: Environment;
  defines: Map<string, string>;
  loadInclude: ParseOptions['loadInclude'];
  maxDepth: number;
  includesLeft: number;
  includeBase: string;
  includeStack: string[];
  urls: string[];
}

function parseInto(state: ParserState, rawText: string, url: string, into: ConfigNode[]): void {
  // [D] a leading UTF-8 byte-order mark is ignored (spec §2.1 #2).
  const text = rawText.charCodeAt(0) === 0xfeff ? rawText.slice(1) : rawText;
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const stack: Frame[] = [{ section: null, children: into }];
  const top = () => stack[stack.length - 1]!;
  let lineno = 0;
  const here = (): SourcePos => ({ url, line: lineno });
  const fail = (reason: string): never => {
    throw new ConfigError(reason, here());
  };
  const subst = (s: string): string => {
    try {
      return substitute(s, state.defines, state.env);
    } catch (e) {
      if (e instanceof SubstitutionError) fail(e.message);
      throw e;
    }
  };

  for (const raw of lines) {
    lineno++;
    const line = raw.replace(/^[\s]+|[\s]+$/g, '');
    if (line === '' || line[0] === '#') continue;
    if (line.startsWith('</')) {
      if (!line.endsWith('>')) fail('malformed section end');
      if (stack.length === 1) fail('unexpected section end');
      const type = line.slice(2, -1).trimEnd().toLowerCase();
      const sect = top().section!;
      if (type !== sect.type) fail('unbalanced section end');
      stack.pop();
      delete sect.open;
      sect.endPos = here();
      continue;
    }
    if (line[0] === '<') {
      if (!line.endsWith('>')) fail('malformed section start');
      let rest = line.slice(1, -1);
      const empty = rest.endsWith('/');
      if (empty) rest = rest.slice(0, -1);
      const m = SECTION_START_RX.exec(rest.trimEnd());
      if (!m) fail('malformed section header');
      const node: SectionNode = {
        kind: 'section',
        type: m![1]!.toLowerCase(),
        name: m![2] ? m![2].toLowerCase() : null,
        children: [],
        pos: here(),
        endPos: here(),
      };
      top().children.push(node);
      if (!empty) {
        node.open = true;
        stack.push({ section: node, children: node.children });
      }
      continue;
    }
    if (line[0] === '%') {
      const m = KEYVALUE_RX.exec(line.slice(1));
      if (!m) fail('missing or unrecognized directive');
      const name = m![1]!;
      const arg = m![2];
      if (!DIRECTIVES.has(name)) fail(`unknown directive: ${pyRepr(name)}`);
      if (!arg) fail(`missing argument to %${name} directive`);
      if (name === 'define') {
        const parts = arg!.split(/\s+/);
        const defname = parts[0]!.toLowerCase();
        const sp = /^\S+\s+/.exec(arg!);
        const rawValue = sp ? arg!.slice(sp[0].length) : '';
        const prev = state.defines.get(defname);
        if (prev !== undefined && prev !== rawValue) fail(`cannot redefine ${pyRepr(defname)}`);
        if (!isSubstitutionName(defname)) fail(`not a substitution legal name: ${pyRepr(defname)}`);
        state.defines.set(defname, subst(rawValue));
      } else if (name === 'import') {
        top().children.push({ kind: 'import', name: subst(arg!.trim()), pos: here() });
      } else {
        const ref = subst(arg!.trim());
        let target: string;
        try {
          target = resolveUrl(ref, url, state.includeBase);
        } catch (e) {
          if (e instanceof ConfigError) throw e.withPosition(here());
          throw new ConfigError(`invalid %include URL ${pyRepr(ref)}`, here());
        }
        if (state.includeStack.includes(target)) {
          fail(`cyclic %include: ${[...state.includeStack, target].join(' -> ')}`);
        }
        if (state.includeStack.length > state.maxDepth) fail(`%include nested more than ${state.maxDepth} levels deep`);
        if (state.includesLeft-- <= 0) fail('too many %include directives (more than the limit of this loader)');
        if (!state.loadInclude) fail(`%include is not available here (no resource loader): ${pyRepr(ref)}`);
        const src = state.loadInclude!(target, here());
        state.urls.push(src.url);
        state.includeStack.push(src.url);
        try {
          parseInto(state, src.text, src.url, top().children);
        } finally {
          state.includeStack.pop();
        }
      }
      continue;
    }
    const m = KEYVALUE_RX.exec(line);
    if (!m) fail('malformed configuration data');
    const value = m![2] ? subst(m![2]) : '';
    top().children.push({ kind: 'key', key: m![1]!, value, pos: here() });
  }
  if (stack.length > 1) fail('unclosed sections not allowed');
}
