// Replays of the recorded Python ZEO sessions through RpcConnection (zeo5 §4, §5.2-§5.7, S-1,
// S-6, S-7, S-9, C-1, C-2, C-6, C-7): on the server side the recorded client byte stream is
// fed to an RpcConnection server whose handler answers with the recorded replies through
// sendReply/sendError/callOneWay; on the client side an RpcConnection client issues the recorded
// calls against a raw peer that plays the recorded server frames. Both byte streams must equal
// the recordings exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { vectorsSkip } from '@zeo-ts/storage/testing';
import {
  RpcConnection, ProtocolError, ServerException, REPLY_LATER, FrameDecoder, encodeFrame, wireEquals,
  type CallHandler, type WireValue, type EncodingLetter,
} from '../src/index.ts';
import { quiet, startServer, RawPeer } from './net-helpers.ts';
import { fromRendering, zeo5Files, type VectorFrame } from './helpers.ts';

interface Session {
  key: string;
  letter: EncodingLetter;
  c2s: VectorFrame[]; // after the handshake answer
  s2c: VectorFrame[]; // after the announcement
  answer: VectorFrame;
  announcement: VectorFrame;
  closedByServer: boolean;
}

function sessions(prefix: 'm5' | 'z5'): { file: string; sessions: Session[] }[] {
  return zeo5Files(prefix).map(({ name, data }) => {
    const byConn = new Map<string, VectorFrame[]>();
    for (const f of data.frames) {
      const k = `${f.conn}${f.tcp}`;
      if (!byConn.has(k)) byConn.set(k, []);
      byConn.get(k)!.push(f);
    }
    const out: Session[] = [];
    for (const [key, frames] of byConn) {
      const answer = frames.find((f) => f.dir === 'c2s' && 'handshake' in f.decoded)!;
      if (answer.decoded['handshake'] === 'ruok') continue;
      const announcement = frames.find((f) => f.dir === 's2c' && 'handshake' in f.decoded)!;
      const laterTcp = data.frames.some((f) => f.conn === key[0] && f.tcp > Number(key.slice(1)));
      const session: Session = {
        key,
        letter: (announcement.decoded['handshake'] as string)[0] as EncodingLetter,
        c2s: frames.filter((f) => f.dir === 'c2s' && f !== answer),
        s2c: frames.filter((f) => f.dir === 's2c' && f !== announcement),
        answer,
        announcement,
        closedByServer: false,
      };
      // the server closed the connection when its last call got nothing back and the client
      // had to reconnect (a cut connection, by contrast, had its last call answered)
      session.closedByServer = laterTcp && window(session, session.c2s.length - 1).length === 0;
      out.push(session);
    }
    return { file: name, sessions: out };
  });
}

/** The server frames recorded after c2s frame i and before c2s frame i+1 (or the end). */
function window(s: Session, i: number): VectorFrame[] {
  const from = s.c2s[i]!.seq;
  const to = i + 1 < s.c2s.length ? s.c2s[i + 1]!.seq : Infinity;
  return s.s2c.filter((f) => f.seq > from && f.seq < to);
}

const hex = (fs: VectorFrame[]) => fs.map((f) => f.hex).join('');

for (const prefix of ['m5', 'z5'] as const) {
  test(`zeo5 ${prefix.toUpperCase()} server-side replay: RpcConnection reproduces every recorded server byte stream`, { skip: vectorsSkip('zeo5') }, async () => {
    let checked = 0;
    for (const { file, sessions: list } of sessions(prefix)) {
      for (const s of list) {
        const where = `${file} ${s.key}`;
        let index = 0;
        const handler: CallHandler = (method, args, call) => {
          const i = index++;
          const rec = s.c2s[i]!;
          assert.equal(method, rec.decoded['method'], where);
          const frames = window(s, i);
          if (frames.length === 0 && i === s.c2s.length - 1 && s.closedByServer) {
            if (call.oneWay) throw new Error('one-way call failed'); // §5.5 rule 5: close, nothing sent
            throw new ProtocolError(`invalid method ${method}`); // §5.5 rule 3
          }
          for (const f of frames) {
            const d = f.decoded;
            if (d['method'] === '.reply') {
              assert.ok(wireEquals(fromRendering(d['msgid']), call.msgid), `${where}: reply msgid`);
              if (d['flags'] === 2) {
                const [cls, state] = fromRendering(d['args']) as [string, WireValue];
                call.connection.sendError(call.msgid, new ServerException(cls, state));
              } else {
                call.connection.sendReply(call.msgid, fromRendering(d['args']));
              }
            } else {
              call.connection.callOneWay(d['method'] as string, fromRendering(d['args']) as WireValue[]);
            }
          }
          return call.oneWay ? undefined : REPLY_LATER;
        };
        const srv = await startServer({ announce: s.letter, handler });
        try {
          const peer = await RawPeer.connect(srv.port);
          peer.sendRaw(Buffer.from(s.answer.hex + hex(s.c2s), 'hex'));
          const frames = await peer.waitFrames(1 + s.s2c.length);
          assert.equal(frames.map((f) => encodeFrame(f).toString('hex')).join(''), s.announcement.hex + hex(s.s2c), `${where}: server byte stream`);
          if (s.closedByServer) await peer.waitClosed();
          peer.sock.destroy();
          checked++;
        } finally {
          await srv.close();
        }
      }
    }
    assert.ok(checked >= 20, `replayed ${checked} connections`);
  });

  test(`zeo5 ${prefix.toUpperCase()} client-side replay: RpcConnection reproduces every recorded client byte stream`, { skip: vectorsSkip('zeo5') }, async () => {
    let checked = 0;
    for (const { file, sessions: list } of sessions(prefix)) {
      for (const s of list) {
        const where = `${file} ${s.key}`;
        const received: Buffer[] = [];
        let sock!: net.Socket;
        const server = net.createServer((sk) => {
          sock = sk;
          sk.on('error', () => undefined);
          const dec = new FrameDecoder();
          sk.write(Buffer.from(s.announcement.hex, 'hex'));
          sk.on('data', (d: Buffer) => {
            for (const f of dec.push(d)) {
              received.push(f);
              const i = received.length - 2; // the first frame is the handshake answer
              if (i < 0) continue;
              const frames = window(s, i);
              sk.write(Buffer.from(hex(frames), 'hex'));
              if (frames.length === 0 && i === s.c2s.length - 1 && s.closedByServer) sk.destroy();
            }
          });
        });
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        try {
          const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
          await once(c, 'connect');
          const oneWays: string[] = [];
          const client = new RpcConnection(c, { role: 'client', logger: quiet, heartbeatInterval: 0, handler: (m) => { oneWays.push(m); } });
          assert.equal(await client.ready, s.letter);
          const outcomes: Promise<unknown>[] = [];
          for (const f of s.c2s) {
            const d = f.decoded;
            const args = fromRendering(d['args']) as WireValue[];
            if (d['msgid'] === -1) client.sendHeartbeat();
            else if (d['flags'] === true) client.callOneWay(d['method'] as string, args);
            else {
              const msgid = fromRendering(d['msgid']);
              const reply = s.s2c.find((r) => r.seq > f.seq && r.decoded['method'] === '.reply' && wireEquals(fromRendering(r.decoded['msgid']), msgid));
              const p = client.call(d['method'] as string, args, Array.isArray(msgid) ? { msgid } : {});
              outcomes.push(p.then(
                (v) => {
                  assert.ok(reply && reply.decoded['flags'] === 0, `${where}: call ${String(d['method'])} succeeded`);
                  assert.ok(wireEquals(v, fromRendering(reply.decoded['args'])), `${where}: result of ${String(d['method'])}`);
                },
                (e: Error) => {
                  // error replies (C-6) or the server closing (C-12)
                  assert.ok(!reply || reply.decoded['flags'] === 2, `${where}: ${String(d['method'])} failed: ${e.message}`);
                },
              ));
            }
          }
          await Promise.all(outcomes);
          if (!s.closedByServer) {
            // every recorded server frame has arrived once the last call settled; one-way calls included
            client.close();
          }
          await client.closed;
          assert.equal(received.map((f) => encodeFrame(f).toString('hex')).join(''), s.answer.hex + hex(s.c2s), `${where}: client byte stream`);
          const expectedOneWays = s.s2c.filter((f) => f.decoded['method'] !== '.reply').map((f) => f.decoded['method']);
          assert.deepEqual(oneWays, expectedOneWays.slice(0, oneWays.length), `${where}: one-way calls in order`);
          checked++;
        } finally {
          sock?.destroy();
          server.close();
        }
      }
    }
    assert.ok(checked >= 20, `replayed ${checked} connections`);
  });
}
