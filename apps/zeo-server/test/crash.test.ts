// Nothing acknowledged is lost: kill -9 a real runzeo child in the middle of a commit load from
// several clients (the server's group commit overlaps finishes with fdatasyncs), restart it on
// the same file, and find every transaction whose tpc_finish reply arrived, with its data.
// Checklist: zeo5-protocol S-17, S-18; filestorage §16 #13 (durable before tpc_finish returns),
// #15 (a crash at any point reopens to the committed transactions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { RpcConnection } from '@zeo-ts/wire';
import { startRunzeo, tempDir } from './helpers.ts';

const Z64 = Buffer.alloc(8);
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');
const CLIENTS = 4;
const ROUNDS = 3;
/** the record of a PersistentMapping-like object carrying a distinct text */
function record(text: string): Buffer {
  const head = Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e', 'hex');
  const body = Buffer.from(text, 'latin1');
  return Buffer.concat([head, Buffer.from([0x80, 0x03, 0x43, body.length]), body, Buffer.from([0x2e])]);
}

function connect(port: number): RpcConnection {
  const conn = new RpcConnection(net.connect(port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0, handler: () => undefined });
  conn.on?.('error', () => undefined);
  return conn;
}

test('kill -9 of runzeo under a 4-client commit load loses no acknowledged transaction (S-17, S-18; filestorage §16 #13, #15)', { timeout: 180_000 }, async () => {
  const dir = tempDir('zeo-ts-crash-');
  const acked: Array<{ oid: Buffer; tid: Buffer; data: Buffer }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    const r = await startRunzeo(['-a', '127.0.0.1:0', '-f', 'Data.fs'], { cwd: dir, env: { ZEO_TS_LOG_LEVEL: 'info' } });
    const conns = Array.from({ length: CLIENTS }, () => connect(r.port));
    for (const c of conns) await c.call('register', ['1', false]);
    // kill after a number of acknowledged commits that differs per round
    const killAfter = acked.length + 40 + round * 37;
    let killed = false;
    const dead = r.exited;
    await Promise.all(
      conns.map(async (c, ci) => {
        for (let i = 0; i < 10_000 && !killed; i++) {
          try {
            const [oid] = (await c.call('new_oids', [1])) as Buffer[];
            const id = i + 1;
            const data = record(`round ${round} client ${ci} txn ${i}`);
            c.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
            c.callOneWay('storea', [oid!, Z64, data, id]);
            await c.call('vote', [id]);
            const tid = (await c.call('tpc_finish', [id])) as Buffer;
            acked.push({ oid: oid!, tid, data });
            if (!killed && acked.length >= killAfter) {
              killed = true;
              r.proc.kill('SIGKILL');
            }
          } catch {
            // the server died under this call: whatever was not acknowledged may or may not be there
            return;
          }
        }
      }),
    );
    await dead;
    for (const c of conns) c.close();
  }
  // restart once more and check every acknowledged transaction through the server ...
  const r = await startRunzeo(['-a', '127.0.0.1:0', '-f', 'Data.fs'], { cwd: dir, env: { ZEO_TS_LOG_LEVEL: 'info' } });
  const c = connect(r.port);
  await c.call('register', ['1', true]);
  for (const a of acked) {
    const [data, tid] = (await c.call('loadBefore', [a.oid, MAXTID])) as [Buffer, Buffer, null];
    assert.deepEqual(tid, a.tid, `oid ${a.oid.toString('hex')}: the acknowledged tid`);
    assert.deepEqual(data, a.data);
  }
  c.close();
  assert.equal(await r.stop(), 0);
  // ... and the file is well formed, its transactions in increasing tid order
  const fs = await FileStorage.open(join(dir, 'Data.fs'), { readOnly: true });
  let last = -1n;
  let n = 0;
  for await (const t of fs.iterator()) {
    assert.ok(t.tid > last, 'tids increase');
    last = t.tid;
    n++;
  }
  assert.ok(n >= acked.length, `${n} transactions on file, ${acked.length} acknowledged`);
  await fs.close();
});
