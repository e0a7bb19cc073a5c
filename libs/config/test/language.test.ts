// The configuration language (operations spec §2.1–§2.6, §2.9; checklist §9.1 #1–#21).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import {
  ConfigError,
  loadServerConfig,
  parseConfig,
  substitute,
  type KeyNode,
  type SectionNode,
} from '../src/index.ts';
import { tempDir, throwsConfig, writeFiles, ZEO_8100 } from './helpers.ts';

const server = (text: string, opts: Parameters<typeof loadServerConfig>[1] = {}) => loadServerConfig({ text }, opts);
const zeoWith = (lines: string) => `<zeo>\n${lines}\n</zeo>\n<mappingstorage/>\n`;

test('§9.1 #1: comment lines, also indented with tabs, are ignored; blank lines too', () => {
  const tree = parseConfig('# top\n\t# tabbed\n   \n<zeo>\n\t\t# inner\naddress 8100\n</zeo>\n', 'file:///x.conf');
  assert.equal(tree.children.length, 1);
  const zeo = tree.children[0] as SectionNode;
  assert.equal(zeo.children.length, 1);
  const k = zeo.children[0] as KeyNode;
  assert.deepEqual([k.key, k.value, k.pos.line], ['address', '8100', 6]);
});

test('§9.1 #2: a # after a value is part of the value', () => {
  const tree = parseConfig('address 8100 # port\n', 'file:///x.conf');
  assert.equal((tree.children[0] as KeyNode).value, '8100 # port');
  const e = throwsConfig(() => server(zeoWith('address 8100 # port')), "not a valid host name: '8100 # port'");
  assert.equal(e.lineno, 2);
});

test('§9.1 #3: section types, keys and boolean words are case-insensitive', () => {
  const c = server('<ZEO>\nADDRESS 8100\nRead-Only YES\n</Zeo>\n<MappingStorage/>\n');
  assert.equal(c.zeo.address.family === 'inet' && c.zeo.address.port, 8100);
  assert.equal(c.zeo.read_only, true);
});

test('§9.1 #4: section names are lowercased (<filestorage Main> serves "main")', () => {
  const d = tempDir();
  const c = server(`${ZEO_8100}<filestorage Main>\npath ${d}/Data.fs\n</filestorage>\n`);
  assert.deepEqual(c.storages.map((s) => s.name), ['main']);
});

test('§9.1 #5 / §2.3: hyphen and underscore differ; unknown key names the key as written', () => {
  const e = throwsConfig(() => server(zeoWith('address 8100\nread_only true')), "'read_only' is not a known key name");
  assert.equal(e.lineno, 3);
  assert.equal(e.key, 'read_only');
  assert.match(e.message, /^'read_only' is not a known key name\n\(line 3 in <string>\)$/);
});

test('§9.1 #6: %define and $name / ${name} substitution, case-insensitive', () => {
  const d = tempDir();
  for (const ref of ['$INSTANCE', '$instance', '${Instance}']) {
    const c = server(`%define INSTANCE ${d}\n${ZEO_8100}<filestorage>\npath ${ref}/Data.fs\n</filestorage>\n`);
    assert.equal(c.storages[0]!.options['path'], `${d}/Data.fs`);
  }
  // $INSTANCEvar looks up "instancevar"; ${INSTANCE}var delimits
  const defs = new Map([['instance', '/srv']]);
  assert.equal(substitute('${INSTANCE}var', defs, {}), '/srvvar');
  assert.throws(() => substitute('$INSTANCEvar', defs, {}), /no replacement for 'INSTANCEvar'/);
});

test('§9.1 #7: $(NAME) reads the environment; unset fails naming the variable', () => {
  const c = server(zeoWith('address $(ZEO_PORT)'), { env: { ZEO_PORT: '8200' } });
  assert.equal(c.zeo.address.family === 'inet' && c.zeo.address.port, 8200);
  const e = throwsConfig(() => server(zeoWith('address $(ZEO_PORT)'), { env: {} }), "no replacement for 'ZEO_PORT'");
  assert.equal(e.lineno, 2);
  // environment names are case-sensitive
  throwsConfig(() => server(zeoWith('address $(zeo_port)'), { env: { ZEO_PORT: '1' } }), "no replacement for 'zeo_port'");
});

test('§9.1 #8: $$ is a literal dollar; substituted text is not rescanned', () => {
  const c = server(`%define base /tmp\n${zeoWith('address ${base}/zeo$$.sock')}`);
  assert.deepEqual(c.zeo.address, { family: 'unix', path: '/tmp/zeo$.sock' });
  const defs = new Map([['a', '$b']]);
  assert.equal(substitute('x$a', defs, {}), 'x$b');
});

test('§9.1 #9 / §2.6: substitution syntax errors', () => {
  throwsConfig(() => server(zeoWith('address 8100$')), "illegal lone '$' at end of source");
  const cases: [string, string][] = [
    ['a $-b', "'$' not followed by '$' or name"],
    ['a ${', "'${' not followed by name"],
    ['a ${x', "'${x' not followed by '}'"],
    ['a $(', "'$(' not followed by name"],
    ['a $(X', "'$(X' not followed by ')'"],
    ['a $undefined', "no replacement for 'undefined'"],
  ];
  for (const [line, reason] of cases) {
    const e = throwsConfig(() => parseConfig(`\n${line}\n`, 'file:///s.conf'), reason);
    assert.equal(e.lineno, 2, line);
    assert.equal(e.url, 'file:///s.conf');
  }
});

test('§9.1 #10: %define may repeat identically but not redefine', () => {
  const t = parseConfig('%define a 1\n%define a 1\nk $a\n', 'file:///x');
  assert.equal((t.children[0] as KeyNode).value, '1');
  const e = throwsConfig(() => parseConfig('%define a 1\n%define A 2\n', 'file:///x'), "cannot redefine 'a'");
  assert.equal(e.lineno, 2);
  // a define without value is the empty string; the value is substituted at definition time
  const t2 = parseConfig('%define empty\n%define b x$pre\nk [$empty] $b\n', 'file:///x', { defines: new Map([['pre', '1']]) });
  assert.equal((t2.children[0] as KeyNode).value, '[] x1');
  // a name is usable only after its definition
  throwsConfig(() => parseConfig('k $late\n%define late 1\n', 'file:///x'), "no replacement for 'late'");
});

test('§9.1 #11: directive errors', () => {
  throwsConfig(() => parseConfig('%Define x 1\n', 'file:///x'), "unknown directive: 'Define'");
  throwsConfig(() => parseConfig('%define\n', 'file:///x'), 'missing argument to %define directive');
  throwsConfig(() => parseConfig('%include\n', 'file:///x'), 'missing argument to %include directive');
  throwsConfig(() => parseConfig('%define 9x 1\n', 'file:///x'), "not a substitution legal name: '9x'");
  throwsConfig(() => parseConfig('%foo bar\n', 'file:///x'), "unknown directive: 'foo'");
});

test('§9.1 #12: %include inside <zeo> contributes keys; path relative to the including file', () => {
  const d = tempDir();
  writeFiles(d, {
    'etc/zeo.conf': '<zeo>\n%include inc/zeo-body.conf\n</zeo>\n<mappingstorage/>\n',
    'etc/inc/zeo-body.conf': 'address 8300\n%include more.conf\n',
    'etc/inc/more.conf': 'read-only true\n',
  });
  const c = loadServerConfig(join(d, 'etc/zeo.conf'), { cwd: '/' });
  assert.equal(c.zeo.address.family === 'inet' && c.zeo.address.port, 8300);
  assert.equal(c.zeo.read_only, true);
  assert.equal(c.url, pathToFileURL(join(d, 'etc/zeo.conf')).href);
});

test('§9.1 #13: %include of a missing file names the absolute path and the including line', () => {
  const d = tempDir();
  writeFiles(d, { 'zeo.conf': `${ZEO_8100}<mappingstorage/>\n%include missing.conf\n` });
  const e = throwsConfig(() => loadServerConfig(join(d, 'zeo.conf')), `error opening file ${join(d, 'missing.conf')}`);
  assert.equal(e.lineno, 5);
  assert.equal(e.url, pathToFileURL(join(d, 'zeo.conf')).href);
});

test('cyclic %include is reported with the chain, not a stack overflow', () => {
  const d = tempDir();
  writeFiles(d, { 'a.conf': '%include b.conf\n', 'b.conf': '\n%include a.conf\n' });
  const e = throwsConfig(() => loadServerConfig(join(d, 'a.conf')), /^cyclic %include: .*a\.conf -> .*b\.conf -> .*a\.conf$/);
  assert.equal(e.lineno, 2);
  assert.equal(e.url, pathToFileURL(join(d, 'b.conf')).href);
});

test('%include nesting and count are bounded', () => {
  const files = new Map<string, string>();
  for (let i = 0; i < 40; i++) files.set(`file:///c/${i}.conf`, `%include ${i + 1}.conf\n`);
  const loadInclude = (u: string) => ({ url: u, text: files.get(u) ?? '' });
  throwsConfig(() => parseConfig('%include 0.conf\n', 'file:///c/top.conf', { loadInclude }), '%include nested more than 32 levels deep');
  const many = '%include leaf.conf\n'.repeat(20);
  throwsConfig(() => parseConfig(many, 'file:///c/top.conf', { loadInclude, maxIncludes: 10 }), /^too many %include directives/);
  assert.equal(parseConfig(many, 'file:///c/top.conf', { loadInclude }).urls.length, 21);
});

test('errors inside an included file name that file and its line', () => {
  const d = tempDir();
  writeFiles(d, { 'zeo.conf': '<zeo>\naddress 8100\n%include body.conf\n</zeo>\n<mappingstorage/>\n', 'body.conf': '# c\nbogus-key 1\n' });
  const e = throwsConfig(() => loadServerConfig(join(d, 'zeo.conf')), "'bogus-key' is not a known key name");
  assert.equal(e.url, pathToFileURL(join(d, 'body.conf')).href);
  assert.equal(e.lineno, 2);
});

test('sections opened in an included file must close there', () => {
  const d = tempDir();
  writeFiles(d, { 'zeo.conf': '%include part.conf\n</zeo>\n', 'part.conf': '<zeo>\naddress 1\n' });
  throwsConfig(() => loadServerConfig(join(d, 'zeo.conf')), 'unclosed sections not allowed');
});

test('§9.1 #14: empty sections <t/>, <t n/>, <t n />', () => {
  for (const s of ['<mappingstorage/>', '<mappingstorage 1/>', '<mappingstorage 1 />']) {
    const c = server(`${ZEO_8100}${s}\n`);
    assert.equal(c.storages.length, 1);
    assert.equal(c.storages[0]!.name, '1');
    assert.equal(c.storages[0]!.options['name'], 'Mapping Storage');
  }
});

test('§9.1 #15: unclosed, unbalanced, unexpected and malformed section lines', () => {
  const e1 = throwsConfig(() => server('<zeo>\naddress 8100\n'), 'unclosed sections not allowed');
  assert.equal(e1.lineno, 2);
  const e2 = throwsConfig(() => server('<zeo>\naddress 8100\n</filestorage>\n'), 'unbalanced section end');
  assert.equal(e2.lineno, 3);
  throwsConfig(() => server('<zeo\n'), 'malformed section start');
  throwsConfig(() => server('</zeo\n'), 'malformed section end');
  throwsConfig(() => server('</zeo>\n'), 'unexpected section end');
});

test('§9.1 #16: a third token in a section header is malformed', () => {
  const e = throwsConfig(() => server('<filestorage my storage>\n</filestorage>\n'), 'malformed section header');
  assert.equal(e.lineno, 1);
  throwsConfig(() => server('< zeo>\n</zeo>\n'), 'malformed section header');
});

test('§9.1 #17: a single-valued key given twice', () => {
  const e = throwsConfig(() => server(zeoWith('address 8100\naddress 8101')), "'address' does not support multiple values");
  assert.equal(e.lineno, 3);
});

test('§9.1 #19: named sections must be unique (after lowercasing) in one container', () => {
  const d = tempDir();
  throwsConfig(
    () => server(`${ZEO_8100}<mappingstorage a/>\n<filestorage A>\npath ${d}/x.fs\n</filestorage>\n`),
    "section names must not be re-used within the same container:'a'",
  );
});

test('§9.1 #20: keys must start with a letter', () => {
  const e = throwsConfig(() => server(zeoWith('address 8100\n1foo bar')), "value did not match regular expression: '1foo'");
  assert.equal(e.style, 'conversion');
  assert.equal(e.message, "value did not match regular expression: '1foo' (line 3, in <string>)");
  throwsConfig(() => parseConfig('(x y\n', 'file:///x'), 'malformed configuration data');
});

test('§9.1 #21: a missing configuration file', () => {
  const d = tempDir();
  const p = join(d, 'nope.conf');
  const e = throwsConfig(() => loadServerConfig(p), `error opening file ${p}: [Errno 2] No such file or directory: '${p}'`);
  assert.ok(e instanceof ConfigError);
  throwsConfig(() => loadServerConfig(d), `error opening file ${d}: [Errno 21] Is a directory: '${d}'`);
});

test('§2.1: relative paths become file: URLs; fragments are refused; a BOM is ignored [D]; CRLF lines work', () => {
  const d = tempDir();
  writeFiles(d, { 'z.conf': `\ufeff${ZEO_8100}<mappingstorage/>\n`.replace(/\n/g, '\r\n') });
  const c = loadServerConfig('z.conf', { cwd: d });
  assert.equal(c.url, pathToFileURL(join(d, 'z.conf')).href);
  throwsConfig(() => loadServerConfig(pathToFileURL(join(d, 'z.conf')).href + '#frag'), 'fragment identifiers are not supported');
});

test('errors are reported in document order: a schema error before a syntax error wins (as ZConfig)', () => {
  const e = throwsConfig(() => server('<zeo>\naddress 8100\nbogus 1\n'), "'bogus' is not a known key name");
  assert.equal(e.lineno, 3);
  const e2 = throwsConfig(() => server('<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<nosuch>\n<zeo\n'), "unknown type name: 'nosuch'");
  assert.equal(e2.lineno, 5);
  // the required-key check of a section runs only when it is closed
  throwsConfig(() => server('<zeo>\n<zeo\n'), 'malformed section start');
});

test('a source string containing a newline is configuration text', () => {
  const c = loadServerConfig(`${ZEO_8100}<mappingstorage/>\n`);
  assert.equal(c.url, '<string>');
  assert.equal(c.storages[0]!.name, '1');
});

test('§2.2: a key alone on its line has the empty value', () => {
  const t = parseConfig('flag\n', 'file:///x');
  assert.equal((t.children[0] as KeyNode).value, '');
});

test('§2.9: -X overrides replace file values, add absent keys, address sections by name or type', () => {
  const d = tempDir();
  const text = `${ZEO_8100}<filestorage main>\npath ${d}/a.fs\n</filestorage>\n<mappingstorage 2/>\n`;
  const c = server(text, {
    overrides: ['zeo/address=9100', 'zeo/read-only=true', 'zeo/transaction-timeout=30', `main/path=${d}/b.fs`, 'mappingstorage/name=M'],
  });
  assert.equal(c.zeo.address.family === 'inet' && c.zeo.address.port, 9100);
  assert.equal(c.zeo.read_only, true);
  assert.equal(c.zeo.transaction_timeout, 30);
  assert.equal(c.storages[0]!.options['path'], `${d}/b.fs`);
  assert.equal(c.storages[1]!.options['name'], 'M');
  // values are not substituted
  const c2 = server(zeoWith('address 8100'), { overrides: ['zeo/pid-filename=/tmp/$x'] });
  assert.equal(c2.zeo.pid_filename, '/tmp/$x');
  // a storage named 1 is addressed by type
  const c3 = server(`${ZEO_8100}<filestorage 1>\npath ${d}/a.fs\n</filestorage>\n`, { overrides: [`filestorage/path=${d}/c.fs`] });
  assert.equal(c3.storages[0]!.options['path'], `${d}/c.fs`);
});

test('§2.9: -X errors', () => {
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo/address'] }), 'invalid configuration specifier');
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo//address=1'] }), "'//' is not allowed in an option path");
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['nosuch/key=1'] }), 'not all command line options were consumed');
  // [D] a segment that is not a valid key is a usage error, not a crash
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['1/path=/x'] }), /path segment '1' must start with a letter/);
  const e = throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo/read-only=maybe'] }), "not a valid boolean value: 'maybe'");
  assert.match(e.message, /\(in command-line option -X zeo\/read-only=maybe\)$/);
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo/nokey=1'] }), "'nokey' is not a known key name");
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo/address=1', 'zeo/address=2'] }), "'address' does not support multiple values");
  // overrides for a section that is absent are not consumed (checked against upstream ZConfig)
  const e2 = throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['zeo/ssl/certificate=/tmp/c.pem'] }), 'not all command line options were consumed');
  assert.equal(e2.message, 'not all command line options were consumed\n(line 3 in <string>, -X zeo/ssl/certificate=/tmp/c.pem)');
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['eventlog/level=info'] }), 'not all command line options were consumed');
  // path segments are case-insensitive; keys are checked against the addressed section's type
  assert.equal(server(zeoWith('address 8100'), { overrides: ['Zeo/Read-Only=true'] }).zeo.read_only, true);
  throwsConfig(() => server(zeoWith('address 8100'), { overrides: ['mappingstorage/path=/x'] }), "'path' is not a known key name");
  // a key given by -X makes the file's lines for it irrelevant, even duplicated ones
  assert.deepEqual(server(zeoWith('address 8100\naddress 8101'), { overrides: ['zeo/address=9'] }).zeo.address, { family: 'inet', host: '', port: 9 });
});
