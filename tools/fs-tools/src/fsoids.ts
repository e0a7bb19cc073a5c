/**
 * fsoids (filestorage spec §11.5): every occurrence of chosen oids — revisions, references from
 * and to them — grouped by oid and by transaction.
 */
import { existsSync, statSync } from 'node:fs';
import { RawFile, iterateRecords, iterateTransactions, type IterRecord, type IterWarning } from './fsio.ts';
import { className, getRefs } from './pickle.ts';
import { bytesRepr, oidRepr, tsText } from './pyfmt.ts';
import { ToolError } from './fsio.ts';
import type { Out } from './output.ts';

const NOT_SEEN = 'this oid was not defined (no data record for it found)';

/** Python's shorten(): values over 50 bytes keep 22 leading and 28 trailing bytes around " ... ". */
export function shorten(s: Buffer, size = 50): Buffer {
  if (s.length <= size) return s;
  const nleading = Math.floor((size - 5) / 2);
  const ntrailing = size - nleading;
  return Buffer.concat([s.subarray(0, nleading), Buffer.from(' ... '), s.subarray(s.length - ntrailing)]);
}

interface Msg {
  oid: bigint;
  tid: bigint | null;
  text: string;
}

interface TidInfo {
  user: Buffer;
  description: Buffer;
  tpos: number;
}

export class Tracer {
  private readonly msgs: Msg[] = [];
  /** traced oid → number of revisions seen */
  readonly oids = new Map<bigint, number>();
  private readonly oid2name = new Map<bigint, string>();
  private readonly ref2name = new Map<bigint, string>();
  private readonly tid2info = new Map<bigint, TidInfo>();
  private produced = false;

  constructor(readonly path: string) {
    if (!existsSync(path) || !statSync(path).isFile()) throw new ToolError('must specify an existing FileStorage');
  }

  registerOids(...oids: bigint[]): void {
    for (const oid of oids) {
      if (oid < 0n || oid > 0xffffffffffffffffn) throw new ToolError(`oid out of range: ${oid}`);
      this.oids.set(oid, 0);
    }
  }

  private msg(oid: bigint, tid: bigint, text: string): void {
    this.msgs.push({ oid, tid, text });
    this.produced = true;
  }

  run(warn?: (w: IterWarning) => void): void {
    const f = new RawFile(this.path);
    try {
      for (const t of iterateTransactions(f, warn)) {
        this.produced = false;
        const recordsMap = new Map<bigint, IterRecord>();
        const records: IterRecord[] = [];
        for (const r of iterateRecords(f, t, warn)) {
          if (r.data && r.data.length) {
            if (this.oids.has(r.oid)) {
              const klass = className(r.data);
              this.msg(r.oid, r.tid, `new revision ${klass} at ${r.pos}`);
              this.oids.set(r.oid, this.oids.get(r.oid)! + 1);
              this.oid2name.set(r.oid, klass);
              this.ref2name.set(r.oid, klass);
            }
            recordsMap.set(r.oid, r);
            records.push(r);
          } else if (this.oids.has(r.oid)) {
            this.msg(r.oid, r.tid, `creation undo at ${r.pos}`);
          }
        }
        for (const r of records) this.checkRecord(r, recordsMap);
        if (this.produced) this.tid2info.set(t.tid, { user: t.user, description: t.description, tpos: t.tpos });
      }
    } finally {
      f.close();
    }
  }

  private checkRecord(r: IterRecord, recordsMap: Map<bigint, IterRecord>): void {
    const data = r.data!;
    const ownTraced = this.oids.has(r.oid);
    for (const [ref] of getRefs(data)) {
      if (this.oids.has(ref)) {
        let oidclass = this.ref2name.get(r.oid);
        if (oidclass === undefined) {
          oidclass = className(data);
          this.ref2name.set(r.oid, oidclass);
        }
        this.msg(ref, r.tid, `referenced by ${oidRepr(r.oid)} ${oidclass} at ${r.pos}`);
      }
      if (ownTraced) {
        let klass = this.ref2name.get(ref);
        if (klass === undefined) {
          const rr = recordsMap.get(ref);
          if (rr === undefined) klass = '<unknown>';
          else {
            klass = className(rr.data!);
            this.ref2name.set(ref, klass);
          }
        }
        this.msg(r.oid, r.tid, `references ${oidRepr(ref)} ${klass} at ${r.pos}`);
      }
    }
  }

  async report(out: Out): Promise<void> {
    const msgs = [...this.msgs];
    for (const oid of this.oids.keys()) if (!this.oid2name.has(oid)) msgs.push({ oid, tid: null, text: NOT_SEEN });
    // Sorted by (oid, tid, text) as Python sorts its tuples; a "not defined" message (no tid)
    // sorts first within its oid (Python fails to compare None with a tid, spec §15 #8).
    msgs.sort((a, b) => {
      if (a.oid !== b.oid) return a.oid < b.oid ? -1 : 1;
      if (a.tid !== b.tid) {
        if (a.tid === null) return -1;
        if (b.tid === null) return 1;
        return a.tid < b.tid ? -1 : 1;
      }
      return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
    });
    let curOid: bigint | null = null;
    let curTid: bigint | null | undefined;
    for (const m of msgs) {
      if (m.oid !== curOid) {
        const nrev = this.oids.get(m.oid)!;
        out.write(`oid ${oidRepr(m.oid)} ${this.oid2name.get(m.oid) ?? '<unknown>'} ${nrev} revision${nrev !== 1 ? 's' : ''}\n`);
        curOid = m.oid;
        curTid = undefined;
        if (m.tid === null) {
          out.write(`    ${m.text}\n`);
          continue;
        }
      }
      if (m.tid !== curTid) {
        curTid = m.tid;
        if (m.tid !== null) {
          const info = this.tid2info.get(m.tid)!;
          out.write(`    tid ${oidRepr(m.tid)} offset=${info.tpos} ${tsText(m.tid)}\n`);
          out.write(`        tid user=${bytesRepr(shorten(info.user))}\n`);
          out.write(`        tid description=${bytesRepr(shorten(info.description))}\n`);
        }
      }
      out.write(`        ${m.text}\n`);
      await out.maybeFlush();
    }
  }
}

/** int(s, 0): Python integer literal with automatic base (0x.., 0o.., 0b.., decimal, underscores). */
export function parsePyInt(s: string): bigint {
  const t = s.trim();
  const m = /^([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?0)*|[1-9](?:_?[0-9])*)$/.exec(t);
  if (!m) throw new ToolError(`invalid literal for int() with base 0: ${JSON.stringify(s)}`);
  const body = m[2]!.replace(/_/g, '');
  let v: bigint;
  if (/^0[oO]/.test(body)) v = BigInt('0o' + body.slice(2));
  else if (/^0[bB]/.test(body)) v = BigInt('0b' + body.slice(2));
  else v = BigInt(body);
  return m[1] === '-' ? -v : v;
}
