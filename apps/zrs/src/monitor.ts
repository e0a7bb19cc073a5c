/**
 * The legacy log-based monitor `zrsmonitor-script CONFIG_PATH` (zrs spec §9.2) and
 * `last-zeo-transaction HOST:PORT …` (§9.3).
 *
 * The monitor reads an INI file ([monitor] clusters/frequency/message, one [<cluster>] section per
 * cluster with primary and secondaries), watches each cluster's ZEO servers with read-only
 * clients, and reports at wall-clock multiples of `frequency` minutes. Upstream hands the same
 * file to Python's logging.config; we do not run that: every report is one pino JSON line on
 * stdout with `msg` (the formatted message), `severity` (INFO, WARNING or CRITICAL), the pino
 * level (info, warn, fatal) and the template's fields. The other INI sections are ignored.
 */
import pino, { type Logger } from 'pino';
import { ClientStorage } from '@zeo-ts/client';
import { pyRepr } from '@zeo-ts/config';
import { ClientDisconnected, TimeStamp, type Tid } from '@zeo-ts/storage';

// ---- time (pure) -------------------------------------------------------------------------------

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** Python's time.ctime(seconds): local time, `Sat Jul  7 01:02:03 2007` (seconds floored). */
export function ctime(seconds: number): string {
  if (!Number.isFinite(seconds)) throw new RangeError(`ctime: not a time: ${seconds}`);
  const d = new Date(Math.floor(seconds) * 1000);
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`;
}

/** `%m-%d-%Y %H:%M:%S` in UTC (the template's `utc` field). */
export function utcStamp(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  return `${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}-${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
}

/** timeTime of a tid (z64 → −2208988800). */
export function tidTime(tid: Tid): number {
  return new TimeStamp(tid).timeTime();
}

/**
 * Wall-clock alignment (§9.2): given the previous wake-up target `next`, the time `now` and the
 * period `delta` (seconds), the next target: the following multiple, or if that is already past
 * (a check overran), the first future multiple. The first `next` is `now - now % delta`.
 */
export function nextWake(next: number, now: number, delta: number): number {
  if (!(delta > 0)) throw new RangeError(`nextWake: the period must be positive, not ${delta}`);
  next += delta;
  const behind = now - next;
  if (behind > 0) next += Math.ceil(behind / delta) * delta;
  // floating point: make sure the target is not in the past
  for (let i = 0; i < 3 && next < now; i++) next += delta;
  return next;
}

/** The first alignment point: the multiple of `delta` at or before `now`. */
export function alignStart(now: number, delta: number): number {
  return now - (now % delta);
}

// ---- Python %-formatting of the message template -------------------------------------------------

export type TemplateValue = string | number;

/** `template % dict` for %(name)s / %(name)r / %(name)d / %(name)f / %%, with flags, width and precision. */
export function pyFormat(template: string, values: Record<string, TemplateValue>): string {
  let out = '';
  for (let i = 0; i < template.length; ) {
    const c = template[i]!;
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    if (template[i + 1] === '%') {
      out += '%';
      i += 2;
      continue;
    }
    const m = /^%\(([^)]*)\)([-+ #0]*)(\d*)(?:\.(\d+))?([sdirfgex])/.exec(template.slice(i));
    if (!m) throw new TemplateError(`bad format at position ${i} of ${pyRepr(template)}: use %(name)s`);
    const [all, key, flags, width, prec, conv] = m as unknown as [string, string, string, string, string | undefined, string];
    if (!(key in values)) throw new TemplateError(`unknown key ${pyRepr(key)} in ${pyRepr(template)} (known: ${Object.keys(values).join(', ')})`);
    const v = values[key]!;
    let s: string;
    switch (conv) {
      case 's':
        s = String(v);
        if (prec !== undefined) s = s.slice(0, Number(prec));
        break;
      case 'r':
        s = typeof v === 'string' ? pyRepr(v) : String(v);
        break;
      case 'd':
      case 'i':
        if (typeof v !== 'number') throw new TemplateError(`%(${key})${conv} needs a number, ${key} is text`);
        s = String(Math.trunc(v));
        if (flags.includes('+') && v >= 0) s = '+' + s;
        break;
      default:
        if (typeof v !== 'number') throw new TemplateError(`%(${key})${conv} needs a number, ${key} is text`);
        s = conv === 'e' ? v.toExponential(prec === undefined ? 6 : Number(prec)) : v.toFixed(prec === undefined ? 6 : Number(prec));
    }
    const w = width ? Number(width) : 0;
    if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : flags.includes('0') && conv !== 's' && conv !== 'r' ? s.padStart(w, '0') : s.padStart(w);
    out += s;
    i += all.length;
  }
  return out;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

// ---- configuration (INI, as Python's RawConfigParser reads it) -----------------------------------

export class MonitorConfigError extends Error {
  override name = 'MonitorConfigError';
}

/** Sections → (lower-cased option → value). [DEFAULT] options apply to every section. */
export function parseIni(text: string, file: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  const defaults = new Map<string, string>();
  let cur: Map<string, string> | null = null;
  let lastKey: string | null = null;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!.replace(/\r$/, '');
    const where = `${file}, line ${n + 1}`;
    if (raw.trim() === '' || /^\s*[#;]/.test(raw) || /^rem\s/i.test(raw)) {
      if (raw.trim() === '') lastKey = null;
      continue;
    }
    if (/^\s/.test(raw) && cur && lastKey !== null) {
      cur.set(lastKey, `${cur.get(lastKey)}\n${raw.trim()}`);
      continue;
    }
    const h = /^\[([^\]]+)\]/.exec(raw);
    if (h) {
      const name = h[1]!;
      if (name === 'DEFAULT') cur = defaults;
      else {
        cur = sections.get(name) ?? new Map();
        sections.set(name, cur);
      }
      lastKey = null;
      continue;
    }
    if (!cur) throw new MonitorConfigError(`${where}: no section header before ${pyRepr(raw)}`);
    const sep = /[=:]/.exec(raw);
    if (!sep || sep.index === 0) throw new MonitorConfigError(`${where}: cannot parse ${pyRepr(raw)} (expected "name = value")`);
    const key = raw.slice(0, sep.index).trim().toLowerCase();
    let value = raw.slice(sep.index + 1);
    const comment = /\s;/.exec(value);
    if (comment) value = value.slice(0, comment.index);
    value = value.trim();
    if (value === '""') value = '';
    cur.set(key, value);
    lastKey = key;
  }
  for (const s of sections.values()) for (const [k, v] of defaults) if (!s.has(k)) s.set(k, v);
  return sections;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface ClusterConfig {
  name: string;
  primary: HostPort;
  secondaries: HostPort[];
}

export interface MonitorConfig {
  /** minutes */
  frequency: number;
  message: string;
  clusters: ClusterConfig[];
}

export const DEFAULT_MESSAGE = '%(hostname)s %(service)s %(comment)s';

/** `HOST:PORT` as upstream splits it. */
export function parseHostPort(s: string, what: string): HostPort {
  const parts = s.split(':');
  const port = Number(parts[1]);
  if (parts.length !== 2 || !parts[0] || !/^\d+$/.test(parts[1] ?? '') || port > 65535) throw new MonitorConfigError(`${what}: expected HOST:PORT, not ${pyRepr(s)}`);
  return { host: parts[0], port };
}

export function monitorConfig(ini: Map<string, Map<string, string>>, file: string): MonitorConfig {
  const mon = ini.get('monitor');
  if (!mon) throw new MonitorConfigError(`${file}: no [monitor] section`);
  const clustersText = mon.get('clusters');
  if (clustersText === undefined || !clustersText.trim()) throw new MonitorConfigError(`${file}: [monitor] needs "clusters" (space-separated section names)`);
  const frequency = mon.has('frequency') ? Number(mon.get('frequency')) : 5;
  if (!Number.isFinite(frequency) || frequency <= 0 || frequency > 7 * 24 * 60) throw new MonitorConfigError(`${file}: [monitor] frequency must be a positive number of minutes (at most a week), not ${pyRepr(mon.get('frequency') ?? '')}`);
  const message = mon.get('message') ?? DEFAULT_MESSAGE;
  try {
    pyFormat(message, sampleFields());
  } catch (e) {
    throw new MonitorConfigError(`${file}: [monitor] message: ${(e as Error).message}`);
  }
  const clusters: ClusterConfig[] = [];
  for (const name of clustersText.split(/\s+/).filter(Boolean)) {
    const sec = ini.get(name);
    if (!sec) throw new MonitorConfigError(`${file}: cluster ${pyRepr(name)} has no [${name}] section`);
    const p = sec.get('primary');
    if (!p) throw new MonitorConfigError(`${file}: [${name}] needs "primary = HOST:PORT"`);
    const ss = sec.get('secondaries');
    if (ss === undefined) throw new MonitorConfigError(`${file}: [${name}] needs "secondaries = HOST:PORT ..."`);
    clusters.push({
      name,
      primary: parseHostPort(p, `${file}: [${name}] primary`),
      secondaries: ss.split(/\s+/).filter(Boolean).map((a) => parseHostPort(a, `${file}: [${name}] secondaries`)),
    });
  }
  return { frequency, message, clusters };
}

function sampleFields(): Record<string, TemplateValue> {
  return { hostname: 'localhost', port: 8100, name: 'cluster', service: 'cluster-primary', severity: 'INFO', comment: 'No transactions', utc: '01-01-2000 00:00:00' };
}

// ---- checks ---------------------------------------------------------------------------------------

export type Severity = 'INFO' | 'WARNING' | 'CRITICAL';

/** What a check needs from a ZEO server: its last transaction, or an error when disconnected. */
export interface LastTransactionSource {
  /** the server's last tid; rejects (ClientDisconnected) when there is no connection */
  lastTransaction(): Promise<Tid>;
  close(): Promise<void>;
}

export type Connect = (addr: HostPort) => LastTransactionSource;

/** A read-only ZEO client that does not wait for its connection and retries every 1–30 s (§9.2). */
export function zeoSource(addr: HostPort, logger: Logger): LastTransactionSource & { client: () => Promise<ClientStorage> } {
  const opening = ClientStorage.open({ addresses: [addr], cachePath: null, readOnly: true, wait: false, minDisconnectPoll: 1, maxDisconnectPoll: 30, logger });
  return {
    client: () => opening,
    async lastTransaction(): Promise<Tid> {
      const c = await opening;
      if (!c.isConnected()) throw new ClientDisconnected(`${addressTupleRepr(addr)} is not connected`);
      await c.sync(); // a round trip: every invalidation sent before it is applied
      return c.lastTransaction();
    },
    async close(): Promise<void> {
      await (await opening).close();
    },
  };
}

export interface MonitorOptions {
  /** seconds since the epoch (float); injectable for the ctime and alignment arithmetic */
  clock?: () => number;
  connect?: Connect;
  logger?: Logger;
}

/** The `monitor` logger: pino JSON lines on stdout. */
export function monitorLogger(dest: pino.DestinationStream | number = 1): Logger {
  return pino({ level: 'info', base: { name: 'monitor' } }, typeof dest === 'number' ? pino.destination(dest) : dest);
}

abstract class Target {
  readonly service: string;
  readonly source: LastTransactionSource;
  protected lastConnected = 'Never connected';

  constructor(
    readonly cluster: string,
    readonly addr: HostPort,
    role: 'primary' | 'secondary',
    protected readonly mon: ClusterMonitor,
  ) {
    this.service = `${cluster}-${role}`;
    this.source = mon.connect(addr);
  }

  protected report(severity: Severity, comment: string): void {
    const fields = { hostname: this.addr.host, port: this.addr.port, name: this.cluster, service: this.service, severity, comment, utc: utcStamp(this.mon.clock()) };
    this.mon.emit(severity, fields, pyFormat(this.mon.config.message, fields));
  }

  /** last tid, or null after reporting "Disconnected since" */
  protected async read(): Promise<Tid | null> {
    let tid: Tid;
    try {
      tid = await this.source.lastTransaction();
    } catch {
      this.report('CRITICAL', `Disconnected since: ${this.lastConnected}`);
      return null;
    }
    this.lastConnected = ctime(this.mon.clock());
    return tid;
  }
}

class PrimaryTarget extends Target {
  /** the last primary time read successfully (0 until then, as upstream) */
  seconds = 0;

  constructor(cluster: string, addr: HostPort, mon: ClusterMonitor) {
    super(cluster, addr, 'primary', mon);
  }

  async check(): Promise<void> {
    const tid = await this.read();
    if (tid === null) return;
    this.seconds = tidTime(tid);
    if (tid === 0n) this.report('INFO', 'No transactions');
    else this.report('INFO', `Committed: ${ctime(this.seconds)}`);
  }
}

class SecondaryTarget extends Target {
  /** secondary time at the previous check */
  lastSeconds = -2208988800;

  constructor(cluster: string, addr: HostPort, mon: ClusterMonitor) {
    super(cluster, addr, 'secondary', mon);
  }

  /** `p` = primary time, `start` = the cycle's start time (upstream: taken before the wait). */
  async check(p: number, start: number): Promise<void> {
    const tid = await this.read();
    if (tid === null) return;
    const s = tidTime(tid);
    if (s - p > this.mon.clock() - start) {
      if (p < 0) this.report('CRITICAL', `Secondary has data, ${ctime(s)}, but primary doesn't.`);
      else this.report('CRITICAL', `Secondary is ahead of primary s=${ctime(s)} p=${ctime(p)}`);
    } else if (p - s > 60 || (p > s && this.mon.clock() - p > 60)) {
      const severity: Severity = s > this.lastSeconds ? 'WARNING' : 'CRITICAL';
      if (tid === 0n) this.report(severity, `Secondary has no data, but primary does: ${ctime(p)}`);
      else this.report(severity, `Secondary out of date: s=${ctime(s)} p=${ctime(p)}`);
    } else if (tid === 0n) this.report('INFO', 'No data');
    else this.report('INFO', `Committed: ${ctime(s)}`);
    this.lastSeconds = s;
  }
}

/** One cluster: a primary and its secondaries, checked together every `frequency` minutes. */
export class ClusterMonitor {
  readonly clock: () => number;
  readonly connect: Connect;
  readonly log: Logger;
  readonly primary: PrimaryTarget;
  readonly secondaries: SecondaryTarget[];
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  /** number of completed checks (tests) */
  checks = 0;

  constructor(
    readonly cluster: ClusterConfig,
    readonly config: MonitorConfig,
    options: MonitorOptions = {},
  ) {
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.log = options.logger ?? monitorLogger();
    const clientLog = pino({ level: 'warn', name: 'ZEO.ClientStorage' }, pino.destination(2));
    this.connect = options.connect ?? ((a) => zeoSource(a, clientLog));
    this.primary = new PrimaryTarget(cluster.name, cluster.primary, this);
    this.secondaries = cluster.secondaries.map((a) => new SecondaryTarget(cluster.name, a, this));
  }

  /** @internal a report line */
  emit(severity: Severity, fields: Record<string, TemplateValue>, text: string): void {
    const rec = { severity, hostname: fields.hostname, port: fields.port, service: fields.service, comment: fields.comment };
    if (severity === 'INFO') this.log.info(rec, text);
    else if (severity === 'WARNING') this.log.warn(rec, text);
    else this.log.fatal(rec, text);
  }

  /** One check of the primary then every secondary; `start` is the cycle's start time. */
  async check(start: number): Promise<void> {
    await this.primary.check();
    for (const s of this.secondaries) await s.check(this.primary.seconds, start);
    this.checks++;
  }

  /** Check at every wall-clock multiple of the frequency until stop(). */
  async run(): Promise<void> {
    const delta = this.config.frequency * 60;
    let next = alignStart(this.clock(), delta);
    for (let n = 0; !this.stopped && n < Number.MAX_SAFE_INTEGER; n++) {
      const now = this.clock();
      next = nextWake(next, now, delta);
      await new Promise<void>((r) => {
        this.wake = r;
        this.timer = setTimeout(r, Math.max(0, (next - now) * 1000));
      });
      this.timer = null;
      this.wake = null;
      if (this.stopped) break;
      try {
        await this.check(now);
      } catch (e) {
        // upstream lets the cluster's thread die; we log and go on with the next period
        this.log.error({ severity: 'ERROR', err: String((e as Error)?.stack ?? e) }, `Error in cluster ${this.cluster.name}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await Promise.all([this.primary, ...this.secondaries].map((t) => t.source.close().catch(() => undefined)));
  }
}

export interface MonitorIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readFile: (path: string) => string;
  /** resolves when the program should stop (signals) */
  stopped: Promise<void>;
  logger?: Logger;
  clock?: () => number;
}

export const MONITOR_USAGE = 'Usage: zrsmonitor-script CONFIG_PATH\n';

/** `zrsmonitor-script CONFIG_PATH`: runs until `io.stopped`; 2 on a usage or configuration error. */
export async function monitorMain(argv: string[], io: MonitorIO): Promise<number> {
  if (argv.length !== 1 || argv[0] === '-h' || argv[0] === '--help') {
    io.stderr(MONITOR_USAGE);
    return argv[0] === '-h' || argv[0] === '--help' ? 0 : 2;
  }
  const file = argv[0]!;
  let cfg: MonitorConfig;
  try {
    let text: string;
    try {
      text = io.readFile(file);
    } catch (e) {
      throw new MonitorConfigError(`cannot read ${file}: ${(e as Error).message}`);
    }
    cfg = monitorConfig(parseIni(text, file), file);
  } catch (e) {
    io.stderr(`Error: ${(e as Error).message}\n`);
    return 2;
  }
  const logger = io.logger ?? monitorLogger();
  const clusters = cfg.clusters.map((c) => new ClusterMonitor(c, cfg, { logger, clock: io.clock }));
  const runs = clusters.map((c) => c.run());
  await io.stopped;
  await Promise.all(clusters.map((c) => c.stop()));
  await Promise.all(runs);
  return 0;
}

// ---- last-zeo-transaction (§9.3) ---------------------------------------------------------------

export interface LastIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** seconds to wait for each server (default 30) */
  waitTimeout?: number;
}

/** Python's repr of the address tuple, e.g. `('localhost', 8100)`. */
export function addressTupleRepr(a: HostPort): string {
  return `(${pyRepr(a.host)}, ${a.port})`;
}

/** `last-zeo-transaction HOST:PORT …`: one line per server; 1 if a server cannot be reached. */
export async function lastZeoMain(argv: string[], io: LastIO): Promise<number> {
  let addrs: HostPort[];
  try {
    addrs = argv.map((a) => parseHostPort(a, 'last-zeo-transaction'));
  } catch (e) {
    io.stderr(`Error: ${(e as Error).message}\nUsage: last-zeo-transaction HOST:PORT ...\n`);
    return 2;
  }
  const logger = pino({ level: 'warn', name: 'ZEO.ClientStorage' }, pino.destination(2));
  for (const a of addrs) {
    io.stdout(addressTupleRepr(a));
    let c: ClientStorage | null = null;
    try {
      c = await ClientStorage.open({ addresses: [a], cachePath: null, readOnly: true, wait: true, waitTimeout: io.waitTimeout ?? 30, logger });
      io.stdout(`${ctime(tidTime(c.lastTransaction()))} (local)\n`);
    } catch (e) {
      io.stdout('\n');
      io.stderr(`Error: ${addressTupleRepr(a)}: ${(e as Error).message}\n`);
      return 1;
    } finally {
      await c?.close();
    }
  }
  return 0;
}
