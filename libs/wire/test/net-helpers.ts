/** Loopback helpers for connection tests: real TCP sockets on 127.0.0.1, port 0. */
import net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { RpcConnection, FrameDecoder, type RpcConnectionOptions } from '../src/index.ts';

export const quiet = pino({ level: 'silent' });

export interface ServerHandle {
  server: net.Server;
  port: number;
  conns: RpcConnection[];
  /** resolves with the next server-side connection */
  nextConn(): Promise<RpcConnection>;
  close(): Promise<void>;
}

export async function startServer(options: Omit<RpcConnectionOptions, 'role'>): Promise<ServerHandle> {
  const conns: RpcConnection[] = [];
  const waiters: ((c: RpcConnection) => void)[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const c = new RpcConnection(sock, { logger: quiet, ...options, role: 'server' });
    conns.push(c);
    const w = waiters.shift();
    if (w) w(c);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let seen = 0;
  return {
    server,
    port,
    conns,
    nextConn() {
      if (conns.length > seen) return Promise.resolve(conns[seen++]!);
      return new Promise((res) => waiters.push((c) => { seen++; res(c); }));
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

export async function connectClient(port: number, options: Omit<RpcConnectionOptions, 'role'> = {}): Promise<RpcConnection> {
  const sock = net.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  return new RpcConnection(sock, { logger: quiet, ...options, role: 'client' });
}

/** A raw socket that collects complete frames (to observe exactly what a peer writes). */
export class RawPeer {
  readonly frames: Buffer[] = [];
  ended = false;
  private readonly dec = new FrameDecoder();
  private waiters: (() => void)[] = [];
  private closeWaiters: (() => void)[] = [];
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.frames.push(...this.dec.push(d));
      this.wake();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.ended = true;
      this.wake();
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }
  static async connect(port: number): Promise<RawPeer> {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return new RawPeer(s);
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  /** Wait until at least n frames arrived (or the socket closed); returns the frames. */
  async waitFrames(n: number): Promise<Buffer[]> {
    // bounded: every wake-up is caused by received data or the close
    while (this.frames.length < n && !this.ended) await new Promise<void>((r) => this.waiters.push(r));
    return this.frames;
  }
  waitClosed(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }
  send(payload: Buffer): void {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(payload.length, 0);
    this.sock.write(Buffer.concat([h, payload]));
  }
  sendRaw(bytes: Buffer): void {
    this.sock.write(bytes);
  }
}
