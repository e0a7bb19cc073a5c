// Concurrency evidence against a real `runzeo` child process over a FileStorage, in both
// encodings (issue 3 §5): several clients increment the same counters at once; stale writes
// come back as conflicts (ccr maps in the default mode, ConflictError without ccr), never as
// lost updates, and the counters' sum equals the number of increments that committed.
// Checklist: zeo5-protocol S-16, S-17, S-19, S-20, S-24; §10.5, §10.6.
// With group commit on (the default) the run also checks that each client hears of the tids of
// other clients' transactions and of its own in increasing order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RpcConnection, type EncodingLetter } from '@zeo-ts/wire';
import { startRunzeo, tempDir } from './helpers.ts';

const Z64 = Buffer.alloc(8);
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');
const CLIENTS = 4;
const INCREMENTS = 20;
const COUNTERS = 3;
/** vote rounds per transaction before giving up (the reference client stops after 9) */
const MAX_ROUNDS = 200;

const HEAD = Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e', 'hex');
/** A record holding a 32-bit counter (BININT) after a class pickle. */
function counter(v: number): Buffer {
  const b = Buffer.from([0x80, 0x03, 0x4a, 0, 0, 0, 0, 0x2e]);
  b.writeInt32LE(v, 3);
  return Buffer.concat([HEAD, b]);
}
function valueOf(data: Buffer): number {
  assert.equal(data[data.length - 6], 0x4a, 'counter record');
  return data.readInt32LE(data.length - 5);
}

interface Client {
  conn: RpcConnection;
  invalidationTids: bigint[];
  /** invalidation tids and the client's own tpc_finish tids, in the order their frames arrived */
  lastTids: bigint[];
}

function connect(port: number): Client {
  const c: Client = { conn: null as unknown as RpcConnection, invalidationTids: [], lastTids: [] };
  c.conn = new RpcConnection(net.connect(port, '127.0.0.1'), {
    role: 'client',
    heartbeatInterval: 0,
    handler: (method, args) => {
      if (method === 'invalidateTransaction') {
        c.invalidationTids.push((args[0] as Buffer).readBigUInt64BE(0));
        c.lastTids.push((args[0] as Buffer).readBigUInt64BE(0));
      }
    },
  });
  return c;
}

type ConflictMap = { oid: Buffer; serials: [Buffer, Buffer]; data: Buffer };

async function load(c: Client, oid: Buffer): Promise<[Buffer, Buffer]> {
  const r = (await c.conn.call('loadBefore', [oid, MAXTID])) as [Buffer, Buffer, null];
  return [r[0], r[1]];
}

async function run(letter: EncodingLetter, ccr: boolean): Promise<void> {
  const dir = tempDir('zeo-ts-concurrency-');
  writeFileSync(
    join(dir, 'zeo.conf'),
    `<zeo>\n  address 127.0.0.1:0\n  msgpack ${letter === 'M'}\n  client-conflict-resolution ${ccr}\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n`,
  );
  const r = await startRunzeo(['-C', 'zeo.conf'], { cwd: dir, env: { ZEO_TS_LOG_LEVEL: 'info' } });
  try {
    const clients = Array.from({ length: CLIENTS }, () => connect(r.port));
    for (const c of clients) await c.conn.call('register', ['1', false]);
    const oids = (await clients[0]!.conn.call('new_oids', [COUNTERS])) as Buffer[];
    // create the counters at 0
    const c0 = clients[0]!;
    c0.conn.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    for (const oid of oids) c0.conn.callOneWay('storea', [oid, Z64, counter(0), 1]);
    assert.deepEqual(await c0.conn.call('vote', [1]), []);
    const firstTid = (await c0.conn.call('tpc_finish', [1])) as Buffer;

    let txnid = 100;
    let conflicts = 0;
    let committed = 0;
    const perCounter = new Array<number>(COUNTERS).fill(0);
    await Promise.all(
      clients.map(async (c, ci) => {
        for (let i = 0; i < INCREMENTS; i++) {
          // each transaction increments one or two counters (two when i is odd)
          const targets = i % 2 ? [(ci + i) % COUNTERS, (ci + i + 1) % COUNTERS] : [(ci + i) % COUNTERS];
          for (let attempt = 0; ; attempt++) {
            assert.ok(attempt < MAX_ROUNDS, 'bounded retries');
            const id = txnid++;
            const seen = new Map<number, [number, Buffer]>();
            for (const k of targets) {
              const [data, serial] = await load(c, oids[k]!);
              seen.set(k, [valueOf(data), serial]);
            }
            c.conn.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
            for (const k of targets) c.conn.callOneWay('storea', [oids[k]!, seen.get(k)![1], counter(seen.get(k)![0] + 1), id]);
            let ok = false;
            try {
              for (let round = 0; round < MAX_ROUNDS; round++) {
                const v = (await c.conn.call('vote', [id])) as Array<Buffer | ConflictMap>;
                if (v.every((x) => Buffer.isBuffer(x))) {
                  ok = true;
                  break;
                }
                assert.ok(ccr, 'conflict maps only in ccr mode (S-19)');
                conflicts++;
                // resolve like an application would: committed value + my increment
                for (const m of v as ConflictMap[]) {
                  const committedData = (await c.conn.call('loadSerial', [m.oid, m.serials[0]])) as Buffer;
                  const oldData = (await c.conn.call('loadSerial', [m.oid, m.serials[1]])) as Buffer;
                  assert.deepEqual(m.data.subarray(0, HEAD.length), HEAD, 'the conflict map carries the data sent');
                  const mine = valueOf(m.data) - valueOf(oldData);
                  assert.equal(mine, 1);
                  c.conn.callOneWay('storea', [m.oid, m.serials[0], counter(valueOf(committedData) + mine), id]);
                }
              }
            } catch (e) {
              assert.ok(!ccr, `vote failed in ccr mode: ${(e as Error).message}`);
              assert.match(String((e as { pythonClass?: string }).pythonClass), /ConflictError/, 'a stale write is a ConflictError (S-20)');
              conflicts++;
              // the transaction is cleared by the failed vote; tpc_abort replies nil
              assert.equal(await c.conn.call('tpc_abort', [id]), null);
              continue;
            }
            assert.ok(ok, 'vote settled within the bound');
            // the reply is seen in frame order with the invalidations (onReply runs synchronously)
            await c.conn.call('tpc_finish', [id], { onReply: (tid) => c.lastTids.push((tid as Buffer).readBigUInt64BE(0)) });
            committed++;
            for (const k of targets) perCounter[k]!++;
            break;
          }
        }
      }),
    );
    assert.equal(committed, CLIENTS * INCREMENTS);
    // whatever the interleaving was, a write based on the first revision is now stale: it must be
    // refused (a conflict map in ccr mode, ConflictError otherwise), never committed
    {
      const c = clients[1]!;
      c.conn.callOneWay('tpc_begin', [99, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      c.conn.callOneWay('storea', [oids[0]!, firstTid, counter(1000), 99]);
      if (ccr) {
        const v = (await c.conn.call('vote', [99])) as ConflictMap[];
        assert.equal(v.length, 1);
        assert.deepEqual(v[0]!.serials[1], firstTid);
      } else {
        await assert.rejects(c.conn.call('vote', [99]), (e: { pythonClass?: string }) => /ConflictError/.test(String(e.pythonClass)));
      }
      assert.equal(await c.conn.call('tpc_abort', [99]), null);
    }
    // sum check on a fresh connection: every committed increment is there, none twice
    const fresh = connect(r.port);
    await fresh.conn.call('register', ['1', true]);
    let sum = 0;
    for (let k = 0; k < COUNTERS; k++) {
      const [data] = await load(fresh, oids[k]!);
      assert.equal(valueOf(data), perCounter[k], `counter ${k}`);
      sum += valueOf(data);
    }
    const expected = perCounter.reduce((a, b) => a + b, 0);
    assert.equal(sum, expected);
    assert.equal(expected, CLIENTS * INCREMENTS * 1.5);
    // invalidations reached every client in strictly increasing tid order (S-24)
    for (const c of clients) {
      await c.conn.call('ping', []);
      for (let i = 1; i < c.invalidationTids.length; i++) assert.ok(c.invalidationTids[i]! > c.invalidationTids[i - 1]!);
      // and a client's own finish tids interleave with them in tid order too: its last tid only
      // grows (a stock client's cache refuses anything else), with group commit as without
      for (let i = 1; i < c.lastTids.length; i++) assert.ok(c.lastTids[i]! > c.lastTids[i - 1]!, `tid ${i} of ${c.lastTids.length} goes backwards`);
      c.conn.close();
    }
    fresh.conn.close();
    console.log(JSON.stringify({ letter, ccr, committed, conflicts, sum }));
  } finally {
    assert.equal(await r.stop(), 0);
  }
}

for (const letter of ['M', 'Z'] as const) {
  test(`${letter}5 runzeo child, ccr: ${CLIENTS} clients increment shared counters; conflicts resolved, sum check holds (S-17, S-19, S-24)`, { timeout: 120_000 }, () => run(letter, true));
  test(`${letter}5 runzeo child, no ccr: ${CLIENTS} clients increment shared counters; ConflictError and retry, sum check holds (S-17, S-20, S-24)`, { timeout: 120_000 }, () => run(letter, false));
}
