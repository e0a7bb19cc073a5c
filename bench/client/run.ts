/**
 * ClientStorage benchmark against our runzeo (a child process over a temporary FileStorage).
 * Run from the repository root:
 *
 *   node --import tsx bench/client/run.ts [--objects 20000] [--rmw 300] [--cache-mb 100] [--warmup 3000]
 *
 * Prints one JSON document: add and update objects/s (1000 objects of 100 bytes per commit),
 * cold loads/s (one round trip per load), pipelined loads/s (prefetch), hot loads/s (answers from
 * the persistent cache), read-modify-write commits/s of 4 client processes, and the time to
 * reopen a 100 MB persistent cache and verify it against the server. Before the load phases a
 * separate client does `--warmup` unmeasured loads (JIT warm-up, as bench/server's pings); the
 * measured clients start with empty caches all the same. Load figures also give the client's
 * CPU milliseconds per 1000 loads (process.cpuUsage: less sensitive to a shared machine).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ConflictError, TransactionMetaData, z64, type Oid, type Tid } from '@zeo-ts/storage';
import { ClientStorage } from '@zeo-ts/client';
import { startRunzeo } from '@zeo-ts/client/testing';

const silent = pino({ level: 'silent' });

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function data(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, 0x61 + (i % 26));
  b.writeUInt32BE(i >>> 0, 0);
  return b;
}

async function commitMany(s: ClientStorage, writes: Array<[Oid, Tid, Buffer]>): Promise<Tid> {
  const txn = new TransactionMetaData('bench', 'bench');
  await s.tpc_begin(txn);
  try {
    for (const [oid, serial, d] of writes) await s.store(oid, serial, d, txn);
    await s.tpc_vote(txn);
    return await s.tpc_finish(txn);
  } catch (e) {
    await s.tpc_abort(txn);
    throw e;
  }
}

function timer(): () => { seconds: number; cpuSeconds: number } {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(c0);
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpuSeconds: (c.user + c.system) / 1e6 };
  };
}

const round = (x: number) => Math.round(x);

/** Figures of a load phase: rates, and the client's CPU milliseconds per 1000 loads. */
function loadFigures(loads: number, r: { seconds: number; cpuSeconds: number }): Record<string, number> {
  return {
    loadsPerSecond: round(loads / r.seconds),
    loadsPerCpuSecond: round(loads / r.cpuSeconds),
    cpuMsPer1000Loads: Math.round((r.cpuSeconds * 1e7) / loads) / 10,
    loads,
    seconds: r.seconds,
    cpuSeconds: r.cpuSeconds,
  };
}

/** Worker mode: `--worker PORT OID COUNT`: COUNT read-modify-write commits of one object. */
async function worker(): Promise<void> {
  const i = process.argv.indexOf('--worker');
  const port = Number(process.argv[i + 1]);
  const oid = BigInt(process.argv[i + 2]!);
  const count = Number(process.argv[i + 3]);
  const s = await ClientStorage.open({ addresses: [port], logger: silent });
  let conflicts = 0;
  const start = Date.now();
  for (let n = 0; n < count; ) {
    const cur = await s.load(oid);
    const v = cur.data.readUInt32BE(0) + 1;
    const d = Buffer.alloc(100, 0x62);
    d.writeUInt32BE(v, 0);
    try {
      await commitMany(s, [[oid, cur.tid, d]]);
      n++;
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      conflicts++;
    }
  }
  await s.close();
  process.stdout.write(JSON.stringify({ commits: count, conflicts, seconds: (Date.now() - start) / 1000 }) + '\n');
}

async function main(): Promise<void> {
  const objects = arg('objects', 20000);
  const rmwPerWorker = arg('rmw', 300);
  const cacheMB = arg('cache-mb', 100);
  const warmup = arg('warmup', 3000);
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-bench-client-'));
  const srv = await startRunzeo(['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')], { cwd: dir });
  const result: Record<string, unknown> = {
    machine: { cpus: cpus().length, loadAverage1: loadavg()[0], node: process.version },
    objects,
  };
  try {
    const addresses = [srv.port];
    const w = await ClientStorage.open({ addresses, logger: silent });
    // ---- add and update
    const oids: Oid[] = [];
    for (let i = 0; i < objects; i++) oids.push(BigInt(i + 1));
    let t = timer();
    const serials = new Map<Oid, Tid>();
    await commitMany(w, [[z64, z64, data(0, 100)]]);
    for (let i = 0; i < objects; i += 1000) {
      const batch = oids.slice(i, i + 1000);
      const tid = await commitMany(w, batch.map((o) => [o, z64, data(Number(o), 100)]));
      for (const o of batch) serials.set(o, tid);
    }
    let r = t();
    result.add = { objectsPerSecond: round(objects / r.seconds), seconds: r.seconds, cpuSeconds: r.cpuSeconds };
    t = timer();
    for (let i = 0; i < objects; i += 1000) {
      const batch = oids.slice(i, i + 1000);
      const tid = await commitMany(w, batch.map((o) => [o, serials.get(o)!, data(Number(o) + 1, 100)]));
      for (const o of batch) serials.set(o, tid);
    }
    r = t();
    result.update = { objectsPerSecond: round(objects / r.seconds), seconds: r.seconds, cpuSeconds: r.cpuSeconds };
    await w.close();

    // ---- JIT warm-up of the load paths: a throwaway client (its cache is not reused)
    const warmN = Math.min(objects, warmup);
    if (warmN > 0) {
      const warm = await ClientStorage.open({ addresses, logger: silent, cacheSize: 64 * 1024 * 1024 });
      for (let i = 0; i < warmN; i++) await warm.load(oids[objects - 1 - i]!);
      await warm.close();
      const warm2 = await ClientStorage.open({ addresses, logger: silent, cacheSize: 64 * 1024 * 1024 });
      await warm2.prefetch(oids.slice(0, warmN));
      for (let i = 0; i < warmN; i++) await warm2.load(oids[i]!);
      await warm2.close();
    }
    result.warmupLoads = warmN;

    // ---- cold loads: one round trip each, empty cache
    const coldN = Math.min(objects, 10000);
    const cold = await ClientStorage.open({ addresses, logger: silent, cacheSize: 64 * 1024 * 1024 });
    t = timer();
    for (let i = 0; i < coldN; i++) await cold.load(oids[i]!);
    r = t();
    result.coldLoads = loadFigures(coldN, r);
    await cold.close();

    // ---- pipelined loads (prefetch) into a persistent cache, then hot loads from it
    const cachePath = join(dir, 'hot.zec');
    const pipe = await ClientStorage.open({ addresses, logger: silent, cachePath, cacheSize: 64 * 1024 * 1024 });
    t = timer();
    await pipe.prefetch(oids);
    r = t();
    result.pipelinedLoads = loadFigures(objects, r);
    const hotRounds = 10;
    t = timer();
    for (let k = 0; k < hotRounds; k++) for (const o of oids) await pipe.load(o);
    r = t();
    result.hotLoads = loadFigures(objects * hotRounds, r);
    await pipe.close();

    // ---- 4 processes doing read-modify-write commits of their own object
    const seed = await ClientStorage.open({ addresses, logger: silent });
    await commitMany(seed, [1, 2, 3, 4].map((k) => [BigInt(2_000_000 + k), z64, data(0, 100)]));
    await seed.close();
    t = timer();
    const me = fileURLToPath(import.meta.url);
    const outs = await Promise.all([1, 2, 3, 4].map((k) => new Promise<Record<string, number>>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', me, '--worker', String(srv.port), String(2_000_000 + k), String(rmwPerWorker)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker ${k} exited ${code}`))));
    })));
    r = t();
    const totalCommits = outs.reduce((a, o) => a + o.commits!, 0);
    const slowest = Math.max(...outs.map((o) => o.seconds!));
    result.rmw4 = { commitsPerSecond: round(totalCommits / slowest), commits: totalCommits, conflicts: outs.reduce((a, o) => a + o.conflicts!, 0), wallSecondsIncludingStartup: r.seconds, workerSeconds: slowest };

    // ---- reopen a 100 MB persistent cache and verify it against the server
    const big = await ClientStorage.open({ addresses, logger: silent, cachePath: join(dir, 'big.zec'), cacheSize: cacheMB * 1024 * 1024 });
    const bigOids: Oid[] = [];
    const nBig = Math.floor((cacheMB * 1024 * 1024 * 0.95) / (100 * 1024 + 43));
    for (let i = 0; i < nBig; i += 50) {
      const batch: Array<[Oid, Tid, Buffer]> = [];
      for (let k = i; k < Math.min(nBig, i + 50); k++) {
        const oid = BigInt(1_000_000 + k);
        bigOids.push(oid);
        batch.push([oid, z64, data(k, 100 * 1024)]);
      }
      await commitMany(big, batch);
    }
    await big.close();
    // another client changes 100 objects while the cache is closed: quick verification has work
    const other = await ClientStorage.open({ addresses, logger: silent });
    const changes: Array<[Oid, Tid, Buffer]> = [];
    for (const o of oids.slice(0, 100)) changes.push([o, serials.get(o)!, data(Number(o) + 2, 100)]);
    await commitMany(other, changes);
    await other.close();
    const cacheBytes = statSync(join(dir, 'big.zec')).size;
    t = timer();
    const reopened = await ClientStorage.open({ addresses, logger: silent, cachePath: join(dir, 'big.zec'), cacheSize: cacheMB * 1024 * 1024 });
    r = t();
    result.reopenCache = { cacheBytes, records: reopened.cache.len, secondsToVerifiedConnection: r.seconds, cpuSeconds: r.cpuSeconds };
    await reopened.close();
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  (result.machine as Record<string, unknown>).loadAverage1AtEnd = loadavg()[0];
  result.targets = { coldLoadsPerSecond: 10000, pipelinedLoadsPerSecond: 30000, hotLoadsPerSecond: 500000 };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

if (process.argv.includes('--worker')) await worker();
else await main();
