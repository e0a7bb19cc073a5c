/**
 * Per-storage counters (operations §6.1) and the text renderings that use them:
 * `server_status` / `ruok` maps (§6.2, §6.3, zeo5-protocol §8.1) and the legacy monitor report (§6.4).
 */
import { PyFloat } from './values.ts';

export class StorageStats {
  /** server start, epoch ms */
  readonly start: Date;
  connections = 0;
  loads = 0;
  stores = 0;
  commits = 0;
  aborts = 0;
  active_txns = 0;
  conflicts = 0;
  conflicts_resolved = 0;

  constructor(start: Date) {
    this.start = start;
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** C ctime() in local time: `Sun Jan  4 09:37:03 2015` (day of month space-padded). */
export function ctime(d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

export interface StatusInputs {
  stats: StorageStats;
  lockTime: number | null;
  waiting: number;
  /** null when no transaction timeout is configured */
  timeoutConfigured: boolean;
  lastTransactionHex: string;
}

/** The server_status map, keys in the reference order (zeo5-protocol §8.1). */
export function statusMap(i: StatusInputs): Record<string, unknown> {
  const s = i.stats;
  return {
    connections: s.connections,
    loads: s.loads,
    stores: s.stores,
    commits: s.commits,
    aborts: s.aborts,
    active_txns: s.active_txns,
    lock_time: i.lockTime === null ? null : new PyFloat(i.lockTime),
    conflicts: s.conflicts,
    conflicts_resolved: s.conflicts_resolved,
    start: ctime(s.start),
    waiting: i.waiting,
    'timeout-thread-is-alive': i.timeoutConfigured ? true : 'stub',
    'last-transaction': i.lastTransactionHex,
  };
}

/** JSON text as Python's json.dumps writes it (", " and ": " separators, non-ASCII escaped). */
export function pythonJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  if (Array.isArray(v)) return '[' + v.map(pythonJson).join(', ') + ']';
  if (typeof v === 'object') {
    return '{' + Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pythonJson(k)}: ${pythonJson(x)}`).join(', ') + '}';
  }
  throw new TypeError(`cannot render ${typeof v} as JSON`);
}

function pyFloatRepr(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
  const s = String(x);
  return /[.eE]/.test(s) ? s.replace(/e([+-])(\d)$/, 'e$10$2') : s + '.0';
}

export interface MonitorStorageInfo {
  name: string;
  stats: StorageStats;
  lockTime: number | null;
}

/** The legacy monitor report (operations §6.4). */
export function monitorReport(version: string, now: Date, storages: MonitorStorageInfo[]): string {
  const lines = [`ZEO monitor server version ${version}`, ctime(now), ''];
  const sorted = [...storages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const st of sorted) {
    const s = st.stats;
    lines.push(`Storage: ${st.name}`);
    lines.push(`Server started: ${ctime(s.start)}`);
    lines.push(`Clients: ${s.connections}`);
    lines.push('Clients verifying: 0');
    lines.push(`Active transactions: ${s.active_txns}`);
    if (st.lockTime !== null) lines.push(`Commit lock held for: ${Math.max(0, Math.floor(now.getTime() / 1000 - st.lockTime))}`);
    lines.push(`Commits: ${s.commits}`);
    lines.push(`Aborts: ${s.aborts}`);
    lines.push(`Loads: ${s.loads}`);
    lines.push(`Stores: ${s.stores}`);
    lines.push(`Conflicts: ${s.conflicts}`);
    lines.push(`Conflicts resolved: ${s.conflicts_resolved}`);
    lines.push('');
  }
  return lines.join('\n') + '\n';
}
