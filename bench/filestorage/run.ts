/**
 * FileStorage benchmark. Run from the repository root:
 *
 *   node --import tsx bench/filestorage/run.ts [--objects 1000000] [--pack-objects 400000] [--dir /tmp/x]
 *
 * Prints one JSON document: commit throughput (20 × 1000 objects of 100 bytes, fsync per
 * commit), open time of a 1 M-object file with and without Data.fs.index, random loadBefore
 * rate on that file, and a GC pack of a file with 50 % garbage (seconds and the packing
 * process's peak RSS, measured in a child process).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TransactionMetaData, maxtid } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';
import { FileStorage } from '@zeo-ts/filestorage';
import pino from 'pino';

const silent = pino({ level: 'silent' });

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function argStr(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const now = () => performance.now() / 1000;
/** CPU seconds (user + system) of this process: robust when other work shares the machine. */
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function commitBatch(fs: FileStorage, oids: bigint[], data: (oid: bigint) => Buffer, serials?: Map<bigint, bigint>): Promise<bigint> {
  const txn = new TransactionMetaData('bench', 'batch');
  await fs.tpc_begin(txn);
  for (const oid of oids) await fs.store(oid, serials?.get(oid) ?? 0n, data(oid), txn);
  await fs.tpc_vote(txn);
  return fs.tpc_finish(txn);
}

/** child mode: pack a file and report seconds and peak RSS */
async function packChild(file: string, t: number): Promise<void> {
  const fs = new FileStorage(file, { logger: silent, packKeepOld: false });
  const t0 = now();
  const c0 = cpu();
  await fs.pack(t, true);
  const seconds = now() - t0;
  const cpuSeconds = cpu() - c0;
  await fs.close();
  process.stdout.write(JSON.stringify({ seconds, cpuSeconds, peakRssMB: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

async function main(): Promise<void> {
  if (process.argv.includes('--pack-child')) {
    await packChild(argStr('file')!, Number(argStr('t')));
    return;
  }
  const N = arg('objects', 1_000_000);
  const PN = arg('pack-objects', 400_000);
  const dir = argStr('dir') ?? mkdtempSync(join(tmpdir(), 'bench-fs-'));
  const os = await import('node:os');
  const result: Record<string, unknown> = { machine: { cpus: os.cpus().length, node: process.version, loadAverageAtStart: os.loadavg().map((x) => +x.toFixed(2)) } };
  const payload = Buffer.alloc(100, 0x61);

  // 1. commit throughput
  {
    const fs = new FileStorage(join(dir, 'commit.fs'), { logger: silent });
    let next = 1n;
    const round = async () => {
      for (let t = 0; t < 20; t++) {
        const oids = Array.from({ length: 1000 }, () => next++);
        await commitBatch(fs, oids, () => payload);
      }
    };
    let t0 = now();
    await round(); // cold: includes JIT warm-up
    const cold = now() - t0;
    t0 = now();
    const c0 = cpu();
    await round();
    const s = now() - t0;
    const cs = cpu() - c0;
    result.commit = {
      transactions: 20,
      objectsPerTxn: 1000,
      objectBytes: 100,
      fsyncPerCommit: true,
      coldObjectsPerSecond: Math.round(20000 / cold),
      seconds: +s.toFixed(3),
      objectsPerSecond: Math.round(20000 / s),
      objectsPerCpuSecond: Math.round(20000 / cs),
      target: '>= 50000',
    };
    await fs.close();
  }

  // 2. a 1 M-object file: build, open with/without index, random loadBefore
  {
    const file = join(dir, 'big.fs');
    const fs = new FileStorage(file, { logger: silent });
    const t0 = now();
    const per = 10_000;
    for (let base = 1; base <= N; base += per) {
      const oids = Array.from({ length: Math.min(per, N - base + 1) }, (_, i) => BigInt(base + i));
      await commitBatch(fs, oids, () => payload);
    }
    const buildS = now() - t0;
    await fs.close(); // writes Data.fs.index
    const size = statSync(file).size;

    let t1 = now();
    const c3 = cpu();
    const withIndex = new FileStorage(file, { readOnly: true, logger: silent });
    const openWithIndexS = now() - t1;
    const openWithIndexCpu = cpu() - c3;
    assertEq(withIndex.len(), N);
    const indexBytes = withIndex.index.byteLength;

    // random loadBefore (in-process, through the async API)
    const LOADS = 300_000;
    const oids = new Array<bigint>(LOADS);
    for (let i = 0; i < LOADS; i++) oids[i] = BigInt(1 + Math.floor(Math.random() * N));
    for (let i = 0; i < 50_000; i++) await withIndex.loadBefore(oids[i]!, maxtid); // warm-up
    t1 = now();
    const c1 = cpu();
    let bytes = 0;
    for (const oid of oids) bytes += (await withIndex.loadBefore(oid, maxtid))!.data.length;
    const loadS = now() - t1;
    const loadCpu = cpu() - c1;
    assertEq(bytes, LOADS * 100);
    await withIndex.close();

    unlinkSync(file + '.index');
    t1 = now();
    const c2 = cpu();
    const noIndex = new FileStorage(file, { readOnly: true, logger: silent });
    const openNoIndexS = now() - t1;
    const openNoIndexCpu = cpu() - c2;
    assertEq(noIndex.len(), N);
    await noIndex.close();
    result.bigFile = {
      objects: N,
      bytes: size,
      buildSeconds: +buildS.toFixed(2),
      openWithIndexSeconds: +openWithIndexS.toFixed(3),
      openWithIndexCpuSeconds: +openWithIndexCpu.toFixed(3),
      openWithoutIndexSeconds: +openNoIndexS.toFixed(3),
      openWithoutIndexCpuSeconds: +openNoIndexCpu.toFixed(3),
      openTarget: 'with index < 1 s',
      indexMB: +(indexBytes / 2 ** 20).toFixed(1),
      indexBytesPerObject: +(indexBytes / N).toFixed(1),
      loadBefore: { loads: LOADS, seconds: +loadS.toFixed(3), loadsPerSecond: Math.round(LOADS / loadS), loadsPerCpuSecond: Math.round(LOADS / loadCpu), cacheMB: 64, target: '>= 200000' },
    };
    rmSync(file, { force: true });
  }

  // 3. pack with 50 % garbage: root -> 1000 buckets -> leaves; every leaf written twice
  {
    const file = join(dir, 'pack.fs');
    const fs = new FileStorage(file, { logger: silent });
    const buckets = 1000;
    const perBucket = Math.ceil(PN / buckets);
    const leaf0 = BigInt(buckets + 1);
    const bucketOids = Array.from({ length: buckets }, (_, i) => BigInt(i + 1));
    const leafOf = (b: number, k: number) => leaf0 + BigInt(b * perBucket + k);
    const serials = new Map<bigint, bigint>();
    let tid = await commitBatch(fs, [0n], () => makeRecord({ refs: bucketOids }));
    serials.set(0n, tid);
    tid = await commitBatch(fs, bucketOids, (o) => makeRecord({ refs: Array.from({ length: perBucket }, (_, k) => leafOf(Number(o) - 1, k)) }));
    for (const o of bucketOids) serials.set(o, tid);
    const leafData = makeRecord({ value: 'x'.repeat(40) });
    const allLeaves = Array.from({ length: buckets * perBucket }, (_, i) => leaf0 + BigInt(i));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < allLeaves.length; i += 10_000) {
        const chunk = allLeaves.slice(i, i + 10_000);
        const t = await commitBatch(fs, chunk, () => leafData, serials);
        for (const o of chunk) serials.set(o, t);
      }
    }
    await fs.close();
    const before = statSync(file).size;
    const t = Date.now() / 1000 + 1;
    const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--pack-child', '--file', file, '--t', String(t)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const child = JSON.parse(out.trim().split('\n').pop()!);
    const after = statSync(file).size;
    result.pack = {
      objects: allLeaves.length + buckets + 1,
      revisions: allLeaves.length * 2 + buckets + 1,
      bytesBefore: before,
      bytesAfter: after,
      garbageFraction: +(1 - after / before).toFixed(3),
      seconds: +child.seconds.toFixed(2),
      cpuSeconds: +child.cpuSeconds.toFixed(2),
      peakRssMB: Math.round(child.peakRssMB),
      target: 'peak RSS < 512 MB',
    };
    rmSync(file, { force: true });
    rmSync(file + '.index', { force: true });
  }
  (result.machine as Record<string, unknown>).loadAverageAtEnd = os.loadavg().map((x) => +x.toFixed(2));
  if (!argStr('dir')) rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

function assertEq(a: unknown, b: unknown): void {
  if (a !== b) throw new Error(`bench self-check failed: ${String(a)} !== ${String(b)}`);
}

await main();
