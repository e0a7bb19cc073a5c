// Client configuration (operations spec §4; checklist §9.10 #117–#121, #124, #125; examples E3, E15, E17, E18).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { clientOptions, defaultClientName, loadClientConfig, registerProvider, type LoadOptions } from '../src/index.ts';
import { tempDir, throwsConfig, writeFiles } from './helpers.ts';

const client = (text: string, opts: LoadOptions = {}) => loadClientConfig({ text }, opts);

test('§9.10 #117 / §4.1: <zeoclient> server 8100 with every default', () => {
  const c = client('<zeoclient>\nserver 8100\n</zeoclient>\n');
  assert.equal(c.storage!.type, 'zeoclient');
  assert.equal(c.storage!.kind, 'ZEOClient');
  assert.deepEqual(c.storage!.options, {
    server: [{ family: 'inet', host: '127.0.0.1', port: 8100 }],
    blob_dir: null,
    shared_blob_dir: false,
    blob_cache_size: null,
    blob_cache_size_check: 10,
    storage: '1',
    cache_size: 20971520,
    name: '',
    client: null,
    var: null,
    min_disconnect_poll: 5,
    max_disconnect_poll: 300,
    wait: true,
    read_only: false,
    read_only_fallback: false,
    username: null,
    password: null,
    realm: null,
    drop_cache_rather_verify: false,
    client_label: null,
  });
  const o = c.client!;
  assert.deepEqual(
    [o.storage, o.cache_size, o.cache_path, o.read_only, o.read_only_fallback, o.blob_dir, o.wait, o.wait_timeout, o.server_sync, o.ssl],
    ['1', 20971520, null, false, false, null, true, 30, false, null],
  );
  assert.equal(o.name, '');
  assert.equal(defaultClientName(o.servers), "[('127.0.0.1', 8100)]");
  assert.equal(defaultClientName([...o.servers, { family: 'unix', path: '/tmp/z.sock' }]), "[('127.0.0.1', 8100), '/tmp/z.sock']");
});

test('§9.10 #118: the full <zeoclient> example', () => {
  const cwd = tempDir();
  const c = client(
    `<zeoclient>
  server 8100
  blob-dir blobs
  storage 2
  cache-size 100
  name bob
  client cache
  read-only true
  drop-cache-rather-verify true
  blob-cache-size 1000MB
  blob-cache-size-check 10
  wait false
</zeoclient>
`,
    { cwd },
  );
  const o = c.client!;
  assert.equal(o.name, 'bob');
  assert.equal(o.blob_dir, 'blobs');
  assert.equal(o.storage, '2');
  assert.equal(o.cache_size, 100);
  assert.equal(o.cache_path, join(cwd, 'cache-2.zec'));
  assert.equal(o.read_only, true);
  assert.equal(o.wait, false);
  assert.equal(o.blob_cache_size, 1048576000);
  assert.equal(o.blob_cache_check_bytes, 104857600);
  assert.equal(c.storage!.options['drop_cache_rather_verify'], true);
});

test('§9.10 #119, #125 / §4.1: keys <zeoclient> does not accept', () => {
  throwsConfig(() => client('<zeoclient>\nserver 8100\nwait-timeout 10\n</zeoclient>\n'), "'wait-timeout' is not a known key name");
  throwsConfig(() => client('<zeoclient>\naddress 8101\n</zeoclient>\n'), "'address' is not a known key name");
  throwsConfig(() => client('<zeoclient>\nserver 8100\ncache_size 20MB\n</zeoclient>\n'), "'cache_size' is not a known key name");
  for (const k of ['server-sync on', 'cache-path x']) {
    throwsConfig(() => client(`<zeoclient>\nserver 8100\n${k}\n</zeoclient>\n`), `'${k.split(' ')[0]}' is not a known key name`);
  }
  throwsConfig(() => client('<zeoclient>\nserver 8100\n<ssl>\n</ssl>\n</zeoclient>\n'), "unknown type name: 'ssl'");
  throwsConfig(() => client('<zeoclient>\n</zeoclient>\n'), "no values for 'server'; 1 required");
});

test('§9.1 #18: server is a multikey, in file order', () => {
  const c = client('<zeoclient>\nserver 8100\nserver zeo2:8101\nserver /tmp/z.sock\n</zeoclient>\n');
  assert.deepEqual(c.client!.servers, [
    { family: 'inet', host: '127.0.0.1', port: 8100 },
    { family: 'inet', host: 'zeo2', port: 8101 },
    { family: 'unix', path: '/tmp/z.sock' },
  ]);
});

test('§4.1: legacy credentials are accepted and produce warnings', () => {
  const c = client('<zeoclient>\nserver 8100\nusername u\npassword p\nrealm r\n</zeoclient>\n');
  assert.equal(c.warnings.length, 3);
  assert.match(c.warnings[0]!, /^username is ignored/);
});

test('§9.10 #120 / §4.2: <clientstorage> after %import ZEO, with every default', () => {
  throwsConfig(() => client('<clientstorage>\nserver 8100\n</clientstorage>\n'), "unknown type name: 'clientstorage'");
  const c = client('%import ZEO\n<clientstorage>\nserver 8100\n</clientstorage>\n');
  assert.equal(c.storage!.kind, 'ClientStorageConfig');
  assert.deepEqual(c.storage!.options, {
    ssl: null,
    server: [{ family: 'inet', host: '127.0.0.1', port: 8100 }],
    cache_size: 20971520,
    cache_path: null,
    blob_dir: null,
    shared_blob_dir: false,
    blob_cache_size: null,
    blob_cache_size_check: 10,
    read_only: false,
    read_only_fallback: false,
    server_sync: false,
    wait_timeout: 30,
    client_label: null,
    storage: '1',
    name: '',
  });
  const o = c.client!;
  assert.deepEqual([o.wait_timeout, o.server_sync, o.cache_path, o.wait], [30, false, null, true]);
  for (const k of ['client foo', 'var x', 'wait false', 'min-disconnect-poll 1', 'max-disconnect-poll 1', 'drop-cache-rather-verify on', 'username u', 'password p', 'realm r']) {
    throwsConfig(() => client(`%import ZEO\n<clientstorage>\nserver 8100\n${k}\n</clientstorage>\n`), `'${k.split(' ')[0]}' is not a known key name`);
  }
  const full = client(`%import ZEO
<clientstorage>
  server 8100
  cache-size 1MB
  cache-path /tmp/c.zec
  blob-dir /tmp/blobs
  shared-blob-dir yes
  blob-cache-size 2GB
  blob-cache-size-check 20
  read-only-fallback true
  server-sync on
  wait-timeout 10
  client-label app-1
  storage main
  name N
</clientstorage>
`).client!;
  assert.deepEqual(
    [full.cache_size, full.cache_path, full.blob_dir, full.shared_blob_dir, full.blob_cache_size, full.blob_cache_check_bytes, full.read_only_fallback, full.server_sync, full.wait_timeout, full.client_label, full.storage, full.name],
    [1048576, '/tmp/c.zec', '/tmp/blobs', true, 2147483648, 429496729, true, true, 10, 'app-1', 'main', 'N'],
  );
  throwsConfig(() => client('%import ZEO\n<clientstorage>\nserver 8100\nblob-cache-size-check 100\n</clientstorage>\n'), 'blob-cache-size-check must be less than 100');
});

test('§9.10 #121 / §4.5 / E17: client <ssl>', () => {
  // E17 verbatim
  const e = throwsConfig(
    () => client('%import ZEO\n\n<clientstorage>\n  server zeo.example.com:8200\n  <ssl>\n  </ssl>\n</clientstorage>\n'),
    "no values for 'certificate'; 1 required",
  );
  assert.equal(e.lineno, 6);
  const d = tempDir();
  writeFiles(d, { 'client.pem': 'x', 'client_key.pem': 'x', 'server.pem': 'x' });
  const c = client(`%import ZEO
<clientstorage>
  server zeo.example.com:8100
  <ssl>
    certificate ${d}/client.pem
    key ${d}/client_key.pem
    authenticate ${d}/server.pem
  </ssl>
</clientstorage>
`);
  assert.deepEqual(c.client!.ssl, {
    certificate: `${d}/client.pem`,
    key: `${d}/client_key.pem`,
    password_function: null,
    authenticate: `${d}/server.pem`,
    check_hostname: true,
    server_hostname: null,
  });
  const c2 = client(`%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate ${d}/client.pem\ncheck-hostname false\nserver-hostname zodb.org\n</ssl>\n</clientstorage>\n`);
  assert.deepEqual([c2.client!.ssl!.check_hostname, c2.client!.ssl!.server_hostname], [false, 'zodb.org']);
  // the client <ssl> has no server-only semantics: authenticate must be an existing path's directory
  throwsConfig(() => client(`%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate /nonexistent/c.pem\n</ssl>\n</clientstorage>\n`), 'The directory named as part of the path /nonexistent/c.pem does not exist.');
  // [D] TLS to a Unix socket needs server-hostname when checking host names
  throwsConfig(() => client(`%import ZEO\n<clientstorage>\nserver /tmp/z.sock\n<ssl>\ncertificate ${d}/client.pem\n</ssl>\n</clientstorage>\n`), /server-hostname must be given for TLS over a Unix socket/);
  throwsConfig(() => client(`%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate ${d}/client.pem\npassword-function nope\n</ssl>\n</clientstorage>\n`), "password-function 'nope' is not a registered passphrase provider");
  registerProvider('password-function', 'client.pw', () => '1234');
  const c3 = client(`%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate ${d}/client.pem\npassword-function client.pw\n</ssl>\n</clientstorage>\n`);
  assert.equal(c3.client!.ssl!.password_function, 'client.pw');
});

test('§4.7 / §9.10 #124: <zodb> keys and defaults; cache-size counts objects', () => {
  const c = client('<zodb>\n<mappingstorage/>\n</zodb>\n');
  const db = c.databases[0]!;
  assert.deepEqual({ ...db, storage: undefined, pos: undefined }, {
    name: null,
    storage: undefined,
    cache_size: 5000,
    cache_size_bytes: 0,
    large_record_size: 16 * 1024 * 1024,
    pool_size: 7,
    pool_timeout: null,
    historical_pool_size: 3,
    historical_cache_size: 1000,
    historical_cache_size_bytes: 0,
    historical_timeout: 300,
    database_name: 'unnamed',
    allow_implicit_cross_references: null,
    class_factory: null,
    pos: undefined,
  });
  assert.equal(c.client, null);
  throwsConfig(() => client('<zodb>\ncache-size 1000MB\n<mappingstorage/>\n</zodb>\n'), "invalid literal for int() with base 10: '1000MB'");
  const c2 = client('<zodb main>\ncache-size-bytes 1000MB\npool-timeout 2m\nallow-implicit-cross-references false\nclass-factory my.factory\n<mappingstorage/>\n</zodb>\n');
  const db2 = c2.databases[0]!;
  assert.deepEqual([db2.cache_size_bytes, db2.pool_timeout, db2.database_name, db2.allow_implicit_cross_references, db2.class_factory], [
    1048576000, 120, 'main', false, 'my.factory',
  ]);
  throwsConfig(() => client('<zodb>\n</zodb>\n'), "no values for section type 'zodb.storage'; 1 required");
  throwsConfig(() => client('# nothing\n'), /^no values for section type 'zodb.database' or 'zodb.storage'/);
  // several <zodb> sections form a multi-database
  const multi = client('<zodb a>\n<mappingstorage/>\n</zodb>\n<zodb b>\ndatabase-name other\n<mappingstorage/>\n</zodb>\n');
  assert.deepEqual(multi.databases.map((d) => d.database_name), ['a', 'other']);
});

test('E3: the HOWTO client example, and the cache_size misspelling', () => {
  const c = client('<zeoclient>\nserver zeo.example.com:8090\n</zeoclient>\n');
  assert.deepEqual(c.client!.servers, [{ family: 'inet', host: 'zeo.example.com', port: 8090 }]);
  assert.deepEqual([c.client!.storage, c.client!.cache_size, c.client!.cache_path, c.client!.wait, c.client!.wait_timeout], ['1', 20971520, null, true, 30]);
  throwsConfig(() => client('<zeoclient>\nserver zeo.example.com:8090\ncache_size 100MB\n</zeoclient>\n'), "'cache_size' is not a known key name");
  assert.equal(client('<zeoclient>\nserver zeo.example.com:8090\ncache-size 100MB\n</zeoclient>\n').client!.cache_size, 104857600);
});

test('E15: client with replicas and fallback inside <zodb main>', () => {
  const c = client(`<zodb main>
  cache-size 10000
  <zeoclient>
    server zeo1.example.com:8100
    server zeo2.example.com:8100
    read-only-fallback true
    client app1
    var /var/cache/app
    cache-size 500MB
    blob-dir /var/cache/app/blobs
    blob-cache-size 2GB
  </zeoclient>
</zodb>
`);
  const db = c.databases[0]!;
  assert.deepEqual([db.name, db.cache_size], ['main', 10000]);
  const o = c.client!;
  assert.deepEqual(o.servers.map((a) => (a.family === 'unix' ? a.path : `${a.host}:${a.port}`)), ['zeo1.example.com:8100', 'zeo2.example.com:8100']);
  assert.deepEqual([o.read_only_fallback, o.cache_path, o.cache_size, o.blob_dir, o.blob_cache_check_bytes], [
    true, '/var/cache/app/app1-1.zec', 524288000, '/var/cache/app/blobs', 214748364,
  ]);
  assert.equal(clientOptions(db.storage).cache_path, '/var/cache/app/app1-1.zec');
});

test('E18: typical client mistakes', () => {
  throwsConfig(() => client('<zodb>\ncache-size 1000MB\n<zeoclient>\nserver 8100\n</zeoclient>\n</zodb>\n'), "invalid literal for int() with base 10: '1000MB'");
  throwsConfig(() => client('<zeoclient>\nserver 8100\nwait-timeout 10\n</zeoclient>\n'), "'wait-timeout' is not a known key name");
  throwsConfig(() => client('%import ZEO\n<clientstorage>\nserver 8100\nwait false\n</clientstorage>\n'), "'wait' is not a known key name");
});
