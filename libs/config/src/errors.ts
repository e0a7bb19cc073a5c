/**
 * Configuration errors (operations spec §2.8).
 *
 * Every problem found while reading, parsing, matching or converting a configuration is a
 * `ConfigError`. Its `reason` is the bare message the spec quotes (tests match on it); its
 * `message` adds the source position in one of the two styles ZConfig uses:
 *
 *   - syntax/structure problems:   `<reason>\n(line <N> in <url>)`
 *   - value conversion problems:   `<reason> (line <N>, in <url>)`
 *
 * `runzeo` prints `Error: <message>` and exits 2; the config package never exits.
 */

/** Where a line of configuration came from. `line` is 1-based; 0 means "no line" (whole file, -X). */
export interface SourcePos {
  url: string;
  line: number;
}

export type ConfigErrorStyle = 'syntax' | 'conversion';

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The bare message, without position (e.g. `'read_only' is not a known key name`). */
  readonly reason: string;
  /** URL of the file (or a description of the command-line override) where the problem is. */
  readonly url: string | undefined;
  /** 1-based line number, or undefined when the problem concerns a whole file/section set. */
  readonly lineno: number | undefined;
  /** The configuration key concerned, when there is one. */
  readonly key: string | undefined;
  readonly style: ConfigErrorStyle;
  /** For parse errors: the tree read before the error (see parser.ts). */
  partial?: import('./parser.ts').ConfigTree;

  constructor(reason: string, pos?: Partial<SourcePos> | null, opts: { key?: string; style?: ConfigErrorStyle } = {}) {
    const style = opts.style ?? 'syntax';
    super(formatMessage(reason, pos?.url, pos?.line, style));
    this.reason = reason;
    this.url = pos?.url;
    this.lineno = pos?.line && pos.line > 0 ? pos.line : undefined;
    this.key = opts.key;
    this.style = style;
  }

  /** The two-line usage error runzeo/zeoctl print before exiting 2 (§2.8). */
  usageText(program: string): string {
    return `Error: ${this.message}\nFor help, use ${program} -h\n`;
  }

  /** A copy of this error located at `pos` (used when a nested layer had no position). */
  withPosition(pos: SourcePos, key?: string): ConfigError {
    return new ConfigError(this.reason, pos, { key: key ?? this.key, style: this.style });
  }
}

function formatMessage(reason: string, url: string | undefined, line: number | undefined, style: ConfigErrorStyle): string {
  const hasLine = line !== undefined && line > 0;
  if (!url && !hasLine) return reason;
  if (style === 'conversion') {
    if (hasLine) return `${reason} (line ${line}${url ? `, in ${url}` : ''})`;
    return `${reason} (in ${url})`;
  }
  if (hasLine) return `${reason}\n(line ${line}${url ? ` in ${url}` : ''})`;
  return `${reason}\n(${url})`;
}

/**
 * Raised by datatype conversion functions for a bad value (the analogue of Python's ValueError).
 * The matcher turns it into a ConfigError with the value's position.
 */
export class ValueConversionError extends Error {
  override name = 'ValueConversionError';
}

/** Python-style repr of a string: single quotes unless the text contains one and no double quote. */
export function pyRepr(s: string): string {
  const useDouble = s.includes("'") && !s.includes('"');
  const q = useDouble ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
}
