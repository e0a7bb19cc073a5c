/**
 * cache_stats: statistics of a client cache trace file (client-cache spec §10). Output is the
 * same, byte for byte, as ZEO's `python -m ZEO.scripts.cache_stats` (elapsed time aside).
 */
import { Command, CommanderError } from 'commander';
import { decodeTraceFixed, splitEncoded, TRACE_CODE_NAMES, TRACE_FIXED_SIZE } from '@zeo-ts/client-cache';
import { addcommas, bytesRepr, ctime, pyFixed, pyInt, rjust } from './pyfmt.ts';
import { LineOut, parseInterval } from './output.ts';
import { TraceInput } from './trace-input.ts';

export const STATS_USAGE = `usage: cache-stats [--verbose | --quiet] [--sizes] [--no-stats] [--load-histogram]
                   [--check] [--interval INTERVAL] tracefile

Trace file statistics analyzer

positional arguments:
  tracefile             The trace to read; may be gzipped

options:
  --verbose, -v         Be verbose; print each record
  --quiet, -q           Reduce output; don't print summaries
  --sizes, -s           print histogram of object sizes
  --no-stats, -S        don't print statistics
  --load-histogram, -h  print histogram of object load frequencies
  --check, -X           enable heuristic checking for misaligned records: oids > 2**32 will be rejected; this
                        requires the tracefile to be seekable (accepted, no effect)
  --interval INTERVAL, -i INTERVAL
                        summarizing interval in minutes (default 15; max 60)
`;

export interface StatsOptions {
  verbose: boolean;
  quiet: boolean;
  sizes: boolean;
  stats: boolean;
  histogram: boolean;
  /** seconds */
  interval: number;
  tracefile: string;
}

/** Parse the command line; returns options or an exit status after printing usage/errors. */
export function parseStatsArgs(argv: string[], err: LineOut, out: LineOut): StatsOptions | number {
  if (argv.includes('--help')) {
    out.line(STATS_USAGE.trimEnd());
    return 2;
  }
  const program = new Command('cache-stats')
    .helpOption(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined })
    .option('-v, --verbose')
    .option('-q, --quiet')
    .option('-s, --sizes')
    .option('-S, --no-stats')
    .option('-h, --load-histogram')
    .option('-X, --check')
    .option('-i, --interval <minutes>', 'interval', parseInterval, 15 * 60)
    .argument('<tracefile>');
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const msg = e instanceof CommanderError ? e.message.replace(/^error: /, '') : (e as Error).message;
    err.line(STATS_USAGE.split('\n\n')[0]!);
    err.line(`cache-stats: error: ${msg}`);
    return 2;
  }
  const o = program.opts();
  if (o.verbose && o.quiet) {
    err.line(STATS_USAGE.split('\n\n')[0]!);
    err.line('cache-stats: error: argument --quiet/-q: not allowed with argument --verbose/-v');
    return 2;
  }
  return {
    verbose: Boolean(o.verbose),
    quiet: Boolean(o.quiet),
    sizes: Boolean(o.sizes),
    stats: o.stats !== false,
    histogram: Boolean(o.loadHistogram),
    interval: o.interval as number,
    tracefile: program.args[0]!,
  };
}

function dumpbyinterval(out: LineOut, byinterval: Map<number, number>, h0: number, he: number): void {
  let loads = 0;
  let hits = 0;
  let invals = 0;
  let writes = 0;
  for (const [code, n] of byinterval) {
    if (code & 0x20) {
      loads += n;
      if (code === 0x22 || code === 0x26) hits += n;
    } else if (code & 0x40) {
      writes += n;
    } else if (code & 0x10) {
      if (code !== 0x10) invals += n;
    }
  }
  const hr = loads ? pyFixed((100.0 * hits) / loads, 1).padStart(5) + '%' : 'n/a';
  out.line(`${ctime(h0).slice(4, 16)}-${ctime(he).slice(14, 16)} ${rjust(loads, 7)} ${rjust(hits, 7)} ${rjust(invals, 7)} ${rjust(writes, 7)} ${rjust(hr, 7)}`);
}

function hitrate(bycode: Map<number, number>): number {
  let loads = 0;
  let hits = 0;
  for (const [code, n] of bycode) {
    if ((code & 0x70) === 0x20) {
      loads += n;
      if (code === 0x22 || code === 0x26) hits += n;
    }
  }
  return loads ? (100.0 * hits) / loads : 0.0;
}

function bump<K>(m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

/** Run cache-stats; returns the exit status. */
export function cacheStats(argv: string[], out: LineOut, err: LineOut): number {
  const parsed = parseStatsArgs(argv, err, out);
  if (typeof parsed === 'number') return parsed;
  const o = parsed;
  let f: TraceInput;
  try {
    f = TraceInput.open(o.tracefile);
  } catch (e) {
    err.line(STATS_USAGE.split('\n\n')[0]!);
    err.line(`cache-stats: error: argument tracefile: can't open '${o.tracefile}': ${(e as Error).message}`);
    return 2;
  }
  const rt0 = performance.now();
  const bycode = new Map<number, number>();
  let byinterval = new Map<number, number>();
  let records = 0;
  let versions = 0;
  let datarecords = 0;
  let datasize = 0;
  const oids = new Map<string, number>();
  const bysize = new Map<number, Map<string, number>>();
  const bysizew = new Map<number, Map<string, number>>();
  let t0: number | null = null;
  let te: number | null = null;
  let h0: number | null = null;
  let he: number | null = null;
  let thisinterval: number | null = null;
  const I = o.interval;

  out.line(`${' '.repeat(16)} ${rjust('loads', 7)} ${rjust('hits', 7)} ${rjust('inv(h)', 7)} ${rjust('writes', 7)} hitrate`);
  for (;;) {
    const r = f.read(TRACE_FIXED_SIZE);
    if (r.length < TRACE_FIXED_SIZE) break;
    const { ts, encoded, oidlen } = decodeTraceFixed(r, 0);
    if (ts === 0) {
      // misaligned after a crash: move on by 8 bytes (in quiet mode too, spec §12.5)
      if (!o.quiet) out.line(`Skipping 8 bytes at offset ${f.tell() - TRACE_FIXED_SIZE}`);
      f.back(TRACE_FIXED_SIZE - 8);
      continue;
    }
    const start = r.readBigUInt64BE(10);
    const end = r.readBigUInt64BE(18);
    const oidBuf = f.read(oidlen);
    if (oidBuf.length < oidlen) break;
    const oid = oidBuf.toString('latin1');
    records++;
    if (t0 === null) {
      t0 = ts;
      thisinterval = Math.floor(t0 / I);
      h0 = he = ts;
    }
    te = ts;
    if (Math.floor(ts / I) !== thisinterval) {
      if (!o.quiet) dumpbyinterval(out, byinterval, h0!, he!);
      byinterval = new Map();
      thisinterval = Math.floor(ts / I);
      h0 = ts;
    }
    he = ts;
    const { dlen, code, version } = splitEncoded(encoded);
    if (dlen) {
      datarecords++;
      datasize += dlen;
    }
    if (version) versions++;
    bump(bycode, code);
    bump(byinterval, code);
    if (dlen) {
      if ((code & 0x70) === 0x20) {
        let d = bysize.get(dlen);
        if (!d) bysize.set(dlen, (d = new Map()));
        bump(d, oid);
      } else if ((code & 0x70) === 0x50) {
        let d = bysizew.get(dlen);
        if (!d) bysizew.set(dlen, (d = new Map()));
        bump(d, oid);
      }
    }
    if (o.verbose) {
      const oidText = oidBuf.length === 8 ? oidBuf.readBigUInt64BE(0).toString(16).padStart(16, ' ') : bytesRepr(oidBuf);
      out.line(
        `${ctime(ts).slice(4, 19)} ${code.toString(16).padStart(2, '0')} ${oidText} ${start.toString(16).padStart(16, '0')} ${end.toString(16).padStart(16, '0')} ${version ? 'V' : '-'}${dlen ? ' ' + dlen : ''}`,
      );
    }
    if ((code & 0x70) === 0x20) {
      bump(oids, oid);
    } else if (code === 0x00) {
      if (!o.quiet) dumpbyinterval(out, byinterval, h0!, he!);
      byinterval = new Map();
      thisinterval = Math.floor(ts / I);
      h0 = he = ts;
      if (!o.quiet) out.line(`${ctime(ts).slice(4, 19)} ${'='.repeat(20)} Restart ${'='.repeat(20)}`);
    }
  }
  const endPos = f.tell();
  f.close();
  const elapsed = (performance.now() - rt0) / 1000;
  if (!o.quiet) {
    const now = Date.now() / 1000;
    dumpbyinterval(out, byinterval, h0 ?? now, he ?? now);
  }
  if (!records) {
    out.flush();
    err.line('No records processed');
    return 1;
  }
  if (o.stats) {
    out.line();
    out.line(`Read ${addcommas(records)} trace records (${addcommas(endPos)} bytes) in ${pyFixed(elapsed, 1)} seconds`);
    out.line(`Versions:   ${addcommas(versions)} records used a version`);
    out.line(`First time: ${ctime(t0!)}`);
    out.line(`Last time:  ${ctime(te!)}`);
    out.line(`Duration:   ${addcommas(te! - t0!)} seconds`);
    // no data records: "average size 0 bytes" instead of upstream's division by zero (§12.7)
    const avg = datarecords ? pyInt(datasize / datarecords) : '0';
    out.line(`Data recs:  ${addcommas(datarecords)} (${pyFixed((100.0 * datarecords) / records, 1)}%), average size ${avg} bytes`);
    out.line(`Hit rate:   ${pyFixed(hitrate(bycode), 1)}% (load hits / loads)`);
    out.line();
    out.line(`${rjust('Count', 13)} ${rjust('Code', 4)} Function (action)`);
    for (const code of [...bycode.keys()].sort((a, b) => a - b)) {
      out.line(`${rjust(addcommas(bycode.get(code)!), 13)}  ${code.toString(16).padStart(2, '0')}  ${TRACE_CODE_NAMES.get(code) ?? '*** unknown code ***'}`);
    }
  }
  if (o.histogram) {
    out.line();
    out.line('Histogram of object load frequency');
    const total = oids.size;
    let totalLoads = 0;
    const bins = new Map<number, number>();
    for (const v of oids.values()) {
      totalLoads += v;
      bump(bins, v);
    }
    out.line(`Unique oids: ${addcommas(total)}`);
    out.line(`Total loads: ${addcommas(totalLoads)}`);
    const width = Math.max(addcommas(total).length, 'objects'.length);
    out.line(`${rjust('loads', 5)} ${rjust('objects', width)} ${rjust('%obj', 6)} ${rjust('%load', 6)} ${rjust('%cum', 6)}`);
    let cum = 0.0;
    for (const [binsize, count] of [...bins].sort((a, b) => a[0] - b[0])) {
      const objPercent = (100.0 * count) / total;
      const loadPercent = (100.0 * count * binsize) / totalLoads;
      cum += loadPercent;
      out.line(`${rjust(binsize, 5)} ${rjust(addcommas(count), width)} ${pyFixed(objPercent, 1).padStart(5)}% ${pyFixed(loadPercent, 1).padStart(5)}% ${pyFixed(cum, 1).padStart(5)}%`);
    }
  }
  if (o.sizes) {
    out.line();
    out.line('Histograms of object sizes');
    out.line();
    dumpbysize(out, bysizew, 'written', 'writes');
    dumpbysize(out, bysize, 'loaded', 'loads');
  }
  return 0;
}

function dumpbysize(out: LineOut, bysize: Map<number, Map<string, number>>, how: string, how2: string): void {
  out.line();
  out.line(`Unique sizes ${how}: ${addcommas(bysize.size)}`);
  out.line(`${rjust('size', 10)} ${rjust('objs', 6)} ${rjust(how2, 6)}`);
  for (const size of [...bysize.keys()].sort((a, b) => a - b)) {
    const d = bysize.get(size)!;
    let n = 0;
    for (const v of d.values()) n += v;
    out.line(`${rjust(addcommas(size), 10)} ${rjust(d.size, 6)} ${rjust(n, 6)}`);
  }
}
