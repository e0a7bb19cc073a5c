/**
 * Blob directories (filestorage spec §13, ZODB blob.py semantics): where the file of blob
 * revision (oid, tid) lives, the `.layout` marker and its automatic selection, the `tmp/`
 * directory for uncommitted files, moving a file in and making committed files read-only.
 *
 * One module for every storage that keeps blob files (FileStorage, the ZEO client's blob cache,
 * ZRS replicas): layouts are looked up by name, so another layout (the ZEO cache's `zeocache`)
 * can be added with `registerBlobLayout`.
 *
 *   bushy: B/0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x03f58e0100000000.blob (one level per oid byte)
 *   lawn:  B/0x01/0x03f58e0100000000.blob (deprecated; one directory per oid)
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  copyFileSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { Unpickler, PyGlobal } from '@zeo-ts/pickle';
import { StorageError } from './errors.ts';
import { oidRepr, type Oid, type Tid } from './ids.ts';

/** Suffix of committed blob files. */
export const BLOB_SUFFIX = '.blob';
/** Name of the layout marker file in a blob directory. */
export const LAYOUT_MARKER = '.layout';
/** Name of the directory for uncommitted blob files. */
export const BLOB_TMP_DIR = 'tmp';

/**
 * The data record of a `ZODB.blob.Blob` object (spec §4.5): class pickle `ZODB.blob.Blob`,
 * state `None`, protocol 3 — 25 bytes, exactly what Python ZODB writes.
 */
export const BLOB_RECORD: Buffer = Buffer.from('8003635a4f44422e626c6f620a426c6f620a71002e80034e2e', 'hex');

/** ZODB.utils.tid_repr (the same text as oid_repr): `0x` + shortest even number of hex digits. */
export function tidRepr(tid: Tid): string {
  return oidRepr(tid);
}

/** Parse an oid_repr / tid_repr text (`0x1234`) back into its value; null when it is not one. */
export function reprToId(text: string): bigint | null {
  if (!/^0x[0-9a-f]{1,16}$/.test(text)) return null;
  return BigInt(text);
}

/** How oids map to directories relative to the blob directory. */
export interface BlobLayout {
  readonly name: string;
  /** relative directory of an oid's blob files (segments joined with the platform separator) */
  oidToPath(oid: Oid): string;
  /** inverse of oidToPath; null when `rel` is not an oid directory of this layout */
  pathToOid(rel: string): Oid | null;
}

function byteDirs(oid: Oid): string[] {
  if (oid < 0n || oid > 0xffffffffffffffffn) throw new RangeError(`oid out of range: ${oid}`);
  const h = oid.toString(16).padStart(16, '0');
  const out: string[] = [];
  for (let i = 0; i < 16; i += 2) out.push('0x' + h.slice(i, i + 2));
  return out;
}

/** 8 nested directories, one per oid byte, most significant first (the default). */
export const BUSHY_LAYOUT: BlobLayout = {
  name: 'bushy',
  oidToPath: (oid) => byteDirs(oid).join(sep),
  pathToOid(rel) {
    const parts = rel.split(sep);
    if (parts.length !== 8) return null;
    let v = 0n;
    for (const p of parts) {
      // Python's pattern accepts one or two hex digits per level
      if (!/^0x[0-9a-f]{1,2}$/.test(p)) return null;
      v = (v << 8n) | BigInt(p);
    }
    return v;
  },
};

/** One directory per oid named oid_repr(oid) (deprecated upstream; still readable and writable). */
export const LAWN_LAYOUT: BlobLayout = {
  name: 'lawn',
  oidToPath: (oid) => oidRepr(oid),
  pathToOid: (rel) => (rel.includes(sep) ? null : reprToId(rel)),
};

const LAYOUTS = new Map<string, BlobLayout>([
  ['bushy', BUSHY_LAYOUT],
  ['lawn', LAWN_LAYOUT],
]);

/** Make another layout known by name (e.g. the ZEO client cache's `zeocache`). */
export function registerBlobLayout(layout: BlobLayout): void {
  if (!/^[a-z0-9_-]+$/i.test(layout.name)) throw new RangeError(`bad blob layout name ${JSON.stringify(layout.name)}`);
  LAYOUTS.set(layout.name, layout);
}

/** A known layout by name; StorageError naming the directory when unknown. */
export function getBlobLayout(name: string, dir = ''): BlobLayout {
  const l = LAYOUTS.get(name);
  if (!l) throw new StorageError(`unknown blob directory layout ${JSON.stringify(name)}${dir ? ` for ${dir}` : ''} (known: ${[...LAYOUTS.keys()].join(', ')})`);
  return l;
}

/**
 * The layout a blob directory uses when none is configured (spec §13): the `.layout` marker's
 * content if present; `bushy` if the directory does not exist or holds only dot-files; else
 * `lawn` (an old, unmarked directory).
 */
export function autoLayoutSelect(dir: string): string {
  const marker = join(dir, LAYOUT_MARKER);
  if (existsSync(marker)) return readFileSync(marker, 'latin1').trim();
  if (!existsSync(dir)) return 'bushy';
  for (const name of readdirSync(dir)) if (!name.startsWith('.')) return 'lawn';
  return 'bushy';
}

/** Clear the write bits of a committed blob file and give it the read bits of its directory. */
export function setNotWritable(path: string): void {
  const mode = lstatSync(path).mode & 0o7777;
  const dirRead = lstatSync(dirname(path)).mode & 0o444;
  chmodSync(path, (mode & ~0o222) | dirRead);
}

/**
 * Move `src` to `dst` (rename; on a cross-device error copy, fsync and delete the source), then
 * make `dst` read-only unless `chmod` is false. Errors name both paths.
 */
export function renameOrCopyBlob(src: string, dst: string, chmod = true): void {
  try {
    renameSync(src, dst);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EACCES') throw new StorageError(`cannot move blob file ${src} to ${dst}: ${(e as Error).message}`);
    try {
      copyFileSync(src, dst);
      fsyncPath(dst);
      unlinkSync(src);
    } catch (e2) {
      throw new StorageError(`cannot copy blob file ${src} to ${dst}: ${(e2 as Error).message}`);
    }
  }
  if (chmod) setNotWritable(dst);
}

/** fsync a file or directory by path (read-only descriptor). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Remove a committed (read-only) blob file; a missing file is fine. */
export function removeCommitted(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Remove a directory tree of committed blob files. */
export function removeCommittedDir(path: string): void {
  rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * A new, empty, uniquely named file in `dir` (created exclusively, mode 0600); returns its path.
 * Like tempfile.mkstemp(prefix, suffix, dir). Bounded retries.
 */
export function createTempBlobFile(dir: string, prefix = '', suffix = '.tmp'): string {
  for (let i = 0; i < 100; i++) {
    const p = join(dir, `${prefix}${randomBytes(6).toString('hex')}${suffix}`);
    try {
      closeSync(openSync(p, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600));
      return p;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(`cannot create a temporary blob file in ${dir}: ${(e as Error).message}`);
    }
  }
  throw new StorageError(`cannot create a temporary blob file in ${dir}: 100 names taken`);
}

/**
 * Copy the content of `src` into a new file `dst` created with the default mode (0666 less the
 * umask, like Python's open(dst, 'wb')), in 1 MiB steps. `dst` must not exist.
 */
export function copyFileContent(src: string, dst: string): void {
  let inFd: number | null = null;
  let outFd: number | null = null;
  try {
    inFd = openSync(src, 'r');
    outFd = openSync(dst, 'wx');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ; ) {
      const n = readSync(inFd, buf, 0, buf.length, pos);
      if (n === 0) break;
      for (let off = 0; off < n; ) {
        const w = writeSync(outFd, buf, off, n - off);
        if (w <= 0) throw new Error(`write returned ${w}`);
        off += w;
      }
      pos += n;
    }
  } catch (e) {
    if (outFd !== null) removeCommitted(dst);
    throw new StorageError(`cannot copy blob file ${src} to ${dst}: ${(e as Error).message}`);
  } finally {
    if (inFd !== null) closeSync(inFd);
    if (outFd !== null) closeSync(outFd);
  }
}

/** Copy `src` to a new temporary file in `dir` (writable, mode 0600); returns its path. */
export function copyBlobToTemp(src: string, dir: string, prefix = ''): string {
  const p = createTempBlobFile(dir, prefix);
  try {
    copyFileSync(src, p);
    chmodSync(p, 0o600);
  } catch (e) {
    removeCommitted(p);
    throw new StorageError(`cannot copy blob file ${src} to ${p}: ${(e as Error).message}`);
  }
  return p;
}

/**
 * Python's is_blob_record: the record mentions `ZODB.blob` and its class pickle is exactly the
 * global `ZODB.blob.Blob` (not a (class, args) tuple). Never throws.
 */
export function isBlobRecord(data: Buffer | null | undefined): boolean {
  if (!data || data.length === 0 || data.indexOf('ZODB.blob', 0, 'latin1') < 0) return false;
  try {
    const v = new Unpickler(data, {
      maxProtocol: 3,
      persistentLoad: () => {
        throw new Error('persistent reference in a class pickle');
      },
    }).load();
    return v instanceof PyGlobal && v.module === 'ZODB.blob' && v.name === 'Blob';
  } catch {
    return false;
  }
}

export interface BlobDirectoryOptions {
  /** 'automatic' (default), 'bushy', 'lawn' or a registered layout name */
  layout?: string;
  /** create the directory, `tmp/` and the marker (default true); false only reads */
  create?: boolean;
}

/**
 * A blob directory (Python's FilesystemHelper): paths of oid directories and blob files, the
 * layout marker, the temporary directory. `dir` is made absolute.
 */
export class BlobDirectory {
  readonly dir: string;
  readonly tempDir: string;
  readonly layout: BlobLayout;

  constructor(dir: string, options: BlobDirectoryOptions = {}) {
    if (!dir) throw new StorageError('blob directory: empty path');
    this.dir = resolve(dir);
    this.tempDir = join(this.dir, BLOB_TMP_DIR);
    let name = options.layout ?? 'automatic';
    if (name === 'automatic') name = autoLayoutSelect(this.dir);
    this.layout = getBlobLayout(name, this.dir);
    if (options.create ?? true) this.create();
  }

  get layoutName(): string {
    return this.layout.name;
  }

  /**
   * Create the directory (with parents, as Python's os.makedirs), `tmp/`, and the `.layout`
   * marker; an existing marker must name this layout (StorageError otherwise).
   */
  create(): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      mkdirSync(this.tempDir, { recursive: true });
    } catch (e) {
      throw new StorageError(`cannot create blob directory ${this.dir}: ${(e as Error).message}`);
    }
    const marker = join(this.dir, LAYOUT_MARKER);
    if (!existsSync(marker)) {
      writeFileSync(marker, this.layout.name, 'latin1');
    } else {
      const have = readFileSync(marker, 'latin1').trim();
      if (have !== this.layout.name) {
        throw new StorageError(`Directory layout \`${this.layout.name}\` selected for blob directory ${this.dir}, but marker found for layout \`${have}\``);
      }
    }
  }

  /** absolute directory of an oid's blob files; made (with parents) when `create` */
  oidPath(oid: Oid, create = false): string {
    const p = join(this.dir, this.layout.oidToPath(oid));
    if (create) {
      try {
        mkdirSync(p, { recursive: true });
      } catch (e) {
        throw new StorageError(`cannot create blob directory ${p} for oid ${oidRepr(oid)}: ${(e as Error).message}`);
      }
    }
    return p;
  }

  /**
   * Make the oid directory (with parents); returns it and every directory that got a new entry
   * (the parents of the directories created), which a durable commit fsyncs with the files.
   */
  createOidPath(oid: Oid): { path: string; changedDirs: string[] } {
    const p = join(this.dir, this.layout.oidToPath(oid));
    let first: string | undefined;
    try {
      first = mkdirSync(p, { recursive: true });
    } catch (e) {
      throw new StorageError(`cannot create blob directory ${p} for oid ${oidRepr(oid)}: ${(e as Error).message}`);
    }
    const changedDirs: string[] = [];
    if (first !== undefined) {
      // p, its parent, ... up to `first` were created: each one's parent got an entry
      let d = p;
      for (let i = 0; i < 64 && d.length >= first.length; i++) {
        changedDirs.push(dirname(d));
        d = dirname(d);
      }
    }
    return { path: p, changedDirs };
  }

  /** absolute path of the committed file of revision (oid, tid) */
  blobFilename(oid: Oid, tid: Tid): string {
    return join(this.dir, this.layout.oidToPath(oid), tidRepr(tid) + BLOB_SUFFIX);
  }

  /** the oid of an absolute oid directory of this blob directory, or null */
  oidForPath(path: string): Oid | null {
    const abs = resolve(path);
    if (!abs.startsWith(this.dir + sep)) return null;
    return this.layout.pathToOid(abs.slice(this.dir.length + 1));
  }

  /** (oid, tid) of a committed blob file path, or null if it is not one */
  splitBlobFilename(path: string): { oid: Oid; tid: Tid } | null {
    if (!path.endsWith(BLOB_SUFFIX)) return null;
    const oid = this.oidForPath(dirname(path));
    const base = path.slice(dirname(path).length + 1, -BLOB_SUFFIX.length);
    const tid = reprToId(base);
    if (oid === null || tid === null) return null;
    return { oid, tid };
  }

  /** every oid directory (sorted walk, bounded by the tree), as [oid, absolute path] */
  *listOids(): Generator<[Oid, string]> {
    const stack: string[] = [this.dir];
    let guard = 0;
    while (stack.length) {
      if (++guard > 1e9) throw new StorageError(`blob directory walk of ${this.dir} does not end`);
      const d = stack.pop()!;
      const oid = d === this.dir ? null : this.oidForPath(d);
      if (oid !== null) yield [oid, d];
      let names: string[];
      try {
        names = readdirSync(d).sort();
      } catch {
        continue;
      }
      const subdirs: string[] = [];
      for (const n of names) {
        const p = join(d, n);
        try {
          if (statSync(p).isDirectory()) subdirs.push(p);
        } catch {
          // vanished meanwhile
        }
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }

  /** tids of the committed blob files of an oid, ascending */
  tidsOf(oid: Oid): Tid[] {
    const d = this.oidPath(oid);
    if (!existsSync(d)) return [];
    const out: Tid[] = [];
    for (const n of readdirSync(d)) {
      if (!n.endsWith(BLOB_SUFFIX)) continue;
      const t = reprToId(n.slice(0, -BLOB_SUFFIX.length));
      if (t !== null) out.push(t);
    }
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
