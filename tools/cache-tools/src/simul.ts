/**
 * cache_simul: replays a client cache trace against a simulated circular cache of a chosen size
 * (client-cache spec §11). Output is the same, byte for byte, as ZEO's
 * `python -m ZEO.scripts.cache_simul`.
 */
import { Command, CommanderError } from 'commander';
import { decodeTraceFixed, RECORD_OVERHEAD, HEADER_SIZE, splitEncoded, TRACE_FIXED_SIZE } from '@zeo-ts/client-cache';
import { addcommas, ctime, pyFixed, pyRound1Str, rjust } from './pyfmt.ts';
import { LineOut, parseInterval, parsePyFloat } from './output.ts';
import { TraceInput } from './trace-input.ts';

export const SIMUL_USAGE = `usage: cache-simul [-h] [--size CACHELIMIT] [--interval INTERVAL] [--rearrange REARRANGE] tracefile

Cache simulation. The simulation isn't perfect, and it will be far off if the trace file was
created starting with a non-empty cache.

positional arguments:
  tracefile             The trace to read; may be gzipped

options:
  -h, --help            show this help message and exit
  --size CACHELIMIT, -s CACHELIMIT
                        cache size in MB (default 20MB)
  --interval INTERVAL, -i INTERVAL
                        summarizing interval in minutes (default 15; max 60)
  --rearrange REARRANGE, -r REARRANGE
                        rearrange factor
`;

const MB = 1 << 20;
const Z64 = '\0'.repeat(8);

interface Entry {
  /** oid (latin1 of the 8 bytes) */
  oid: string;
  /** start tid (latin1) */
  start: string;
  /** end tid, Z64 for current */
  end: string;
  offset: number;
}

interface Slot {
  size: number;
  entry: Entry | null;
}

/** The header/row format of the simulation output: %12s %6s %7s %7s %6s %6s %7s %7s %7s. */
function row(cols: Array<string | number>): string {
  const w = [12, 6, 7, 7, 6, 6, 7, 7, 7];
  return cols.map((c, i) => rjust(c, w[i]!)).join(' ');
}

function duration(secs: number): string {
  // Python divmod (floor) semantics
  const mm0 = Math.floor(secs / 60);
  const ss = secs - mm0 * 60;
  const hh = Math.floor(mm0 / 60);
  const mm = mm0 - hh * 60;
  const p2 = (n: number) => String(n).padStart(2, '0');
  if (hh) return `${hh}:${p2(mm)}:${p2(ss)}`;
  if (mm) return `${mm}:${p2(ss)}`;
  return `${ss}`;
}

function hitrate(loads: number, hits: number): string {
  if (loads < 1) return 'n/a';
  return pyFixed((100.0 * hits) / loads, 1).padStart(5) + '%';
}

/** The simulated ZEO client cache (ZEO's CircularCacheSimulation). */
export class CircularCacheSimulation {
  readonly cachelimit: number;
  readonly rearrange: number;
  warm = false;
  // per run
  loads = 0;
  hits = 0;
  invals = 0;
  writes = 0;
  evicts = 0;
  ts0: number | null = null;
  ts1: number | null = null;
  epoch: number | null = null;
  // totals
  totalLoads = 0;
  totalHits = 0;
  totalInvals = 0;
  totalWrites = 0;
  totalEvicts = 0;
  inuse = '0.0';
  nreports = 0;

  private offset = HEADER_SIZE;
  private readonly filemap = new Map<number, Slot>();
  private readonly key2entry = new Map<string, Entry>();
  private readonly current = new Map<string, string>();
  private readonly noncurrent = new Map<string, Array<[string, string]>>();
  private readonly evicted = new Map<string, [number, Entry]>();

  constructor(cachelimit: number, rearrange: number) {
    this.cachelimit = cachelimit;
    this.rearrange = rearrange;
    this.filemap.set(HEADER_SIZE, { size: cachelimit - HEADER_SIZE, entry: null });
    this.restart();
  }

  restart(): void {
    this.loads = this.hits = this.invals = this.writes = 0;
    this.ts0 = null;
    if (this.evicts) this.warm = true;
    this.evicts = 0;
  }

  event(ts: number, dlen: number, code: number, oid: string, start: string, end: string): void {
    if (this.ts0 === null) {
      this.ts0 = ts;
      if (this.epoch === null) this.epoch = ts;
    }
    this.ts1 = ts;
    const action = code & 0x70;
    if (action & 0x20) {
      this.loads++;
      this.totalLoads++;
      this.load(oid, dlen, start, code);
    } else if (action & 0x40) {
      this.write(oid, dlen, start, end);
    } else if (action & 0x10) {
      this.inval(oid, start);
    } else if (action === 0x00) {
      this.restart();
    } else {
      throw new Error(`unknown trace code 0x${code.toString(16)}`);
    }
  }

  private key(oid: string, start: string): string {
    return oid + start;
  }

  /** Would a record of `size` bytes (overhead included) plus the spare byte fit at all? (§12.8) */
  private fits(size: number): boolean {
    return size + 1 <= this.cachelimit - HEADER_SIZE;
  }

  private load(oid: string, _size: number, tid: string, code: number): void {
    if (code === 0x20 || code === 0x22) {
      const cur = this.current.get(oid);
      if (cur !== undefined) {
        this.hits++;
        this.totalHits++;
        const entry = this.key2entry.get(this.key(oid, cur))!;
        let d = this.offset - entry.offset;
        if (d < 0) d += this.cachelimit;
        if (d > this.rearrange * this.cachelimit) {
          const sz = this.filemap.get(entry.offset)!.size;
          // upstream adds the overhead a second time here; kept for identical output
          if (this.fits(sz + RECORD_OVERHEAD)) {
            this.remove(oid, cur);
            this.add(oid, sz, cur);
          }
        }
      } else {
        const ev = this.evicted.get(oid);
        if (ev !== undefined) this.write(oid, ev[0], ev[1].start, Z64);
      }
      return;
    }
    if (this.current.get(oid) === tid) {
      this.hits++;
      this.totalHits++;
      return;
    }
    const L = this.noncurrent.get(oid);
    if (L === undefined) return;
    let i = 0;
    while (i < L.length && L[i]![0] < tid) i++;
    if (i === 0) return;
    const [, hi] = L[i - 1]!;
    if (tid > hi) return;
    this.hits++;
    this.totalHits++;
  }

  private remove(oid: string, tid: string): void {
    const k = this.key(oid, tid);
    const e = this.key2entry.get(k)!;
    this.key2entry.delete(k);
    const slot = this.filemap.get(e.offset)!;
    this.filemap.set(e.offset, { size: slot.size, entry: null });
  }

  private inval(oid: string, tid: string): void {
    if (tid === Z64) {
      const L = this.noncurrent.get(oid);
      if (L && L.length) {
        this.invals += L.length;
        this.totalInvals += L.length;
        for (const [s] of L) this.remove(oid, s);
        this.noncurrent.delete(oid);
      }
    }
    this.evicted.delete(oid);
    const cur = this.current.get(oid);
    if (cur === undefined) return;
    this.invals++;
    this.totalInvals++;
    this.current.delete(oid);
    if (tid === Z64) {
      this.remove(oid, cur);
      return;
    }
    let L = this.noncurrent.get(oid);
    if (!L) this.noncurrent.set(oid, (L = []));
    insort(L, [cur, tid]);
    this.key2entry.get(this.key(oid, cur))!.end = tid;
  }

  private write(oid: string, size: number, start: string, end: string): void {
    if (!this.fits(size + RECORD_OVERHEAD)) return; // larger than the simulated cache (§12.8)
    if (end === Z64) {
      if (this.current.has(oid)) return;
      this.current.set(oid, start);
      this.writes++;
      this.totalWrites++;
      this.add(oid, size, start);
      return;
    }
    let L = this.noncurrent.get(oid);
    if (!L) this.noncurrent.set(oid, (L = []));
    if (L.some(([s, e]) => s === start && e === end)) return;
    insort(L, [start, end]);
    this.writes++;
    this.totalWrites++;
    this.add(oid, size, start, end);
  }

  private add(oid: string, size: number, start: string, end: string = Z64): void {
    const k = this.key(oid, start);
    if (this.key2entry.has(k)) this.remove(oid, start);
    size += RECORD_OVERHEAD;
    const avail = this.makeroom(size + 1);
    const e: Entry = { oid, start, end, offset: this.offset };
    this.filemap.set(this.offset, { size, entry: e });
    this.key2entry.set(k, e);
    this.offset += size;
    const excess = avail - size;
    if (excess) this.filemap.set(this.offset, { size: excess, entry: null });
  }

  private makeroom(need: number): number {
    if (this.offset + need > this.cachelimit) this.offset = HEADER_SIZE;
    let pos = this.offset;
    while (need > 0) {
      if (pos >= this.cachelimit) throw new Error(`simulation: walked past the end of the cache at ${pos}`);
      const slot = this.filemap.get(pos);
      if (!slot) throw new Error(`simulation: no block at ${pos}`);
      this.filemap.delete(pos);
      const e = slot.entry;
      if (e) {
        this.evicts++;
        this.totalEvicts++;
        this.key2entry.delete(this.key(e.oid, e.start));
        if (e.end === Z64) {
          this.current.delete(e.oid);
          this.evicted.set(e.oid, [slot.size - RECORD_OVERHEAD, e]);
        } else {
          const L = this.noncurrent.get(e.oid)!;
          const i = L.findIndex(([s, en]) => s === e.start && en === e.end);
          if (i >= 0) L.splice(i, 1);
        }
      }
      need -= slot.size;
      pos += slot.size;
    }
    return pos - this.offset;
  }

  /** One output row for the current run, or null if no event was ever seen. */
  report(): string | null {
    if (this.ts1 === null) return null;
    this.nreports++;
    let used = 0;
    let total = 0;
    for (const s of this.filemap.values()) {
      total += s.size;
      if (s.entry) used += s.size;
    }
    this.inuse = pyRound1Str((100.0 * used) / total);
    const ts0 = this.ts0 ?? this.ts1;
    return row([ctime(ts0).slice(4, 16), duration(this.ts1 - ts0), this.loads, this.hits, this.invals, this.writes, hitrate(this.loads, this.hits), this.evicts, this.inuse]);
  }
}

function insort(L: Array<[string, string]>, p: [string, string]): void {
  let i = 0;
  while (i < L.length && (L[i]![0] < p[0] || (L[i]![0] === p[0] && L[i]![1] < p[1]))) i++;
  L.splice(i, 0, p);
}

/** Run cache-simul; returns the exit status. */
export function cacheSimul(argv: string[], out: LineOut, err: LineOut): number {
  const program = new Command('cache-simul')
    .helpOption(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined })
    .option('-h, --help')
    .option('-s, --size <MB>', 'size', (s: string) => Math.trunc(parsePyFloat(s) * MB), 20 * MB)
    .option('-i, --interval <minutes>', 'interval', parseInterval, 15 * 60)
    .option('-r, --rearrange <factor>', 'rearrange', (s: string) => parsePyFloat(s), 0.8)
    .argument('[tracefile]');
  const usage = () => err.line(SIMUL_USAGE.split('\n\n')[0]!);
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const msg = e instanceof CommanderError ? e.message.replace(/^error: /, '') : (e as Error).message;
    usage();
    err.line(`cache-simul: error: ${msg}`);
    return 2;
  }
  const o = program.opts();
  if (o.help) {
    out.line(SIMUL_USAGE.trimEnd());
    return 0;
  }
  const name = program.args[0];
  if (name === undefined) {
    usage();
    err.line('cache-simul: error: the following arguments are required: tracefile');
    return 2;
  }
  const cachelimit = o.size as number;
  if (!(cachelimit > HEADER_SIZE + RECORD_OVERHEAD)) {
    usage();
    err.line(`cache-simul: error: cache size of ${cachelimit} bytes is too small to simulate`);
    return 2;
  }
  let f: TraceInput;
  try {
    f = TraceInput.open(name);
  } catch (e) {
    usage();
    err.line(`cache-simul: error: argument tracefile: can't open '${name}': ${(e as Error).message}`);
    return 2;
  }
  const step = o.interval as number;
  const sim = new CircularCacheSimulation(cachelimit, o.rearrange as number);
  const intervalSim = new CircularCacheSimulation(cachelimit, o.rearrange as number);
  out.line(`CircularCacheSimulation, cache size ${addcommas(cachelimit)} bytes`);
  out.line(row(['START TIME', 'DUR.', 'LOADS', 'HITS', 'INVALS', 'WRITES', 'HITRATE', 'EVICTS', 'INUSE']));
  let lastInterval: number | null = null;
  for (;;) {
    const r = f.read(TRACE_FIXED_SIZE);
    if (r.length < TRACE_FIXED_SIZE) break;
    const { ts, encoded, oidlen } = decodeTraceFixed(r, 0);
    if (ts === 0) {
      f.back(TRACE_FIXED_SIZE - 8);
      continue;
    }
    const start = r.toString('latin1', 10, 18);
    const end = r.toString('latin1', 18, 26);
    const oidBuf = f.read(oidlen);
    if (oidBuf.length < oidlen) break;
    const oid = oidBuf.toString('latin1');
    const { dlen, code } = splitEncoded(encoded);
    const thisInterval = Math.floor(ts / step);
    if (thisInterval !== lastInterval) {
      if (lastInterval !== null) {
        const line = intervalSim.report();
        if (line !== null) out.line(line);
        intervalSim.restart();
        if (!intervalSim.warm) sim.restart();
      }
      lastInterval = thisInterval;
    }
    sim.event(ts, dlen, code, oid, start, end);
    intervalSim.event(ts, dlen, code, oid, start, end);
  }
  f.close();
  const line = intervalSim.report();
  if (line !== null) out.line(line);
  out.line('-'.repeat(74));
  const fin = sim.report();
  if (fin !== null) out.line(fin);
  return 0;
}
