/**
 * Load generator for our ZEO server (runzeo over a temporary FileStorage), speaking the raw ZEO 5
 * protocol in both encodings through @zeo-ts/wire's RpcConnection. Prints one JSON document.
 *
 *   node --import tsx bench/server/run.ts [--objects 20000] [--rmw 200] [--encodings M,Z]
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { RpcConnection, type WireValue } from '@zeo-ts/wire';

const here = dirname(fileURLToPath(import.meta.url));
const RUNZEO = resolve(here, '..', '..', 'apps', 'zeo-server', 'bin', 'runzeo.mjs');
const Z64 = Buffer.alloc(8);
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

/** A BTrees.Length-like record holding n (so the server could even resolve it). */
function counterRecord(n: number): Buffer {
  const cls = Buffer.concat([Buffer.from([0x80, 0x03, 0x63]), Buffer.from('BTrees.Length\nLength\n'), Buffer.from([0x71, 0x00, 0x2e])]);
  const st = Buffer.alloc(8);
  st[0] = 0x80;
  st[1] = 0x03;
  st[2] = 0x4a;
  st.writeInt32LE(n, 3);
  st[7] = 0x2e;
  return Buffer.concat([cls, st]);
}
function counterValue(r: Buffer): number {
  return r.readInt32LE(r.length - 5);
}
function payload(i: number): Buffer {
  const b = Buffer.alloc(100, 0x61);
  b.writeUInt32BE(i, 0);
  return b;
}

function connect(port: number): RpcConnection {
  return new RpcConnection(net.connect(port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
}

async function startServer(letter: 'M' | 'Z'): Promise<{ port: number; proc: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'zeo-ts-bench-server-'));
  const proc = spawn(process.execPath, [RUNZEO, '-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')], {
    env: { ...process.env, ZEO_MSGPACK: letter === 'M' ? '1' : '', ZEO_TS_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    proc.stderr!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /"port":(\d+)/.exec(buf);
      if (m) res(Number(m[1]));
    });
    proc.on('exit', (c) => rej(new Error(`runzeo exited ${c}: ${buf}`)));
  });
  proc.stderr!.resume();
  return { port, proc, dir };
}

let txn = 1;
async function commitMany(c: RpcConnection, stores: Array<[Buffer, Buffer, Buffer]>): Promise<Buffer> {
  const id = txn++;
  c.callOneWay('tpc_begin', [id, Buffer.from('bench'), Buffer.alloc(0), {}, null, ' ']);
  for (const [o, s, d] of stores) c.callOneWay('storea', [o, s, d, id]);
  await c.call('vote', [id]);
  return (await c.call('tpc_finish', [id])) as Buffer;
}

function rate(n: number, ms: number): number {
  return Math.round((n / ms) * 1000);
}

async function benchEncoding(letter: 'M' | 'Z', objects: number, rmw: number): Promise<Record<string, unknown>> {
  const srv = await startServer(letter);
  try {
    const c = connect(srv.port);
    await c.call('register', ['1', false]);
    // ping round trips
    let t = performance.now();
    const pings = 2000;
    for (let i = 0; i < pings; i++) await c.call('ping', []);
    const pingMs = performance.now() - t;
    // root + objects
    const oids: Buffer[] = [];
    while (oids.length < objects) oids.push(...((await c.call('new_oids', [])) as Buffer[]));
    oids.length = objects;
    await commitMany(c, [[Z64, Z64, counterRecord(0)]]);
    t = performance.now();
    const serials: Buffer[] = [];
    for (let i = 0; i < objects; i += 1000) {
      const batch = oids.slice(i, i + 1000);
      const tid = await commitMany(c, batch.map((o, k) => [o, Z64, payload(i + k)]));
      for (let k = 0; k < batch.length; k++) serials.push(tid);
    }
    const addMs = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < objects; i += 1000) {
      const batch = oids.slice(i, i + 1000);
      const tid = await commitMany(c, batch.map((o, k) => [o, serials[i + k]!, payload(i + k + 1)]));
      for (let k = 0; k < batch.length; k++) serials[i + k] = tid;
    }
    const updateMs = performance.now() - t;
    // cold loads: one round trip each
    const cold = Math.min(objects, 10000);
    t = performance.now();
    for (let i = 0; i < cold; i++) await c.call('loadBefore', [oids[i]!, MAXTID], { msgid: [oids[i]!, MAXTID] });
    const coldMs = performance.now() - t;
    // pipelined loads: all in flight
    t = performance.now();
    const window = 5000;
    for (let i = 0; i < objects; i += window) {
      await Promise.all(oids.slice(i, i + window).map((o) => c.call('loadBefore', [o, MAXTID], { msgid: [o, MAXTID] })));
    }
    const pipeMs = performance.now() - t;
    c.close();
    // 4 processes read-modify-write the same counter (root, oid 0): conflicts come back as ccr maps
    t = performance.now();
    const results = await Promise.all(
      [0, 1, 2, 3].map(
        (w) =>
          new Promise<{ commits: number; conflicts: number; ms: number }>((res, rej) => {
            const child = fork(fileURLToPath(import.meta.url), ['--worker', String(srv.port), String(rmw), String(w)], {
              execArgv: ['--import', 'tsx'],
              stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
            });
            child.on('message', (m) => res(m as { commits: number; conflicts: number; ms: number }));
            child.on('exit', (code) => (code ? rej(new Error(`worker exited ${code}`)) : undefined));
          }),
      ),
    );
    const rmwMs = Math.max(...results.map((r) => r.ms));
    const check = connect(srv.port);
    await check.call('register', ['1', false]);
    const [data] = (await check.call('loadBefore', [Z64, MAXTID])) as [Buffer];
    const finalValue = counterValue(data);
    check.close();
    return {
      encoding: `${letter}5`,
      ping: { calls: pings, perSecond: rate(pings, pingMs), meanMicroseconds: Math.round((pingMs * 1000) / pings) },
      add: { objects, objectsPerSecond: rate(objects, addMs), objectsPerTransaction: 1000, bytesPerObject: 100 },
      update: { objects, objectsPerSecond: rate(objects, updateMs) },
      coldLoads: { loads: cold, perSecond: rate(cold, coldMs) },
      pipelinedLoads: { loads: objects, perSecond: rate(objects, pipeMs), window },
      rmw4: {
        workers: 4,
        commitsPerWorker: rmw,
        commitsPerSecond: rate(4 * rmw, rmwMs),
        conflicts: results.reduce((a, r) => a + r.conflicts, 0),
        finalCounter: finalValue,
        lostUpdates: 4 * rmw - finalValue,
      },
    };
  } finally {
    srv.proc.kill('SIGTERM');
    await new Promise((r) => srv.proc.on('exit', r));
    rmSync(srv.dir, { recursive: true, force: true });
  }
}

async function worker(port: number, n: number, w: number): Promise<void> {
  const c = connect(port);
  await c.call('register', ['1', false]);
  let conflicts = 0;
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const [data, serial] = (await c.call('loadBefore', [Z64, MAXTID])) as [Buffer, Buffer];
    const id = w * 1_000_000 + i + 1;
    c.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    c.callOneWay('storea', [Z64, serial, counterRecord(counterValue(data) + 1), id]);
    for (let round = 0; round < 1000; round++) {
      const v = (await c.call('vote', [id])) as WireValue[];
      if (v.every((x) => Buffer.isBuffer(x))) break;
      conflicts++;
      const m = v[0] as { serials: [Buffer, Buffer]; data: Buffer };
      const committed = counterValue((await c.call('loadSerial', [Z64, m.serials[0]])) as Buffer);
      const old = counterValue((await c.call('loadSerial', [Z64, m.serials[1]])) as Buffer);
      c.callOneWay('storea', [Z64, m.serials[0], counterRecord(committed + counterValue(m.data) - old), id]);
    }
    await c.call('tpc_finish', [id]);
  }
  const ms = performance.now() - t;
  c.close();
  process.send!({ commits: n, conflicts, ms });
  process.disconnect();
}

if (process.argv[2] === '--worker') {
  await worker(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
} else {
  const objects = Number(arg('objects', '20000'));
  const rmw = Number(arg('rmw', '200'));
  const encodings = arg('encodings', 'M,Z').split(',') as Array<'M' | 'Z'>;
  const started = Date.now();
  const out: Record<string, unknown> = {
    benchmark: 'server',
    machine: { cpus: cpus().length, loadAverage1m: loadavg()[0], node: process.version },
    results: [] as unknown[],
  };
  for (const e of encodings) (out.results as unknown[]).push(await benchEncoding(e, objects, rmw));
  out.seconds = Math.round((Date.now() - started) / 100) / 10;
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}
