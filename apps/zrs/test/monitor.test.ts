// The legacy monitors: zrsmonitor-script (zrs spec §9.2) and last-zeo-transaction (§9.3), with
// real ZEO servers (a zrs primary, a zrs secondary replicating from it, an empty runzeo) and an
// injected clock for the ctime and alignment arithmetic only (no sleeps).
// The spec's conformance checklist has no numbers for §9.2/§9.3; tests cite the sections.
process.env.TZ = 'UTC'; // ctime is local time: make it deterministic for this file

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { startRunzeo } from '@zeo-ts/client/testing';
import { TimeStamp, type Tid } from '@zeo-ts/storage';
import { adminCommand } from '../src/promote.ts';
import { ClusterMonitor, addressTupleRepr, alignStart, ctime, monitorConfig, nextWake, parseIni, pyFormat, utcStamp, zeoSource, type ClusterConfig, type MonitorConfig } from '../src/monitor.ts';
import { APP_DIR, clientSeen, commitOne, runNode, startZrs, tempDir, zeoClient, zrsConfig } from './helpers.ts';

const MONITOR_BIN = join(APP_DIR, 'bin', 'zrsmonitor-script.mjs');
const LAST_BIN = join(APP_DIR, 'bin', 'last-zeo-transaction.mjs');
const secs = (tid: Tid) => new TimeStamp(tid).timeTime();

test('zrs §9.2/§9.3: ctime (Python time.ctime), the utc field, wall-clock alignment', () => {
  assert.equal(ctime(1183770123.9), 'Sat Jul  7 01:02:03 2007'); // python3 time.ctime, TZ=UTC
  assert.equal(ctime(-2208988800), 'Mon Jan  1 00:00:00 1900'); // z64
  assert.equal(ctime(0), 'Thu Jan  1 00:00:00 1970');
  assert.equal(utcStamp(1183770123.9), '07-07-2007 01:02:03');
  // frequency 5 minutes: first target the next multiple of 300 s
  const delta = 300;
  let next = alignStart(1000, delta);
  assert.equal(next, 900);
  next = nextWake(next, 1000, delta);
  assert.equal(next, 1200);
  // a check that overran two periods skips to the first future multiple
  assert.equal(nextWake(1200, 1900, delta), 2100);
  assert.equal(nextWake(1200, 1500, delta), 1500, 'exactly on a multiple: wake at once');
  assert.equal(nextWake(1200, 1499.5, delta), 1500);
  assert.throws(() => nextWake(0, 0, 0), /period must be positive/);
});

test('zrs §9.2: message templates are Python %-formatting', () => {
  const f = { hostname: 'h', port: 81, name: 'c1', service: 'c1-primary', severity: 'INFO', comment: 'No transactions', utc: 'u' };
  assert.equal(pyFormat('%(hostname)s %(service)s %(comment)s', f), 'h c1-primary No transactions');
  assert.equal(pyFormat('%(port)05d|%(severity)-9s|%(name)r|%%', f), "00081|INFO     |'c1'|%"); // python3 gives the same
  assert.throws(() => pyFormat('%(nope)s', f), /unknown key 'nope'/);
  assert.throws(() => pyFormat('%s', f), /bad format at position 0/);
});

const INI = `# zrsmonitor configuration; the logging sections are Python's and ignored here
[loggers]
keys = root, monitor

[monitor]
clusters = first second
frequency = 0.5
message = %(severity)s %(hostname)s:%(port)s %(service)s %(comment)s ; trailing comment

[first]
primary = db1:8100
secondaries = db2:8100
  db3:8101

[second]
Primary: db4:8100
secondaries =

[handler_monitor]
class = StreamHandler
args = (sys.stdout,)
`;

test('zrs §9.2: the INI configuration (RawConfigParser rules: comments, continuation lines, ":" and case)', () => {
  const cfg = monitorConfig(parseIni(INI, 'm.ini'), 'm.ini');
  assert.equal(cfg.frequency, 0.5);
  assert.equal(cfg.message, '%(severity)s %(hostname)s:%(port)s %(service)s %(comment)s');
  assert.deepEqual(cfg.clusters, [
    { name: 'first', primary: { host: 'db1', port: 8100 }, secondaries: [{ host: 'db2', port: 8100 }, { host: 'db3', port: 8101 }] },
    { name: 'second', primary: { host: 'db4', port: 8100 }, secondaries: [] },
  ]);
  assert.equal(monitorConfig(parseIni('[monitor]\nclusters = a\n[a]\nprimary = h:1\nsecondaries = h:2\n', 'x'), 'x').frequency, 5, 'frequency defaults to 5 minutes');
  const bad: Array<[string, RegExp]> = [
    ['[x]\n', /m\.ini: no \[monitor\] section/],
    ['[monitor]\nfrequency = 1\n', /needs "clusters"/],
    ['[monitor]\nclusters = a\n', /cluster 'a' has no \[a\] section/],
    ['[monitor]\nclusters = a\n[a]\nsecondaries = h:2\n', /\[a\] needs "primary = HOST:PORT"/],
    ['[monitor]\nclusters = a\n[a]\nprimary = h\nsecondaries = h:2\n', /\[a\] primary: expected HOST:PORT, not 'h'/],
    ['[monitor]\nclusters = a\nfrequency = often\n[a]\nprimary = h:1\nsecondaries =\n', /frequency must be a positive number of minutes/],
    ['[monitor]\nclusters = a\nmessage = %(host)s\n[a]\nprimary = h:1\nsecondaries =\n', /message: unknown key 'host'/],
    ['clusters = a\n', /m\.ini, line 1: no section header/],
    ['[monitor]\njunk\n', /m\.ini, line 2: cannot parse 'junk'/],
  ];
  for (const [text, rx] of bad) assert.throws(() => monitorConfig(parseIni(text, 'm.ini'), 'm.ini'), rx, text);
});

/** A port nobody listens on. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

/** An in-memory `monitor` logger. */
function memoryMonitorLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info', base: { name: 'monitor' } }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines, take: () => lines.splice(0).map((l) => [l.severity, l.msg, l.level]) };
}

test('zrs §9.2: zrsmonitor checks against real servers: OK, "no data", "out of date" (WARNING then CRITICAL), "ahead", "has data but primary doesn\'t", "disconnected"', async () => {
  const d = tempDir('zrs-monitor-');
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: p.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  const e = await startRunzeo(['-a', '127.0.0.1:0', '-f', join(d, 'e.fs')], { cwd: d });
  const dead = await deadPort();
  const at = (port: number) => ({ host: '127.0.0.1', port });
  const config = (c: ClusterConfig): MonitorConfig => ({ frequency: 5, message: '%(hostname)s %(service)s %(comment)s', clusters: [c] });
  let t = 0;
  const clock = () => t;
  const m = memoryMonitorLog();
  const srcs: ReturnType<typeof zeoSource>[] = [];
  const connect = (a: { host: string; port: number }) => {
    const src = zeoSource(a, pino({ level: 'silent' }));
    srcs.push(src);
    return src;
  };
  const mon = new ClusterMonitor({ name: 'c1', primary: at(p.port), secondaries: [at(s.port), at(e.port), at(dead)] }, config({ name: 'c1', primary: at(p.port), secondaries: [] }), { clock, logger: m.log, connect });
  // the monitor's clients connect in the background (they do not wait); wait for the live ones
  for (const src of srcs.slice(0, 3)) await (await src.client()).waitConnected(60);
  const monitors = [mon];
  const P = `127.0.0.1 c1-primary`;
  const S = `127.0.0.1 c1-secondary`;
  try {
    // empty storages everywhere
    t = Date.now() / 1000;
    await mon.check(t);
    assert.deepEqual(m.take(), [
      ['INFO', `${P} No transactions`, 30],
      ['INFO', `${S} No data`, 30],
      ['INFO', `${S} No data`, 30],
      ['CRITICAL', `${S} Disconnected since: Never connected`, 60],
    ]);
    // commits on the primary, replicated to the secondary
    const cp = await zeoClient(p.port);
    let last = 0n;
    for (let i = 0; i < 3; i++) last = await commitOne(cp, i);
    const cs = await zeoClient(s.port, true);
    await clientSeen(cs, last);
    await cs.close();
    const pt = secs(last);
    t = pt + 1;
    const checkedAt = ctime(t);
    await mon.check(t);
    assert.deepEqual(m.take(), [
      ['INFO', `${P} Committed: ${ctime(pt)}`, 30],
      ['INFO', `${S} Committed: ${ctime(pt)}`, 30],
      ['CRITICAL', `${S} Secondary has no data, but primary does: ${ctime(pt)}`, 60], // the empty server: no progress since the start
      ['CRITICAL', `${S} Disconnected since: Never connected`, 60],
    ]);
    // the secondary stops replicating (promoted); the primary goes on
    assert.equal((await adminCommand(s.admin!, 'promote 1')).ok, true);
    const newer = await commitOne(cp, 10);
    t = secs(newer) + 120;
    const mon2 = new ClusterMonitor({ name: 'c1', primary: at(p.port), secondaries: [at(s.port)] }, config({ name: 'c1', primary: at(p.port), secondaries: [] }), { clock, logger: m.log, connect });
    monitors.push(mon2);
    for (const src of srcs.slice(4)) await (await src.client()).waitConnected(60);
    await mon2.check(t);
    await mon2.check(t);
    assert.deepEqual(m.take(), [
      ['INFO', `${P} Committed: ${ctime(secs(newer))}`, 30],
      ['WARNING', `${S} Secondary out of date: s=${ctime(pt)} p=${ctime(secs(newer))}`, 40], // progress since the previous check
      ['INFO', `${P} Committed: ${ctime(secs(newer))}`, 30],
      ['CRITICAL', `${S} Secondary out of date: s=${ctime(pt)} p=${ctime(secs(newer))}`, 60], // none since
    ]);
    await cp.close();
    // the promoted secondary takes a commit of its own: it is now ahead of the primary
    const cw = await zeoClient(s.port);
    const ahead = await commitOne(cw, 20);
    await cw.close();
    t = secs(ahead) + 0.5;
    await mon2.check(t);
    assert.deepEqual(m.take(), [
      ['INFO', `${P} Committed: ${ctime(secs(newer))}`, 30],
      ['CRITICAL', `${S} Secondary is ahead of primary s=${ctime(secs(ahead))} p=${ctime(secs(newer))}`, 60],
    ]);
    // an empty "primary" with a secondary that has data
    const mon3 = new ClusterMonitor({ name: 'c1', primary: at(e.port), secondaries: [at(s.port)] }, config({ name: 'c1', primary: at(e.port), secondaries: [] }), { clock, logger: m.log, connect });
    monitors.push(mon3);
    for (const src of srcs.slice(6)) await (await src.client()).waitConnected(60);
    await mon3.check(t);
    assert.deepEqual(m.take(), [
      ['INFO', `${P} No transactions`, 30],
      ['CRITICAL', `${S} Secondary has data, ${ctime(secs(ahead))}, but primary doesn't.`, 60],
    ]);
    // the secondary's server goes away: "Disconnected since" the last successful check
    const monitorClientOfS = await srcs[1]!.client();
    const gone = new Promise<void>((r) => monitorClientOfS.onConnectionChange((up) => void (up || r())));
    await s.stop();
    await gone;
    t += 60;
    await mon.check(t);
    const lines = m.take();
    assert.deepEqual(lines[1], ['CRITICAL', `${S} Disconnected since: ${checkedAt}`, 60]);
    // the report line carries the fields as JSON too
    await mon.check(t);
    const rec = m.lines.find((l) => l.severity === 'CRITICAL' && String(l.msg).includes('Disconnected since: ' + checkedAt))!;
    assert.equal(rec.name, 'monitor');
    assert.equal(rec.service, 'c1-secondary');
    assert.equal(rec.port, s.port);
    assert.equal(rec.hostname, '127.0.0.1');
  } finally {
    for (const x of monitors) await x.stop();
    await s.stop();
    await e.stop();
    await p.stop();
  }
});

test('zrs §9.2, §9.3: the zrsmonitor-script and last-zeo-transaction programs against real servers', async () => {
  const d = tempDir('zrs-monitor-cli-');
  const p = await startZrs(zrsConfig({ dir: d, path: join(d, 'p.fs'), replicateTo: 0 }), d, 'p.conf');
  const s = await startZrs(zrsConfig({ dir: d, path: join(d, 's.fs'), replicateFrom: p.replPort, extra: '  reconnect-delay 0.1' }), d, 's.conf');
  const procs: ChildProcess[] = [];
  try {
    const cp = await zeoClient(p.port);
    const last = await commitOne(cp, 0);
    await cp.close();
    const cs = await zeoClient(s.port, true);
    await clientSeen(cs, last);
    await cs.close();
    // last-zeo-transaction: the address tuple, then the local ctime of the last transaction
    const r = await runNode(LAST_BIN, [`127.0.0.1:${p.port}`, `127.0.0.1:${s.port}`]);
    assert.equal(r.code, 0, r.stderr);
    const line = `${addressTupleRepr({ host: '127.0.0.1', port: p.port })}${ctime(secs(last))} (local)\n`;
    assert.equal(r.stdout, line + line.replace(`, ${p.port})`, `, ${s.port})`));
    const bad = await runNode(LAST_BIN, ['nohost']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected HOST:PORT, not 'nohost'/);
    // zrsmonitor-script: checks every 0.01 minutes, pino JSON report lines on stdout
    const ini = join(d, 'monitor.ini');
    writeFileSync(ini, `[monitor]\nclusters = prod\nfrequency = 0.01\n\n[prod]\nprimary = 127.0.0.1:${p.port}\nsecondaries = 127.0.0.1:${s.port}\n`);
    const proc = spawn(process.execPath, [MONITOR_BIN, ini], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    const recs: Array<Record<string, unknown>> = [];
    let out = '';
    const exited = new Promise<number | null>((res) => proc.on('exit', (c) => res(c)));
    const want = `127.0.0.1 prod-secondary Committed: ${ctime(secs(last))}`;
    await new Promise<void>((res, rej) => {
      proc.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
          recs.push(JSON.parse(out.slice(0, i)));
          out = out.slice(i + 1);
        }
        if (recs.some((l) => l.msg === want)) res();
      });
      void exited.then((c) => rej(new Error(`zrsmonitor-script exited ${c}`)));
    });
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    procs.length = 0;
    const ok = recs.find((l) => l.msg === want)!;
    assert.equal(ok.severity, 'INFO');
    assert.equal(ok.name, 'monitor');
    assert.ok(recs.some((l) => l.msg === `127.0.0.1 prod-primary Committed: ${ctime(secs(last))}`));
    const usage = await runNode(MONITOR_BIN, []);
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, 'Usage: zrsmonitor-script CONFIG_PATH\n');
    const missing = await runNode(MONITOR_BIN, [join(d, 'nope.ini')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.ini/);
  } finally {
    for (const x of procs) x.kill('SIGKILL');
    await s.stop();
    await p.stop();
  }
});
