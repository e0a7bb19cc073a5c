/**
 * analyze (filestorage spec §11.7, Python's ZODB.scripts.analyze): records and bytes per class,
 * current versus old revisions.
 */
import { RawFile, iterateRecords, iterateTransactions, type IterWarning } from './fsio.ts';
import { className } from './pickle.ts';
import { fixed, padLeft, padRight } from './pyfmt.ts';
import type { Out } from './output.ts';
import { ToolError } from './fsio.ts';

export interface AnalyzeReport {
  typemap: Map<string, number>;
  typesize: Map<string, number>;
  tids: number;
  oids: number;
  dbytes: number;
  coids: number;
  cbytes: number;
  foids: number;
  fbytes: number;
}

export function analyze(path: string, warn?: (w: IterWarning) => void): AnalyzeReport {
  const rep: AnalyzeReport = { typemap: new Map(), typesize: new Map(), tids: 0, oids: 0, dbytes: 0, coids: 0, cbytes: 0, foids: 0, fbytes: 0 };
  const oidmap = new Map<bigint, string>();
  const usedmap = new Map<bigint, number>();
  const f = new RawFile(path);
  try {
    for (const t of iterateTransactions(f, warn)) {
      rep.tids++;
      for (const r of iterateRecords(f, t, warn)) {
        rep.oids++;
        if (r.data === null) continue;
        const size = r.data.length;
        rep.dbytes += size;
        let type = oidmap.get(r.oid);
        if (type === undefined) {
          type = className(r.data);
          oidmap.set(r.oid, type);
          usedmap.set(r.oid, size);
          rep.coids++;
          rep.cbytes += size;
        } else {
          const fsize = usedmap.get(r.oid)!;
          usedmap.set(r.oid, size);
          rep.foids++;
          rep.fbytes += fsize;
          rep.cbytes += size - fsize;
        }
        rep.typemap.set(type, (rep.typemap.get(type) ?? 0) + 1);
        rep.typesize.set(type, (rep.typesize.get(type) ?? 0) + size);
      }
    }
  } finally {
    f.close();
  }
  return rep;
}

/** Python's analyze.shorten: drop leading dotted parts until it fits (with "..."), else the last n chars. */
function shortenName(s: string, n: number): string {
  if (s.length <= n) return s;
  while (s.length + 3 > n) {
    const i = s.indexOf('.');
    if (i === -1) return s.slice(-n);
    s = s.slice(i + 1);
  }
  return '...' + s;
}

function div(a: number, b: number): number {
  if (b === 0) throw new ToolError('ZeroDivisionError: float division by zero');
  return a / b;
}

export function writeAnalyzeReport(rep: AnalyzeReport, out: Out): void {
  out.write(`Processed ${rep.oids} records in ${rep.tids} transactions\n`);
  out.write(`Average record size is ${padLeft(fixed(div(rep.dbytes, rep.oids), 2), 7)} bytes\n`);
  out.write(`Average transaction size is ${padLeft(fixed(div(rep.dbytes, rep.tids), 2), 7)} bytes\n`);
  out.write('Types used:\n');
  const row = (a: string, b: string, c: string, d: string, e: string) => `${padRight(a, 46)} ${padLeft(b, 7)} ${padLeft(c, 9)} ${padLeft(d, 6)} ${padLeft(e, 7)}\n`;
  out.write(row('Class Name', 'Count', 'TBytes', 'Pct', 'AvgSize'));
  out.write(row('-'.repeat(46), '-'.repeat(7), '-'.repeat(9), '-'.repeat(5), '-'.repeat(7)));
  let cumpct = 0;
  for (const t of [...rep.typemap.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const size = rep.typesize.get(t)!;
    const count = rep.typemap.get(t)!;
    const pct = div(size * 100, rep.dbytes);
    cumpct += pct;
    out.write(`${padRight(shortenName(t, 46), 46)} ${padLeft(String(count), 7)} ${padLeft(String(size), 9)} ${padLeft(fixed(pct, 1), 5)}% ${padLeft(fixed(size / count, 2), 7)}\n`);
  }
  out.write(row('='.repeat(46), '='.repeat(7), '='.repeat(9), '='.repeat(5), '='.repeat(7)));
  out.write(`${padLeft('Total Transactions', 46)} ${padLeft(String(rep.tids), 7)} ${padLeft(' ', 9)} ${padLeft(' ', 6)} ${padLeft(fixed(div(rep.dbytes, rep.tids) / 1024, 2), 6)}k\n`);
  const summary = (name: string, n: number, bytes: number, pct: number, avg: number) =>
    `${padLeft(name, 46)} ${padLeft(String(n), 7)} ${padLeft(String(Math.trunc(bytes / 1024)), 8)}k ${padLeft(fixed(pct, 1), 5)}% ${padLeft(fixed(avg, 2), 7)}\n`;
  out.write(summary('Total Records', rep.oids, rep.dbytes, cumpct, div(rep.dbytes, rep.oids)));
  out.write(summary('Current Objects', rep.coids, rep.cbytes, div(rep.cbytes * 100, rep.dbytes), div(rep.cbytes, rep.coids)));
  if (rep.foids) out.write(summary('Old Objects', rep.foids, rep.fbytes, div(rep.fbytes * 100, rep.dbytes), div(rep.fbytes, rep.foids)));
}
