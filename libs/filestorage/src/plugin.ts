/**
 * The FileStorage storage plugin (see @zeo-ts/config plugins.ts): registers how a server opens
 * `<filestorage>` (with blob-dir) and `<blobstorage>` sections, unless a program registered its
 * own opener first.
 */
import { hasProvider, registerProvider, type StorageOpenContext } from '@zeo-ts/config';
import type { Logger } from 'pino';
import { openFileStorageSection, type StorageSectionLike } from './config.ts';

for (const type of ['filestorage', 'blobstorage']) {
  if (hasProvider('storage-opener', type)) continue;
  registerProvider('storage-opener', type, (section: unknown, ctx: StorageOpenContext) =>
    openFileStorageSection(section as StorageSectionLike, { cwd: ctx.cwd, logger: ctx.logger as Logger | undefined }),
  );
}
