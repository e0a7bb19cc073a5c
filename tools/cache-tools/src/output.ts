/** Buffered synchronous line output to a file descriptor (keeps order with stderr, bounded). */
import { writeSync } from 'node:fs';

const LIMIT = 64 * 1024;

export class LineOut {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly fd: number) {}

  line(s = ''): void {
    this.parts.push(s, '\n');
    this.size += s.length + 1;
    if (this.size >= LIMIT) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const b = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.size = 0;
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
  }
}

/** Interval option: minutes (float) to whole seconds; <= 0 -> 60, > 3600 -> 3600 (spec §10.1). */
export function parseInterval(a: string): number {
  const f = parsePyFloat(a);
  let s = Math.trunc(60 * f);
  if (s <= 0) s = 60;
  else if (s > 3600) s = 3600;
  return s;
}

/** float(s) as Python parses it (surrounding whitespace, underscores between digits, inf/nan). */
export function parsePyFloat(a: string): number {
  const t = a.trim().toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(t)) return NaN;
  const u = t.replace(/(?<=\d)_(?=\d)/g, '');
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(u)) throw new Error(`invalid float value: '${a}'`);
  return Number(u);
}
