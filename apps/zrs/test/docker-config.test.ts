// The configuration files of the zrs docker image (docker/zrs, docker/compose.zrs.yml) parse with
// our loader and mean what their comments say (zrs §3.1, §14 #47). No Docker engine is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadServerConfig } from '@zeo-ts/config';
import { registerZrsConfig } from '@zeo-ts/zrs';
import { ROOT, tempDir } from './helpers.ts';

// the image's data directory is replaced by a temporary one (ZConfig checks that it exists)
const data = tempDir('zrs-docker-');
const conf = (name: string) => loadServerConfig({ text: readFileSync(join(ROOT, 'docker', 'zrs', name), 'utf8').replaceAll('/var/lib/zrs', data) });

test('zrs §14 #47: docker/zrs/primary.conf is a blob-enabled primary, secondary.conf a blob-enabled relaying secondary of "primary"', () => {
  registerZrsConfig();
  const p = conf('primary.conf');
  assert.equal(p.storages.length, 1);
  const ps = p.storages[0]!;
  assert.equal(ps.name, '1');
  assert.equal(ps.type, 'zrs');
  assert.deepEqual(ps.options.replicate_to, { family: 'inet', host: '0.0.0.0', port: 8101 });
  assert.equal(ps.options.replicate_from, null);
  const base = ps.options.base as { type: string; options: Record<string, unknown> };
  assert.equal(base.type, 'filestorage');
  assert.equal(base.options.blob_dir, join(data, 'blobs'));
  const s = conf('secondary.conf').storages[0]!;
  assert.equal((s.options.replicate_from as { host: string; port: number }).host, 'primary');
  assert.equal((s.options.replicate_from as { host: string; port: number }).port, 8101);
  assert.ok(s.options.replicate_to, 'a relay: further secondaries can replicate from it');
  assert.equal(s.options.reconnect_delay, 5);
  assert.equal(s.options.reconnect_max_delay, 60);
  assert.equal(s.options.keep_alive_delay, 60);
  const compose = readFileSync(join(ROOT, 'docker', 'compose.zrs.yml'), 'utf8');
  for (const svc of ['primary:', 'secondary1:', 'secondary2:', './zrs/primary.conf:/etc/zrs/zrs.conf:ro', './zrs/secondary.conf:/etc/zrs/zrs.conf:ro']) assert.ok(compose.includes(svc), svc);
});
