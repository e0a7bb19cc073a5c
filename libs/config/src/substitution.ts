/**
 * `$name` substitution (operations spec §2.6). Pure: the environment is passed in.
 *
 *   $$        a literal '$'
 *   $name     a %define'd name (case-insensitive), longest run of [A-Za-z_][A-Za-z0-9_]*
 *   ${name}   the same, explicitly delimited
 *   $(NAME)   an environment variable (case-sensitive)
 *
 * Substituted text is never scanned again.
 */
import { pyRepr } from './errors.ts';

const NAME_AT = /[A-Za-z_][A-Za-z0-9_]*/y;
const NAME_WHOLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A substitution problem; `reason` is the spec's message. The parser adds the position. */
export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
}

export type Environment = Readonly<Record<string, string | undefined>>;

/** Is `s` a legal substitution name? */
export function isSubstitutionName(s: string): boolean {
  return NAME_WHOLE.test(s);
}

function nameAt(s: string, i: number): string | null {
  NAME_AT.lastIndex = i;
  const m = NAME_AT.exec(s);
  return m ? m[0] : null;
}

/**
 * Replace references in `text`. `defines` keys are lowercased names. Throws SubstitutionError.
 */
export function substitute(text: string, defines: ReadonlyMap<string, string>, env: Environment): string {
  if (!text.includes('$')) return text;
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const d = text.indexOf('$', i);
    if (d < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, d);
    if (d + 1 >= n) throw new SubstitutionError("illegal lone '$' at end of source");
    const c = text[d + 1];
    if (c === '$') {
      out += '$';
      i = d + 2;
      continue;
    }
    let name: string;
    let isEnv = false;
    if (c === '{' || c === '(') {
      const close = c === '{' ? '}' : ')';
      const found = nameAt(text, d + 2);
      if (found === null) throw new SubstitutionError(`'$${c}' not followed by name`);
      name = found;
      const after = d + 2 + name.length;
      if (text[after] !== close) throw new SubstitutionError(`'$${c}${name}' not followed by '${close}'`);
      i = after + 1;
      isEnv = c === '(';
    } else {
      const found = nameAt(text, d + 1);
      if (found === null) throw new SubstitutionError("'$' not followed by '$' or name");
      name = found;
      i = d + 1 + name.length;
    }
    const value = isEnv ? env[name] : defines.get(name.toLowerCase());
    if (value === undefined) {
      // Upstream names the reference as written (case preserved), for defines and environment alike.
      throw new SubstitutionError(`no replacement for ${pyRepr(name)}`);
    }
    out += value;
  }
  return out;
}
