/**
 * The ZRS storage plugin (see @zeo-ts/config plugins.ts): importing this module makes
 * `%import zc.zrs`, the <zrs> section and the legacy <primary>/<secondary> sections known, and
 * registers how a server opens them. Any server program that loads installed plugins (runzeo,
 * zrs) then serves ZRS storages from the same configuration file.
 */
import { hasProvider, registerProvider, type StorageOpenContext, type StorageSection } from '@zeo-ts/config';
import type { Logger } from 'pino';
import { openZrs, registerZrsConfig } from './config.ts';

registerZrsConfig();

for (const type of ['zrs', 'primary', 'secondary']) {
  if (hasProvider('storage-opener', type)) continue;
  registerProvider('storage-opener', type, (section: unknown, ctx: StorageOpenContext) =>
    openZrs(section as StorageSection, { logger: ctx.logger as Logger | undefined, readOnly: ctx.readOnlyServer, cwd: ctx.cwd }),
  );
}
