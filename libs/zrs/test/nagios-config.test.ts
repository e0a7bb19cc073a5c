// zrs-nagios evaluation (zrs §9.1, §14 #51, #53) and the <zrs> configuration (§3, §14 #47-#49).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { loadServerConfig } from '@zeo-ts/config';
import { Primary, Secondary, nagiosEvaluate, openStorageSection, parseNagiosArgs, registerZrsConfig } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const LAG = 68.5678;
const one = (p: number, s: number) => [new Map([['1', p]]), new Map([['1', s]])] as const;

test('zrs §14 #53: the four single-storage examples of nagios.rst', () => {
  const [p, s] = one(1000 + LAG, 1000);
  const o = (x: Partial<{ metrics: boolean; warning: number; error: number }>) => ({ metrics: false, warning: 0, error: 0, ...x });
  assert.deepEqual(nagiosEvaluate(p, s, o({ metrics: true })), { output: "Secondary behind primary by 68.5678 seconds|'lag'=68.5678seconds", code: 0 });
  assert.deepEqual(nagiosEvaluate(p, s, o({ warning: 30 })), { output: 'Secondary behind primary by 68.5678 seconds > 30', code: 1 });
  assert.deepEqual(nagiosEvaluate(p, s, o({ error: 30 })), { output: 'Secondary behind primary by 68.5678 seconds > 30', code: 2 });
  assert.deepEqual(nagiosEvaluate(p, s, o({ warning: 33, error: 44, metrics: true })), { output: "Secondary behind primary by 68.5678 seconds > 44|'lag'=68.5678seconds", code: 2 });
  const [p2, s2] = one(1000, 1010.5);
  assert.deepEqual(nagiosEvaluate(p2, s2, o({ metrics: true })), { output: "Primary behind secondary by -10.5 seconds|'lag'=-10.5000seconds", code: 2 });
  assert.deepEqual(nagiosEvaluate(new Map(), new Map(), o({ metrics: true })), { output: 'No storages', code: 1 });
});

test('zrs §14 #53: the multi-storage example of nagios.rst', () => {
  const p = new Map([['1', 5000], ['first', 5000 + LAG], ['second', 7000], ['friday', 1]]);
  const s = new Map([['1', 5000], ['first', 5000], ['second', 7000], ['thursday', 1]]);
  const r = nagiosEvaluate(p, s, { metrics: true, warning: 33, error: 99 });
  assert.equal(
    r.output,
    [
      "Secondary up to date.|'lag'=0.0000seconds",
      "Secondary ('first') behind primary by 68.5678 seconds > 33",
      "Storage 'friday' in primary, but not secondary",
      "Secondary ('second') up to date.",
      "Storage 'thursday' in secondary, but not primary| 'lagfirst'=68.5678seconds",
      " 'lagsecond'=0.0000seconds",
    ].join('\n'),
  );
  assert.equal(r.code, 2);
});

test('zrs §14 #51: usage when addresses or -m/-w/-e are missing; option forms', () => {
  assert.equal(parseNagiosArgs(['a:1', 'b:2']), null);
  assert.equal(parseNagiosArgs(['-m', 'a:1']), null);
  assert.equal(parseNagiosArgs(['-w0', 'a:1', 'b:2']), null);
  assert.deepEqual(parseNagiosArgs(['-w33', '-e', '44', '--output-metrics', 'P', 'S']), { o: { metrics: true, warning: 33, error: 44 }, primary: 'P', secondary: 'S' });
  assert.deepEqual(parseNagiosArgs(['--warning=5', 'P', 'S'])!.o, { metrics: false, warning: 5, error: 0 });
});

function conf(body: string): string {
  return `%import zc.zrs\n<zeo>\n  address 127.0.0.1:0\n</zeo>\n${body}`;
}

test('zrs §14 #47-#49: <zrs> builds a Primary, a Secondary or a relay; defaults; errors', async () => {
  registerZrsConfig();
  const d = tempDir();
  const fsSection = (n: string) => `  <filestorage>\n    path ${join(d, n)}\n  </filestorage>\n`;
  assert.throws(() => loadServerConfig({ text: conf(`<zrs>\n${fsSection('a.fs')}</zrs>\n`) }), /You must specify replicate-to and\/or replicate-from\./);
  assert.throws(() => loadServerConfig({ text: conf(`<zrs>\n  replicate-to 127.0.0.1:9999\n  replicate-from 127.0.0.1:9999\n${fsSection('a.fs')}</zrs>\n`) }), /Values for replicate-to and replicate-from must be different\./);
  const cp = loadServerConfig({ text: conf(`<zrs 1>\n  replicate-to 127.0.0.1:0\n${fsSection('p.fs')}</zrs>\n`) });
  const p = await openStorageSection(cp.storages[0]!);
  assert.ok(p instanceof Primary);
  const port = (p as Primary).port;
  const cs = loadServerConfig({ text: conf(`<zrs 1>\n  replicate-from 127.0.0.1:${port}\n${fsSection('s.fs')}</zrs>\n`) });
  const o = cs.storages[0]!.options;
  assert.equal(o.keep_alive_delay, 0);
  assert.equal(o.check_checksums, true);
  assert.equal(o.reconnect_delay, 60);
  const s = await openStorageSection(cs.storages[0]!);
  assert.ok(s instanceof Secondary);
  assert.equal((s as Secondary).keepAliveDelay, 0);
  assert.equal((s as Secondary).checkChecksums, true);
  assert.equal((s as Secondary).reconnectDelay, 60);
  const cr = loadServerConfig({ text: conf(`<zrs 1>\n  replicate-from 127.0.0.1:${port}\n  replicate-to 127.0.0.1:0\n  keep-alive-delay 60\n${fsSection('r.fs')}</zrs>\n`) });
  const r = (await openStorageSection(cr.storages[0]!)) as Secondary;
  assert.ok(r instanceof Secondary);
  assert.ok(r.storage instanceof Primary, 'a relay listens through an inner Primary');
  assert.equal(r.keepAliveDelay, 60);
  // legacy sections (§3.2)
  const cl = loadServerConfig({ text: conf(`<primary 1>\n  address 127.0.0.1:0\n  filestorage-path ${join(d, 'l.fs')}\n</primary>\n`) });
  const lp = await openStorageSection(cl.storages[0]!);
  assert.ok(lp instanceof Primary);
  const cl2 = loadServerConfig({ text: conf(`<secondary 1>\n  address 127.0.0.1:${(lp as Primary).port}\n  filestorage-path ${join(d, 'l2.fs')}\n</secondary>\n`) });
  const ls = await openStorageSection(cl2.storages[0]!);
  assert.ok(ls instanceof Secondary);
  for (const x of [ls, lp, r, s, p]) await x.close();
});

test('zrs §3.1/§3.2: relative paths of <zrs> and legacy sections are resolved against the server directory (cwd)', async () => {
  registerZrsConfig();
  const d = tempDir();
  const c = loadServerConfig({ text: conf(`<zrs 1>\n  replicate-to 127.0.0.1:0\n  <filestorage>\n    path z.fs\n  </filestorage>\n</zrs>\n<primary 2>\n  address 127.0.0.1:0\n  filestorage-path legacy.fs\n</primary>\n`) });
  const opened = [];
  for (const s of c.storages) opened.push(await openStorageSection(s, { cwd: d }));
  assert.ok(existsSync(join(d, 'z.fs')), 'the <zrs> filestorage path is relative to cwd');
  assert.ok(existsSync(join(d, 'legacy.fs')), 'the legacy filestorage-path is relative to cwd');
  assert.equal((opened[1] as Primary).getName(), 'legacy.fs', 'the display name is the path as given');
  for (const x of opened) await x.close();
});
