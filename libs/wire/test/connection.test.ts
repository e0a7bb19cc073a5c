// RpcConnection over real loopback sockets (zeo5 §3-§5, §9): calls, one-way calls, error
// replies, delayed replies, ordering, heartbeats, back-pressure, protocol violations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { POSKeyError, p64, ConflictError } from '@zeo-ts/storage';
import {
  RpcConnection, ProtocolError, ConnectionClosedError, delayed, REPLY_LATER, M5Codec, ServerException, availableEncodings,
  encodeFrame, frameHeader, pyList, decodeRuokReply, type WireValue, type CallHandler, type EncodingLetter,
} from '../src/index.ts';
import { startServer, connectClient, RawPeer } from './net-helpers.ts';

const T1 = 0x03f58e0000000000n;
const T2 = 0x03f58e0100000000n;

function makeHandler(log: string[], gates: Map<string, (v: WireValue) => void>): CallHandler {
  return (method, args, call) => {
    log.push(method);
    switch (method) {
      case 'echo':
        return args;
      case 'none':
        return undefined;
      case 'async':
        return Promise.resolve(args[0] ?? null);
      case 'missing':
        throw new POSKeyError(1n);
      case 'conflict':
        return Promise.reject(new ConflictError({ oid: 1n, serials: [T2, T1], className: 'a.B' }));
      case 'wait':
        // delayed reply: later messages are processed meanwhile (S-10)
        return delayed(new Promise<WireValue>((res) => gates.set(String(args[0]), res)));
      case 'release':
        gates.get(String(args[0]))!(args[1] ?? null);
        return null;
      case 'finish':
        // one-way messages written while handling a call precede its reply (§5.7, S-23 shape)
        call.connection.callOneWay('info', [{ length: 1, size: 166 }]);
        return p64(T2);
      case 'badOneWay':
        throw new Error('boom');
      case 'notAllowed':
        throw new ProtocolError('method not allowed');
      case 'unencodable':
        return (() => 1) as unknown as WireValue;
      default:
        throw new ProtocolError(`invalid method ${method}`);
    }
  };
}

for (const letter of availableEncodings()) {
  test(`zeo5 ${letter}5 S-1/S-2/C-1/S-6/S-7/C-6: handshake, calls, replies, error replies over loopback`, async () => {
    const log: string[] = [];
    const gates = new Map<string, (v: WireValue) => void>();
    const srv = await startServer({ announce: letter, handler: makeHandler(log, gates) });
    try {
      const clientEvents: string[] = [];
      const client = await connectClient(srv.port, {
        handler: (method, args) => {
          clientEvents.push(method);
          assert.ok(Array.isArray(args));
        },
      });
      const echoed = client.call('echo', ['1', false, 140234567890123, p64(1n), pyList([1, 2]), { a: null }]);
      assert.equal(await client.ready, letter); // the client mirrors the announced letter
      assert.deepEqual(await echoed, ['1', false, 140234567890123, p64(1n), [1, 2], { a: null }]);
      assert.equal(await client.call('none', []), null);
      assert.equal(await client.call('async', [5]), 5);
      const e1 = await client.call('missing', []).catch((e) => e);
      assert.ok(e1 instanceof POSKeyError && e1.oid === 1n);
      const e2 = await client.call('conflict', []).catch((e) => e);
      assert.ok(e2 instanceof ConflictError);
      assert.deepEqual([e2.oid, e2.serials, e2.className], [1n, [T2, T1], 'a.B']);
      // unencodable result → builtins.ValueError("Couldn't pickle response") (§5.5 rule 8)
      const e3 = await client.call('unencodable', []).catch((e) => e);
      assert.ok(e3 instanceof ServerException && e3.remoteClass === 'builtins.ValueError');
      // delayed reply: the later call is answered first; replies matched by msgid (S-10, C-6)
      const order: string[] = [];
      const slow = client.call('wait', ['g1']).then((v) => order.push(`wait:${String(v)}`));
      const fast = client.call('echo', ['x']).then(() => order.push('echo'));
      await fast;
      await client.call('release', ['g1', 'done']);
      await slow;
      assert.deepEqual(order, ['echo', 'wait:done']);
      // info one-way written before the reply (§5.7)
      let infoSeenBeforeReply = false;
      const fin = await client.call('finish', [], { onReply: () => { infoSeenBeforeReply = clientEvents.includes('info'); } });
      assert.deepEqual(fin, p64(T2));
      assert.ok(infoSeenBeforeReply);
      // array msgid (loadBefore style) echoed exactly, identical in-flight calls merged (§5.3)
      const mid = [p64(1n), p64(0x7fffffffffffffffn)];
      // one onReply shared by both calls gets the result and the call's msgid, once per call
      const replies: Array<[WireValue, WireValue]> = [];
      const shared = (res: WireValue, msgid: WireValue) => replies.push([res, msgid]);
      const [a, b] = await Promise.all([client.call('echo', ['lb'], { msgid: mid, onReply: shared }), client.call('echo', ['lb2'], { msgid: mid, onReply: shared })]);
      assert.deepEqual(a, ['lb']);
      assert.equal(a, b);
      assert.equal(replies.length, 2);
      for (const [res, msgid] of replies) {
        assert.equal(res, a);
        assert.equal(msgid, mid);
      }
      // one-way client → server
      client.callOneWay('echo', ['ow']);
      assert.deepEqual(await client.call('echo', ['after']), ['after']);
      assert.equal(log.filter((m) => m === 'echo').length, 5);
      client.close();
      await client.closed;
    } finally {
      await srv.close();
    }
  });

  test(`zeo5 ${letter}5 S-9/C-12: a failing one-way call closes the connection; pending calls fail with ClientDisconnected`, async () => {
    const gates = new Map<string, (v: WireValue) => void>();
    const srv = await startServer({ announce: letter, handler: makeHandler([], gates) });
    try {
      const client = await connectClient(srv.port);
      await client.ready;
      const pending = client.call('wait', ['never']);
      client.callOneWay('badOneWay', []);
      const err = await pending.catch((e) => e);
      assert.ok(err instanceof ConnectionClosedError);
      await client.closed;
      await assert.rejects(client.call('echo', []), ConnectionClosedError);
      assert.throws(() => client.callOneWay('echo', []), ConnectionClosedError);
      // the server is still serving others
      const c2 = await connectClient(srv.port);
      assert.deepEqual(await c2.call('echo', [1]), [1]);
      c2.close();
    } finally {
      await srv.close();
    }
  });

  test(`zeo5 ${letter}5 S-4: a ProtocolError from the handler closes the connection without a reply`, async () => {
    const srv = await startServer({ announce: letter, handler: makeHandler([], new Map()) });
    try {
      const peer = await RawPeer.connect(srv.port);
      await peer.waitFrames(1);
      peer.send(Buffer.from(`${letter}5`));
      const codec = (await srv.nextConn(), new M5Codec());
      if (letter === 'M') peer.send(codec.encode({ msgid: 1, flags: false, method: 'no_such_method', args: [1] }));
      else peer.send(Buffer.from('8003284b01895805000000685f6e6f70298c742e', 'hex')); // garbage pickle (also closes)
      await peer.waitClosed();
      assert.equal(peer.frames.length, 1); // only the announcement
    } finally {
      await srv.close();
    }
  });
}

test('zeo5 S-1/S-2: server announces exactly one frame, refuses bad handshakes without a reply', async () => {
  const srv = await startServer({ handler: () => null });
  try {
    for (const bad of ['M4', 'Z4', 'Z3101', 'X5', '']) {
      const peer = await RawPeer.connect(srv.port);
      const [ann] = await peer.waitFrames(1);
      assert.equal(ann!.toString(), 'M5'); // default announcement is M5
      peer.send(Buffer.from(bad));
      await peer.waitClosed();
      assert.equal(peer.frames.length, 1, bad);
    }
    // a server configured without Z refuses Z5
    const srvM = await startServer({ handler: () => null, encodings: ['M'] });
    const peer = await RawPeer.connect(srvM.port);
    await peer.waitFrames(1);
    peer.send(Buffer.from('Z5'));
    await peer.waitClosed();
    assert.equal(peer.frames.length, 1);
    await srvM.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 S-3: ruok gets the announcement, one JSON frame, then the connection closes', async () => {
  const status = { '1': { connections: 0, loads: 0, lock_time: null, start: 'Sun Nov 22 00:12:14 2026', 'last-transaction': '0000000000000000' } };
  const srv = await startServer({ handler: () => null, ruok: () => status });
  try {
    const peer = await RawPeer.connect(srv.port);
    peer.send(Buffer.from('ruok')); // without waiting for the announcement
    await peer.waitClosed();
    assert.equal(peer.frames.length, 2);
    assert.equal(peer.frames[0]!.toString(), 'M5');
    assert.deepEqual(decodeRuokReply(peer.frames[1]!), status);
    assert.ok(peer.frames[1]!.toString('latin1').startsWith('{"1": {"connections": 0, '));
  } finally {
    await srv.close();
  }
});

test('zeo5 S-5/C-7: heartbeats are sent by clients, ignored and never answered by servers', async () => {
  const srv = await startServer({ handler: (m, a) => a });
  try {
    const client = await connectClient(srv.port, { heartbeatInterval: 5 });
    const sconn = await srv.nextConn();
    await once(sconn, 'heartbeat');
    await once(sconn, 'heartbeat');
    assert.deepEqual(await client.call('x', [1]), [1]);
    client.close();
    // raw: a heartbeat followed by a call yields exactly one reply, for the call
    const peer = await RawPeer.connect(srv.port);
    await peer.waitFrames(1);
    peer.send(Buffer.from('M5'));
    const c = new M5Codec();
    peer.send(Buffer.from('94ff00a62e7265706c79c0', 'hex'));
    peer.send(c.encode({ msgid: -1, flags: true, method: 'whatever', args: [] })); // msgid -1 ignored whatever the fields
    peer.send(c.encode({ msgid: 7, flags: false, method: 'x', args: [2] }));
    await peer.waitFrames(2);
    assert.deepEqual(c.decode(peer.frames[1]!), { msgid: 7, flags: 0, method: '.reply', args: [2] });
    peer.sock.destroy();
  } finally {
    await srv.close();
  }
});

test('zeo5 W-2: an oversize frame header closes the connection without reading the payload', async () => {
  const srv = await startServer({ handler: (m, a) => a, maxFrame: 1024 });
  try {
    const peer = await RawPeer.connect(srv.port);
    await peer.waitFrames(1);
    peer.send(Buffer.from('M5'));
    const sconn = await srv.nextConn();
    await sconn.ready;
    peer.sendRaw(frameHeader(1025));
    await peer.waitClosed();
    await sconn.closed;
    assert.match(String(sconn.closeReason?.message), /1025/);
    // exactly at the limit is fine
    const p2 = await RawPeer.connect(srv.port);
    await p2.waitFrames(1);
    p2.send(Buffer.from('M5'));
    const c = new M5Codec();
    const msg = c.encode({ msgid: 1, flags: false, method: 'x', args: [Buffer.alloc(1000)] });
    p2.sendRaw(encodeFrame(Buffer.concat([msg])));
    await p2.waitFrames(2);
    p2.sock.destroy();
  } finally {
    await srv.close();
  }
});

test('zeo5 §3 back-pressure: writes pause for a slow reader, resume on drain, and an unbounded backlog closes', async () => {
  const srv = await startServer({ handler: (m, a) => a, maxOutgoingBytes: 4 * 1024 * 1024 });
  try {
    const peer = await RawPeer.connect(srv.port);
    await peer.waitFrames(1);
    peer.send(Buffer.from('M5'));
    const sconn = await srv.nextConn();
    await sconn.ready;
    peer.sock.pause(); // slow reader
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    for (let i = 0; i < 2000 && sconn.writable; i++) {
      sconn.callOneWay('receiveBlobChunk', [p64(1n), p64(T1), chunk]);
      sent++;
    }
    assert.equal(sconn.writable, false, 'socket reported back-pressure');
    assert.ok(sent < 2000);
    const drained = sconn.waitDrain();
    peer.sock.resume();
    await drained;
    assert.ok(sconn.isOpen);
    await peer.waitFrames(1 + sent);
    assert.equal(peer.frames.length, 1 + sent);
    // a reader that never reads: the queue bound closes the connection (bounded loop)
    peer.sock.pause();
    for (let i = 0; i < 5000 && sconn.isOpen; i++) sconn.callOneWay('receiveBlobChunk', [p64(1n), p64(T1), chunk]);
    assert.equal(sconn.isOpen, false);
    await sconn.closed;
    assert.match(String(sconn.closeReason?.message), /not reading/);
    peer.sock.destroy();
  } finally {
    await srv.close();
  }
});

test('zeo5 C-1: a client refuses an announcement with another protocol version', async () => {
  const net = await import('node:net');
  const server = net.createServer((s) => s.write(encodeFrame(Buffer.from('M4'))));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const client = await connectClient((server.address() as { port: number }).port);
    const p = client.call('register', ['1', false]);
    await assert.rejects(client.ready, ConnectionClosedError);
    await assert.rejects(p, ConnectionClosedError);
    const reason = await client.closed;
    assert.ok(reason instanceof ProtocolError);
  } finally {
    server.close();
  }
});

test('zeo5 §5.6: replies for unknown msgids are ignored by clients; a second client is unaffected', async () => {
  const net = await import('node:net');
  const c = new M5Codec();
  const server = net.createServer((s) => {
    s.write(encodeFrame(Buffer.from('M5')));
    s.once('data', () => {
      s.write(encodeFrame(c.encode({ msgid: 99, flags: 0, method: '.reply', args: null })));
      s.write(encodeFrame(c.encode({ msgid: 1, flags: 0, method: '.reply', args: 'ok' })));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const client = await connectClient((server.address() as { port: number }).port);
    assert.equal(await client.call('x', []), 'ok');
    client.close();
    await client.closed;
  } finally {
    server.close();
  }
});

void ({} as EncodingLetter);

test('zeo5 §5.6/§9: a client without a handler ignores server one-way calls and stays connected', async () => {
  const srv = await startServer({
    handler: (method, args, call) => {
      call.connection.callOneWay('info', [{ length: 1, size: 2 }]);
      return args;
    },
  });
  try {
    const client = await connectClient(srv.port);
    assert.deepEqual(await client.call('x', [1]), [1]);
    assert.deepEqual(await client.call('x', [2]), [2]);
    assert.ok(client.isOpen);
    client.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 S-3 §4.4: probeRuok reads the announcement and the status document', async () => {
  const { probeRuok } = await import('../src/index.ts');
  const net = await import('node:net');
  const status = { '1': { connections: 2, 'last-transaction': '03f58e0000000000' } };
  const srv = await startServer({ announce: 'Z', handler: () => null, ruok: () => status });
  try {
    const s = net.connect(srv.port, '127.0.0.1');
    const r = await probeRuok(s);
    assert.deepEqual(r, { announcement: 'Z5', status });
    // a server without a status closes after the announcement: the probe fails clearly
    const srv2 = await startServer({ handler: () => null });
    await assert.rejects(probeRuok(net.connect(srv2.port, '127.0.0.1')), ProtocolError);
    await srv2.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 §5.5: REPLY_LATER lets the application answer with sendReply/sendError itself', async () => {
  const srv = await startServer({
    handler: (method, args, call) => {
      setImmediate(() => {
        if (method === 'ok') call.connection.sendReply(call.msgid, args);
        else call.connection.sendError(call.msgid, new POSKeyError(3n));
      });
      return REPLY_LATER;
    },
  });
  try {
    const client = await connectClient(srv.port);
    assert.deepEqual(await client.call('ok', [1]), [1]);
    const e = await client.call('bad', []).catch((x) => x);
    assert.ok(e instanceof POSKeyError && e.oid === 3n);
    client.close();
  } finally {
    await srv.close();
  }
});

test('zeo5 §5.7: frames that arrive just before the server closes are still processed by the client', async () => {
  const net = await import('node:net');
  const c = new M5Codec();
  const server = net.createServer((s) => {
    s.write(encodeFrame(Buffer.from('M5')));
    s.once('data', () => {
      // one write: an invalidation, the reply, then FIN
      s.end(Buffer.concat([
        encodeFrame(c.encode({ msgid: 0, flags: true, method: 'invalidateTransaction', args: [p64(T2), pyList([p64(1n)])] })),
        encodeFrame(c.encode({ msgid: 1, flags: 0, method: '.reply', args: 'ok' })),
      ]));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const seen: string[] = [];
    // an async one-way handler holds up the frames behind it
    const client = await connectClient((server.address() as { port: number }).port, {
      handler: async (m) => { await new Promise((r) => setImmediate(r)); seen.push(m); },
    });
    assert.equal(await client.call('x', []), 'ok');
    assert.deepEqual(seen, ['invalidateTransaction']);
    await client.closed;
  } finally {
    server.close();
  }
});

test('zeo5 C-6/S-10: 2000 concurrent calls answered out of order are matched by msgid; the in-flight bound refuses extras', async () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const srv = await startServer({
    handler: (method, args) => delayed((async () => {
      // a random number of event-loop turns before answering (no timers)
      for (let i = Math.floor(rand() * 5); i > 0; i--) await new Promise((r) => setImmediate(r));
      return args[0] ?? null;
    })()),
  });
  try {
    for (const letter of ['M', 'Z'] as const) {
      const client = await connectClient(srv.port, { encodings: [letter], maxPendingCalls: 2000 });
      const calls = Array.from({ length: 2000 }, (_, i) => client.call('echo', [i]));
      await assert.rejects(client.call('echo', [-1]), ProtocolError); // bound reached
      const results = await Promise.all(calls);
      results.forEach((r, i) => assert.equal(r, i));
      assert.equal(client.pendingCalls, 0);
      client.close();
      await client.closed;
    }
  } finally {
    await srv.close();
  }
});

test('zeo5 §3/§5.5: inbound back-pressure — a busy handler pauses reading past maxInboundBytes, then everything is processed in order', async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  const seen: number[] = [];
  let sconnRef: RpcConnection | undefined;
  const srv = await startServer({
    maxInboundBytes: 64 * 1024,
    handler: (method, args, call) => {
      sconnRef = call.connection;
      if (method === 'block') return gate.then(() => null); // holds up later messages (a Promise result)
      seen.push(args[0] as number);
      return null;
    },
  });
  try {
    const client = await connectClient(srv.port);
    const blocked = client.call('block', []);
    const chunk = Buffer.alloc(16 * 1024);
    for (let i = 0; i < 64; i++) client.callOneWay('storea', [i, chunk]);
    const last = client.call('x', [999]);
    // wait for the server to pause reading (event-driven)
    const sconn = await srv.nextConn();
    if (!sconn.readPaused) await once(sconn, 'readPaused');
    assert.ok(sconn.socket.isPaused(), 'server paused reading');
    const resumed = once(sconn, 'readResumed');
    open();
    await blocked;
    await last;
    await resumed;
    assert.deepEqual(seen, [...Array.from({ length: 64 }, (_, i) => i), 999]);
    assert.equal(sconnRef, sconn);
    client.close();
  } finally {
    await srv.close();
  }
});
