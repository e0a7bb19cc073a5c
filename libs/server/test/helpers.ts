/**
 * An in-process client for the server core: a ClientChannel that records everything the session
 * writes, in order, and lets a test await replies by msgid. No sockets, no codec: values are the
 * core's logical values.
 */
import { ZEOSession, type ClientChannel, type StorageServer } from '../src/index.ts';
import { PyListValue } from '../src/values.ts';

export type Out =
  | { kind: 'reply'; msgid: unknown; value: unknown }
  | { kind: 'error'; msgid: unknown; err: Error }
  | { kind: 'call'; name: string; args: unknown[] };

export class CallError extends Error {
  constructor(readonly err: Error) {
    super(`${(err as { pythonClass?: string }).pythonClass ?? err.name}: ${err.message}`);
  }
  get pythonClass(): string {
    return (this.err as { pythonClass?: string }).pythonClass ?? '';
  }
}

export class TestClient implements ClientChannel {
  readonly out: Out[] = [];
  closedReason: string | null = null;
  readonly session: ZEOSession;
  private nextId = 1;
  private readonly waiting = new Map<unknown, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly closeWaiters: Array<() => void> = [];
  private readonly outWaiters: Array<{ pred: (o: Out) => boolean; resolve: (o: Out) => void }> = [];

  constructor(
    server: StorageServer,
    readonly peer = 'test:1',
  ) {
    this.session = server.newSession(this);
  }

  reply(msgid: unknown, value: unknown): void {
    this.record({ kind: 'reply', msgid, value });
    const w = this.waiting.get(key(msgid));
    if (w) {
      this.waiting.delete(key(msgid));
      w.resolve(value);
    }
  }

  error(msgid: unknown, err: Error): void {
    this.record({ kind: 'error', msgid, err });
    const w = this.waiting.get(key(msgid));
    if (w) {
      this.waiting.delete(key(msgid));
      w.reject(new CallError(err));
    }
  }

  call(name: string, args: unknown[]): void {
    this.record({ kind: 'call', name, args });
  }

  close(reason: string): void {
    this.closedReason = reason;
    for (const w of this.waiting.values()) w.reject(new Error(`closed: ${reason}`));
    this.waiting.clear();
    for (const c of this.closeWaiters.splice(0)) c();
  }

  private record(o: Out): void {
    if (this.closedReason !== null) throw new Error(`output after close: ${JSON.stringify(o.kind)}`);
    this.out.push(o);
    for (let i = 0; i < this.outWaiters.length; i++) {
      const w = this.outWaiters[i]!;
      if (w.pred(o)) {
        this.outWaiters.splice(i--, 1);
        w.resolve(o);
      }
    }
  }

  /** A synchronous call; resolves with the reply value, rejects with CallError. */
  rpc(name: string, ...args: unknown[]): Promise<unknown> {
    const msgid = this.nextId++;
    return this.rpcWithId(msgid, name, args);
  }

  rpcWithId(msgid: unknown, name: string, args: unknown[]): Promise<unknown> {
    const p = new Promise<unknown>((resolve, reject) => this.waiting.set(key(msgid), { resolve, reject }));
    this.session.handle(msgid, false, name, args);
    return p;
  }

  oneway(name: string, ...args: unknown[]): void {
    this.session.handle(0, true, name, args);
  }

  whenClosed(): Promise<void> {
    if (this.closedReason !== null) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  /** Resolve with the first future output matching pred (or an already recorded one). */
  waitFor(pred: (o: Out) => boolean): Promise<Out> {
    const found = this.out.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.outWaiters.push({ pred, resolve }));
  }

  invalidations(): Array<{ tid: Buffer; oids: Buffer[] }> {
    return this.out
      .filter((o): o is Extract<Out, { kind: 'call' }> => o.kind === 'call' && o.name === 'invalidateTransaction')
      .map((o) => ({ tid: o.args[0] as Buffer, oids: (o.args[1] as PyListValue).items as Buffer[] }));
  }

  /** Commit `stores` ([oid, serial, data]) in one transaction; returns the tid. */
  async commit(stores: Array<[Buffer, Buffer, Buffer]>, txnid: number = this.nextId + 1_000_000): Promise<Buffer> {
    this.oneway('tpc_begin', txnid, Buffer.from('u'), Buffer.from('d'), {}, null, ' ');
    for (const [oid, serial, data] of stores) this.oneway('storea', oid, serial, data, txnid);
    const v = await this.rpc('vote', txnid);
    if (!(v instanceof PyListValue) || v.items.some((x) => !Buffer.isBuffer(x))) {
      await this.rpc('tpc_abort', txnid);
      throw new Error('conflicts in vote');
    }
    return (await this.rpc('tpc_finish', txnid)) as Buffer;
  }
}

function key(msgid: unknown): unknown {
  if (Array.isArray(msgid)) return msgid.map((x) => (Buffer.isBuffer(x) ? x.toString('hex') : String(x))).join('/');
  return msgid;
}

export function oid(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export const Z64 = Buffer.alloc(8);
export const MAXTID = Buffer.from('7fffffffffffffff', 'hex');

export function plus1(t: Buffer): Buffer {
  return oid(t.readBigUInt64BE(0) + 1n);
}

/** A valid ZODB record: a BTrees.Length.Length holding n (class pickle + state pickle, protocol 3). */
export function rec(n: number): Buffer {
  const cls = Buffer.concat([Buffer.from([0x80, 0x03, 0x63]), Buffer.from('BTrees.Length\nLength\n', 'ascii'), Buffer.from([0x71, 0x00, 0x2e])]);
  let st: Buffer;
  if (n >= 0 && n < 256) st = Buffer.from([0x80, 0x03, 0x4b, n, 0x2e]);
  else {
    st = Buffer.alloc(8);
    st[0] = 0x80;
    st[1] = 0x03;
    st[2] = 0x4a;
    st.writeInt32LE(n, 3);
    st[7] = 0x2e;
  }
  return Buffer.concat([cls, st]);
}
