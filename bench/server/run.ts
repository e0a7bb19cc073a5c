/**
 * Load generator for a ZEO 5 server: by default our `runzeo` started as a child process over a
 * temporary FileStorage (once per encoding), driven with raw ZEO 5 calls (zeo5-protocol §8, §10.1)
 * through @zeo-ts/wire's RpcConnection, so no client cache or client logic sits in the way.
 * Prints one JSON document with every figure per encoding. See bench/README.md (server).
 *
 *   node --import tsx bench/server/run.ts [--encodings M,Z] [--objects 20000] [--cold 20000]
 *        [--window 500] [--pings 5000] [--rmw-seconds 10] [--workers 4] [--counters 100]
 *        [--on-conflict resolve|abort] [--address HOST:PORT [--server-pid PID]] [--rounds 1]
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { RpcConnection, type WireValue, type EncodingLetter } from '@zeo-ts/wire';
import { ConflictError } from '@zeo-ts/storage';
import { makeRecord } from '@zeo-ts/storage/testing';

const here = dirname(fileURLToPath(import.meta.url));
const RUNZEO = resolve(here, '..', '..', 'apps', 'zeo-server', 'bin', 'runzeo.mjs');
const Z64 = Buffer.alloc(8);
/** the largest tid: loadBefore(oid, MAXTID) loads the current revision */
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');
/** every wait on the server is bounded */
const STARTUP_TIMEOUT_MS = 60_000;
/** the reference client gives up after this many vote rounds (zeo5-protocol §10.6) */
const MAX_VOTE_ROUNDS = 9;
/** pings before the measured ones (JIT warm-up of server and generator) */
const WARMUP_PINGS = 500;

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  encodings: EncodingLetter[];
  objects: number;
  perTransaction: number;
  cold: number;
  window: number;
  pings: number;
  rmwSeconds: number;
  workers: number;
  counters: number;
  onConflict: 'resolve' | 'abort';
  address: { host: string; port: number } | null;
  serverPid: number | null;
  rounds: number;
}

function parseOptions(argv: string[]): Options {
  const known = new Set(['encodings', 'objects', 'per-transaction', 'cold', 'window', 'pings', 'rmw-seconds', 'workers', 'counters', 'on-conflict', 'address', 'server-pid', 'rounds']);
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith('--') || !known.has(k.slice(2)) || i + 1 >= argv.length) {
      throw new Error(`bad option ${JSON.stringify(k)}; options: ${[...known].map((x) => `--${x}`).join(' ')}`);
    }
    given.set(k.slice(2), argv[i + 1]!);
  }
  const int = (name: string, def: number, min: number): number => {
    const s = given.get(name);
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(s)}`);
    return n;
  };
  const encodings = (given.get('encodings') ?? 'M,Z').split(',').map((e) => e.trim().toUpperCase().replace(/5$/, ''));
  for (const e of encodings) if (e !== 'M' && e !== 'Z') throw new Error(`--encodings takes M and/or Z, got ${JSON.stringify(e)}`);
  const onConflict = given.get('on-conflict') ?? 'resolve';
  if (onConflict !== 'resolve' && onConflict !== 'abort') throw new Error(`--on-conflict takes resolve or abort, got ${JSON.stringify(onConflict)}`);
  let address: Options['address'] = null;
  const a = given.get('address');
  if (a !== undefined) {
    const m = /^(.*):(\d+)$/.exec(a);
    if (!m) throw new Error(`--address must be HOST:PORT, got ${JSON.stringify(a)}`);
    address = { host: m[1] || '127.0.0.1', port: Number(m[2]) };
  }
  const o: Options = {
    encodings: encodings as EncodingLetter[],
    objects: int('objects', 20000, 1),
    perTransaction: int('per-transaction', 1000, 1),
    cold: int('cold', 20000, 1),
    window: int('window', 500, 1),
    pings: int('pings', 5000, 1),
    rmwSeconds: int('rmw-seconds', 10, 0),
    workers: int('workers', 4, 1),
    counters: int('counters', 100, 1),
    onConflict,
    address,
    serverPid: given.has('server-pid') ? int('server-pid', 0, 1) : null,
    rounds: int('rounds', 1, 1),
  };
  if (o.window > 10000) throw new Error('--window is at most 10000 (RpcConnection maxPendingCalls)');
  return o;
}

// ---------------------------------------------------------------------------------------------
// records: real ZODB records (class pickle + state pickle)

/** An object of about 100 bytes: a PersistentMapping {'data': {'value': '…'}} (makeRecord). */
function objectRecord(i: number, version: number): Buffer {
  // makeRecord's fixed part is 81 bytes; a 19-character value makes 100 bytes
  const head = `${i}.${version}:`;
  return makeRecord({ value: head.padEnd(19, 'x') });
}

const LENGTH_CLASS = Buffer.concat([Buffer.from([0x80, 0x03, 0x63]), Buffer.from('BTrees.Length\nLength\n', 'latin1'), Buffer.from([0x71, 0x00, 0x2e])]);

/**
 * A BTrees.Length.Length counter record: class pickle, then the state pickle of the int n
 * (PROTO 3, BININT n, STOP). Python servers can resolve its conflicts themselves (additively).
 */
function counterRecord(n: number): Buffer {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw new RangeError(`counter ${n} does not fit BININT`);
  const st = Buffer.alloc(8);
  st[0] = 0x80;
  st[1] = 0x03;
  st[2] = 0x4a; // BININT
  st.writeInt32LE(n, 3);
  st[7] = 0x2e;
  return Buffer.concat([LENGTH_CLASS, st]);
}

/** The value of a counter record; any record not built like counterRecord is an error. */
function counterValue(r: Buffer): number {
  const k = LENGTH_CLASS.length;
  // a counter resolved by a Python server is re-pickled: accept BININT1/BININT2/BININT forms
  if (r.length < k + 4 || !r.subarray(0, k).equals(LENGTH_CLASS) || r[k] !== 0x80 || r[r.length - 1] !== 0x2e) {
    throw new Error(`not a BTrees.Length record: ${r.toString('hex')}`);
  }
  const op = r[k + 2];
  if (op === 0x4a) return r.readInt32LE(k + 3);
  if (op === 0x4b) return r[k + 3]!;
  if (op === 0x4d) return r.readUInt16LE(k + 3);
  throw new Error(`unexpected counter state opcode 0x${op?.toString(16)} in ${r.toString('hex')}`);
}

// ---------------------------------------------------------------------------------------------
// server process and measurement helpers

interface Server {
  host: string;
  port: number;
  pid: number | null;
  stop(): Promise<void>;
}

async function startServer(letter: EncodingLetter): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-bench-server-'));
  const proc: ChildProcess = spawn(process.execPath, [RUNZEO, '-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')], {
    env: { ...process.env, ZEO_MSGPACK: letter === 'M' ? '1' : '', ZEO_TS_LOG_LEVEL: process.env.ZEO_TS_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`runzeo did not report its port within ${STARTUP_TIMEOUT_MS} ms: ${buf}`)), STARTUP_TIMEOUT_MS);
    const onData = (d: Buffer) => {
      if (buf.length < 65536) buf += d.toString();
      // the listener logs {"address":{"host":…,"port":N}} once bound (libs/server serve())
      const m = /"address":\{"host":"[^"]*","port":(\d+)\}/.exec(buf);
      if (m) {
        clearTimeout(timer);
        proc.stderr!.off('data', onData);
        proc.stderr!.resume(); // keep draining the log
        res(Number(m[1]));
      }
    };
    proc.stderr!.on('data', onData);
    proc.once('exit', (c) => {
      clearTimeout(timer);
      rej(new Error(`runzeo exited with ${c} before listening: ${buf}`));
    });
  });
  return {
    host: '127.0.0.1',
    port,
    pid: proc.pid ?? null,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLK_TCK = 100; // Linux USER_HZ

/** CPU seconds (user + system) used so far by a process, from /proc; null where unavailable. */
function processCpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

interface Meter {
  wall: number;
  serverCpu: number | null;
  clientCpu: number;
}

function meter(serverPid: number | null): Meter {
  const u = process.cpuUsage();
  return { wall: performance.now(), serverCpu: processCpuSeconds(serverPid), clientCpu: (u.user + u.system) / 1e6 };
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** rate and CPU figures of a phase of n operations */
function figures(n: number, start: Meter, serverPid: number | null, unit: string): Record<string, number | null> {
  const end = meter(serverPid);
  const seconds = (end.wall - start.wall) / 1000;
  const serverCpu = start.serverCpu !== null && end.serverCpu !== null ? end.serverCpu - start.serverCpu : null;
  return {
    [unit]: n,
    seconds: round3(seconds),
    perSecond: Math.round(n / seconds),
    serverCpuSeconds: serverCpu === null ? null : round3(serverCpu),
    // n per CPU second of the server: comparable across runs on a shared machine
    perServerCpuSecond: serverCpu ? Math.round(n / serverCpu) : null,
    clientCpuSeconds: round3(end.clientCpu - start.clientCpu),
  };
}

function connect(host: string, port: number, letter: EncodingLetter): RpcConnection {
  return new RpcConnection(net.connect(port, host), {
    role: 'client',
    encodings: [letter],
    heartbeatInterval: 0,
    maxPendingCalls: 10000,
    // invalidateTransaction and info calls from the server are expected and of no interest here
    handler: () => undefined,
  });
}

let nextTxn = 1;

/** tpc_begin + storea… + vote + tpc_finish; returns the tid. Conflicts here are errors. */
async function commit(c: RpcConnection, stores: Array<[Buffer, Buffer, Buffer]>, description: string): Promise<Buffer> {
  const id = nextTxn++;
  c.callOneWay('tpc_begin', [id, Buffer.from('bench'), Buffer.from(description), {}, null, ' ']);
  for (const [oid, serial, data] of stores) c.callOneWay('storea', [oid, serial, data, id]);
  const voted = (await c.call('vote', [id])) as WireValue[] | null;
  if (voted && voted.some((x) => !Buffer.isBuffer(x))) throw new Error(`unexpected conflict in a single-writer commit: ${JSON.stringify(voted).slice(0, 300)}`);
  const tid = await c.call('tpc_finish', [id]);
  if (!Buffer.isBuffer(tid) || tid.length !== 8) throw new Error(`tpc_finish returned ${String(tid)}, not a tid`);
  return tid;
}

async function newOids(c: RpcConnection, n: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  // bounded: each call returns at least one oid (checked)
  while (out.length < n) {
    const got = (await c.call('new_oids', [])) as Buffer[];
    if (!Array.isArray(got) || got.length === 0) throw new Error('new_oids returned no oids');
    out.push(...got);
  }
  return out.slice(0, n);
}

function loadBefore(c: RpcConnection, oid: Buffer): Promise<WireValue> {
  return c.call('loadBefore', [oid, MAXTID], { msgid: [oid, MAXTID] });
}

// ---------------------------------------------------------------------------------------------
// one encoding

async function benchEncoding(letter: EncodingLetter, o: Options): Promise<Record<string, unknown>> {
  const srv: Server = o.address
    ? { ...o.address, pid: o.serverPid, stop: async () => undefined }
    : await startServer(letter);
  try {
    const c = connect(srv.host, srv.port, letter);
    await c.call('register', ['1', false]);
    const out: Record<string, unknown> = { encoding: `${letter}5`, server: o.address ? `${srv.host}:${srv.port}` : 'runzeo (zeo-ts)' };

    // ping: the cheapest synchronous round trip (§8.1), after a short warm-up of both JITs
    for (let i = 0; i < WARMUP_PINGS; i++) await c.call('ping', []);
    let m = meter(srv.pid);
    for (let i = 0; i < o.pings; i++) await c.call('ping', []);
    const ping = figures(o.pings, m, srv.pid, 'calls');
    out.ping = { ...ping, meanMicroseconds: Math.round(((ping.seconds as number) * 1e6) / o.pings) };

    // add: new objects, perTransaction per transaction, oids allocated as a client would
    const oids: Buffer[] = [];
    const serials: Buffer[] = [];
    m = meter(srv.pid);
    for (let i = 0; i < o.objects; i += o.perTransaction) {
      const batch = await newOids(c, Math.min(o.perTransaction, o.objects - i));
      const tid = await commit(c, batch.map((oid, k) => [oid, Z64, objectRecord(i + k, 0)]), 'add');
      for (const oid of batch) {
        oids.push(oid);
        serials.push(tid);
      }
    }
    out.add = { ...figures(o.objects, m, srv.pid, 'objects'), objectsPerTransaction: o.perTransaction, recordBytes: objectRecord(0, 0).length };

    // update: the same objects again, with their current serials
    m = meter(srv.pid);
    for (let i = 0; i < o.objects; i += o.perTransaction) {
      const end = Math.min(i + o.perTransaction, o.objects);
      const stores: Array<[Buffer, Buffer, Buffer]> = [];
      for (let k = i; k < end; k++) stores.push([oids[k]!, serials[k]!, objectRecord(k, 1)]);
      const tid = await commit(c, stores, 'update');
      for (let k = i; k < end; k++) serials[k] = tid;
    }
    out.update = figures(o.objects, m, srv.pid, 'objects');

    // cold loads: one loadBefore round trip at a time (cycling over the objects)
    m = meter(srv.pid);
    for (let i = 0; i < o.cold; i++) {
      const r = (await loadBefore(c, oids[i % oids.length]!)) as [Buffer, Buffer, Buffer | null];
      if (!Array.isArray(r) || !Buffer.isBuffer(r[0])) throw new Error(`loadBefore returned ${String(r)}`);
    }
    out.coldLoads = figures(o.cold, m, srv.pid, 'loads');

    // pipelined loads: windows of o.window loadBefore calls in flight
    const pipelined = Math.max(o.cold, o.objects);
    m = meter(srv.pid);
    for (let i = 0; i < pipelined; i += o.window) {
      const batch: Promise<WireValue>[] = [];
      for (let k = i; k < Math.min(i + o.window, pipelined); k++) batch.push(loadBefore(c, oids[k % oids.length]!));
      const rs = await Promise.all(batch);
      for (const r of rs) if (!Array.isArray(r) || !Buffer.isBuffer(r[0])) throw new Error(`loadBefore returned ${String(r)}`);
    }
    out.pipelinedLoads = { ...figures(pipelined, m, srv.pid, 'loads'), window: o.window };

    // rmw: counters created in one transaction, then workers in their own processes
    const counters = await newOids(c, o.counters);
    await commit(c, counters.map((oid) => [oid, Z64, counterRecord(0)]), 'counters');
    if (o.rmwSeconds > 0) out.rmw = await rmwPhase(srv, letter, counters, o);
    c.close();
    await c.closed;
    return out;
  } finally {
    await srv.stop();
  }
}

interface WorkerResult {
  commits: number;
  conflicts: number;
  aborts: number;
  serverResolved: number;
  seconds: number;
  cpuSeconds: number;
}

async function rmwPhase(srv: Server, letter: EncodingLetter, counters: Buffer[], o: Options): Promise<Record<string, unknown>> {
  const workers: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  const results: Promise<WorkerResult>[] = [];
  for (let w = 0; w < o.workers; w++) {
    const child = fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ZEO_BENCH_WORKER: '1' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    workers.push(child);
    let onReady!: () => void;
    ready.push(new Promise<void>((r) => (onReady = r)));
    results.push(
      new Promise<WorkerResult>((res, rej) => {
        child.on('message', (msg: { ready?: true; result?: WorkerResult }) => {
          if (msg.ready) onReady();
          if (msg.result) res(msg.result);
        });
        child.once('exit', (code) => rej(new Error(`rmw worker ${w} exited with ${code} before reporting`)));
      }),
    );
    child.send({ host: srv.host, port: srv.port, letter, counters: counters.map((b) => b.toString('hex')), seed: w + 1, onConflict: o.onConflict, worker: w });
  }
  // every worker is connected and registered before the clock starts
  await Promise.race([Promise.all(ready), Promise.all(results)]);
  const m = meter(srv.pid);
  const deadline = Date.now() + o.rmwSeconds * 1000;
  for (const child of workers) child.send({ go: deadline });
  const rs = await Promise.all(results);
  const fig = figures(0, m, srv.pid, 'x');
  for (const child of workers) if (child.connected) child.disconnect();

  const commits = rs.reduce((a, r) => a + r.commits, 0);
  // the check: every successful commit added exactly one to one counter
  const check = connect(srv.host, srv.port, letter);
  await check.call('register', ['1', false]);
  let sum = 0;
  for (const oid of counters) sum += counterValue(((await loadBefore(check, oid)) as [Buffer])[0]);
  check.close();
  await check.closed;
  const slowest = Math.max(...rs.map((r) => r.seconds));
  return {
    workers: o.workers,
    counters: o.counters,
    onConflict: o.onConflict,
    seconds: round3(slowest),
    commits,
    commitsPerSecond: Math.round(commits / slowest),
    conflicts: rs.reduce((a, r) => a + r.conflicts, 0),
    aborts: rs.reduce((a, r) => a + r.aborts, 0),
    serverResolved: rs.reduce((a, r) => a + r.serverResolved, 0),
    serverCpuSeconds: fig.serverCpuSeconds,
    commitsPerServerCpuSecond: fig.serverCpuSeconds ? Math.round(commits / (fig.serverCpuSeconds as number)) : null,
    workerCpuSeconds: round3(rs.reduce((a, r) => a + r.cpuSeconds, 0)),
    counterSum: sum,
    sumMatchesCommits: sum === commits,
  };
}

// ---------------------------------------------------------------------------------------------
// rmw worker process

/** xorshift32: a deterministic choice of counters per worker */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

async function worker(): Promise<void> {
  const cfg = await new Promise<{ host: string; port: number; letter: EncodingLetter; counters: string[]; seed: number; onConflict: 'resolve' | 'abort'; worker: number }>((r) =>
    process.once('message', r as (m: unknown) => void),
  );
  const counters = cfg.counters.map((h) => Buffer.from(h, 'hex'));
  const c = connect(cfg.host, cfg.port, cfg.letter);
  await c.call('register', ['1', false]);
  const go = new Promise<number>((r) => process.on('message', (m: { go?: number }) => m.go && r(m.go)));
  process.send!({ ready: true });
  const deadline = await go;
  const rand = prng(cfg.seed * 2654435761);
  let commits = 0;
  let conflicts = 0;
  let aborts = 0;
  let serverResolved = 0;
  let txn = cfg.worker * 100_000_000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (Date.now() < deadline) {
    const oid = counters[rand() % counters.length]!;
    const [data, serial] = (await loadBefore(c, oid)) as [Buffer, Buffer];
    const id = ++txn;
    c.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.from('rmw'), {}, null, ' ']);
    c.callOneWay('storea', [oid, serial, counterRecord(counterValue(data) + 1), id]);
    let committed = false;
    for (let round = 1; round <= MAX_VOTE_ROUNDS; round++) {
      let voted: WireValue[] | null;
      try {
        voted = (await c.call('vote', [id])) as WireValue[] | null;
      } catch (e) {
        // a server without ccr that cannot resolve: ConflictError; the transaction is over (§10.4)
        if (!(e instanceof ConflictError)) throw e;
        conflicts++;
        break;
      }
      const maps = (voted ?? []).filter((x) => !Buffer.isBuffer(x)) as Array<{ oid: Buffer; serials: [Buffer, Buffer]; data: Buffer }>;
      if (maps.length === 0) {
        serverResolved += (voted ?? []).length; // oids the server resolved itself
        await c.call('tpc_finish', [id]);
        committed = true;
        break;
      }
      conflicts++;
      if (cfg.onConflict === 'abort') break;
      // client conflict resolution as a ZODB client does for BTrees.Length: committed + ours - old
      for (const cm of maps) {
        const [committedSerial, readSerial] = cm.serials;
        const old = counterValue((await c.call('loadSerial', [cm.oid, readSerial])) as Buffer);
        const now = counterValue((await c.call('loadSerial', [cm.oid, committedSerial])) as Buffer);
        c.callOneWay('storea', [cm.oid, committedSerial, counterRecord(now + counterValue(cm.data) - old), id]);
      }
    }
    if (committed) commits++;
    else {
      aborts++;
      await c.call('tpc_abort', [id]);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  c.close();
  await c.closed;
  const result: WorkerResult = { commits, conflicts, aborts, serverResolved, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  process.send!({ result });
}

// ---------------------------------------------------------------------------------------------
// main

if (process.env.ZEO_BENCH_WORKER === '1') {
  await worker();
} else {
  const o = parseOptions(process.argv.slice(2));
  const started = Date.now();
  const out: Record<string, unknown> = {
    benchmark: 'server',
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverage1: loadavg()[0], node: process.version },
    options: { ...o, address: o.address ? `${o.address.host}:${o.address.port}` : null },
    results: [] as unknown[],
  };
  for (let r = 0; r < o.rounds; r++) {
    for (const e of o.encodings) (out.results as unknown[]).push({ round: r + 1, ...(await benchEncoding(e, o)) });
  }
  (out.machine as Record<string, unknown>).loadAverage1AtEnd = loadavg()[0];
  out.seconds = round1((Date.now() - started) / 1000);
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}
