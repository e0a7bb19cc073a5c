// Raw mode of the native channel (raw.ts, native.ts Raw frames, filestorage raw-append.ts):
// whole transactions as data-file bytes between positionally identical zeo-ts peers.
// zrs §14 #30 (live delivery), #31 (back-pressure, bounded shared frames), #32 (pack of the
// primary), #33/#37 (same transactions, invalidations), #34/#35/#42 (lost connection, resume,
// kill -9), #39 (bad input refused) — as cited per test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStorage, RawAppendError, appendRawTransactions, readPos } from '@zeo-ts/filestorage';
import { TransactionMetaData, toHex, type IStorage, type Tid } from '@zeo-ts/storage';
import { commit, makeRecord } from '@zeo-ts/storage/testing';
import { Primary, RawReceiver, Secondary, decodeFrame, encodeFrame, encodeRawFrame, encodeSized, encodeSizedAck, isRawPayload } from '../src/index.ts';
import { FakePrimary, memoryLogger, tempDir, until } from './helpers.ts';

const here = dirname(fileURLToPath(import.meta.url));
let counter = 0;

/** n transactions: new objects, updates of earlier ones, a delete, an undo (backpointers), an empty one */
async function history(s: IStorage, n: number): Promise<void> {
  const oids: bigint[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 3 === 2 && oids.length) {
      const oid = oids[i % oids.length]!;
      const serial = (await s.load(oid)).tid;
      await commit(s, [{ oid, serial, data: makeRecord({ state: { n: counter++ } } as never) }], { description: `update ${i}` });
    } else {
      const oid = await s.new_oid();
      oids.push(oid);
      await commit(s, [{ oid, serial: 0n, data: makeRecord({ state: { n: counter++, pad: 'x'.repeat(i % 7 * 50) } } as never) }], { description: `txn ${i}` });
    }
  }
  // an undo of the last transaction: backpointer records
  const txn = new TransactionMetaData('', 'undo');
  await s.tpc_begin(txn);
  const [entry] = await s.undoLog(0, 1);
  await s.undo(entry!.id, txn);
  await s.tpc_vote(txn);
  await s.tpc_finish(txn);
  // an empty transaction
  await commit(s, [], { description: 'empty' });
}

async function caughtUp(primary: IStorage, secondary: Secondary): Promise<void> {
  await until(() => secondary.lastTransaction() === primary.lastTransaction(), () => secondary.changed(), 'secondary to catch up');
}

/** [start, end) of each transaction of a data file */
function txnSpans(file: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let pos = 4; pos < file.length && out.length < 1e6; ) {
    const tlen = readPos(file, pos + 8);
    out.push([pos, pos + tlen + 8]);
    pos += tlen + 8;
  }
  return out;
}

test('raw mode, zrs §14 #30, #33, #37: catch-up in many segments and live commits give byte-identical files and every invalidation', async () => {
  const d = tempDir('zrs-raw-');
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log });
  await primary.listening;
  const source = primary.rawSource({ maxSegment: 2000 }); // small segments: catch-up takes many frames
  await history(primary, 40);
  const sm = memoryLogger();
  const sfs = new FileStorage(join(d, 's.fs'));
  const invalidated: Tid[] = [];
  let lastAhead = 0;
  sfs.onCommit((tid) => {
    // lastTransaction() moves with the published invalidations (once durable), never ahead of them
    if (sfs.lastTransaction() !== tid) lastAhead++;
    invalidated.push(tid);
  });
  const secondary = new Secondary(sfs, { host: '127.0.0.1', port: primary.port }, { logger: sm.log, native: 'always', reconnectDelay: 0.05 });
  await caughtUp(primary, secondary);
  assert.ok(pm.has(/raw mode \(empty secondary\)/), 'the primary agreed to raw mode');
  assert.ok(sm.has(/raw mode/));
  assert.ok(source.reads > 3, `catch-up took ${source.reads} segments`);
  // live: each commit is one raw frame
  await history(primary, 10);
  await caughtUp(primary, secondary);
  // invalidations are published once the batch is durable (the group fdatasync runs off the loop)
  await until(() => invalidated.at(-1) === primary.lastTransaction(), () => secondary.changed(), 'the last invalidation');
  const expected: Tid[] = [];
  for await (const t of primary.iterator()) expected.push(t.tid);
  assert.deepEqual(invalidated, expected, 'one invalidation per transaction, in order');
  assert.equal(lastAhead, 0);
  assert.equal(secondary.lastTransaction(), invalidated.at(-1));
  assert.deepEqual((await secondary.load(1n)).data, (await primary.load(1n)).data);
  assert.equal(secondary.rawFallbacks, 0);
  await secondary.close();
  await primary.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
  // the secondary reopens cleanly (its saved index matches the raw-appended file)
  const again = new FileStorage(join(d, 's.fs'), { readOnly: true });
  assert.equal(again.lastTransaction(), expected.at(-1));
  await again.close();
});

test('raw mode, zrs §14 #30, #31: two secondaries share each live frame (read and encoded once); acks still count per secondary (ack-quorum 2)', async () => {
  const d = tempDir('zrs-raw2-');
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log, ackQuorum: 0, ackTimeout: 60000 });
  await primary.listening;
  await history(primary, 5);
  const secs = [0, 1].map((i) => new Secondary(new FileStorage(join(d, `s${i}.fs`)), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05 }));
  for (const s of secs) await caughtUp(primary, s);
  await until(() => primary.ackedCount(primary.lastTransaction()) === 2, () => primary.changed(), 'both acks');
  primary.ackQuorum = 2;
  const source = primary.rawSource();
  const reads0 = source.reads;
  for (let i = 0; i < 10; i++) {
    const tid = await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: makeRecord() }]);
    // semi-sync: tpc_finish returned, so both secondaries have it durably
    assert.ok(primary.ackedCount(tid) >= 2);
  }
  assert.ok(source.reads - reads0 <= 10, `each live commit read at most once (${source.reads - reads0} reads for 10 commits)`);
  assert.ok(source.hits >= 10, `the second secondary got cached frames (${source.hits} hits)`);
  for (const s of secs) await s.close();
  await primary.close();
  const p = readFileSync(join(d, 'p.fs'));
  for (const i of [0, 1]) assert.deepEqual(readFileSync(join(d, `s${i}.fs`)), p);
});

test('raw mode, zrs §14 #32: a pack of the primary switches a live raw connection to the record path; a later connection is not raw (positions differ)', async () => {
  const d = tempDir('zrs-rawpack-');
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log });
  await primary.listening;
  await commit(primary, [{ oid: 0n, serial: 0n, data: makeRecord() }]);
  await history(primary, 20);
  const sm = memoryLogger();
  const secondary = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: sm.log, native: 'always', reconnectDelay: 0.05 });
  await caughtUp(primary, secondary);
  assert.ok(pm.has(/raw mode/));
  await primary.pack(Date.now() / 1000 + 1, false); // no GC: every object stays loadable
  await history(primary, 3);
  await caughtUp(primary, secondary);
  await pm.waitFor(/data file was replaced \(pack\)/);
  for (const oid of [1n, 2n, 3n]) assert.deepEqual((await secondary.load(oid)).data, (await primary.load(oid)).data);
  // reconnect: the secondary's file no longer lines up with the packed primary's
  const before = secondary.connections;
  secondary.disconnect();
  await until(() => secondary.connections > before && secondary.state === 'connected', () => secondary.changed(), 'reconnection');
  await pm.waitFor(/record mode \(the secondary's file ends at/);
  await history(primary, 2);
  await caughtUp(primary, secondary);
  await secondary.close();
  await primary.close();
});

test('raw mode: a secondary whose last transaction has other bytes at the same position gets the record path', async () => {
  const d = tempDir('zrs-rawdiff-');
  const pfs = new FileStorage(join(d, 'p.fs'));
  await history(pfs, 6);
  await pfs.close();
  // same length, same tids, one data byte changed in the last transaction with records
  const bytes = readFileSync(join(d, 'p.fs'));
  const spans = txnSpans(bytes);
  const [s0, e0] = spans.at(-2)!; // the undo's transaction precedes the empty one
  const copy = Buffer.from(bytes.subarray(0, e0));
  copy[e0 - 9] = copy[e0 - 9]! ^ 0x01; // inside the last record's data/backpointer area, not a length
  writeFileSync(join(d, 's.fs'), copy);
  void s0;
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log });
  await primary.listening;
  await history(primary, 2);
  const secondary = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05 });
  await caughtUp(primary, secondary);
  assert.ok(pm.has(/record mode \(the bytes of transaction/), 'refused raw because the bytes differ');
  await secondary.close();
  await primary.close();
});

test('raw-append: a segment failing any check is refused whole and nothing of it is written (filestorage raw append)', async () => {
  const d = tempDir('zrs-rawbad-');
  const pfs = new FileStorage(join(d, 'p.fs'));
  await history(pfs, 8);
  await pfs.close();
  const bytes = readFileSync(join(d, 'p.fs'));
  const spans = txnSpans(bytes);
  const all = bytes.subarray(4);
  const sfs = new FileStorage(join(d, 's.fs'));
  const tamper = (at: number, v: number) => {
    const b = Buffer.from(all);
    b[at - 4] = v;
    return b;
  };
  const [t2s] = spans[2]!;
  const hlen = 23 + all.readUInt16BE(t2s - 4 + 17) + all.readUInt16BE(t2s - 4 + 19) + all.readUInt16BE(t2s - 4 + 21);
  const rec = t2s + hlen; // first data record of the third transaction
  const bad: Array<[string, Buffer, RegExp]> = [
    ['prev pointer', tamper(rec + 23, bytes[rec + 23]! ^ 0x10), /prev/],
    ['tloc', tamper(rec + 31, bytes[rec + 31]! ^ 0x01), /tloc/],
    ['record tid', tamper(rec + 15, bytes[rec + 15]! ^ 0x01), /tid differs/],
    ['status', tamper(t2s + 16, 0x63), /status/],
    ['redundant length', tamper(spans[2]![1] - 1, bytes[spans[2]![1] - 1]! ^ 0x01), /redundant|length/],
    ['truncated', all.subarray(0, all.length - 3), /truncated|past the segment|boundary/],
  ];
  for (const [what, seg, re] of bad) {
    await assert.rejects(appendRawTransactions(sfs, [seg]), (e: unknown) => e instanceof RawAppendError && re.test((e as Error).message) && /s\.fs/.test((e as Error).message), what);
    assert.equal(sfs.getSize(), 4, `${what}: nothing appended`);
    assert.equal(statSync(join(d, 's.fs')).size, 4, `${what}: nothing written`);
  }
  // a backpointer to a record of another oid
  const undo = spans.at(-2)!;
  const uh = undo[0] + 23 + bytes.readUInt16BE(undo[0] + 17) + bytes.readUInt16BE(undo[0] + 19) + bytes.readUInt16BE(undo[0] + 21);
  assert.equal(readPos(bytes, uh + 34), 0, 'the undo writes a backpointer record');
  const r = await appendRawTransactions(sfs, [bytes.subarray(4, undo[0])]);
  assert.equal(r.end, undo[0]);
  const wrongBack = Buffer.from(bytes.subarray(undo[0], undo[1]));
  wrongBack.writeUInt32BE(0, uh - undo[0] + 42);
  wrongBack.writeUInt32BE(4 + 23 + bytes.readUInt16BE(4 + 17) + bytes.readUInt16BE(4 + 19) + bytes.readUInt16BE(4 + 21), uh - undo[0] + 46);
  await assert.rejects(appendRawTransactions(sfs, [wrongBack]), /backpointer/);
  assert.equal(sfs.getSize(), undo[0]);
  // the good rest goes in; the result is the primary's file
  await appendRawTransactions(sfs, [bytes.subarray(undo[0])]);
  await sfs.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), bytes);
});

test('raw mode, zrs §14 #39, #42: a corrupt raw segment from the primary is refused, nothing of it is written, the next connection asks for the record path', async () => {
  const d = tempDir('zrs-rawfake-');
  const pfs = new FileStorage(join(d, 'p.fs'));
  await history(pfs, 6);
  await pfs.close();
  const bytes = readFileSync(join(d, 'p.fs'));
  const spans = txnSpans(bytes);
  const fake = new FakePrimary();
  const port = await fake.listening;
  const sm = memoryLogger();
  const sfs = new FileStorage(join(d, 's.fs'));
  const sec = new Secondary(sfs, { host: '127.0.0.1', port }, { logger: sm.log, native: 'always', reconnectDelay: 0.05 });
  const c0 = await fake.connection(0);
  await c0.waitCount(2);
  const hello = decodeFrame(c0.received[1]!);
  assert.equal(hello.kind, 'hello');
  assert.ok(hello.kind === 'hello' && hello.raw && hello.endPos === 4);
  c0.send(encodeFrame({ kind: 'welcome', lastTid: 0n, name: 'fake', raw: true }));
  // first frame good (two transactions), the second with a damaged prev pointer (checksum recomputed)
  const good = bytes.subarray(4, spans[1]![1]);
  const lastGood = bytes.readBigUInt64BE(spans[1]![0]);
  c0.sock.write(encodeRawFrame(4, lastGood, 2, good));
  const badData = Buffer.from(bytes.subarray(spans[1]![1]));
  const t = spans[2]![0] - spans[1]![1];
  const h = 23 + badData.readUInt16BE(t + 17) + badData.readUInt16BE(t + 19) + badData.readUInt16BE(t + 21);
  badData[t + h + 16] = 0x7f; // prev pointer far away
  c0.sock.write(encodeRawFrame(spans[1]![1], bytes.readBigUInt64BE(spans.at(-1)![0]), spans.length - 2, badData));
  await c0.gone;
  // the good frame is durable and acknowledged; the bad one left no byte
  const acks = c0.received.slice(2).map((m) => decodeFrame(m));
  assert.deepEqual(acks.map((a) => (a.kind === 'ack' ? toHex(a.tid) : a.kind)), [toHex(lastGood)]);
  assert.deepEqual(readFileSync(join(d, 's.fs')), bytes.subarray(0, spans[1]![1]));
  assert.equal(sec.rawFallbacks, 1);
  assert.ok(sm.has(/raw segment refused/));
  // the next connection (at once) does not ask for raw mode
  const c1 = await fake.connection(1);
  await c1.waitCount(2);
  const hello2 = decodeFrame(c1.received[1]!);
  assert.ok(hello2.kind === 'hello' && !hello2.raw && hello2.lastTid === lastGood);
  // a frame damaged in transit (checksum mismatch) is an input error too
  c1.send(encodeFrame({ kind: 'welcome', lastTid: 0n, name: 'fake', raw: true }));
  const f = encodeRawFrame(spans[1]![1], bytes.readBigUInt64BE(spans[2]![0]), 1, bytes.subarray(spans[1]![1], spans[2]![1]));
  f[f.length - 5] ^= 0xff;
  assert.ok(isRawPayload(f.subarray(4)));
  c1.sock.write(f);
  await c1.gone;
  assert.deepEqual(readFileSync(join(d, 's.fs')), bytes.subarray(0, spans[1]![1]));
  await sec.close();
  await fake.close();
});

test('raw mode, zrs §14 #34, #35, #42: kill -9 of the secondary process during raw catch-up; restarted, it converges to a byte-identical file', async () => {
  const d = tempDir('zrs-rawkill-');
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log });
  await primary.listening;
  primary.rawSource({ maxSegment: 8192 });
  // ~6 MB of history in ~8 KB segments: hundreds of frames, each appended and acknowledged in batches
  const rec = makeRecord({ value: 'y'.repeat(1000) });
  for (let i = 0; i < 60; i++) {
    const txn = new TransactionMetaData('', `bulk ${i}`);
    await primary.tpc_begin(txn);
    for (let k = 0; k < 100; k++) await primary.store(await primary.new_oid(), 0n, rec, txn);
    await primary.tpc_vote(txn);
    await primary.tpc_finish(txn);
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'raw-secondary.ts'), join(d, 's.fs'), String(primary.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // kill as soon as it reported its first durable batch
  await new Promise<void>((resolve) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\n')) resolve();
    });
    child.once('exit', () => resolve());
  });
  child.kill('SIGKILL');
  await exited;
  const partial = statSync(join(d, 's.fs')).size;
  // restart in this process: the file opens (any torn tail dropped), raw mode resumes
  const sm = memoryLogger();
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: sm.log, native: 'always', reconnectDelay: 0.05 });
  await caughtUp(primary, sec);
  await sec.close();
  await primary.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')), `converged (killed at ${partial} bytes)`);
});

test('raw mode is not used with a blob-less record target other than a FileStorage, nor when the secondary turns it off', async () => {
  const d = tempDir('zrs-rawoff-');
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log });
  await primary.listening;
  await history(primary, 4);
  const sec = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', raw: false, reconnectDelay: 0.05 });
  await caughtUp(primary, sec);
  assert.ok(!pm.has(/raw mode/));
  await sec.close();
  await primary.close();
  // the record path writes the same bytes here (no 'u' transactions, same positions)
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
  void copyFileSync;
});

test('raw mode, zrs §14 #31: a secondary that stops reading pauses its producer; the shared frame cache stays bounded; it then resumes in order and loses nothing', async () => {
  const d = tempDir('zrs-rawbp-');
  const pm = memoryLogger();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: pm.log, highWaterMark: 64 * 1024 });
  await primary.listening;
  const source = primary.rawSource({ maxSegment: 64 * 1024, cacheBytes: 256 * 1024 });
  const { RawClient } = await import('./helpers.ts');
  const c = new RawClient(primary.port);
  await c.ready;
  c.send('zts1.0');
  c.send(encodeFrame({ kind: 'hello', lastTid: 0n, lastDigest: Buffer.alloc(0), name: 'slow', raw: true, endPos: 4, lastRawSha1: Buffer.alloc(0) }));
  await c.waitCount(1);
  const welcome = decodeFrame(c.received[0]!);
  assert.ok(welcome.kind === 'welcome' && welcome.raw);
  c.sock.pause(); // stop reading: the kernel buffers fill, then the primary's socket
  // 24 MB: more than loopback socket buffers can hold (tcp_wmem + tcp_rmem maxima)
  const rec = makeRecord({ value: 'z'.repeat(200_000) });
  for (let i = 0; i < 120; i++) await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: rec }]);
  const lag = () => (primary.replicationStatus() as { secondaries: Array<Record<string, unknown>> }).secondaries[0]!;
  assert.equal(lag().paused, true, 'the producer waits for the slow secondary');
  assert.notEqual(lag()['sent-tid'], toHex(primary.lastTransaction()), 'not everything was sent');
  assert.ok((source as unknown as { cached: number }).cached <= 256 * 1024 + 64 * 1024 + 4096, 'the shared frame cache stays bounded');
  // resume: every transaction arrives, in order, as whole raw segments
  c.sock.resume();
  let got = Buffer.alloc(0);
  let last = 0n;
  for (let guard = 0; guard < 1e6 && last !== primary.lastTransaction(); guard++) {
    await c.waitCount(c.received.length + 1);
    const f = decodeFrame(c.received.at(-1)!);
    if (f.kind === 'raw') last = f.lastTid;
  }
  for (const m of c.received.slice(1)) {
    const f = decodeFrame(m);
    assert.equal(f.kind, 'raw');
    if (f.kind === 'raw') {
      assert.equal(f.pos, 4 + got.length, 'segments arrive in order, without gaps');
      got = Buffer.concat([got, f.data]);
    }
  }
  c.close();
  await primary.close();
  assert.deepEqual(got, readFileSync(join(d, 'p.fs')).subarray(4));
});

test('native record path, zrs §14 #30, #33: two secondaries without raw mode get the same shared Txn frames and converge', async () => {
  const d = tempDir('zrs-recshare-');
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log });
  await primary.listening;
  await history(primary, 6);
  const secs = [0, 1].map((i) => new Secondary(new FileStorage(join(d, `s${i}.fs`)), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', raw: false, reconnectDelay: 0.05 }));
  for (const s of secs) await caughtUp(primary, s);
  await history(primary, 6);
  for (const s of secs) await caughtUp(primary, s);
  for (const s of secs) await s.close();
  await primary.close();
  const p = readFileSync(join(d, 'p.fs'));
  for (const i of [0, 1]) assert.deepEqual(readFileSync(join(d, `s${i}.fs`)), p);
});

test('raw mode: Raw frames carry ack_now only when set; the sized Ack is the Ack frame with its size prefix', () => {
  const data = Buffer.from('not parsed here');
  const plain = encodeRawFrame(4, 9n, 1, data);
  const urgent = encodeRawFrame(4, 9n, 1, data, undefined, true);
  assert.equal(urgent.length, plain.length + 2);
  assert.deepEqual(decodeFrame(plain.subarray(4)), { kind: 'raw', pos: 4, lastTid: 9n, count: 1, data });
  assert.deepEqual(decodeFrame(urgent.subarray(4)), { kind: 'raw', pos: 4, lastTid: 9n, count: 1, data, ackNow: true });
  assert.deepEqual(encodeFrame({ kind: 'raw', pos: 4, lastTid: 9n, count: 1, data, ackNow: true }), urgent.subarray(4));
  assert.deepEqual(encodeSizedAck(0x0123456789abcdefn), encodeSized(encodeFrame({ kind: 'ack', tid: 0x0123456789abcdefn })));
});

test('raw mode (group durability): under a steady stream fdatasyncs are spaced by syncDelayMs; an ack_now frame, and flush(), are made durable and acknowledged at once', async () => {
  const d = tempDir('zrs-raw-delay-');
  const pfs = new FileStorage(join(d, 'p.fs'));
  for (let i = 0; i < 4; i++) await commit(pfs, [{ oid: await pfs.new_oid(), serial: 0n, data: makeRecord({ state: { n: i } } as never) }]);
  const tids: Tid[] = [];
  for await (const t of pfs.iterator()) tids.push(t.tid);
  await pfs.close();
  const bytes = readFileSync(join(d, 'p.fs'));
  const spans = txnSpans(bytes);
  const frame = (i: number, ackNow = false) => encodeRawFrame(spans[i]![0], tids[i]!, 1, bytes.subarray(spans[i]![0], spans[i]![1]), undefined, ackNow).subarray(4);
  const sfs = new FileStorage(join(d, 's.fs'));
  const acks: Array<[number, Tid]> = [];
  let durable: () => void = () => undefined;
  const rx = new RawReceiver(sfs, memoryLogger().log, (n, tid) => {
    acks.push([n, tid]);
    durable();
  }, { syncDelayMs: 60_000 });
  const nextAck = () => new Promise<void>((r) => (durable = r));
  // the first frame after a quiet spell: durable at once
  let acked = nextAck();
  assert.equal(await rx.apply([frame(0)]), null);
  await acked;
  assert.deepEqual(acks, [[1, tids[0]]]);
  // the next one, right after an fdatasync, waits for the delay (a minute here): appended, not durable
  assert.equal(await rx.apply([frame(1)]), null);
  assert.equal(rx.pending, 1);
  assert.equal(sfs.lastTransaction(), tids[0], 'not durable, so not published');
  // a frame a commit waits for (semi-sync): it and the one before become durable without the delay
  acked = nextAck();
  assert.equal(await rx.apply([frame(2, true)]), null);
  await acked;
  assert.deepEqual(acks.at(-1), [2, tids[2]]);
  assert.equal(sfs.lastTransaction(), tids[2]);
  // flush() does not wait for the delay either
  assert.equal(await rx.apply([frame(3)]), null);
  assert.equal(rx.pending, 1);
  await rx.flush();
  assert.deepEqual(acks.at(-1), [1, tids[3]]);
  assert.equal(sfs.lastTransaction(), tids[3]);
  await sfs.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), bytes);
});

test('raw mode, zrs §14 #30: under a steady stream the producer holds commits (sendDelayMs, at most sendBatch per frame): fewer frames, same bytes', async () => {
  const d = tempDir('zrs-raw-hold-');
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log });
  await primary.listening;
  // a delay far longer than the test: frames go out when sendBatch commits wait (or after a quiet spell)
  const source = primary.rawSource({ sendDelayMs: 1000, sendBatch: 3 });
  const secondary = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05 });
  await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: makeRecord() }]);
  await caughtUp(primary, secondary);
  const reads0 = source.reads;
  for (let i = 0; i < 12; i++) await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: makeRecord({ state: { i } } as never) }]);
  await caughtUp(primary, secondary);
  assert.ok(source.reads - reads0 < 12, `12 commits in ${source.reads - reads0} frames`);
  await secondary.close();
  await primary.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
});

test('raw mode: with ack-quorum the producer holds nothing and frames carry ack_now, so semi-sync commits never wait for the delays', { timeout: 30_000 }, async () => {
  const d = tempDir('zrs-raw-acknow-');
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log, ackTimeout: 60_000 });
  await primary.listening;
  // were either delay applied, 40 commits would take 40 s and fail the test's timeout
  primary.rawSource({ sendDelayMs: 1000, sendBatch: 1000 });
  const secondary = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05 });
  await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: makeRecord() }]);
  await caughtUp(primary, secondary);
  await until(() => primary.ackedCount(primary.lastTransaction()) === 1, () => primary.changed(), 'the ack');
  primary.ackQuorum = 1;
  for (let i = 0; i < 40; i++) {
    const tid = await commit(primary, [{ oid: await primary.new_oid(), serial: 0n, data: makeRecord({ state: { i } } as never) }]);
    assert.ok(primary.ackedCount(tid) >= 1, 'acknowledged (durable on the secondary) when tpc_finish returns');
  }
  await secondary.close();
  await primary.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
});

test('raw mode: Primary rawSendDelayMs / rawSendBatch and Secondary rawSyncDelayMs (0: every commit sent and synced at once) replicate the same bytes; bad values are refused', async () => {
  const d = tempDir('zrs-raw-opts-');
  const x = new FileStorage(join(d, 'x.fs'));
  assert.throws(() => new Primary(x, { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log, rawSendBatch: 0 }), RangeError);
  await x.close();
  const primary = new Primary(new FileStorage(join(d, 'p.fs')), { host: '127.0.0.1', port: 0 }, { logger: memoryLogger().log, rawSendDelayMs: 0, rawSendBatch: 1 });
  await primary.listening;
  assert.equal(primary.rawSource().sendDelayMs, 0);
  const secondary = new Secondary(new FileStorage(join(d, 's.fs')), { host: '127.0.0.1', port: primary.port }, { logger: memoryLogger().log, native: 'always', reconnectDelay: 0.05, rawSyncDelayMs: 0 });
  await history(primary, 12);
  await caughtUp(primary, secondary);
  await secondary.close();
  await primary.close();
  assert.deepEqual(readFileSync(join(d, 's.fs')), readFileSync(join(d, 'p.fs')));
});
