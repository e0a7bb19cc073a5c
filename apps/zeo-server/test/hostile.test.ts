// Hostile input against a real `runzeo` child process, in both encodings (issue 3 §5):
// random and mutated frames, oversized and truncated frames, truncated pickles, forbidden
// pickle globals, wrong arities, unknown methods and calls out of order. Every case must end in
// a reply (usually an error reply) or a closed connection; the server stays up, a second client
// registered before the barrage keeps committing and loading throughout, and the server's RSS
// stays bounded (VmRSS from /proc/<pid>/status before and after).
// Checklist: zeo5-protocol W-1, W-2, S-2, S-4, S-5, S-7, S-9, S-12, S-26, S-27; §4.5, §5.5, §7 (Z5 globals).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RpcConnection, FrameDecoder, encodeFrame, codecFor, type EncodingLetter, type Message, type WireValue } from '@zeo-ts/wire';
import { startRunzeo, tempDir, type Runzeo } from './helpers.ts';
import { seededRandom as prng } from '@zeo-ts/storage/testing';

const Z64 = Buffer.alloc(8);
const MAXTID = Buffer.from('7fffffffffffffff', 'hex');
/** random frames and mutations per encoding (deterministic, seeded) */
const RANDOM_CASES = 120;
/** RSS growth tolerated across the whole barrage */
const RSS_BOUND_MB = 96;


function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmRSS in /proc status');
  return Number(m[1]);
}

/** A persistent.mapping.PersistentMapping-classed record holding small int v (protocol 3). */
function rec(v: number): Buffer {
  return Buffer.concat([
    Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e', 'hex'),
    Buffer.from([0x80, 0x03, 0x4b, v & 0xff, 0x2e]),
  ]);
}

type Outcome = 'closed' | 'answered';

/**
 * A raw connection: reads the announcement, answers it, then writes `payloads` (already framed
 * bytes) and finally, if still open, a `ping` call with msgid 424242. Resolves 'answered' when a
 * reply to that ping (or any reply) arrives, 'closed' when the server closes the connection.
 */
function rawCase(port: number, letter: EncodingLetter, build: () => Buffer[], opts: { endAfter?: boolean } = {}): Promise<{ outcome: Outcome; replies: Message[] }> {
  const codec = codecFor(letter)!;
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const dec = new FrameDecoder(1 << 20);
    let greeted = false;
    let settled = false;
    const replies: Message[] = [];
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve({ outcome, replies });
    };
    sock.on('error', () => undefined);
    sock.on('close', () => finish('closed'));
    sock.on('data', (d: Buffer) => {
      let frames: Buffer[];
      try {
        frames = dec.push(d) as Buffer[];
      } catch (e) {
        reject(e as Error);
        return;
      }
      for (const f of frames) {
        if (!greeted) {
          greeted = true;
          assert.equal(f.toString('latin1'), `${letter}5`, 'announcement (S-1)');
          sock.write(encodeFrame(Buffer.from(`${letter}5`)));
          for (const p of build()) sock.write(p);
          if (opts.endAfter) {
            sock.end();
            continue;
          }
          sock.write(encodeFrame(codec.encode({ msgid: 424242, flags: false, method: 'ping', args: [] })));
          continue;
        }
        const m = codec.decode(f);
        replies.push(m);
        if (m.msgid === 424242) finish('answered');
      }
    });
  });
}

/** A well-formed call, framed. */
function frame(letter: EncodingLetter, msgid: WireValue, oneWay: boolean, method: string, args: WireValue[]): Buffer {
  return encodeFrame(codecFor(letter)!.encode({ msgid, flags: oneWay, method, args }));
}

const REGISTER = (l: EncodingLetter) => frame(l, 1, false, 'register', ['1', false]);

/** Valid message payloads that the mutation cases start from. */
function seeds(l: EncodingLetter): Buffer[] {
  const c = codecFor(l)!;
  const m = (msgid: WireValue, oneWay: boolean, method: string, args: WireValue[]) => c.encode({ msgid, flags: oneWay, method, args });
  return [
    m(1, false, 'register', ['1', false]),
    m(2, false, 'loadBefore', [Z64, MAXTID]),
    m([Z64, MAXTID], false, 'loadBefore', [Z64, MAXTID]),
    m(0, true, 'tpc_begin', [7, Buffer.from('u'), Buffer.from('d'), {}, null, ' ']),
    m(0, true, 'storea', [Z64, Z64, rec(3), 7]),
    m(3, false, 'vote', [7]),
    m(4, false, 'new_oids', [5]),
    m(5, false, 'history', [Z64, 3]),
  ];
}

/** The other client: registered before the barrage, it must keep working throughout. */
class Bystander {
  conn: RpcConnection;
  txn = 1_000_000;
  commits = 0;
  constructor(port: number) {
    this.conn = new RpcConnection(net.connect(port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0, handler: () => undefined });
  }
  async check(oid: Buffer): Promise<void> {
    let cur: [Buffer, Buffer, null] | null;
    try {
      cur = (await this.conn.call('loadBefore', [oid, MAXTID])) as [Buffer, Buffer, null] | null;
    } catch (e) {
      if ((e as { pythonClass?: string }).pythonClass !== 'ZODB.POSException.POSKeyError') throw e;
      cur = null; // not stored yet
    }
    const serial = cur ? cur[1] : Z64;
    const v = cur ? cur[0][cur[0].length - 2]! : 0;
    const id = this.txn++;
    this.conn.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
    this.conn.callOneWay('storea', [oid, serial, rec(v + 1), id]);
    assert.deepEqual(await this.conn.call('vote', [id]), [], 'bystander commit without conflict');
    const tid = (await this.conn.call('tpc_finish', [id])) as Buffer;
    const after = (await this.conn.call('loadBefore', [oid, MAXTID])) as [Buffer, Buffer, null];
    assert.deepEqual(after[1], tid);
    assert.equal(after[0][after[0].length - 2], (v + 1) & 0xff);
    this.commits++;
  }
}

async function withServer(letter: EncodingLetter, body: (r: Runzeo, dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir('zeo-ts-hostile-');
  const r = await startRunzeo(['-a', '127.0.0.1:0', '-f', join(dir, 'Data.fs')], {
    cwd: dir,
    env: { ZEO_TS_LOG_LEVEL: 'info', ...(letter === 'M' ? { ZEO_MSGPACK: '1' } : { ZEO_MSGPACK: '' }) },
  });
  try {
    await body(r, dir);
  } finally {
    assert.equal(r.proc.exitCode, null, `server still running (stderr tail: ${r.stderr().slice(-2000)})`);
    assert.equal(await r.stop(), 0);
  }
}

for (const letter of ['M', 'Z'] as const) {
  test(`${letter}5 runzeo child: bounded fuzz of random/mutated/oversized/truncated frames; server stays up, a bystander keeps committing, RSS bounded (W-1, W-2, S-2, S-4, S-9)`, { timeout: 120_000 }, async () => {
    await withServer(letter, async (r) => {
      const pid = r.proc.pid!;
      const by = new Bystander(r.port);
      await by.conn.call('register', ['1', false]);
      const [oid] = (await by.conn.call('new_oids', [1])) as Buffer[];
      await by.check(oid!);
      await by.check(oid!);
      const rssBefore = rssKb(pid);
      const rand = prng(letter === 'M' ? 0x5eed : 0xc0ffee);
      const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
      const outcomes: Record<string, Record<Outcome, number>> = {};
      const note = (kind: string, o: Outcome) => {
        outcomes[kind] ??= { closed: 0, answered: 0 };
        outcomes[kind]![o]++;
      };

      // 1. random frames after the handshake (with and without a prior register)
      for (let i = 0; i < RANDOM_CASES; i++) {
        const len = 1 + Math.floor(rand() * 200);
        const pre = i % 2 === 0 ? [REGISTER(letter)] : [];
        const { outcome } = await rawCase(r.port, letter, () => [...pre, encodeFrame(bytes(len))]);
        note('random', outcome);
        if (i % 20 === 0) await by.check(oid!);
      }
      // 2. mutated valid messages: flipped bytes, truncated payloads (truncated pickles in Z5), appended junk
      const base = seeds(letter);
      for (let i = 0; i < RANDOM_CASES; i++) {
        const s = Buffer.from(base[i % base.length]!);
        const kind = i % 3;
        let p: Buffer;
        if (kind === 0) {
          p = s;
          for (let k = 0, n = 1 + Math.floor(rand() * 4); k < n; k++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
        } else if (kind === 1) {
          p = s.subarray(0, Math.floor(rand() * s.length));
        } else {
          p = Buffer.concat([s, bytes(1 + Math.floor(rand() * 8))]);
        }
        const pre = i % 2 === 0 ? [REGISTER(letter)] : [];
        const { outcome } = await rawCase(r.port, letter, () => [...pre, encodeFrame(p)]);
        note(['flipped', 'truncated', 'appended'][kind]!, outcome);
        if (i % 20 === 0) await by.check(oid!);
      }
      // 3. oversized frame lengths close the connection (W-2): above the 256 MiB maximum, and 4 GiB-1
      for (const len of [0xffffffff, 256 * 1024 * 1024 + 1]) {
        const h = Buffer.alloc(4);
        h.writeUInt32BE(len);
        const { outcome } = await rawCase(r.port, letter, () => [REGISTER(letter), h, bytes(64)]);
        assert.equal(outcome, 'closed', `frame length ${len} closes`);
        note('oversized', outcome);
      }
      // 4. a frame announcing 200 MB that never completes, then the client goes away: nothing may be
      //    allocated for the announced length (RSS check below), the server just sees EOF (W-1)
      for (let i = 0; i < 5; i++) {
        const h = Buffer.alloc(4);
        h.writeUInt32BE(200 * 1024 * 1024);
        const { outcome } = await rawCase(r.port, letter, () => [REGISTER(letter), h, bytes(1000)], { endAfter: true });
        note('incomplete', outcome);
      }
      // 5. a bad handshake answer closes without a reply (S-2)
      for (const answer of ['X5', `${letter}4`, '', 'ruokruok']) {
        const sock = net.connect(r.port, '127.0.0.1');
        sock.on('error', () => undefined);
        sock.resume();
        sock.write(encodeFrame(Buffer.from(answer)));
        await new Promise((res) => sock.on('close', res));
        note('bad handshake', 'closed');
      }
      // 6. Z5 only: pickles naming globals outside the allowed set, and truncated pickles (§7)
      if (letter === 'Z') {
        const evil = [
          // (0, False, 'ping', os.system('true')) — GLOBAL os system + REDUCE
          Buffer.from('\x80\x03(K\x00\x89X\x04\x00\x00\x00pingcos\nsystem\nX\x04\x00\x00\x00true\x85R\x85t.', 'latin1'),
          // a bare forbidden global as the args
          Buffer.from('\x80\x03(K\x05\x89X\x04\x00\x00\x00pingcsubprocess\nPopen\nt.', 'latin1'),
          // truncated: no STOP
          Buffer.from('\x80\x03(K\x07\x89X\x04\x00\x00\x00ping)t', 'latin1'),
          // a string length beyond the payload
          Buffer.from('\x80\x03(K\x08\x89X\xff\xff\xff\x7fping)t.', 'latin1'),
        ];
        for (const p of evil) {
          const { outcome } = await rawCase(r.port, letter, () => [REGISTER(letter), encodeFrame(p)]);
          assert.equal(outcome, 'closed', `hostile pickle ${p.toString('hex')} closes the connection`);
          note('forbidden global / bad pickle', outcome);
        }
        // builtins is an allowed module (as upstream's server_find_global), but nothing is ever
        // called: builtins.eval('1') through STACK_GLOBAL + REDUCE is an opaque value, so this
        // ping(<value>) gets an error reply (wrong arity) or the connection closes
        const ev = Buffer.from('\x80\x04(K\x06\x89\x8c\x04ping\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R\x85t.', 'latin1');
        const evr = await rawCase(r.port, letter, () => [REGISTER(letter), encodeFrame(ev)]);
        if (evr.outcome === 'answered') {
          const m6 = evr.replies.find((m) => m.msgid === 6);
          assert.ok(m6 && m6.flags === 2, `builtins.eval call answered with an error reply: ${JSON.stringify(m6?.args)}`);
        }
        note('builtins.eval', evr.outcome);
      }
      // the server is alive and the bystander still works
      await by.check(oid!);
      assert.ok(by.commits >= 10);
      const rssAfter = rssKb(pid);
      assert.ok(rssAfter - rssBefore < RSS_BOUND_MB * 1024, `RSS grew from ${rssBefore} kB to ${rssAfter} kB`);
      // every case ended in a reply or a close (rawCase resolves only so); keep the tally in the log
      console.log(JSON.stringify({ letter, rssBeforeKb: rssBefore, rssAfterKb: rssAfter, outcomes }));
      by.conn.close();
    });
  });

  test(`${letter}5 runzeo child: wrong arities, unknown methods and calls out of order get error replies or a close (S-4, S-9, S-12, S-26, S-27)`, { timeout: 60_000 }, async () => {
    await withServer(letter, async (r) => {
      const by = new Bystander(r.port);
      await by.conn.call('register', ['1', false]);
      const [oid] = (await by.conn.call('new_oids', [1])) as Buffer[];
      await by.check(oid!);
      const open = () => {
        const c = new RpcConnection(net.connect(r.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0, handler: () => undefined });
        return c;
      };
      const pyClass = (e: unknown) => `${(e as { pythonClass?: string }).pythonClass ?? ''} ${(e as Error).constructor.name} ${(e as Error).message}`;
      const registered = async () => {
        const c = open();
        await c.call('register', ['1', false]);
        return c;
      };

      // wrong arities of synchronous calls: TypeError replies, connection stays open (S-9, S-12)
      const c = await registered();
      for (const [method, args] of [
        ['loadBefore', [Z64]],
        ['loadBefore', [Z64, MAXTID, Z64]],
        ['lastTransaction', [1]],
        ['vote', []],
        ['tpc_finish', [1, 2]],
        ['history', []],
        ['new_oids', [1, 2, 3]],
        ['getInvalidations', []],
      ] as Array<[string, WireValue[]]>) {
        await assert.rejects(c.call(method, args), (e) => /TypeError/.test(pyClass(e)), `${method}/${args.length}`);
      }
      // wrong argument types: error replies
      await assert.rejects(c.call('loadBefore', [Buffer.alloc(3), MAXTID]));
      await assert.rejects(c.call('loadBefore', ['not bytes', 5]));
      await assert.rejects(c.call('new_oids', ['many']));
      assert.equal(await c.call('ping', []), null, 'still open after error replies');

      // calls out of order (S-26): tpc_finish / tpc_abort without a transaction reply nil;
      // vote without a transaction is a StorageTransactionError reply
      assert.equal(await c.call('tpc_finish', [99]), null);
      assert.equal(await c.call('tpc_abort', [99]), null);
      await assert.rejects(c.call('vote', [99]), (e) => /StorageTransactionError/.test(pyClass(e)));
      // tpc_finish before vote: error reply
      c.callOneWay('tpc_begin', [5, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      c.callOneWay('storea', [oid!, Z64, rec(50), 5]);
      await assert.rejects(c.call('tpc_finish', [5]));
      // a second tpc_begin with another id while one is open
      await assert.rejects(c.call('tpc_begin', [6, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']), (e) => /StorageTransactionError/.test(pyClass(e)));
      // vote twice: the stale serial gives a conflict map (ccr), a re-vote after resolving works,
      // and a vote while already voted is an error reply
      const cur = (await c.call('loadBefore', [oid!, MAXTID])) as [Buffer, Buffer, null];
      const first = (await c.call('vote', [5])) as unknown[];
      assert.equal(first.length, 1, 'stale serial: one conflict map');
      c.callOneWay('storea', [oid!, cur[1], rec(51), 5]);
      assert.deepEqual(await c.call('vote', [5]), []);
      await assert.rejects(c.call('vote', [5]), (e) => /StorageTransactionError/.test(pyClass(e)));
      // while c holds the commit lock, the bystander's vote queues; c's abort lets it through
      const byVote = by.check(oid!);
      await c.call('ping', []);
      assert.equal(await c.call('tpc_abort', [5]), null);
      await byVote;
      assert.equal(await c.call('ping', []), null);
      c.close();

      // one-way calls that fail close the connection without a reply (S-9): storea without a
      // transaction, storea with a bad oid, wrong arity of a one-way call
      for (const [method, args] of [
        ['storea', [oid!, Z64, rec(1), 12345]],
        ['storea', [Buffer.alloc(2), Z64, rec(1), 1]],
        ['tpc_begin', [1]],
        ['tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, 'xx']],
      ] as Array<[string, WireValue[]]>) {
        const d = await registered();
        d.callOneWay(method, args);
        await assert.rejects(d.call('ping', []), Error, `one-way ${method} closes`);
        await d.closed;
      }
      // unknown methods and a second register close (S-4); so does any method before register
      for (const [pre, method, args] of [
        [true, 'no_such_method', []],
        [true, '__init__', []],
        [true, 'register', ['1', false]],
        [false, 'loadBefore', [oid!, MAXTID]],
        [false, 'tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']],
      ] as Array<[boolean, string, WireValue[]]>) {
        const d = pre ? await registered() : open();
        await assert.rejects(d.call(method, args), Error, `${method} closes`);
        await d.closed;
      }
      // register with an unknown storage / too many arguments: error replies, still open (S-12)
      const e = open();
      await assert.rejects(e.call('register', ['nope', false]), (x) => /ValueError/.test(pyClass(x)));
      await assert.rejects(e.call('register', ['1', false, 'creds']), (x) => /TypeError/.test(pyClass(x)));
      await e.call('register', ['1', false]);
      // a disconnect in the middle of a voted transaction releases the lock (S-27)
      e.callOneWay('tpc_begin', [8, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      const now = (await e.call('loadBefore', [oid!, MAXTID])) as [Buffer, Buffer, null];
      e.callOneWay('storea', [oid!, now[1], rec(77), 8]);
      assert.deepEqual(await e.call('vote', [8]), []);
      const queued = by.check(oid!);
      await e.call('ping', []);
      e.socket.destroy();
      await queued;
      await by.check(oid!);
      by.conn.close();
    });
  });
}

test('hostile: the storage file is sound after the barrage (FileStorage reopens, data readable)', { timeout: 60_000 }, async () => {
  const dir = tempDir('zeo-ts-hostile-');
  const fs = join(dir, 'Data.fs');
  for (let round = 0; round < 2; round++) {
    const r = await startRunzeo(['-a', '127.0.0.1:0', '-f', fs], { cwd: dir, env: { ZEO_TS_LOG_LEVEL: 'info' } });
    const by = new Bystander(r.port);
    await by.conn.call('register', ['1', false]);
    if (round === 0) {
      const [oid] = (await by.conn.call('new_oids', [1])) as Buffer[];
      assert.deepEqual(oid, Buffer.from('0000000000000001', 'hex'));
      await by.check(oid!);
      const junk = await rawCase(r.port, 'Z', () => [REGISTER('Z'), encodeFrame(Buffer.from('\x80\x03(K\x07\x89X\x04\x00\x00\x00ping)t', 'latin1'))]);
      assert.equal(junk.outcome, 'closed');
      await by.check(oid!);
    } else {
      const cur = (await by.conn.call('loadBefore', [Buffer.from('0000000000000001', 'hex'), MAXTID])) as [Buffer, Buffer, null];
      assert.equal(cur[0][cur[0].length - 2], 2);
    }
    by.conn.close();
    assert.equal(await r.stop(), 0);
  }
  assert.ok(existsSync(`${fs}.index`));
});
