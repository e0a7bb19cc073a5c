// Datatypes (operations spec §2.10, §3.5.3; checklist §9.2 #22–#32).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { datatypes as dt, formatAddress, levelName, loadClientConfig, loadServerConfig, ValueConversionError } from '../src/index.ts';
import { tempDir, throwsConfig, ZEO_8100 } from './helpers.ts';

const ctx = {};
function rejects(fn: () => unknown, msg: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ValueConversionError && e.message === msg);
}

test('§9.2 #22: byte-size', () => {
  const ok: [string, number][] = [
    ['20MB', 20971520],
    ['20mb', 20971520],
    ['20 MB', 20971520],
    ['20 mb', 20971520],
    ['512KB', 524288],
    ['2GB', 2147483648],
    ['1000', 1000],
    ['0', 0],
  ];
  for (const [v, n] of ok) assert.equal(dt.byteSize(v, ctx), n, v);
  rejects(() => dt.byteSize('20M', ctx), "invalid literal for int() with base 10: '20m'");
  rejects(() => dt.byteSize('1.5MB', ctx), "invalid literal for int() with base 10: '1.5'");
  rejects(() => dt.byteSize('20MiB', ctx), "invalid literal for int() with base 10: '20mib'");
  for (const v of ['1TB', '100B']) assert.throws(() => dt.byteSize(v, ctx), ValueConversionError, v);
});

test('§9.2 #23: time-interval', () => {
  const ok: [string, number][] = [
    ['90', 90],
    ['90s', 90],
    ['2m', 120],
    ['1h', 3600],
    ['1d', 86400],
    ['1D', 86400],
  ];
  for (const [v, n] of ok) assert.equal(dt.timeInterval(v, ctx), n, v);
  rejects(() => dt.timeInterval('1.5h', ctx), "invalid literal for int() with base 10: '1.5'");
  rejects(() => dt.timeInterval('2w', ctx), "invalid literal for int() with base 10: '2w'");
});

test('§9.2 #24: boolean words in any case; other words rejected', () => {
  for (const v of ['yes', 'TRUE', 'On', 'yEs']) assert.equal(dt.boolean(v, ctx), true, v);
  for (const v of ['no', 'False', 'OFF']) assert.equal(dt.boolean(v, ctx), false, v);
  for (const v of ['1', '0', 'y', 'enabled']) rejects(() => dt.boolean(v, ctx), `not a valid boolean value: '${v}'`);
  const e = throwsConfig(() => loadServerConfig({ text: '<zeo>\naddress 8100\nread-only 1\n</zeo>\n<mappingstorage/>\n' }), "not a valid boolean value: '1'");
  assert.equal(e.message, "not a valid boolean value: '1' (line 3, in <string>)");
});

test('§9.2 #25: integer keys are Python int() (transaction-timeout 30s fails)', () => {
  throwsConfig(
    () => loadServerConfig({ text: '<zeo>\naddress 8100\ntransaction-timeout 30s\n</zeo>\n<mappingstorage/>\n' }),
    "invalid literal for int() with base 10: '30s'",
  );
  assert.equal(dt.integer(' -12 ', ctx), -12);
  assert.equal(dt.integer('+1_000', ctx), 1000);
  rejects(() => dt.integer('1__0', ctx), "invalid literal for int() with base 10: '1__0'");
  rejects(() => dt.integer('', ctx), "invalid literal for int() with base 10: ''");
});

test('§2.10: float, string-list, dotted-name, port-number', () => {
  assert.equal(dt.float('30', ctx), 30);
  assert.equal(dt.float('2.5', ctx), 2.5);
  assert.equal(dt.float('1e3', ctx), 1000);
  assert.equal(dt.float('.5', ctx), 0.5);
  assert.equal(dt.float('inf', ctx), Infinity);
  assert.ok(Number.isNaN(dt.float('nan', ctx)));
  rejects(() => dt.float('abc', ctx), "could not convert string to float: 'abc'");
  assert.deepEqual(dt.stringList('runzeo.py -a\t9999  -f Data.fs', ctx), ['runzeo.py', '-a', '9999', '-f', 'Data.fs']);
  assert.equal(dt.dottedName('a.b_c.D', ctx), 'a.b_c.D');
  rejects(() => dt.dottedName('a..b', ctx), "not a valid dotted name: 'a..b'");
  rejects(() => dt.portNumber('70000', ctx), '70000 is above upper bound (65535)');
  rejects(() => dt.portNumber('-1', ctx), '-1 is below lower bound (0)');
  assert.deepEqual(dt.listOfInts('0, 2', ctx), [0, 2]);
  assert.deepEqual(dt.listOfInts('', ctx), []);
  assert.equal(dt.octal('022', ctx), 0o22);
  rejects(() => dt.octal('9', ctx), "invalid literal for int() with base 8: '9'");
});

test('§3.5.3: logging levels by name or number 0..50', () => {
  const names: [string, number][] = [
    ['critical', 50], ['FATAL', 50], ['error', 40], ['warn', 30], ['warning', 30], ['info', 20],
    ['blather', 15], ['debug', 10], ['trace', 5], ['all', 1], ['notset', 0], ['35', 35],
  ];
  for (const [v, n] of names) assert.equal(dt.loggingLevel(v, ctx), n, v);
  rejects(() => dt.loggingLevel('51', ctx), 'log level not in range: 51');
  rejects(() => dt.loggingLevel('loud', ctx), "invalid literal for int() with base 10: 'loud'");
  assert.deepEqual([50, 30, 15, 5, 35].map(levelName), ['CRITICAL', 'WARNING', 'BLATHER', 'TRACE', 'Level 35']);
});

test('§2.10.3: socket address forms for binding and connection', () => {
  const bind = (v: string) => dt.socketBindingAddress(v, ctx);
  const conn = (v: string) => dt.socketConnectionAddress(v, ctx);
  assert.deepEqual(bind('8100'), { family: 'inet', host: '', port: 8100 });
  assert.deepEqual(conn('8100'), { family: 'inet', host: '127.0.0.1', port: 8100 });
  assert.deepEqual(bind(':8100'), { family: 'inet', host: '', port: 8100 });
  assert.deepEqual(conn(':8100'), { family: 'inet', host: '127.0.0.1', port: 8100 });
  assert.deepEqual(bind('0.0.0.0:8100'), { family: 'inet', host: '0.0.0.0', port: 8100 });
  assert.deepEqual(bind('ZEO.Example.COM:8090'), { family: 'inet', host: 'zeo.example.com', port: 8090 });
  assert.deepEqual(conn('zeo.example.com:8090'), { family: 'inet', host: 'zeo.example.com', port: 8090 });
  assert.deepEqual(bind('[::1]:8100'), { family: 'inet6', host: '::1', port: 8100 });
  assert.deepEqual(bind('[::]:8100'), { family: 'inet6', host: '::', port: 8100 });
  assert.deepEqual(bind('::1'), { family: 'inet6', host: '::1', port: null });
  assert.deepEqual(bind('localhost'), { family: 'inet', host: 'localhost', port: null });
  assert.deepEqual(bind('127.0.0.1'), { family: 'inet', host: '127.0.0.1', port: null });
  assert.deepEqual(bind('/var/run/zeo/zeo.sock'), { family: 'unix', path: '/var/run/zeo/zeo.sock' });
  assert.deepEqual(conn('./zeo.sock'), { family: 'unix', path: './zeo.sock' });
  assert.deepEqual(bind('zeo.sock'), { family: 'inet', host: 'zeo.sock', port: null });
  rejects(() => bind(''), "not a valid host name: ''");
  rejects(() => conn(''), "not a valid host name: ''");
  rejects(() => bind('a b'), "not a valid host name: 'a b'");
  assert.deepEqual(dt.socketAddressType('localhost:514', ctx), { family: 'inet', host: 'localhost', port: 514 });
  assert.equal(formatAddress(bind('127.0.0.1'), 0), "('127.0.0.1', 0)");
  assert.equal(formatAddress(bind('8100')), "('', 8100)");
  assert.equal(formatAddress(bind('/tmp/z.sock')), "'/tmp/z.sock'");
});

test('§9.2 #26: <zeo> address 8100 binds all interfaces; <zeoclient> server 8100 targets 127.0.0.1', () => {
  const s = loadServerConfig({ text: `${ZEO_8100}<mappingstorage/>\n` });
  assert.deepEqual(s.zeo.address, { family: 'inet', host: '', port: 8100 });
  const c = loadClientConfig({ text: '<zeoclient>\nserver 8100\n</zeoclient>\n' });
  assert.deepEqual(c.client!.servers, [{ family: 'inet', host: '127.0.0.1', port: 8100 }]);
});

test('§9.2 #27, #28, #29: IPv6, Unix socket and dynamic-port addresses in <zeo>', () => {
  const addr = (v: string) => loadServerConfig({ text: `<zeo>\naddress ${v}\n</zeo>\n<mappingstorage/>\n` }).zeo.address;
  assert.deepEqual(addr('[::1]:8100'), { family: 'inet6', host: '::1', port: 8100 });
  assert.deepEqual(addr('::1'), { family: 'inet6', host: '::1', port: null });
  assert.deepEqual(addr('/tmp/zeo.sock'), { family: 'unix', path: '/tmp/zeo.sock' });
  assert.deepEqual(addr('zeo.sock'), { family: 'inet', host: 'zeo.sock', port: null });
  assert.deepEqual(addr('127.0.0.1'), { family: 'inet', host: '127.0.0.1', port: null });
});

test('§9.2 #30 [D]: an all-digit address out of range is a port error in both roles', () => {
  throwsConfig(() => loadServerConfig({ text: '<zeo>\naddress 70000\n</zeo>\n<mappingstorage/>\n' }), '70000 is above upper bound (65535)');
  throwsConfig(() => loadClientConfig({ text: '<zeoclient>\nserver 70000\n</zeoclient>\n' }), '70000 is above upper bound (65535)');
});

test('§9.2 #31: existing-dirpath', () => {
  const e = throwsConfig(
    () => loadServerConfig({ text: `${ZEO_8100}<filestorage>\npath /nonexistent/Data.fs\n</filestorage>\n` }),
    'The directory named as part of the path /nonexistent/Data.fs does not exist.',
  );
  assert.equal(e.lineno, 5);
  const c = loadServerConfig({ text: `${ZEO_8100}<filestorage>\npath Data.fs\n</filestorage>\n` });
  assert.equal(c.storages[0]!.options['path'], 'Data.fs');
  // relative directory parts are checked against the working directory
  const d = tempDir();
  mkdirSync(join(d, 'var'));
  assert.equal(dt.existingDirpath('var/Data.fs', { cwd: d }), 'var/Data.fs');
  rejects(() => dt.existingDirpath('nope/Data.fs', { cwd: d }), 'The directory named as part of the path nope/Data.fs does not exist.');
  // ~ is expanded
  assert.equal(dt.existingDirpath('~/Data.fs', ctx), join(process.env['HOME'] || homedir(), 'Data.fs'));
  assert.equal(dt.existingDirectory(d, ctx), d);
  rejects(() => dt.existingDirectory(join(d, 'x'), ctx), `${join(d, 'x')} is not an existing directory`);
  rejects(() => dt.existingPath(join(d, 'x'), ctx), `${join(d, 'x')} is not an existing path`);
  rejects(() => dt.existingFile(join(d, 'x'), ctx), `${join(d, 'x')} is not an existing file`);
});

test('§9.2 #32 [D]: a client server address without a port is rejected while loading', () => {
  for (const v of ['localhost', '127.0.0.1', 'zeo.sock', '::1']) {
    throwsConfig(() => loadClientConfig({ text: `<zeoclient>\nserver ${v}\n</zeoclient>\n` }), `no port in server address: '${v}'`);
  }
});
