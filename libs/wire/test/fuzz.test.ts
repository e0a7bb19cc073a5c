// Bounded fuzz over real loopback sockets (zeo5 §3, §5.5 rules 1-5, W-2, §7.3, S-9, S-12):
// random, mutated and truncated frames, oversize lengths, forbidden globals and wrong arities.
// Every case ends with an error reply, a reply, or a closed connection; the server process and
// a bystander connection keep working throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { seededRandom as rng, vectorsSkip } from '@zeo-ts/storage/testing';
import {
  M5Codec, Z5Codec, ProtocolError, checkServerCallArity, SERVER_METHODS, frameHeader, encodeFrame, isErrorReply,
  type MessageCodec, type EncodingLetter, type WireValue,
} from '../src/index.ts';
import { startServer, connectClient, RawPeer } from './net-helpers.ts';
import { payloadOf, zeo5Files } from './helpers.ts';

const PROBE_MSGID = 424242;
const MAX_FRAME = 64 * 1024;

function handler(method: string, args: WireValue[]): WireValue {
  if (!Object.hasOwn(SERVER_METHODS, method)) throw new ProtocolError(`invalid method ${method}`);
  checkServerCallArity(method, args);
  return args;
}

type Outcome = 'closed' | 'probe-reply';

/** Send the fuzz bytes, then a probe call; wait for the probe's reply or the close (no timers). */
async function runCase(port: number, letter: EncodingLetter, codec: MessageCodec, fuzz: Buffer, endAfter: boolean): Promise<{ outcome: Outcome; frames: Buffer[] }> {
  const peer = await RawPeer.connect(port);
  await peer.waitFrames(1);
  peer.send(Buffer.from(`${letter}5`));
  peer.sendRaw(fuzz);
  if (endAfter) {
    peer.sock.end();
  } else {
    peer.send(codec.encode({ msgid: PROBE_MSGID, flags: false, method: 'ping', args: [] }));
  }
  // bounded: each wake-up is a received frame or the close; the server answers at most one reply per call
  for (let n = 2; ; n++) {
    const frames = await peer.waitFrames(n);
    if (peer.ended && frames.length < n) {
      peer.sock.destroy();
      return { outcome: 'closed', frames: frames.slice(1) };
    }
    const m = codec.decode(frames[n - 1]!);
    if (m.msgid === PROBE_MSGID) {
      peer.sock.destroy();
      return { outcome: 'probe-reply', frames: frames.slice(1) };
    }
    assert.ok(n < 10, 'too many replies for one fuzz case');
  }
}

function mutate(r: () => number, payload: Buffer): Buffer {
  const b = Buffer.from(payload);
  const kind = Math.floor(r() * 5);
  if (kind === 0 && b.length) {
    for (let i = 0; i < 1 + Math.floor(r() * 4); i++) b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
    return b;
  }
  if (kind === 1) return b.subarray(0, Math.floor(r() * b.length)); // truncated payload, consistent header
  if (kind === 2) {
    const at = Math.floor(r() * (b.length + 1));
    const junk = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256)));
    return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
  }
  if (kind === 3) return Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
  // set a byte to a boundary value (lengths, counts)
  if (b.length) b[Math.floor(r() * b.length)] = [0x00, 0x7f, 0x80, 0xff][Math.floor(r() * 4)]!;
  return b;
}

for (const letter of ['M', 'Z'] as const) {
  test(`zeo5 ${letter}5 fuzz: mutated recorded frames, random bytes, truncations, oversize headers, forbidden globals, wrong arities`, { skip: vectorsSkip('zeo5') }, async () => {
    const codec: MessageCodec = letter === 'M' ? new M5Codec() : new Z5Codec();
    const srv = await startServer({ announce: letter, handler, maxFrame: MAX_FRAME });
    const bystander = await connectClient(srv.port);
    try {
      const seeds = zeo5Files(letter === 'M' ? 'm5' : 'z5')
        .flatMap((f) => f.data.frames)
        .filter((f) => f.dir === 'c2s' && !('handshake' in f.decoded))
        .map(payloadOf);
      assert.ok(seeds.length > 100);
      const r = rng(letter === 'M' ? 1 : 2);
      const counts: Record<string, number> = { closed: 0, 'probe-reply': 0, errorReplies: 0 };
      const CASES = 150;
      for (let i = 0; i < CASES; i++) {
        const seed = seeds[Math.floor(r() * seeds.length)]!;
        const payload = mutate(r, seed);
        const { outcome, frames } = await runCase(srv.port, letter, codec, encodeFrame(payload), false);
        counts[outcome]!++;
        for (const f of frames) if (isErrorReply(codec.decode(f))) counts['errorReplies']!++;
        if (i % 25 === 0) assert.deepEqual(await bystander.call('ping', []), []);
      }
      // truncated frames followed by the end of the stream: the server closes
      for (let i = 0; i < 20; i++) {
        const full = encodeFrame(seeds[Math.floor(r() * seeds.length)]!);
        const cut = full.subarray(0, 1 + Math.floor(r() * (full.length - 1)));
        assert.equal((await runCase(srv.port, letter, codec, cut, true)).outcome, 'closed');
      }
      // oversize headers: closed without reading the payload (W-2)
      for (const len of [MAX_FRAME + 1, 0x7fffffff, 0xffffffff]) {
        const { outcome, frames } = await runCase(srv.port, letter, codec, frameHeader(len), false);
        assert.equal(outcome, 'closed');
        assert.equal(frames.length, 0);
      }
      // forbidden global (Z5) / extension type (M5) inside an otherwise valid call: closed (§7.3)
      const forbidden = letter === 'Z'
        ? Buffer.from('8003284b0088580100000078710063706f7369780a73797374656d0a71018571027471032e', 'hex')
        : Buffer.from('9401c2a470696e6791d6ff00000000', 'hex');
      assert.equal((await runCase(srv.port, letter, codec, encodeFrame(forbidden), false)).outcome, 'closed');
      // wrong arities: error reply builtins.TypeError, connection stays open (S-12)
      for (const [method, args] of [['register', ['1', 0, 'creds']], ['loadBefore', [Buffer.alloc(8)]], ['vote', []]] as const) {
        const { outcome, frames } = await runCase(srv.port, letter, codec,
          encodeFrame(codec.encode({ msgid: 7, flags: false, method, args: args as unknown as WireValue[] })), false);
        assert.equal(outcome, 'probe-reply', method);
        const err = codec.decode(frames[0]!);
        assert.equal(err.msgid, 7);
        assert.ok(isErrorReply(err));
        assert.equal((err.args as WireValue[])[0], 'builtins.TypeError');
      }
      // an empty payload is not a message: closed (§3)
      assert.equal((await runCase(srv.port, letter, codec, encodeFrame(Buffer.alloc(0)), false)).outcome, 'closed');
      assert.ok(counts['closed']! > 0 && counts['probe-reply']! > 0, JSON.stringify(counts));
      // the bystander never noticed
      assert.deepEqual(await bystander.call('ping', []), []);
      assert.ok(bystander.isOpen);
    } finally {
      bystander.close();
      await srv.close();
    }
  });
}

test('zeo5 fuzz (client side): garbage from a server closes the client connection and fails its calls', async () => {
  const r = rng(3);
  for (let i = 0; i < 30; i++) {
    const garbage = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write(encodeFrame(Buffer.from('M5')));
      s.once('data', () => s.end(encodeFrame(garbage)));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = await connectClient((server.address() as { port: number }).port);
    // either the garbage happens to be a valid reply to msgid 1, or the call fails; never hangs
    await client.call('ping', []).then(() => undefined, (e: Error) => assert.ok(e instanceof Error));
    await client.closed;
    server.close();
  }
});
