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

export function getopt(argv: readonly string[], spec: string): Parsed {
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
