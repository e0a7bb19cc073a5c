/**
 * ZRS benchmark. Run from the repository root:
 *
 *   node --import tsx bench/zrs/run.ts [--catchup-mb 512] [--lag-transactions 400] [--commits 300] [--rounds 2] [--dir DIR]
 *
 * Prints one JSON document:
 *  - lag: replication lag p50/p99 (ms, commit returned on the primary → applied and durable on the
 *    secondary, measured with wall clocks of the two processes) at 200 and 1000 commits/s of
 *    small transactions (1 object of ~100 bytes), native channel and zrs2.0, asynchronous.
 *  - catchUp: a fresh secondary replicating a --catchup-mb primary file (MB/s), compared with
 *    copying the same file on this disk (fs.copyFileSync, page cache warm for both).
 *  - commitThroughput: primary commits/s (1 small object, fsync per commit) with 0, 1 and 2
 *    secondaries, asynchronous and with ack-quorum 1.
 * Secondaries run in child processes; the primary runs in this process (no ZEO server).
 */
import { fork } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { FileStorage } from '@zeo-ts/filestorage';
import { TransactionMetaData, toHex, type Tid } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import { Primary } from '@zeo-ts/zrs';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const CATCHUP_MB = Number(opt('catchup-mb', '512'));
const LAG_N = Number(opt('lag-transactions', '400'));
const TP_N = Number(opt('commits', '300'));
const ROUNDS = Number(opt('rounds', '2'));
const base = mkdtempSync(join(opt('dir', tmpdir()), 'zrs-bench-'));
const here = dirname(fileURLToPath(import.meta.url));
const silent = pino({ level: 'silent' });
const now = () => performance.timeOrigin + performance.now();
let seq = 0;

function child(path: string, port: number, native: string, reportAll = true) {
  const c = fork(join(here, 'secondary-child.ts'), [path, '127.0.0.1', String(port), native], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ZRS_BENCH_REPORT: reportAll ? 'all' : 'last' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const applied = new Map<string, number>();
  let waiters: Array<() => void> = [];
  let lastReply: { last: string; durable: string; count: number; at: number; cpuSeconds: number } | null = null;
  c.on('message', (m: { tid?: string; at?: number; ready?: boolean; last?: string; count?: number }) => {
    if (m.tid) applied.set(m.tid, m.at!);
    if (m.last !== undefined) lastReply = m as never;
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  });
  const next = () => new Promise<void>((r) => waiters.push(r));
  return {
    c,
    applied,
    async ready() {
      for (let i = 0; i < 1e6; i++) {
        if (applied.size || (await Promise.race([next().then(() => true)]))) break;
      }
    },
    async waitReady() {
      await new Promise<void>((r) => c.on('message', (m: { ready?: boolean }) => m.ready && r()));
    },
    async waitTid(tid: string) {
      for (let i = 0; i < 1e8 && !applied.has(tid); i++) await next();
      return applied.get(tid)!;
    },
    async last() {
      lastReply = null;
      c.send({ cmd: 'last' });
      for (let i = 0; i < 1e6 && !lastReply; i++) await next();
      return lastReply!;
    },
    async exit() {
      const gone = new Promise((r) => c.on('exit', r));
      c.send({ cmd: 'exit' });
      await gone;
    },
  };
}

async function commitSmall(p: Primary): Promise<Tid> {
  const txn = new TransactionMetaData('', 'bench');
  const oid = await p.new_oid();
  await p.tpc_begin(txn);
  await p.store(oid, 0n, makeRecord({ state: { n: seq++ } } as never), txn);
  await p.tpc_vote(txn);
  return p.tpc_finish(txn);
}

async function newPrimary(name: string, o: { ackQuorum?: number } = {}) {
  const d = join(base, name);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(d, { recursive: true });
  const p = new Primary(new FileStorage(join(d, 'p.fs'), { logger: silent }), { host: '127.0.0.1', port: 0 }, { logger: silent, ackQuorum: 0, ackTimeout: 60000 });
  await p.listening;
  await commitSmall(p);
  p.ackQuorum = o.ackQuorum ?? 0;
  return { p, d };
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function lag(rate: number, native: string, n: number) {
  const { p, d } = await newPrimary(`lag-${rate}-${native}`);
  const s = child(join(d, 's.fs'), p.port, native);
  await s.waitReady();
  await s.waitTid(toHex(p.lastTransaction()));
  const sent = new Map<string, number>();
  const t0 = now();
  for (let k = 0; k < n; k++) {
    const due = t0 + (k * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const tid = await commitSmall(p);
    sent.set(toHex(tid), now());
  }
  const elapsed = (now() - t0) / 1000;
  await s.waitTid(toHex(p.lastTransaction()));
  const lags = [...sent].map(([tid, at]) => s.applied.get(tid)! - at);
  await s.exit();
  await p.close();
  process.stderr.write(`lag ${rate} ${native}: p50 ${pct(lags, 0.5)} p99 ${pct(lags, 0.99)} in ${elapsed}s\n`);
  return { targetRate: rate, achievedRate: Math.round(n / elapsed), transactions: n, p50ms: r3(pct(lags, 0.5)), p99ms: r3(pct(lags, 0.99)), maxms: r3(Math.max(...lags)) };
}

async function catchUp() {
  const { p, d } = await newPrimary('catchup');
  // ~1 MiB transactions of 1000 objects of ~1 KiB
  const rec = makeRecord({ value: 'x'.repeat(960) });
  const tBuild = now();
  for (let i = 0; p.getSize() < CATCHUP_MB * 1024 * 1024 && i < 1e6; i++) {
    const txn = new TransactionMetaData('', 'bulk');
    await p.tpc_begin(txn);
    for (let k = 0; k < 1000; k++) await p.store(await p.new_oid(), 0n, rec, txn);
    await p.tpc_vote(txn);
    await p.tpc_finish(txn);
  }
  const buildSeconds = (now() - tBuild) / 1000;
  const size = p.getSize();
  const tCopy = now();
  copyFileSync(join(d, 'p.fs'), join(d, 'copy.fs'));
  const copySeconds = (now() - tCopy) / 1000;
  rmSync(join(d, 'copy.fs'));
  const out: Record<string, unknown> = { primaryMB: Math.round(size / 1048576), buildSeconds: r3(buildSeconds), copyMBps: Math.round(size / 1048576 / copySeconds) };
  // native = raw mode (whole transactions as data-file bytes); nativeRecord = native channel, record path
  for (const [name, native] of [['native', 'always'], ['nativeRecord', 'record'], ['zrs2', 'never']] as const) {
    const sp = join(d, `s-${name}.fs`);
    const s = child(sp, p.port, native, false);
    await s.waitReady(); // timing starts at the connection, not at the child's start-up
    const c0 = await s.last();
    const p0 = process.cpuUsage();
    const t = now();
    const target = toHex(p.lastTransaction());
    let l = c0;
    for (let i = 0; i < 1e6; i++) {
      l = await s.last();
      if (l.durable === target) break; // durable on the secondary, not just appended
      await new Promise((r) => setTimeout(r, 5));
    }
    const secs = (now() - t) / 1000;
    const pc = process.cpuUsage(p0);
    await s.exit();
    const mbps = size / 1048576 / secs;
    out[name] = {
      seconds: r3(secs),
      MBps: Math.round(mbps),
      ofCopySpeed: r3(mbps / (out.copyMBps as number)),
      secondaryCpuSeconds: r3(l.cpuSeconds - c0.cpuSeconds),
      primaryCpuSeconds: r3((pc.user + pc.system) / 1e6),
    };
    process.stderr.write(`catch-up ${name}: ${JSON.stringify(out[name])}\n`);
    rmSync(sp, { force: true });
  }
  await p.close();
  return out;
}

async function throughput(nSec: number, ackQuorum: number, n: number) {
  const { p, d } = await newPrimary(`tp-${nSec}-${ackQuorum}`, { ackQuorum });
  const kids = [];
  for (let i = 0; i < nSec; i++) {
    const s = child(join(d, `s${i}.fs`), p.port, 'always', false);
    await s.waitReady();
    kids.push(s);
  }
  if (ackQuorum) for (let i = 0; i < 1e6 && p.ackedCount(p.lastTransaction()) < ackQuorum; i++) await p.changed();
  const k0 = [];
  for (const s of kids) k0.push((await s.last()).cpuSeconds);
  const c0 = process.cpuUsage();
  const t = now();
  for (let k = 0; k < n; k++) await commitSmall(p);
  const secs = (now() - t) / 1000;
  const c = process.cpuUsage(c0);
  // each secondary's CPU until it has the last commit durably
  const target = toHex(p.lastTransaction());
  let kidCpu = 0;
  for (let i = 0; i < kids.length; i++) {
    let l = await kids[i]!.last();
    for (let g = 0; g < 1e6 && l.durable !== target; g++) {
      await new Promise((r) => setTimeout(r, 2));
      l = await kids[i]!.last();
    }
    kidCpu += l.cpuSeconds - k0[i]!;
  }
  for (const s of kids) await s.exit();
  await p.close();
  // the primary's own CPU per commit: what fan-out to secondaries costs it, whatever the load
  return {
    perSecond: Math.round(n / secs),
    primaryCpuMsPerCommit: r3((c.user + c.system) / 1000 / n),
    ...(kids.length ? { secondaryCpuMsPerCommit: r3((kidCpu * 1000) / n / kids.length) } : {}),
  };
}

/** fsync cost of this disk: what bounds commits/s (every commit fsyncs on each side) */
async function fsyncCost() {
  const { openSync, writeSync, fsyncSync, closeSync } = await import('node:fs');
  const f = join(base, 'fsync.bin');
  const fd = openSync(f, 'w');
  const t = now();
  for (let i = 0; i < 50; i++) {
    writeSync(fd, Buffer.alloc(200, i), 0, 200, i * 200);
    fsyncSync(fd);
  }
  closeSync(fd);
  return r3((now() - t) / 50);
}

const result: Record<string, unknown> = {
  machine: { cpus: cpus().length, loadAverage1m: loadavg()[0], fsyncMs: await fsyncCost() },
  args: { catchupMB: CATCHUP_MB, lagTransactions: LAG_N, commits: TP_N, rounds: ROUNDS },
  lag: {
    native200: await lag(200, 'always', LAG_N),
    native1000: await lag(1000, 'always', 2 * LAG_N),
    zrs2_200: await lag(200, 'never', LAG_N),
    zrs2_1000: await lag(1000, 'never', 2 * LAG_N),
  },
};
// rounds alternate the configurations so that the ratios compare figures measured close in time;
// each configuration keeps its best round
const tp: Record<string, { perSecond: number; primaryCpuMsPerCommit: number; secondaryCpuMsPerCommit?: number }> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [nSec, q] of [[0, 0], [1, 0], [2, 0], [1, 1], [2, 1]] as const) {
    const key = `secondaries${nSec}${q ? '_ackQuorum1' : '_async'}`;
    const r = await throughput(nSec, q, TP_N);
    if (!tp[key] || r.perSecond > tp[key]!.perSecond) tp[key] = r;
    process.stderr.write(`throughput round ${round} ${key}: ${JSON.stringify(r)}\n`);
  }
}
result.commitThroughput = {
  ...tp,
  async2OfNone: r3(tp.secondaries2_async!.perSecond / tp.secondaries0_async!.perSecond),
  async2OfNonePrimaryCpu: r3(tp.secondaries0_async!.primaryCpuMsPerCommit / tp.secondaries2_async!.primaryCpuMsPerCommit),
};
result.catchUp = await catchUp();
rmSync(base, { recursive: true, force: true });
(result.machine as Record<string, unknown>).loadAverage1mAtEnd = loadavg()[0];
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
process.exit(0);
