/** Test helpers: temp dirs, raw replication clients, fake primaries (real sockets). */
import net from 'node:net';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SizedMessageDecoder, encodeSized } from '../src/index.ts';

export function tempDir(prefix = 'zrs-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function copyTo(src: string, dir: string, name = 'Data.fs'): string {
  const p = join(dir, name);
  copyFileSync(src, p);
  return p;
}

export interface VectorMessage {
  seq: number;
  conn: number;
  dir: 's2p' | 'p2s';
  kind: string;
  len: number;
  hex: string;
  md5_before?: string;
  md5_after?: string;
  decoded?: unknown;
}

export function loadMessages(file: string): VectorMessage[] {
  return JSON.parse(readFileSync(file, 'utf8')) as VectorMessage[];
}

/** A logger that records every line (level + msg) in memory. */
export function memoryLogger(level = 'debug') {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const stream = {
    write(s: string) {
      const o = JSON.parse(s);
      lines.push(o);
      for (const w of [...waiters]) {
        if (w.re.test(o.msg)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
  };
  const log = pino({ level }, stream);
  return {
    log,
    lines,
    has: (re: RegExp) => lines.some((l) => re.test(l.msg)),
    /** resolves when a line matching re is (or was) logged */
    waitFor: (re: RegExp) =>
      lines.some((l) => re.test(l.msg)) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ re, resolve })),
  };
}

/** A raw replication client: connect, send messages, collect sized payloads. */
export class RawClient {
  readonly sock: net.Socket;
  readonly received: Buffer[] = [];
  private readonly decoder = new SizedMessageDecoder();
  private waiters: Array<() => void> = [];
  closed = false;
  readonly ready: Promise<void>;
  readonly gone: Promise<void>;

  constructor(port: number) {
    this.sock = net.connect({ host: '127.0.0.1', port });
    this.ready = new Promise((r) => this.sock.once('connect', () => r()));
    this.sock.on('data', (d) => {
      for (const m of this.decoder.push(d)) this.received.push(m);
      this.wake();
    });
    this.sock.on('error', () => undefined);
    this.gone = new Promise((r) =>
      this.sock.once('close', () => {
        this.closed = true;
        this.wake();
        r();
      }),
    );
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(payload: Buffer | string): void {
    this.sock.write(encodeSized(typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload));
  }

  raw(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  /** wait until n payloads arrived (or the connection closed) */
  async waitCount(n: number): Promise<Buffer[]> {
    for (let guard = 0; this.received.length < n && !this.closed && guard < 1e7; guard++) await new Promise<void>((r) => this.waiters.push(r));
    return this.received;
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * A fake primary on port 0: records what the secondary sends, and lets the test push payloads.
 * `onConnection` gets each accepted socket with helpers.
 */
export class FakePrimary {
  readonly server: net.Server;
  readonly conns: Array<{ sock: net.Socket; received: Buffer[]; send: (p: Buffer) => void; waitCount: (n: number) => Promise<void>; gone: Promise<void> }> = [];
  private connWaiters: Array<() => void> = [];
  readonly listening: Promise<number>;

  constructor() {
    this.server = net.createServer((sock) => {
      const received: Buffer[] = [];
      const dec = new SizedMessageDecoder();
      let waiters: Array<() => void> = [];
      let closed = false;
      const gone = new Promise<void>((r) => sock.once('close', () => ((closed = true), waiters.forEach((f) => f()), r())));
      sock.on('data', (d) => {
        for (const m of dec.push(d)) received.push(m);
        const w = waiters;
        waiters = [];
        w.forEach((f) => f());
      });
      sock.on('error', () => undefined);
      const c = {
        sock,
        received,
        send: (p: Buffer) => void sock.write(encodeSized(p)),
        waitCount: async (n: number) => {
          for (let g = 0; received.length < n && !closed && g < 1e7; g++) await new Promise<void>((r) => waiters.push(r));
        },
        gone,
      };
      this.conns.push(c);
      const w = this.connWaiters;
      this.connWaiters = [];
      w.forEach((f) => f());
    });
    this.listening = new Promise((r) => this.server.listen(0, '127.0.0.1', () => r((this.server.address() as net.AddressInfo).port)));
  }

  async connection(i: number) {
    for (let g = 0; this.conns.length <= i && g < 1e6; g++) await new Promise<void>((r) => this.connWaiters.push(r));
    return this.conns[i]!;
  }

  close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** Wait until cond() is true, re-checking at each signal from `changed()`. Bounded. */
export async function until(cond: () => boolean, changed: () => Promise<void>, what: string, bound = 1_000_000): Promise<void> {
  for (let i = 0; i < bound; i++) {
    if (cond()) return;
    await changed();
  }
  throw new Error(`gave up waiting for ${what}`);
}
