/**
 * @zeo-ts/wire — the ZEO 5 wire protocol (zeo5-protocol.md §3–§7, §9, §13).
 *
 * Pure codecs (framing, handshake, M5 msgpack, Z5 pickle, error mapping) and one socket adapter,
 * `RpcConnection`, used by both the server and the client.
 *
 * Values on the wire are the model of values.ts: `null`, booleans, integers as `number` (or
 * `bigint` beyond 2^53), non-integral numbers / `PyFloat` as floats, `string` = str,
 * `Buffer` = bytes, arrays = tuples, `pyList([...])` = lists (Z5 distinguishes them), plain
 * objects = dicts. oids/tids travel as 8-byte Buffers: convert with `p64`/`u64` of @zeo-ts/storage.
 *
 * Server usage (one RpcConnection per accepted socket):
 *
 * ```ts
 * import net from 'node:net';
 * import { RpcConnection, ProtocolError, delayed, pyList, type CallHandler } from '@zeo-ts/wire';
 * import { p64, u64, POSKeyError } from '@zeo-ts/storage';
 *
 * net.createServer((socket) => {
 *   let registered = false;
 *   const handler: CallHandler = (method, args, call) => {
 *     if (!registered && method !== 'register') throw new ProtocolError(`invalid method ${method}`); // closes, no reply (§4.5)
 *     switch (method) {
 *       case 'register': registered = true; return p64(storage.lastTransaction());
 *       case 'loadBefore': return storage.loadBefore(u64(args[0] as Buffer), u64(args[1] as Buffer))
 *         .then((r) => (r ? [r.data, p64(r.start), r.end === null ? null : p64(r.end)] : null)); // a Promise: later messages wait
 *       case 'new_oids': return pyList(oids.map(p64));                      // lists are pyList()
 *       case 'vote': return delayed(commitLock.vote(args[0]));             // delayed: later messages go on meanwhile (§5.5 rule 7)
 *       case 'tpc_finish':
 *         call.connection.callOneWay('info', [{ length: 1, size: 166 }]); // written before the reply (§5.7)
 *         return p64(tid);
 *       case 'storea': txn.store(...); return;                            // one-way: the result is ignored; a throw closes (§5.5 rule 5)
 *     }
 *     throw new POSKeyError(1n);                                          // any other throw: error reply (§6.4)
 *   };
 *   const conn = new RpcConnection(socket, { role: 'server', announce: 'M', handler, ruok: () => ({ '1': status() }) });
 *   conn.on('close', (reason) => cleanup(reason));   // abort the transaction, drop from broadcasts (§10.10)
 *   // elsewhere: conn.callOneWay('invalidateTransaction', [p64(tid), pyList(oids.map(p64))]);
 * }).listen(8100);
 * ```
 *
 * Client usage:
 *
 * ```ts
 * const socket = net.connect(8100, '127.0.0.1');             // or tls.connect(...)
 * const conn = new RpcConnection(socket, {
 *   role: 'client',                                           // waits for M5/Z5, answers (C-1), heartbeats every 60 s (C-7)
 *   handler: (method, args) => { if (method === 'invalidateTransaction') invalidate(args); },
 * });
 * const last = await conn.call('register', ['1', false]);    // queued behind the handshake
 * const r = await conn.call('loadBefore', [oid, tid], { msgid: [oid, tid] });
 * try { await conn.call('vote', [txnid]); } catch (e) { // ConflictError, POSKeyError, ... (§6.5); ConnectionClosedError on disconnect
 * }
 * conn.callOneWay('storea', [oid, serial, data, txnid]);
 * conn.close();
 * ```
 *
 * Back-pressure for producers of many messages (blob streaming):
 * `while (...) { conn.callOneWay('receiveBlobChunk', [...]); if (!conn.writable) await conn.waitDrain(); }`
 * — output beyond `maxOutgoingBytes` closes the connection (the peer is not reading).
 */
export * from './values.ts';
export * from './errors.ts';
export * from './framing.ts';
export * from './handshake.ts';
export * from './message.ts';
export * from './m5.ts';
export * from './z5.ts';
export * from './codecs.ts';
export * from './methods.ts';
export * from './info.ts';
export * from './service.ts';
export * from './connection.ts';
