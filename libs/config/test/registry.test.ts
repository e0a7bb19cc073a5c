// Plugin section types (operations spec §2.5 %import; checklist §9.3 #49; examples E6, E8 with plugins).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  defaultStorageConvert,
  isRegisteredImport,
  loadClientConfig,
  loadServerConfig,
  matchConfig,
  parseConfig,
  registerImport,
  registerSectionType,
  STORAGE_ABSTRACT,
  ValueConversionError,
  type SectionTypeDef,
  type StorageSection,
} from '../src/index.ts';
import { tempDir, throwsConfig, ZEO_8100 } from './helpers.ts';

// A ZRS-like plugin: <zrs> implementing zodb.storage, wrapping one base storage (zrs spec §3.1).
const zrsType: SectionTypeDef = {
  name: 'zrs',
  implements: [STORAGE_ABSTRACT],
  kind: 'ZRS',
  keys: [
    { name: 'replicate-to', datatype: 'socket-binding-address' },
    { name: 'replicate-from', datatype: 'socket-address' },
    { name: 'keep-alive-delay', datatype: 'integer', default: '0' },
  ],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base', required: true }],
  convert: (s) => {
    if (s.values['replicate_to'] === null && s.values['replicate_from'] === null) {
      throw new ValueConversionError('You must specify replicate-to and/or replicate-from.');
    }
    return defaultStorageConvert(zrsType)(s);
  },
};
const primaryType: SectionTypeDef = {
  name: 'primary',
  implements: [STORAGE_ABSTRACT],
  kind: 'Primary',
  keys: [{ name: 'address', datatype: 'socket-binding-address', required: true }],
  sections: [{ type: STORAGE_ABSTRACT, name: '*', attribute: 'base', required: true }],
};
registerImport('zc.zrs', { types: [zrsType, primaryType] });

// A ZEORaid-like plugin registered type by type into its component.
registerSectionType(
  {
    name: 'raidstorage',
    implements: [STORAGE_ABSTRACT],
    kind: 'RAIDStorage',
    sections: [{ type: STORAGE_ABSTRACT, name: '+', multi: true, required: true, attribute: 'storages' }],
  },
  { component: 'gocept.zeoraid' },
);

// A type available everywhere without %import.
registerSectionType({ name: 'nullstorage', implements: [STORAGE_ABSTRACT], kind: 'NullStorage', keys: [{ name: 'label', default: 'null' }] });

test('registerImport: %import zc.zrs makes <zrs>/<primary> storage types, nested storages are StorageSections', () => {
  const d = tempDir();
  assert.ok(isRegisteredImport('zc.zrs'));
  throwsConfig(() => loadServerConfig({ text: `${ZEO_8100}<zrs 1>\nreplicate-to 5000\n<mappingstorage/>\n</zrs>\n` }), "unknown type name: 'zrs'");
  const c = loadServerConfig({
    text: `%import zc.zrs\n${ZEO_8100}<zrs 1>\n  replicate-to 5000\n  <filestorage>\n    path ${d}/Data.fs\n  </filestorage>\n</zrs>\n`,
  });
  const s = c.storages[0]!;
  assert.deepEqual([s.name, s.type, s.kind], ['1', 'zrs', 'ZRS']);
  assert.deepEqual(s.options['replicate_to'], { family: 'inet', host: '', port: 5000 });
  assert.equal(s.options['keep_alive_delay'], 0);
  const base = s.options['base'] as StorageSection;
  assert.deepEqual([base.type, base.kind, base.options['path']], ['filestorage', 'FileStorage', `${d}/Data.fs`]);
  throwsConfig(() => loadServerConfig({ text: `%import zc.zrs\n${ZEO_8100}<zrs 1>\n<mappingstorage/>\n</zrs>\n` }), 'You must specify replicate-to and/or replicate-from.');
  throwsConfig(() => loadServerConfig({ text: `%import zc.zrs\n${ZEO_8100}<zrs 1>\nreplicate-to 5000\n</zrs>\n` }), "no values for section type 'zodb.storage'; 1 required");
});

test('E8 with a zc.zrs plugin: <primary> is a storage type whose address is its own', () => {
  const d = tempDir();
  const e8 = `%import zc.zrs\n<primary 1>\n   address 5000\n   <filestorage>\n       path ${d}/file\n   </filestorage>\n</primary>\n`;
  throwsConfig(() => loadServerConfig({ text: e8 }), "no values for section type 'zeo'; 1 required");
  const c = loadServerConfig({ text: `${e8}<zeo>\naddress 8100\n</zeo>\n` });
  assert.deepEqual(c.zeo.address, { family: 'inet', host: '', port: 8100 });
  assert.deepEqual(c.storages[0]!.options['address'], { family: 'inet', host: '', port: 5000 });
  // the same types work in client files
  const cl = loadClientConfig({ text: `%import zc.zrs\n<zrs>\nreplicate-from 5000\n<mappingstorage/>\n</zrs>\n` });
  assert.equal(cl.storage!.kind, 'ZRS');
});

test('E6 with a gocept.zeoraid plugin: still fails, address is not a <zeoclient> key', () => {
  const text = `<zeo>\n   address 5555\n   monitor-address 8101\n   transaction-timeout 300\n</zeo>\n%import gocept.zeoraid\n<raidstorage 1>\n   <zeoclient 1>\n       address 8101\n   </zeoclient>\n</raidstorage>\n`;
  const e = throwsConfig(() => loadServerConfig({ text }), "'address' is not a known key name");
  assert.equal(e.lineno, 9);
  const ok = loadServerConfig({ text: text.replace('address 8101\n   </zeoclient>', 'server 8101\n   </zeoclient>') });
  const raid = ok.storages[0]!;
  assert.equal(raid.kind, 'RAIDStorage');
  assert.deepEqual((raid.options['storages'] as StorageSection[]).map((s) => [s.name, s.kind]), [['1', 'ZEOClient']]);
  // name '+' slots refuse unnamed sections
  throwsConfig(
    () => loadServerConfig({ text: `${ZEO_8100}%import gocept.zeoraid\n<raidstorage 1>\n<mappingstorage/>\n</raidstorage>\n` }),
    "None is not an allowed name for 'zodb.storage' sections",
  );
});

test('registerSectionType without a component: available in every schema', () => {
  const c = loadServerConfig({ text: `${ZEO_8100}<nullstorage/>\n` });
  assert.deepEqual([c.storages[0]!.kind, c.storages[0]!.options], ['NullStorage', { label: 'null' }]);
});

test('a plugin type that redefines a known type name fails at its %import', () => {
  registerImport('bad.plugin', [{ name: 'filestorage', implements: [STORAGE_ABSTRACT] }]);
  const e = throwsConfig(() => loadServerConfig({ text: `${ZEO_8100}<mappingstorage/>\n%import bad.plugin\n` }), "type name cannot be redefined: 'filestorage'");
  assert.equal(e.lineno, 5);
});

test('definitions must use lowercase names (upstream spells ZODB.storage; here it is zodb.storage)', () => {
  registerImport('bad.case', [{ name: 'oddstorage', implements: ['ZODB.storage'] }]);
  assert.throws(() => loadServerConfig({ text: `${ZEO_8100}<mappingstorage/>\n%import bad.case\n` }), /abstract type names must be lowercase.*'ZODB\.storage'/);
  assert.throws(() => registerSectionType({ name: 'Upper' }), /section type names must be lowercase/);
});

test('custom schemas: matchConfig with keys, arbitrary key maps and nested slots', () => {
  const tree = parseConfig('name x\nport 80\n<environment>\nTZ UTC\nHOME /root\n</environment>\n', 'file:///custom.conf');
  const r = matchConfig(tree, {
    name: 'custom',
    components: ['zdaemon'],
    keys: [{ name: 'name', required: true }, { name: 'port', datatype: 'port-number' }, { name: 'extra', default: 'e' }],
    sections: [{ type: 'environment', attribute: 'env' }],
  });
  assert.deepEqual(r.top.values, { name: 'x', port: 80, extra: 'e', env: { TZ: 'UTC', HOME: '/root' } });
  assert.deepEqual([...r.top.given].sort(), ['env', 'name', 'port']);
  assert.ok(r.components.includes('zdaemon'));
  assert.throws(
    () => matchConfig(parseConfig('port 99999\n', 'file:///c.conf'), { name: 'c', components: [], keys: [{ name: 'port', datatype: 'port-number' }] }),
    (e: unknown) => e instanceof ConfigError && e.message === '99999 is above upper bound (65535) (line 1, in file:///c.conf)',
  );
});
