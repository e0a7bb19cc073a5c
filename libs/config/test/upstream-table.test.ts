// Table of small server files whose outcome was cross-checked locally against upstream ZConfig
// with the ZEO server schema (same reason text, or both accepted). Spec §2, §3, §9.1–§9.3.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { ConfigError, loadClientConfig, loadServerConfig } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const CASES: [string, string | null][] = [
  ["<zeo>\naddress 8100\nread-only 1\n</zeo>\n<mappingstorage/>\n", "not a valid boolean value: '1'"],
  ["<zeo>\naddress\n</zeo>\n<mappingstorage/>\n", "not a valid host name: ''"],
  ["<zeo>\naddress :\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress [::1]\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress host:abc\n</zeo>\n<mappingstorage/>\n", "invalid literal for int() with base 10: 'abc'"],
  ["<zeo>\naddress 8100\ninvalidation-queue-size 1_000\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress 8100\ninvalidation-age 1e3\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress 8100\ninvalidation-age x\n</zeo>\n<mappingstorage/>\n", "could not convert string to float: 'x'"],
  ["<zeo>\naddress 8100\ntransaction-timeout -5\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress 8100\ntransaction-timeout 5.0\n</zeo>\n<mappingstorage/>\n", "invalid literal for int() with base 10: '5.0'"],
  ["<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $DIR/x.fs\nquota 1.5MB\n</filestorage>\n", "invalid literal for int() with base 10: '1.5'"],
  ["<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $DIR/x.fs\nquota 20M\n</filestorage>\n", "invalid literal for int() with base 10: '20m'"],
  ["<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $DIR/x.fs\nquota -1KB\n</filestorage>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $DIR/x.fs\nquota  kb\n</filestorage>\n", "invalid literal for int() with base 10: ''"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage>\nname\n</mappingstorage>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<demostorage>\n<mappingstorage changes/>\n<mappingstorage base/>\n</demostorage>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<blobstorage>\nblob-dir $DIR/b\n<mappingstorage/>\n</blobstorage>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\nlevel 51\n</eventlog>\n", "log level not in range: 51"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\nlevel -1\n</eventlog>\n", "log level not in range: -1"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath STDOUT\nstyle Format\nformat {levelname}\n</logfile>\n</eventlog>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath STDOUT\nformat %(levelname)s %(foo)s\narbitrary-fields true\n</logfile>\n</eventlog>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<syslog>\nfacility foo\n</syslog>\n</eventlog>\n", "Syslog facility must be one of auth, authpriv, cron, daemon, kern, local0, local1, local2, local3, local4, local5, local6, local7, lpr, mail, news, security, syslog, user, uucp"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath $DIR/x.log\nwhen D\nold-files 2\n</logfile>\n</eventlog>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath $DIR/x.log\ninterval 2\nold-files 2\n</logfile>\n</eventlog>\n", "max-bytes or when must be set for log rotation"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logger>\n</logger>\n</eventlog>\n", "no matching section defined for type='logger', name='None'"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<mappingstorage/>\n</eventlog>\n", "no matching section defined for type='mappingstorage', name='None'"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage>\n<mappingstorage/>\n</mappingstorage>\n", "no matching section defined for type='mappingstorage', name='None'"],
  ["<zeo>\naddress 8100\n</zeo>\n<zeoclient>\nserver 8100\ncache-size 20 MB\nwait OFF\n</zeoclient>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<zeoclient>\nserver zeo.example.com:8100\nserver [::1]:8100\n</zeoclient>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<demostorage>\n<demostorage inner>\n<mappingstorage/>\n</demostorage>\n</demostorage>\n", null],
  ["%define x\n<zeo>\naddress 8100\n</zeo>\n<mappingstorage>\nname [$x]\n</mappingstorage>\n", null],
  ["%define x 1\n%define x  1\n<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n", null],
  ["%define x 1\n%define x 1 \n<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage a>\n</mappingstorage a>\n", "unbalanced section end"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage a>\n</MappingStorage >\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage a >\n</mappingstorage>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/ >\n", "unknown type name: 'mappingstorage/'"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage a b/>\n", "malformed section header"],
  ["<zeo>\naddress 8100\n</zeo>\n<>\n", "malformed section header"],
  ["<zeo>\naddress 8100\n</zeo>\n</>\n", "unexpected section end"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n%import\n", "missing argument to %import directive"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n%\n", "missing or unrecognized directive"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n%import  ZODB  \n", null],
  ["<zeo>\naddress 8100\n<ssl>\ncertificate $DIR/c\nauthenticate $DIR\nfoo bar\n</ssl>\n</zeo>\n<mappingstorage/>\n", "'foo' is not a known key name"],
  ["<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $DIR/x.fs\npack-gc 0\n</filestorage>\n", "not a valid boolean value: '0'"],
  ["<zeo>\naddress 8100\n</zeo>\n<fullstorage>\nenvdir $DIR\ncachesize 1x\n</fullstorage>\n", "invalid literal for int() with base 10: '1x'"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage x/>\n<demostorage x>\n</demostorage>\n", "section names must not be re-used within the same container:'x'"],
  ["<zeo>\naddress 8100\n</zeo>\n<zeoclient>\nserver 8100\nblob-cache-size-check x\n</zeoclient>\n", "invalid literal for int() with base 10: 'x'"],
  ["<zeo>\naddress 8100\nmsgpack TRUE\nclient-conflict-resolution no\n</zeo>\n<mappingstorage/>\n", null],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n#c\n\t\n$x 1\n", "value did not match regular expression: '$x'"],
  ["<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n\n  a-b.c_d 1\n", "'a-b.c_d' is not a known key name"],
  ["%define a $$\n<zeo>\naddress /tmp/$a\n</zeo>\n<mappingstorage/>\n", null],
];

test('server files agree with upstream ZConfig (accepted, or the same reason)', () => {
  const d = tempDir();
  for (const [raw, expected] of CASES) {
    const text = raw.replaceAll('$DIR', d);
    let got: string | null = null;
    try {
      loadServerConfig({ text });
    } catch (e) {
      assert.ok(e instanceof ConfigError, `${raw}: ${String(e)}`);
      got = e.reason;
    }
    assert.equal(got, expected, raw);
  }
});

test('deliberate differences from upstream on the same kind of input', () => {
  // [L] monitor-address is accepted (upstream ZEO 5/6: 'monitor-address' is not a known key name)
  assert.deepEqual(loadServerConfig({ text: '<zeo>\naddress 8100\nmonitor-address 8101\n</zeo>\n<mappingstorage/>\n' }).zeo.monitor_address, {
    family: 'inet',
    host: '',
    port: 8101,
  });
  // a bad classic format is a configuration error either way; the wording differs
  assert.throws(
    () => loadServerConfig({ text: '<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath STDOUT\nformat %(message)d %\n</logfile>\n</eventlog>\n' }),
    (e: unknown) => e instanceof ConfigError && e.reason === 'Invalid log format string %(message)d %',
  );
});

// Client files cross-checked the same way against ZODB's schema (<zodb> sections or one storage).
const CLIENT_CASES: [string, string | null][] = [
  ["<zeoclient>\nserver 8100\ncache-size 20 MB\n</zeoclient>\n", null],
  ["<zeoclient>\nserver 8100\nwait maybe\n</zeoclient>\n", "not a valid boolean value: 'maybe'"],
  ["<zeoclient>\nserver a:b\n</zeoclient>\n", "invalid literal for int() with base 10: 'b'"],
  ["<zeoclient>\nserver\n</zeoclient>\n", "not a valid host name: ''"],
  ["%import ZEO\n<clientstorage>\nserver 8100\nwait-timeout 1.5\n</clientstorage>\n", "invalid literal for int() with base 10: '1.5'"],
  ["%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate $DIR/c.pem\ncheck-hostname maybe\n</ssl>\n</clientstorage>\n", "not a valid boolean value: 'maybe'"],
  ["%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate $DIR/c.pem\nauthenticate /nonexistent/x\n</ssl>\n</clientstorage>\n", "The directory named as part of the path /nonexistent/x does not exist."],
  ["%import ZEO\n<clientstorage>\nserver 8100\n<ssl>\ncertificate $DIR/c.pem\n</ssl>\n<ssl>\ncertificate $DIR/c.pem\n</ssl>\n</clientstorage>\n", "too many instances of 'ssl' section"],
  ["<zodb>\npool-timeout 1.5h\n<mappingstorage/>\n</zodb>\n", "invalid literal for int() with base 10: '1.5'"],
  ["<zodb>\nhistorical-timeout 2w\n<mappingstorage/>\n</zodb>\n", "invalid literal for int() with base 10: '2w'"],
  ["<zodb>\n<mappingstorage/>\n<mappingstorage/>\n</zodb>\n", "too many instances of 'zodb.storage' section"],
  ["<zodb a>\n<mappingstorage/>\n</zodb>\n<zodb a>\n<mappingstorage/>\n</zodb>\n", "section names must not be re-used within the same container:'a'"],
  ["<mappingstorage/>\n<mappingstorage/>\n", "too many instances of 'zodb.storage' section"],
  ["<zodb>\nlarge-record-size 1.5MB\n<mappingstorage/>\n</zodb>\n", "invalid literal for int() with base 10: '1.5'"],
  ["%import ZEO\n%import ZEO\n<clientstorage>\nserver [::1]:8100\nserver /tmp/s\n</clientstorage>\n", null],
  ["<zeoclient>\nserver 8100\nSERVER 8101\n</zeoclient>\n", null],
  ["<zodb>\n<zeoclient>\nserver 8100\n</zeoclient>\ncache-size 1\ncache-size 2\n</zodb>\n", "'cache-size' does not support multiple values"],
  ["<demostorage>\n<zeoclient changes>\nserver 8100\n</zeoclient>\n</demostorage>\n", null],
  ["%import ZEO\n<zodb>\n<clientstorage x>\nserver 8100\nread-only-fallback yes\n</clientstorage>\n</zodb>\n", null],
];

test('client files agree with upstream ZConfig (accepted, or the same reason)', () => {
  const d = tempDir();
  writeFileSync(`${d}/c.pem`, 'x');
  for (const [raw, expected] of CLIENT_CASES) {
    const text = raw.replaceAll('$DIR', d);
    let got: string | null = null;
    try {
      loadClientConfig({ text });
    } catch (e) {
      assert.ok(e instanceof ConfigError, `${raw}: ${String(e)}`);
      got = e.reason;
    }
    assert.equal(got, expected, raw);
  }
  // class-factory: upstream imports the Python object; we only check the dotted-name syntax
  assert.throws(() => loadClientConfig({ text: '<zodb>\nclass-factory a..b\n<mappingstorage/>\n</zodb>\n' }), /not a valid dotted name: 'a\.\.b'/);
});
