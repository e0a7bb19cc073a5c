/**
 * zeoup, zeopack and zeo-nagios run as child processes against runzeo child processes.
 * operations §9.7 #91–#98 (zeo-nagios), §9.8 #99–#107 (zeopack, zeoup).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, utimesSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { POSKeyError, z64 } from '@zeo-ts/storage';
import { commit, makeRecord } from '@zeo-ts/storage/testing';
import { Unpickler } from '@zeo-ts/pickle';
import { ClientStorage } from '@zeo-ts/client';
import { startRunzeo, tempDir, type RunzeoProcess } from '@zeo-ts/client/testing';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin');
const silent = pino({ level: 'silent' });

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(tool: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((res) => {
    execFile(process.execPath, [join(BIN, `${tool}.mjs`), ...args], { env: { ...process.env, ...env }, timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

let dir: string;
let srv: RunzeoProcess;

before(async () => {
  dir = tempDir('zeo-tools-');
  writeFileSync(join(dir, 'zeo.conf'), `<zeo>\n  address 127.0.0.1:0\n</zeo>\n<filestorage 1>\n  path ${join(dir, 'one.fs')}\n</filestorage>\n<filestorage 2>\n  path ${join(dir, 'two.fs')}\n</filestorage>\n`);
  srv = await startRunzeo(['-C', join(dir, 'zeo.conf')], { cwd: dir });
});

after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function client(storage = '1'): Promise<ClientStorage> {
  return ClientStorage.open({ addresses: [srv.port], storage, logger: silent, waitTimeout: 20 });
}

describe('zeo-nagios', () => {
  test('empty storages warn, "No storages" never for a served storage; -m level metrics (operations §9.7 #91, #94)', async () => {
    const r = await run('zeo-nagios', [`127.0.0.1:${srv.port}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "Empty storage '1'\nEmpty storage '2'\n");
    const m = await run('zeo-nagios', ['-m', `127.0.0.1:${srv.port}`]);
    assert.equal(m.code, 1);
    assert.equal(m.stdout, "Empty storage '1'|active_txns=0\nEmpty storage '2'\n| connections=0\n waiting=0\n 2:active_txns=0\n 2:connections=0\n 2:waiting=0\n");
  });

  test('closed port, Unix path form, usage errors (operations §9.7 #93, #97, #98)', async () => {
    const closed = await run('zeo-nagios', ['127.0.0.1:1']);
    assert.equal(closed.code, 2);
    assert.equal(closed.stdout, "Can't connect [Errno 111] Connection refused\n");
    const path = await run('zeo-nagios', ['8100']);
    assert.equal(path.code, 2);
    assert.equal(path.stdout, "Can't connect [Errno 2] No such file or directory\n", 'a bare 8100 is a socket path');
    for (const args of [[], ['-u', 'weeks', '127.0.0.1:1'], ['--bogus', 'x']]) {
      const u = await run('zeo-nagios', args);
      assert.equal(u.code, 3, `usage error for ${args.join(' ')}`);
      assert.match(u.stdout, /^UNKNOWN: [^\n]+\n$/);
    }
  });

  test('after a commit OK; -m -s gives rate metrics on the second run (operations §9.7 #92, #96)', async () => {
    const c = await client('1');
    const c2 = await client('2');
    await commit(c, [{ oid: z64, serial: z64, data: makeRecord({ value: 'one' }) }]);
    await commit(c2, [{ oid: z64, serial: z64, data: makeRecord({ value: 'two' }) }]);
    const r = await run('zeo-nagios', [`127.0.0.1:${srv.port}`]);
    assert.equal(r.stdout, 'OK\n');
    assert.equal(r.code, 0);
    const status = join(dir, 'nagios.json');
    const first = await run('zeo-nagios', ['-m', '-s', status, '-u', 'seconds', `127.0.0.1:${srv.port}`]);
    assert.equal(first.code, 0);
    assert.ok(existsSync(status), 'first run creates the status file');
    assert.doesNotMatch(first.stdout, /commits=/);
    const past = Date.now() / 1000 - 100;
    utimesSync(status, past, past);
    const second = await run('zeo-nagios', ['-m', '-s', status, '-u', 'seconds', `127.0.0.1:${srv.port}`]);
    assert.equal(second.code, 0);
    const lines = second.stdout.split('\n');
    assert.match(lines[0]!, /^OK\|active_txns=\d+$/);
    for (const n of ['aborts', 'commits', 'conflicts', 'conflicts_resolved', 'loads', 'stores']) {
      assert.ok(lines.some((l) => new RegExp(`^ ${n}=\\d+(\\.\\d+)?(e-\\d+)?$`).test(l)), `rate line ${n}`);
      assert.ok(lines.some((l) => new RegExp(`^ 2:${n}=`).test(l)), `rate line 2:${n}`);
    }
    assert.ok('sameple-time' in JSON.parse(readFileSync(status, 'utf8'))['1'], 'upstream key kept (sic)');
    await c.close();
    await c2.close();
  });
});

describe('zeoup', () => {
  test('write mode increments root[monitor][zeoup].value twice; --nowrite loads the root (operations §9.8 #106)', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run('zeoup', ['-p', String(srv.port), '-h', '127.0.0.1', '-S', '2']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^Elapsed time: \d+\.\d\d\n$/);
    }
    const ro = await run('zeoup', ['-p', String(srv.port), '-h', '127.0.0.1', '-S', '2', '--nowrite', '-1']);
    assert.equal(ro.code, 0, ro.stdout + ro.stderr);
    assert.match(ro.stdout, /^Elapsed time: \d+\.\d\d\n$/);
    // read the counter back the way ZODB would: root -> monitor -> MinPO
    const c = await client('2');
    const state = async (oid: bigint) => {
      const u = new Unpickler((await c.load(oid)).data, {});
      const cls = u.load() as { dotted: string };
      return { cls: cls.dotted, state: u.load() as Map<string, unknown> };
    };
    const root = await state(z64);
    assert.equal(root.cls, 'persistent.mapping.PersistentMapping');
    const ref = (m: Map<string, unknown>, k: string) => ((m.get('data') as Map<string, unknown>).get(k) as { id: [Buffer] }).id[0].readBigUInt64BE(0);
    const monitor = await state(ref(root.state, 'monitor'));
    assert.equal(monitor.cls, 'persistent.mapping.PersistentMapping');
    const counter = await state(ref(monitor.state, 'zeoup'));
    assert.equal(counter.cls, 'ZODB.tests.MinPO.MinPO');
    assert.equal(counter.state.get('value'), 2);
    assert.deepEqual((await c.load(z64)).data.subarray(0, 2), Buffer.from([0x80, 3]));
    await c.close();
  });

  test('usage without -p/-U exits 1; a stopped server prints the error type and exits 1 (operations §9.8 #106, #107)', async () => {
    const u = await run('zeoup', []);
    assert.equal(u.code, 1);
    assert.match(u.stdout, /usage: zeoup/);
    const bad = await run('zeoup', ['-x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^GetoptError: option -x not recognized\n/);
    const down = await run('zeoup', ['-p', '1', '-h', '127.0.0.1', '--nowrite'], { ZEO_TS_ZEOUP_WAIT: '1' });
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^ClientDisconnected: /);
  });
});

describe('zeopack', () => {
  test('packs storages 1 and 2 of one server over read-only connections, silently (operations §9.8 #99)', async () => {
    const c1 = await client('1');
    const t0 = c1.lastTransaction();
    const t1 = await commit(c1, [{ oid: z64, serial: t0, data: makeRecord({ value: 'one v2' }) }]);
    await commit(c1, [{ oid: z64, serial: t1, data: makeRecord({ value: 'one v3' }) }]);
    const r = await run('zeopack', [`127.0.0.1:${srv.port}`, `127.0.0.1:${srv.port}:2`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
    await assert.rejects(c1.loadSerial(z64, t1), POSKeyError, 'the replaced revision was packed away');
    await c1.close();
  });

  test('help, option errors, bad targets, unreachable servers (operations §9.8 #103, #104, #105)', async () => {
    const help = await run('zeopack', []);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: zeopack/);
    const opt = await run('zeopack', ['--help']);
    assert.equal(opt.code, 2);
    assert.match(opt.stderr, /zeopack: error: no such option: --help\n$/);
    const cases: Array<[string[], string]> = [
      [['-d3'], 'No servers specified.'],
      [['a'], "Invalid server specification: 'a'"],
      [['a:b:2'], "Invalid port in server specification: 'a:b:2'"],
      [['-u', 'a:b:2'], "Invalid server specification: 'a:b:2'"],
      [['-t', '1:2:3:4', 'h:1'], "Invalid time value: '1:2:3:4'"],
      [['-t', 'x', 'h:1'], "Invalid time value: 'x'"],
      [['-h', 'host1'], 'If host (-h) is specified then a port (-p) must be specified as well.'],
    ];
    for (const [args, msg] of cases) {
      const r = await run('zeopack', args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr, `Error:\n${msg}\n`);
    }
    const none = await run('zeopack', ['--connect-timeout=0.5', '127.0.0.1:1', '-u', join(dir, 'no.sock')]);
    assert.equal(none.code, 1);
    assert.equal(none.stderr, `Couldn't connect to: (('127.0.0.1', 1), '1')\nCouldn't connect to: ('${join(dir, 'no.sock')}', '1')\nError:\nCannot connect to any of the configured ZEO servers.\n`);
    const some = await run('zeopack', ['--connect-timeout=0.5', '127.0.0.1:1', `127.0.0.1:${srv.port}`]);
    assert.equal(some.code, 0, 'one packed target is enough');
    assert.equal(some.stderr, "Couldn't connect to: (('127.0.0.1', 1), '1')\n");
  });
});
