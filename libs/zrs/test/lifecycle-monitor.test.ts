// zrs §14 #46 (a disconnected secondary releases its iterator and file handle) and #52
// (zrs-nagios asks the secondary before the primary, with ZEO's ruok, and reads
// last-transaction per storage). Real sockets, real files, the primary in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '@zeo-ts/filestorage';
import { TimeStamp, p64, toHex } from '@zeo-ts/storage';
import { commit, makeRecord, ROOT_RECORD } from '@zeo-ts/storage/testing';
import { Primary, SizedMessageDecoder, encodeSized, nagiosMain } from '../src/index.ts';
import { RawClient, memoryLogger, tempDir } from './helpers.ts';

/** file descriptors of this process open on `path` (Linux /proc) */
function openHandles(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

test('zrs §14 #46: secondaries that disconnect mid catch-up or while following release their iterator and file handle', async () => {
  const d = tempDir();
  const path = join(d, 'Data.fs');
  const m = memoryLogger();
  const p = new Primary(new FileStorage(path), { host: '127.0.0.1', port: 0 }, { logger: m.log });
  await p.listening;
  let last = await commit(p, [{ oid: 0n, serial: 0n, data: ROOT_RECORD }]);
  for (let i = 1; i <= 200; i++) last = await commit(p, [{ oid: BigInt(i), serial: 0n, data: makeRecord({ value: 'x'.repeat(2000) }) }]);
  const baseline = openHandles(path);
  assert.ok(baseline >= 1, 'the storage itself has the file open');
  const sawDisconnect = () => m.lines.filter((l) => / Disconnected$/.test(l.msg)).length;
  for (let round = 0; round < 10; round++) {
    const clients = [new RawClient(p.port), new RawClient(p.port), new RawClient(p.port)];
    for (const c of clients) await c.ready;
    clients[0]!.send('zrs2.0');
    clients[0]!.send(p64(0n)); // catching up from the start
    clients[1]!.send('zrs2.0');
    clients[1]!.send(p64(last)); // up to date: following
    clients[2]!.send('zrs2.0'); // handshake never finished
    await clients[0]!.waitCount(8);
    // both producers are running (catching up, and waiting for the next commit) before the close
    const starts = () => m.lines.filter((l) => /: start [0-9a-f]{16} /.test(l.msg)).length;
    for (let guard = 0; starts() < 2 * (round + 1) && guard < 1e6; guard++) await new Promise((r) => setImmediate(r));
    assert.equal(openHandles(path), baseline + 2, `round ${round}: one iterator handle per started secondary`);
    const before = sawDisconnect();
    for (const c of clients) c.close();
    for (const c of clients) await c.gone;
    for (let guard = 0; sawDisconnect() < before + 3 && guard < 1e6; guard++) await new Promise((r) => setImmediate(r));
    assert.equal(sawDisconnect(), before + 3, `round ${round}: every connection was seen closing`);
    assert.equal(openHandles(path), baseline, `round ${round}: no iterator file handle left open`);
  }
  // the primary still serves a new secondary completely afterwards
  const c = new RawClient(p.port);
  await c.ready;
  c.send('zrs2.0');
  c.send(p64(0n));
  const msgs = await c.waitCount(201 * 4);
  assert.equal(msgs.length, 201 * 4);
  c.close();
  await p.close();
});

/** A fake ZEO server answering ruok with the given storages' last transactions; records accepts. */
function fakeZeo(role: string, order: string[], storages: Record<string, bigint>) {
  const server = net.createServer((sock) => {
    order.push(role);
    const dec = new SizedMessageDecoder(1 << 20);
    sock.write(encodeSized(Buffer.from('Z5')));
    sock.on('data', (d) => {
      for (const msg of dec.push(d)) {
        if (msg.toString() === 'ruok') {
          const doc: Record<string, Record<string, unknown>> = {};
          for (const [name, tid] of Object.entries(storages)) doc[name] = { 'last-transaction': toHex(tid), connections: 0 };
          sock.end(encodeSized(Buffer.from(JSON.stringify(doc))));
        }
      }
    });
    sock.on('error', () => undefined);
  });
  const listening = new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  return { server, listening };
}

test('zrs §14 #52: zrs-nagios queries the secondary first, with ruok, and compares last-transaction per storage', async () => {
  const order: string[] = [];
  const t = (secs: number) => TimeStamp.fromTime(secs).raw;
  const pri = fakeZeo('primary', order, { '1': t(1_700_000_100), '2': t(1_700_000_050) });
  const sec = fakeZeo('secondary', order, { '1': t(1_700_000_090), '2': t(1_700_000_050) });
  const [pp, sp] = await Promise.all([pri.listening, sec.listening]);
  const out: string[] = [];
  const code = await nagiosMain(['-w', '5', '-e', '20', `127.0.0.1:${pp}`, `127.0.0.1:${sp}`], (s) => out.push(s));
  assert.deepEqual(order, ['secondary', 'primary']);
  // storage 1 lags 10 s (warning at 5), storage 2 is current: the worst wins
  assert.equal(code, 1, out.join(''));
  assert.match(out.join(''), /10\.0/);
  // a secondary that cannot be reached: the primary is never asked
  const before = order.length;
  await new Promise<void>((r) => sec.server.close(() => r()));
  const out2: string[] = [];
  const code2 = await nagiosMain(['-w', '5', `127.0.0.1:${pp}`, `127.0.0.1:${sp}`], (s) => out2.push(s));
  assert.equal(code2, 2);
  assert.match(out2.join(''), new RegExp(`^Can't connect to secondary at '127\\.0\\.0\\.1:${sp}': `));
  assert.equal(order.length, before, 'the primary was not contacted');
  await new Promise<void>((r) => pri.server.close(() => r()));
});
