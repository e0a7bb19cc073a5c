/**
 * Opening zeo.conf storage sections backed by FileStorage (operations spec §3.4.1, §3.4.4):
 *
 *  - `<filestorage>`: path, create, read-only, quota, pack-gc, pack-keep-old, blob-dir (blob
 *    support when set and not empty);
 *  - `<blobstorage>`: blob-dir plus one nested storage section. Upstream wraps any storage in a
 *    ZODB.blob.BlobStorage proxy; here the base must be a `<filestorage>` without its own
 *    blob-dir, which is then opened with the blob directory in blobMode 'proxy' (the proxy's
 *    undo and pack behaviour, so the blob files are the ones Python would leave).
 *
 * Sections are the StorageSection objects of @zeo-ts/config (typed structurally so that this
 * module does not need that package). Relative paths are resolved against `cwd`; the display
 * name is the path exactly as written.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { StorageError } from '@zeo-ts/storage';
import { FileStorage, type FileStorageOptions } from './storage.ts';

/** The parts of a @zeo-ts/config StorageSection used here. */
export interface StorageSectionLike {
  type: string;
  name?: string | null;
  options: Record<string, unknown>;
}

export interface OpenSectionContext {
  /** directory relative paths are resolved against (default process.cwd()) */
  cwd?: string;
  logger?: Logger;
}

function isSection(v: unknown): v is StorageSectionLike {
  return typeof v === 'object' && v !== null && 'type' in v && 'options' in v;
}

function label(s: StorageSectionLike): string {
  return `<${s.type}${s.name ? ' ' + s.name : ''}>`;
}

/** FileStorage constructor arguments for a `<filestorage>` or `<blobstorage>` section. */
export function fileStorageArgs(section: StorageSectionLike, ctx: OpenSectionContext = {}): { path: string; options: FileStorageOptions } {
  const cwd = ctx.cwd ?? process.cwd();
  let fsSection = section;
  let blobDir: string | null = null;
  if (section.type === 'blobstorage') {
    const bd = section.options['blob_dir'];
    if (typeof bd !== 'string' || bd === '') throw new StorageError(`${label(section)}: blob-dir is required`);
    blobDir = bd;
    const base = section.options['base'];
    if (!isSection(base)) throw new StorageError(`${label(section)}: a nested storage section (the base storage) is required`);
    if (base.type !== 'filestorage') throw new StorageError(`${label(section)}: only a <filestorage> base storage is supported, not <${base.type}>`);
    if (base.options['blob_dir']) throw new StorageError(`${label(section)}: the base storage ${label(base)} already has a blob-dir`);
    fsSection = base;
  } else if (section.type !== 'filestorage') {
    throw new StorageError(`${label(section)} is not a <filestorage> or <blobstorage> section`);
  } else {
    const bd = section.options['blob_dir'];
    if (typeof bd === 'string' && bd !== '') blobDir = bd;
  }
  const o = fsSection.options;
  const path = o['path'];
  if (typeof path !== 'string' || path === '') throw new StorageError(`${label(fsSection)}: path is required`);
  const options: FileStorageOptions = {
    name: path,
    readOnly: !!o['read_only'],
    create: !!o['create'],
    packGc: o['pack_gc'] === undefined ? true : !!o['pack_gc'],
    packKeepOld: o['pack_keep_old'] === undefined ? true : !!o['pack_keep_old'],
    quota: typeof o['quota'] === 'number' ? o['quota'] : undefined,
  };
  if (ctx.logger) options.logger = ctx.logger;
  if (blobDir !== null) options.blobDir = resolve(cwd, blobDir);
  if (section.type === 'blobstorage') options.blobMode = 'proxy';
  return { path: resolve(cwd, path), options };
}

/** Open a `<filestorage>` (blob-dir honoured) or `<blobstorage>` section as a FileStorage. */
export async function openFileStorageSection(section: StorageSectionLike, ctx: OpenSectionContext = {}): Promise<FileStorage> {
  const { path, options } = fileStorageArgs(section, ctx);
  return FileStorage.open(path, options);
}
