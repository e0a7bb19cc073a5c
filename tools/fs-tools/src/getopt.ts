/**
 * POSIX-style short option parsing as Python's getopt.getopt(args, spec) does it: options are
 * read until the first non-option argument or "--"; "-vv" is two flags; "-n5" and "-n 5" both
 * give n its value. Unknown options and missing values throw GetoptError.
 */
export class GetoptError extends Error {
  override name = 'GetoptError';
}

export interface Parsed {
  opts: Array<[string, string]>;
  args: string[];
}

/**
 * `long` lists long option names; a trailing "=" means the option takes a value
 * ("--name=value" or "--name value"). A unique prefix of a long name is accepted, as in Python.
 */
export function getopt(argv: readonly string[], spec: string, long: readonly string[] = []): Parsed {
  const takesValue = new Map<string, boolean>();
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (c === ':') continue;
    takesValue.set(c, spec[i + 1] === ':');
  }
  const opts: Array<[string, string]> = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const exact = long.find((l) => l.replace(/=$/, '') === name);
      const matches = exact ? [exact] : long.filter((l) => l.startsWith(name));
      if (matches.length === 0) throw new GetoptError(`option --${name} not recognized`);
      if (matches.length > 1) throw new GetoptError(`option --${name} not a unique prefix`);
      const full = matches[0]!;
      const key = full.replace(/=$/, '');
      if (full.endsWith('=')) {
        let v: string;
        if (eq >= 0) v = a.slice(eq + 1);
        else {
          if (i + 1 >= argv.length) throw new GetoptError(`option --${key} requires argument`);
          v = argv[++i]!;
        }
        opts.push([`--${key}`, v]);
      } else {
        if (eq >= 0) throw new GetoptError(`option --${key} must not have an argument`);
        opts.push([`--${key}`, '']);
      }
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const tv = takesValue.get(c);
      if (tv === undefined) throw new GetoptError(`option -${c} not recognized`);
      if (tv) {
        let v = a.slice(j + 1);
        if (v === '') {
          if (i + 1 >= argv.length) throw new GetoptError(`option -${c} requires argument`);
          v = argv[++i]!;
        }
        opts.push([`-${c}`, v]);
        break;
      }
      opts.push([`-${c}`, '']);
    }
  }
  return { opts, args: argv.slice(i) };
}
