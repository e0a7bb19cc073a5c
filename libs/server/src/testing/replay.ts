/**
 * Replays the client side of a recorded ZEO 5 session (/work/shared/vectors/zeo5/*.json, see its
 * README) against a live server and compares every frame the server sends with the recording,
 * masking only the values the README marks as varying and checking their symbols for
 * consistency (T1 < T2 < …, Tn+1, base64(Tn), hex(Tn), time(Tn)).
 *
 * Client frames are sent byte for byte as recorded, with the varying values replaced by what
 * this server produced (tids learned from its replies, the current time for `pack`).
 */
import net from 'node:net';
import { FrameDecoder, M5Codec, Z5Codec, shortRepr, type MessageCodec } from '@zeo-ts/wire';
import { TimeStamp, p64, u64 } from '@zeo-ts/storage';

export interface VectorFrame {
  seq: number;
  dir: 'c2s' | 's2c';
  conn: string;
  tcp: number;
  hex: string;
  decoded: unknown;
}

export interface Varying {
  seq: number;
  path: string;
  kind: 'tid' | 'txnid' | 'time' | 'undo-id' | 'ctime' | 'tid-hex';
  symbol: string;
  offset: number;
  length: number;
}

export interface VectorFile {
  scenario: string;
  encoding: 'Z5' | 'M5';
  server_options: string[];
  frames: VectorFrame[];
  varying: Varying[];
  events: Array<{ after_seq: number; text: string }>;
}

export interface ReplayResult {
  framesChecked: number;
  framesSent: number;
  mismatches: string[];
  symbols: Map<string, Buffer>;
}

export interface ReplayOptions {
  /** open a new TCP connection to the server */
  connect: () => net.Socket;
  /** frames (by seq) whose comparison is relaxed to "same method/kind", with a reason */
  relaxed?: Map<number, string>;
  /** stop after this seq (inclusive) */
  untilSeq?: number;
}

class Conn {
  readonly decoder = new FrameDecoder();
  readonly frames: Buffer[] = [];
  private waiter: ((f: Buffer | null) => void) | null = null;
  closed = false;
  private closeWaiters: Array<() => void> = [];
  registered = false;
  registerMsgid: unknown = undefined;

  constructor(readonly socket: net.Socket, readonly key: string) {
    socket.on('data', (d: Buffer) => {
      for (const p of this.decoder.push(d)) {
        const f = Buffer.concat([header(p.length), p]);
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = null;
          w(f);
        } else this.frames.push(f);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(null);
      }
      for (const c of this.closeWaiters.splice(0)) c();
    });
  }

  next(): Promise<Buffer | null> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.closed) return Promise.resolve(null);
    return new Promise((r) => (this.waiter = r));
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  close(): Promise<void> {
    this.socket.end();
    return this.whenClosed();
  }
}

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function symbolValue(sym: string, known: Map<string, Buffer>): Buffer | null {
  const plus = /^(T\d+)\+1$/.exec(sym);
  if (plus) {
    const t = known.get(plus[1]!);
    return t ? p64(u64(t) + 1n) : null;
  }
  const b64 = /^base64\((T\d+)\)$/.exec(sym);
  if (b64) {
    const t = known.get(b64[1]!);
    return t ? Buffer.from(t.toString('base64'), 'ascii') : null;
  }
  const hex = /^hex\((T\d+)\)$/.exec(sym);
  if (hex) {
    const t = known.get(hex[1]!);
    return t ? Buffer.from(t.toString('hex'), 'ascii') : null;
  }
  return known.get(sym) ?? null;
}

export async function replayVector(v: VectorFile, opts: ReplayOptions): Promise<ReplayResult> {
  const codec: MessageCodec = v.encoding === 'M5' ? new M5Codec() : new Z5Codec();
  const varyingBySeq = new Map<number, Varying[]>();
  for (const x of v.varying) {
    const l = varyingBySeq.get(x.seq) ?? [];
    l.push(x);
    varyingBySeq.set(x.seq, l);
  }
  const lastSeqOf = new Map<string, number>();
  const tcpsOf = new Map<string, number[]>();
  for (const f of v.frames) {
    const k = `${f.conn}#${f.tcp}`;
    lastSeqOf.set(k, f.seq);
    const l = tcpsOf.get(f.conn) ?? [];
    if (!l.includes(f.tcp)) l.push(f.tcp);
    tcpsOf.set(f.conn, l);
  }
  const conns = new Map<string, Conn>();
  const known = new Map<string, Buffer>();
  const res: ReplayResult = { framesChecked: 0, framesSent: 0, mismatches: [], symbols: known };
  const describe = (b: Buffer | null, isHandshake: boolean): string => {
    if (b === null) return '<connection closed>';
    if (isHandshake) return JSON.stringify(b.subarray(4).toString('latin1'));
    try {
      const m = codec.decode(b.subarray(4));
      return shortRepr([m.msgid, m.flags, m.method, m.args], 600);
    } catch {
      return b.toString('hex').slice(0, 400);
    }
  };

  for (const f of v.frames) {
    if (opts.untilSeq !== undefined && f.seq > opts.untilSeq) break;
    const key = `${f.conn}#${f.tcp}`;
    let c = conns.get(key);
    if (!c) {
      c = new Conn(opts.connect(), key);
      conns.set(key, c);
    }
    const isHandshake = typeof f.decoded === 'object' && f.decoded !== null && ('handshake' in f.decoded || 'status_json' in f.decoded);
    const expected = Buffer.from(f.hex, 'hex');
    const vary = varyingBySeq.get(f.seq) ?? [];
    if (f.dir === 'c2s') {
      const out = Buffer.from(expected);
      for (const x of vary) {
        let val: Buffer | null;
        if (x.kind === 'time' && x.symbol === 'wallclock') {
          val = Buffer.alloc(8);
          val.writeDoubleBE(Date.now() / 1000);
        } else if (x.kind === 'txnid') {
          val = null; // the client's own choice: send as recorded
        } else {
          val = symbolValue(x.symbol, known);
          if (val === null) throw new Error(`seq ${f.seq}: client frame needs ${x.symbol}, not seen yet`);
        }
        if (val !== null) {
          if (val.length !== x.length) throw new Error(`seq ${f.seq}: ${x.symbol} has ${val.length} bytes, slot has ${x.length}`);
          val.copy(out, x.offset);
        }
      }
      if (!c.closed) c.socket.write(out);
      res.framesSent++;
      const d = f.decoded as { method?: string; msgid?: unknown };
      if (d?.method === 'register') c.registerMsgid = d.msgid;
    } else {
      const actual = await c.next();
      res.framesChecked++;
      const dd = f.decoded as { method?: string; msgid?: unknown; flags?: unknown };
      if (dd?.method === '.reply' && dd.flags === 0 && c.registerMsgid !== undefined && dd.msgid === c.registerMsgid) c.registered = true;
      const relaxed = opts.relaxed?.get(f.seq);
      let ok = actual !== null && actual.length === expected.length;
      if (ok) {
        const a = Buffer.from(actual!);
        const e = Buffer.from(expected);
        for (const x of vary) {
          a.fill(0, x.offset, x.offset + x.length);
          e.fill(0, x.offset, x.offset + x.length);
        }
        ok = a.equals(e);
      }
      if (!ok && relaxed && actual !== null) {
        // same message kind is enough for a relaxed frame
        try {
          const ma = codec.decode(actual.subarray(4));
          const me = codec.decode(expected.subarray(4));
          ok = ma.method === me.method && ma.flags === me.flags && shortRepr(ma.msgid) === shortRepr(me.msgid);
        } catch {
          ok = false;
        }
      }
      if (!ok) {
        res.mismatches.push(`seq ${f.seq} (${key}):\n  expected ${describe(expected, isHandshake)}\n  actual   ${describe(actual, isHandshake)}`);
        if (actual === null) break;
      } else if (!relaxed) {
        // learn and check symbols
        for (const x of vary) {
          const got = actual!.subarray(x.offset, x.offset + x.length);
          if (x.kind === 'tid') {
            const want = symbolValue(x.symbol, known);
            if (want === null) {
              if (/^T\d+$/.test(x.symbol)) {
                const n = Number(x.symbol.slice(1));
                const prev = known.get(`T${n - 1}`);
                if (prev && Buffer.compare(prev, got) >= 0) res.mismatches.push(`seq ${f.seq}: ${x.symbol} ${got.toString('hex')} not after T${n - 1} ${prev.toString('hex')}`);
                known.set(x.symbol, Buffer.from(got));
              }
            } else if (!want.equals(got)) {
              res.mismatches.push(`seq ${f.seq}: ${x.symbol} should be ${want.toString('hex')}, got ${got.toString('hex')}`);
            }
          } else if (x.kind === 'undo-id' || x.kind === 'tid-hex') {
            const want = symbolValue(x.symbol, known);
            if (want !== null && !want.equals(got)) res.mismatches.push(`seq ${f.seq}: ${x.symbol} should be ${want.toString('latin1')}, got ${got.toString('latin1')}`);
          } else if (x.kind === 'time') {
            const m = /^time\((T\d+)\)$/.exec(x.symbol);
            const t = m ? known.get(m[1]!) : undefined;
            if (t && x.length === 8) {
              const gotT = got.readDoubleBE(0);
              const wantT = new TimeStamp(u64(t)).timeTime();
              if (Math.abs(gotT - wantT) > 1e-5) res.mismatches.push(`seq ${f.seq}: ${x.symbol} should be ${wantT}, got ${gotT}`);
            }
          }
        }
      }
    }
    // end of this TCP connection in the recording
    if (lastSeqOf.get(key) === f.seq) {
      const later = (tcpsOf.get(f.conn) ?? []).some((t) => t > f.tcp);
      const isProbe = v.frames.some((g) => `${g.conn}#${g.tcp}` === key && (g.decoded as { handshake?: string })?.handshake === 'ruok');
      const heartbeat = (f.decoded as { msgid?: unknown })?.msgid === -1;
      if ((f.dir === 'c2s' && !heartbeat) || isProbe) {
        // the recording ends with something the server answers by closing
        await c.whenClosed();
        const extra = c.frames.length;
        if (extra && !isProbe) res.mismatches.push(`${key}: ${extra} unexpected frame(s) before the server closed`);
        conns.delete(key);
      } else if (later) {
        await c.close();
        conns.delete(key);
      }
    }
  }
  // Nothing else may have been sent: a ping on every registered connection must be answered next.
  for (const [key, c] of conns) {
    if (c.closed) continue;
    if (c.registered) {
      const ping = codec.encode({ msgid: 999999, flags: false, method: 'ping', args: [] });
      c.socket.write(Buffer.concat([header(ping.length), ping]));
      const r = await c.next();
      let okPing = false;
      try {
        okPing = r !== null && codec.decode(r.subarray(4)).msgid === 999999;
      } catch {
        okPing = false;
      }
      if (!okPing) res.mismatches.push(`${key}: unexpected frame at the end: ${describe(r, false)}`);
    }
    await c.close();
  }
  return res;
}
