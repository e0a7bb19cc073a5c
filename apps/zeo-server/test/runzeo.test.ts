// runzeo's command line and lifecycle (operations §9.4 #57–#78, §9.6 #86–#90).
// Most cases run the program in-process (same code as the bin, signals from an EventEmitter);
// those about real signals, logs, locks and the monitor run `runzeo` as a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { RpcConnection } from '@zeo-ts/wire';
import { runzeo, type RunzeoIO } from '../src/runzeo.ts';
import type { ListenAddress } from '@zeo-ts/server';
import { startRunzeo, tempDir } from './helpers.ts';

interface InProc {
  code: Promise<number>;
  out: () => string;
  err: () => string;
  signals: EventEmitter;
  address: Promise<ListenAddress>;
}

function inProcess(argv: string[], cwd: string, env: NodeJS.ProcessEnv = {}): InProc {
  let out = '';
  let err = '';
  const signals = new EventEmitter();
  let gotAddress!: (a: ListenAddress) => void;
  const address = new Promise<ListenAddress>((r) => (gotAddress = r));
  const io: RunzeoIO = {
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    env: { ZEO_TS_LOG_LEVEL: 'silent', ...env },
    cwd,
    signals,
    onListening: (a) => gotAddress(a),
  };
  const code = runzeo(argv, io);
  void code.then(() => gotAddress({ host: '', port: -1 }));
  return { code, out: () => out, err: () => err, signals, address };
}

async function usage(argv: string[], message: string): Promise<void> {
  const dir = tempDir();
  const r = inProcess(argv, dir);
  assert.equal(await r.code, 2, r.err());
  // #65: exactly two lines on stderr
  assert.equal(r.err(), `Error: ${message}\nFor help, use runzeo -h\n`);
}

test('usage errors exit 2 with the two-line message (#60, #61, #62, #63, #65)', async () => {
  await usage([], 'no server address specified; use -a or -C');
  await usage(['-f', 'Data.fs'], 'no server address specified; use -a or -C');
  await usage(['-a', '8100'], 'no storages specified; use -f or -C');
  await usage(['-a', '8100', '-f', 'x.fs', 'extra'], 'positional arguments are not supported');
  await usage(['-a', '1', '-f', 'x', '-t', 'abc'], "invalid value for -t 'abc': could not convert string to float: 'abc'");
  await usage(['-a', '1', '-f', 'x', '-X', 'zeo/read-only=true'], 'configuration overrides (-X) cannot be used without a configuration file');
  await usage(['-z'], 'option -z not recognized');
  await usage(['--foo'], 'option --foo not recognized');
  await usage(['-a'], 'option -a requires argument');
  await usage(['-a', '1', '-f', 'x', '-t', '1', '-t', '2'], "conflicting command line option '-t'");
  await usage(['--auth-protocol', 'digest'], 'option --auth-protocol is not supported: ZEO digest authentication was removed; use TLS client certificates (<ssl> with authenticate) instead');
});

test('configuration errors exit 2 naming file and line (#63)', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), '<zeo>\n  address 127.0.0.1:0\n  bogus-key 1\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n');
  const r = inProcess(['-C', 'zeo.conf'], dir);
  assert.equal(await r.code, 2);
  assert.match(r.err(), /^Error: .*bogus-key.*\n/);
  assert.match(r.err(), /line 3/);
  assert.match(r.err(), /For help, use runzeo -h\n$/);
  writeFileSync(join(dir, 'ok.conf'), '<zeo>\n  address 127.0.0.1:0\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n');
  const x = inProcess(['-C', 'ok.conf', '-X', 'nosuch/key=1'], dir);
  assert.equal(await x.code, 2);
  assert.match(x.err(), /not all command line options were consumed/);
});

test('-h prints the usage on stdout and exits 0; --version exits 0 (#64)', async () => {
  const r = inProcess(['-h'], tempDir());
  assert.equal(await r.code, 0);
  assert.match(r.out(), /^Usage: runzeo/);
  assert.equal(r.err(), '');
  const v = inProcess(['--version'], tempDir());
  assert.equal(await v.code, 0);
  assert.match(v.out(), /zeo-ts/);
});

test('--test starts completely and exits 0 (#78)', async () => {
  const dir = tempDir();
  const r = inProcess(['--test', '-a', '127.0.0.1:0', '-f', 'x.fs'], dir);
  assert.equal(await r.code, 0, r.err());
  assert.equal(r.out(), 'testing exit immediately\n');
  assert.ok(existsSync(join(dir, 'x.fs')));
});

test('SIGINT exits 0, SIGHUP exits 1; PID file written and removed (#68, #72, #73)', async () => {
  const dir = tempDir();
  const r = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs', '--pid-file', 'zeo.pid'], dir);
  await r.address;
  assert.equal(readFileSync(join(dir, 'zeo.pid'), 'utf8'), `${process.pid}\n`);
  r.signals.emit('SIGINT');
  assert.equal(await r.code, 0);
  assert.ok(!existsSync(join(dir, 'zeo.pid')));
  const h = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs'], dir);
  await h.address;
  h.signals.emit('SIGHUP');
  assert.equal(await h.code, 1);
});

test('INSTANCE_HOME gives var/ZEO.pid; an unwritable PID path still serves (#69, #70)', async () => {
  const home = tempDir();
  mkdirSync(join(home, 'var'));
  const r = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs'], home, { INSTANCE_HOME: home });
  await r.address;
  assert.ok(existsSync(join(home, 'var', 'ZEO.pid')));
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
  assert.ok(!existsSync(join(home, 'var', 'ZEO.pid')));
  const u = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs', '--pid-file', '/nonexistent-dir/zeo.pid'], home);
  const a = await u.address;
  assert.ok('port' in a && a.port > 0);
  u.signals.emit('SIGTERM');
  assert.equal(await u.code, 0);
});

test('-X zeo/read-only=true serves read-only and writes no PID file (#63, S-11)', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), '<zeo>\n  address 127.0.0.1:0\n  msgpack true\n  pid-filename zeo.pid\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n');
  const r = inProcess(['-C', 'zeo.conf', '-X', 'zeo/read-only=true'], dir);
  const a = (await r.address) as { port: number };
  assert.ok(!existsSync(join(dir, 'zeo.pid')));
  const c = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  await assert.rejects(c.call('register', ['1', false]), (e: Error) => (e as { pythonClass?: string }).pythonClass === 'ZODB.POSException.ReadOnlyError');
  assert.deepEqual(await c.call('register', ['1', true]), Buffer.alloc(8));
  c.close();
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
});

test('address already in use exits 2 and leaves the storage untouched (#66)', async () => {
  const dir = tempDir();
  const blocker = net.createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const port = (blocker.address() as net.AddressInfo).port;
  const r = inProcess(['-a', `127.0.0.1:${port}`, '-f', 'x.fs'], dir);
  assert.equal(await r.code, 2);
  assert.equal(r.err(), `Error: address ('127.0.0.1', ${port}) already in use\nFor help, use runzeo -h\n`);
  assert.ok(!existsSync(join(dir, 'x.fs')));
  blocker.close();
});

test('<eventlog> file: SIGUSR2 reopens it after a rename (#74); without eventlog SIGUSR2 warns (#75)', async () => {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'zeo.conf'),
    '<zeo>\n  address 127.0.0.1:0\n</zeo>\n<filestorage 1>\n  path Data.fs\n</filestorage>\n<eventlog>\n  <logfile>\n    path zeo.log\n  </logfile>\n</eventlog>\n',
  );
  const r = inProcess(['-C', 'zeo.conf'], dir);
  await r.address;
  assert.match(readFileSync(join(dir, 'zeo.log'), 'utf8'), /StorageServer created RW with storages: 1:RW:Data.fs/);
  renameSync(join(dir, 'zeo.log'), join(dir, 'zeo.log.1'));
  r.signals.emit('SIGUSR2');
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
  const fresh = readFileSync(join(dir, 'zeo.log'), 'utf8');
  assert.match(fresh, /Log files reopened successfully/);
  assert.match(fresh, /closing storage '1'/);
  assert.doesNotMatch(readFileSync(join(dir, 'zeo.log.1'), 'utf8'), /closing storage/);
});

test('child process: lifecycle log lines in order, SIGUSR2 warning, SIGTERM exit 0 with index written (#57, #71, #75)', async () => {
  const dir = tempDir();
  const rz = await startRunzeo(['-a', '127.0.0.1:0', '-f', 'Data.fs'], { cwd: dir });
  const msgs = rz.lines.map((l) => String(l.msg));
  const i1 = msgs.findIndex((m) => /^\(\d+\) opening storage '1' using FileStorage$/.test(m));
  const i2 = msgs.indexOf('StorageServer created RW with storages: 1:RW:Data.fs');
  const i3 = msgs.findIndex((m) => m.startsWith("listening on ('127.0.0.1', "));
  assert.ok(i1 >= 0 && i1 < i2 && i2 < i3, msgs.join('\n'));
  rz.proc.kill('SIGUSR2');
  const w = await rz.waitLog(/received SIGUSR2, but it was not handled!/);
  assert.equal(w.level, 'WARNING');
  assert.equal(await rz.stop('SIGTERM'), 0);
  const after = rz.lines.map((l) => String(l.msg));
  const t = after.findIndex((m) => /terminated by SIGTERM$/.test(m));
  const c = after.indexOf("closing storage '1'");
  assert.ok(t >= 0 && t < c);
  assert.ok(existsSync(join(dir, 'Data.fs.index')));
});

test('child process: a second server on the same FileStorage exits 1; the first keeps serving (#77)', async () => {
  const dir = tempDir();
  const first = await startRunzeo(['-a', '127.0.0.1:0', '-f', 'Data.fs'], { cwd: dir });
  const second = await startRunzeo(['-a', '127.0.0.1:0', '-f', 'Data.fs', '--pid-file', 'second.pid'], { cwd: dir, waitListening: false });
  assert.equal(await second.exited, 1);
  assert.ok(!existsSync(join(dir, 'second.pid')));
  const c = new RpcConnection(net.connect(first.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  assert.deepEqual(await c.call('register', ['1', false]), Buffer.alloc(8));
  c.close();
  assert.equal(await first.stop('SIGTERM'), 0);
});

test('child process: legacy monitor report (#86, #87, #88, #89, #90)', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), '<zeo>\n  address 127.0.0.1:0\n</zeo>\n<filestorage second>\n  path b.fs\n</filestorage>\n<mappingstorage first>\n</mappingstorage>\n');
  const rz = await startRunzeo(['-C', 'zeo.conf', '-m', '127.0.0.1:0'], { cwd: dir });
  const mon = await rz.waitLog(/^listening on/, 'ZEO.monitor');
  const port = (mon.address as { port: number }).port;
  const report = await new Promise<string>((res) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => res(text));
  });
  const lines = report.split('\n');
  assert.match(lines[0]!, /^ZEO monitor server version /);
  assert.match(lines[1]!, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/);
  assert.equal(lines[2], '');
  const blocks = report.split('\n\n').slice(1).filter((b) => b.trim());
  assert.deepEqual(blocks.map((b) => b.split('\n')[0]), ['Storage: first', 'Storage: second']);
  assert.deepEqual(
    blocks[0]!.split('\n').map((l) => l.split(':')[0]),
    ['Storage', 'Server started', 'Clients', 'Clients verifying', 'Active transactions', 'Commits', 'Aborts', 'Loads', 'Stores', 'Conflicts', 'Conflicts resolved'],
  );
  assert.equal(await rz.stop('SIGINT'), 0);
});

test('SIGTERM with a voted transaction in flight: aborted, storage closed cleanly, exit 0 (§5.2 teardown)', async () => {
  const dir = tempDir();
  const r = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs'], dir);
  const a = (await r.address) as { port: number };
  const c = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  await c.call('register', ['1', false]);
  const rec = Buffer.from('8003634254726565732e4c656e6774680a4c656e6774680a71002e80034b012e', 'hex');
  c.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  c.callOneWay('storea', [Buffer.alloc(8), Buffer.alloc(8), rec, 1]);
  await c.call('vote', [1]);
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
  await c.closed;
  // the file reopens; the voted transaction was not committed
  const again = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs'], dir);
  const b = (await again.address) as { port: number };
  const d = new RpcConnection(net.connect(b.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  assert.deepEqual(await d.call('register', ['1', false]), Buffer.alloc(8));
  d.close();
  again.signals.emit('SIGTERM');
  assert.equal(await again.code, 0);
});

test('client-conflict-resolution: on unless the configuration sets it (ccr maps vs ConflictError)', async () => {
  const dir = tempDir();
  const conf = (extra: string) => `<zeo>\n  address 127.0.0.1:0\n  msgpack true\n${extra}</zeo>\n<mappingstorage 1>\n</mappingstorage>\n`;
  const pm = (v: number) => Buffer.concat([Buffer.from('80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e', 'hex'), Buffer.from([0x80, 0x03, 0x4b, v, 0x2e])]);
  async function staleVote(file: string): Promise<unknown> {
    const r = inProcess(['-C', file], dir);
    const a = (await r.address) as { port: number };
    const c = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
    await c.call('register', ['1', false]);
    const z = Buffer.alloc(8);
    const commit = async (id: number, serial: Buffer, data: Buffer) => {
      c.callOneWay('tpc_begin', [id, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
      c.callOneWay('storea', [z, serial, data, id]);
      const v = await c.call('vote', [id]);
      if ((v as unknown[]).length) return v;
      return c.call('tpc_finish', [id]);
    };
    const t1 = (await commit(1, z, pm(1))) as Buffer;
    await commit(2, t1, pm(2));
    let outcome: unknown;
    try {
      outcome = await commit(3, t1, pm(3));
    } catch (e) {
      outcome = (e as { pythonClass?: string }).pythonClass;
    }
    c.close();
    r.signals.emit('SIGTERM');
    assert.equal(await r.code, 0);
    return outcome;
  }
  writeFileSync(join(dir, 'default.conf'), conf(''));
  writeFileSync(join(dir, 'off.conf'), conf('  client-conflict-resolution false\n'));
  const dflt = (await staleVote('default.conf')) as Array<Record<string, unknown>>;
  assert.ok(Array.isArray(dflt) && dflt.length === 1 && 'serials' in dflt[0]!, 'conflict map by default');
  assert.equal(await staleVote('off.conf'), 'ZODB.POSException.ConflictError');
});

test('two -f give storages 1 and 2; -f and -a replace the configuration (#58, #59)', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'zeo.conf'), '<zeo>\n  address 127.0.0.1:1\n</zeo>\n<mappingstorage main>\n</mappingstorage>\n');
  const r = inProcess(['-C', 'zeo.conf', '-a', '127.0.0.1:0', '-f', 'a.fs', '-f', 'b.fs'], dir);
  const a = (await r.address) as { port: number };
  assert.ok(a.port > 1);
  const c = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  await c.call('register', ['2', false]);
  assert.equal(((await c.call('get_info', [])) as Record<string, unknown>).name, 'b.fs');
  c.close();
  const d = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  await assert.rejects(d.call('register', ['main', false]), /unknown storage: main/);
  d.close();
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
});

test('a stale Unix socket file is replaced; after SIGTERM it is gone (#67)', async () => {
  const dir = tempDir();
  const sock = join(dir, 'zeo.sock');
  writeFileSync(sock, 'stale');
  const r = inProcess(['-a', sock, '-f', 'Data.fs'], dir);
  assert.deepEqual(await r.address, { path: sock });
  const c = new RpcConnection(net.connect(sock), { role: 'client', heartbeatInterval: 0 });
  assert.deepEqual(await c.call('register', ['1', false]), Buffer.alloc(8));
  c.close();
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
  assert.ok(!existsSync(sock));
});

test('record_iternext over FileStorage: ValueError("empty tree") when empty, then oid order (§8.2, Appendix A #11)', async () => {
  const dir = tempDir();
  const r = inProcess(['-a', '127.0.0.1:0', '-f', 'Data.fs'], dir);
  const a = (await r.address) as { port: number };
  const c = new RpcConnection(net.connect(a.port, '127.0.0.1'), { role: 'client', heartbeatInterval: 0 });
  await c.call('register', ['1', false]);
  await assert.rejects(c.call('record_iternext', [null]), (e: Error) => /empty tree/.test(e.message));
  const z = Buffer.alloc(8);
  const one = Buffer.from('0000000000000001', 'hex');
  const data = Buffer.from('8003634254726565732e4c656e6774680a4c656e6774680a71002e80034b012e', 'hex');
  c.callOneWay('tpc_begin', [1, Buffer.alloc(0), Buffer.alloc(0), {}, null, ' ']);
  c.callOneWay('storea', [z, z, data, 1]);
  c.callOneWay('storea', [one, z, data, 1]);
  await c.call('vote', [1]);
  const tid = await c.call('tpc_finish', [1]);
  assert.deepEqual(await c.call('record_iternext', [null]), [z, tid, data, one]);
  assert.deepEqual(await c.call('record_iternext', [one]), [one, tid, data, null]);
  c.close();
  r.signals.emit('SIGTERM');
  assert.equal(await r.code, 0);
});
