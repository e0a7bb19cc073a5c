/**
 * fsstats (filestorage spec §11.6): statistics from the *text output of fsdump*. Numbers are
 * printed exactly as Python 3 prints them (ints, float reprs, "%3d" truncation); where Python
 * crashes (a histogram bin with ≥ 40 entries makes the star count a float) we print
 * floor(count / dot) stars.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fixedLeft, floatRepr, padLeft, pctD } from './pyfmt.ts';
import type { Out } from './output.ts';

const RX_TXN = /tid=([0-9a-f]+).*size=(\d+)/;
const RX_DATA = /oid=([0-9a-f]+) size=(\d+) class=(\S+)/;

/** A histogram keyed by value, remembering first-insertion order as Python's dict does. */
export class Histogram<K extends number | string = number> {
  readonly counts = new Map<K, number>();
  binsize = 0;
  bins: number[] = [];

  add(k: K): void {
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  size(): number {
    let s = 0;
    for (const v of this.counts.values()) s += v;
    return s;
  }

  /** Python: sum(k*v) / size() (a float). */
  mean(this: Histogram<number>): number {
    let product = 0;
    for (const [k, v] of this.counts) product += k * v;
    return product / this.size();
  }

  /** Smallest value whose count exceeds the remaining half. */
  median(this: Histogram<number>): number {
    let n = this.size() / 2;
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    for (const k of keys) {
      const c = this.counts.get(k)!;
      if (c > n) return k;
      n -= c;
    }
    throw new Error('median of an empty histogram');
  }

  /** First value (in insertion order) with the highest count; 0 when empty. */
  mode(): K | 0 {
    let mode: K | 0 = 0;
    let value = 0;
    for (const [k, v] of this.counts) {
      if (v > value) {
        value = v;
        mode = k;
      }
    }
    return mode;
  }

  makeBins(this: Histogram<number>, binsize: number): void {
    let maxkey = 0;
    let first = true;
    for (const k of this.counts.keys()) {
      if (first || k > maxkey) maxkey = k;
      first = false;
    }
    this.binsize = binsize;
    this.bins = new Array(1 + Math.floor(maxkey / binsize)).fill(0);
    for (const [k, v] of this.counts) this.bins[Math.floor(k / binsize)]! += v;
  }

  report(this: Histogram<number>, out: Out, name: string, binsize = 50, usebins = false, gaps = true, skip = true): void {
    if (usebins) binsize = this.binsize;
    else this.makeBins(binsize);
    const maxval = this.bins.reduce((a, b) => (b > a ? b : a), 0);
    // Python: dot = max(maxval / 40, 1): the float maxval/40 unless it is below 1 (then the int 1)
    const dotIsFloat = maxval / 40 >= 1;
    const dot = dotIsFloat ? maxval / 40 : 1;
    const tot = this.bins.reduce((a, b) => a + b, 0);
    let maxKey = -Infinity;
    for (const k of this.counts.keys()) if (k > maxKey) maxKey = k;
    out.write(`${name}\n`);
    out.write(`Total ${tot} Median ${this.median()} Mean ${floatRepr(this.mean())} Mode ${this.mode()} Max ${maxKey}\n`);
    out.write(`One * represents ${dotIsFloat ? floatRepr(dot) : '1'}\n`);
    let gap = false;
    let cum = 0;
    this.bins.forEach((n, i) => {
      if (gaps && (!n || (skip && !(n / dot)))) {
        if (!gap) out.write('   ...\n');
        gap = true;
        return;
      }
      gap = false;
      const p = (100 * n) / tot;
      cum += n;
      const pc = (100 * cum) / tot;
      out.write(`${padLeft(String(i * binsize), 6)} ${padLeft(String(n), 6)} ${padLeft(pctD(p), 3)}% ${padLeft(pctD(pc), 3)}% ${'*'.repeat(Math.floor(n / dot))}\n`);
    });
    out.write('\n');
  }
}

/** Python's sort_byhsize: by (number of entries, class name). */
function sortBySize(m: Map<string, Histogram>, reverse = false): Array<[string, Histogram]> {
  const l = [...m.entries()].sort((a, b) => {
    const d = a[1].size() - b[1].size();
    if (d) return d;
    return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
  });
  if (reverse) l.reverse();
  return l;
}

function classDetail(out: Out, classSize: Map<string, Histogram>): void {
  const row = (a: string, b: string, c: string, d: string, e: string) =>
    `${padLeft(a, 5)} ${padLeft(b, 6)} ${padLeft(c, 6)} ${padLeft(d, 6)}   ${fixedLeft(e, 50)}\n`;
  const labels = ['num', 'median', 'mean', 'mode', 'class'] as const;
  out.write(row(...labels));
  out.write(row(...(labels.map((s) => '-'.repeat(s.length)) as [string, string, string, string, string])));
  for (const [klass, h] of sortBySize(classSize)) {
    out.write(row(String(h.size()), String(h.median()), floatRepr(h.mean()), String(h.mode()), klass));
  }
  out.write('\n');
  for (const [klass, h] of sortBySize(classSize, true)) {
    h.makeBins(50);
    if (h.bins.filter((x) => x).length === 1) continue;
    h.report(out, `Object size for ${klass}`, 50, true);
  }
}

function revisionDetail(out: Out, lifetimes: Map<string, Array<string | null>>, classes: Map<string, string[]>): void {
  for (const [name, oids] of classes) {
    const h = new Histogram();
    let keep = false;
    for (const oid of new Set(oids)) {
      const n = lifetimes.get(oid)!.length;
      h.add(n);
      if (n > 1) keep = true;
    }
    if (keep) h.report(out, `Number of revisions for ${name}`, 10);
  }
}

/** Statistics over the fsdump text in `path`. */
export async function fsstats(path: string, out: Out): Promise<void> {
  const txnObjects = new Histogram();
  const txnBytes = new Histogram();
  const objSize = new Histogram();
  const nUpdates = new Histogram<string>();
  const classSize = new Map<string, Histogram>();
  const lifetimes = new Map<string, Array<string | null>>();
  const classes = new Map<string, string[]>();
  let objects = 0;
  let tid: string | null = null;

  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.startsWith('  data')) {
      const m = RX_DATA.exec(line);
      if (!m) continue;
      const oid = m[1]!;
      const size = Number(m[2]!);
      const klass = m[3]!;
      objSize.add(size);
      nUpdates.add(oid);
      let h = classSize.get(klass);
      if (!h) classSize.set(klass, (h = new Histogram()));
      h.add(size);
      if (!lifetimes.has(oid)) lifetimes.set(oid, []);
      lifetimes.get(oid)!.push(tid);
      if (!classes.has(klass)) classes.set(klass, []);
      classes.get(klass)!.push(oid);
      objects++;
    } else if (line.startsWith('Trans')) {
      if (tid !== null) txnObjects.add(objects);
      const m = RX_TXN.exec(line);
      if (!m) continue;
      tid = m[1]!;
      objects = 0;
      txnBytes.add(Number(m[2]!));
    }
  }
  if (objects) txnObjects.add(objects);

  out.write(`Summary: ${txnObjects.size()} txns, ${nUpdates.counts.size} objects, ${nUpdates.size()} revisions\n\n`);
  // Python fails on an empty histogram (median of nothing); we leave such reports out.
  const report = (h: Histogram, name: string, binsize: number, skip = true) => {
    if (h.counts.size) h.report(out, name, binsize, false, true, skip);
  };
  report(txnBytes, 'Transaction size (bytes)', 1024);
  report(txnObjects, 'Transaction size (objects)', 10);
  report(objSize, 'Object size', 128);
  const h = new Histogram();
  for (const v of lifetimes.values()) h.add(v.length);
  report(h, 'Number of revisions', 10, false);
  revisionDetail(out, lifetimes, classes);
  classDetail(out, classSize);
}
