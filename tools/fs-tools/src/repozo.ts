/**
 * repozo (filestorage spec §12): full and incremental backups of a data file into a
 * repository directory, recovery of the state as of a date, and verification. The repository
 * layout (names, .dat lines, .index files, gzip) is Python repozo's, so either tool can read
 * the other's repository.
 */
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync, appendFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FileStorage, encodeIndexFile } from '@zeo-ts/filestorage';

export class RepozoError extends Error {
  override name = 'RepozoError';
}
export class WouldOverwriteFiles extends RepozoError {
  override name = 'WouldOverwriteFiles';
}
export class NoFiles extends RepozoError {
  override name = 'NoFiles';
}
export class VerificationFail extends RepozoError {
  override name = 'VerificationFail';
}

export type Mode = 'backup' | 'recover' | 'verify';

export interface RepozoOptions {
  mode: Mode;
  repository: string;
  file?: string;
  full?: boolean;
  quick?: boolean;
  gzip?: boolean;
  killold?: boolean;
  date?: string;
  /** recover: output file; absent = write the data to `stdout` */
  output?: string;
  withverify?: boolean;
  /** verbose log lines (Python writes them to stderr) */
  log?: (s: string) => void;
  /** the backup time as [y, m, d, H, M, S] (UTC); default now */
  now?: number[];
  /** recover without -o writes here */
  stdout?: (b: Buffer) => void;
}

const CHUNK = 16 * 1024;
const IS_DATA_FILE = /^\d{4}(?:-\d\d){5}\.(?:delta)?fsz?$/;

function md5hex(b: Buffer | Buffer[]): string {
  const h = createHash('md5');
  for (const x of Array.isArray(b) ? b : [b]) h.update(x);
  return h.digest('hex');
}

function splitext(p: string): [string, string] {
  const base = basename(p);
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return [p, ''];
  const cut = p.length - (base.length - dot);
  return [p.slice(0, cut), p.slice(cut)];
}

function nowParts(o: RepozoOptions): number[] {
  if (o.now) return o.now;
  const d = new Date();
  return [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
}

function genFilename(o: RepozoOptions, ext: string | null, now: number[]): string {
  if (ext === null) ext = (o.full ? '.fs' : '.deltafs') + (o.gzip ? 'z' : '');
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${String(now[0]).padStart(4, '0')}-${p2(now[1]!)}-${p2(now[2]!)}-${p2(now[3]!)}-${p2(now[4]!)}-${p2(now[5]!)}${ext}`;
}

/** Bytes [start, start+n) of a file, read in chunks and handed to `f`; returns the count read. */
function eachChunk(path: string, start: number, n: number | null, f: (b: Buffer) => void): number {
  const fd = openSync(path, 'r');
  try {
    let pos = start;
    let done = 0;
    const buf = Buffer.allocUnsafe(CHUNK);
    while (n === null || done < n) {
      const want = n === null ? CHUNK : Math.min(CHUNK, n - done);
      const got = readSync(fd, buf, 0, want, pos);
      if (got === 0) break;
      f(buf.subarray(0, got));
      pos += got;
      done += got;
    }
    return done;
  } finally {
    closeSync(fd);
  }
}

function fileChecksum(path: string, start: number, n: number | null): string {
  const h = createHash('md5');
  eachChunk(path, start, n, (b) => h.update(b));
  return h.digest('hex');
}

/** Uncompressed content of a repository file (gzip for names ending in "fsz"). */
function repoFileData(path: string): Buffer {
  const raw = readFileSync(path);
  return path.endsWith('fsz') ? gunzipSync(raw) : raw;
}

/** Python's concat(): total size and md5 of the (uncompressed) files, optionally written out. */
function concat(files: string[], out?: (b: Buffer) => void): { size: number; sum: string } {
  const h = createHash('md5');
  let size = 0;
  for (const f of files) {
    if (f.endsWith('fsz')) {
      const b = repoFileData(f);
      h.update(b);
      out?.(b);
      size += b.length;
    } else {
      size += eachChunk(f, 0, null, (b) => {
        h.update(b);
        out?.(b);
      });
    }
  }
  return { size, sum: h.digest('hex') };
}

/** The files forming the state as of the date (or now): back to and including the last full backup. */
export function findFiles(o: RepozoOptions): string[] {
  const when = o.date || genFilename(o, '', nowParts(o));
  o.log?.(`looking for files between last full backup and ${when}...`);
  const all = readdirSync(o.repository).filter((f) => IS_DATA_FILE.test(f)).sort().reverse();
  const needed: string[] = [];
  for (const fname of all) {
    const [root, ext] = splitext(fname);
    if (root <= when) {
      needed.push(fname);
      if (ext === '.fs' || ext === '.fsz') break;
    }
  }
  const res = needed.map((f) => join(o.repository, f)).reverse();
  if (res.length) {
    o.log?.(`files needed to recover state as of ${when}:`);
    for (const f of res) o.log?.(`\t${f}`);
  } else o.log?.('no files found');
  return res;
}

function scanDat(repofiles: string[]): { fn: string; start: number; end: number; sum: string } | null {
  const dat = splitext(repofiles[0]!)[0] + '.dat';
  if (!existsSync(dat)) return null;
  const lines = readFileSync(dat, 'utf8').split('\n').filter((l) => l.length);
  if (!lines.length) return null;
  const [fn, s, e, sum] = lines[lines.length - 1]!.split(/\s+/);
  return { fn: fn!, start: Number(s), end: Number(e), sum: sum! };
}

function deleteOldBackups(o: RepozoOptions): void {
  const all = readdirSync(o.repository).filter((f) => IS_DATA_FILE.test(f)).sort();
  const full = all.filter((f) => ['.fs', '.fsz'].includes(splitext(f)[1]));
  if (!full.length) return;
  const recent = full[full.length - 1]!;
  for (const fname of all) {
    if (fname === recent) continue;
    o.log?.(`removing old backup file ${fname} (and .dat / .index)`);
    const root = splitext(fname)[0];
    for (const x of ['.dat', '.index']) {
      try {
        unlinkSync(join(o.repository, root + x));
      } catch {
        /* absent */
      }
    }
    unlinkSync(join(o.repository, fname));
  }
}

/** Copy [start, start+n) of the source to dst (through tmp.tmp, fsynced, renamed); md5 of the bytes. */
function copyToRepository(o: RepozoOptions, dst: string, start: number, n: number): string {
  const parts: Buffer[] = [];
  const h = createHash('md5');
  const tmp = join(dirname(dst), 'tmp.tmp');
  const fd = openSync(tmp, 'w');
  try {
    const done = eachChunk(o.file!, start, n, (b) => {
      h.update(b);
      if (o.gzip) parts.push(Buffer.from(b));
      else writeSync(fd, b);
    });
    if (done !== n) throw new RepozoError(`${o.file} is shorter than expected (${done} of ${n} bytes from ${start})`);
    if (o.gzip) writeSync(fd, gzipSync(Buffer.concat(parts), { level: 9 }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dst);
  return h.digest('hex');
}

/** Size of the committed data and the index file bytes, from a read-only open of the source. */
async function sourceState(o: RepozoOptions): Promise<{ pos: number; index: Buffer }> {
  const fs = await FileStorage.open(o.file!, { readOnly: true });
  try {
    const pos = fs.getSize();
    return { pos, index: encodeIndexFile(pos, fs.index) };
  } finally {
    await fs.close();
  }
}

async function doFullBackup(o: RepozoOptions): Promise<void> {
  o.full = true;
  const t = nowParts(o);
  const dest = join(o.repository, genFilename(o, null, t));
  if (existsSync(dest)) throw new WouldOverwriteFiles(`Cannot overwrite existing file: ${dest}`);
  const { pos, index } = await sourceState(o);
  o.log?.('writing index');
  writeFileSync(join(o.repository, genFilename(o, '.index', t)), index);
  o.log?.(`writing full backup: ${pos} bytes to ${dest}`);
  const sum = copyToRepository(o, dest, 0, pos);
  const dat = splitext(dest)[0] + '.dat';
  const fd = openSync(dat, 'w');
  try {
    writeSync(fd, `${dest} 0 ${pos} ${sum}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (o.killold) deleteOldBackups(o);
}

async function doIncrementalBackup(o: RepozoOptions, reposz: number, repofiles: string[]): Promise<void> {
  o.full = false;
  const t = nowParts(o);
  const dest = join(o.repository, genFilename(o, null, t));
  if (existsSync(dest)) throw new WouldOverwriteFiles(`Cannot overwrite existing file: ${dest}`);
  const { pos, index } = await sourceState(o);
  o.log?.('writing index');
  writeFileSync(join(o.repository, genFilename(o, '.index', t)), index);
  o.log?.(`writing incremental: ${pos - reposz} bytes to ${dest}`);
  const sum = copyToRepository(o, dest, reposz, pos - reposz);
  const dat = splitext(repofiles[0]!)[0] + '.dat';
  appendFileSync(dat, `${dest} ${reposz} ${pos} ${sum}\n`);
  const fd = openSync(dat, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function doBackup(o: RepozoOptions): Promise<void> {
  const repofiles = findFiles(o);
  if (o.full || !repofiles.length) {
    o.log?.('doing a full backup');
    return doFullBackup(o);
  }
  const srcsz = statSync(o.file!).size;
  if (o.quick) {
    const d = scanDat(repofiles);
    if (!d) {
      o.log?.('missing or empty .dat file (full backup)');
      return doFullBackup(o);
    }
    if (srcsz < d.end) {
      o.log?.('file shrunk, possibly because of a pack (full backup)');
      return doFullBackup(o);
    }
    const srcsum = fileChecksum(o.file!, d.start, d.end - d.start);
    o.log?.(`last incremental file: ${d.fn}`);
    o.log?.(`last incremental checksum: ${d.sum}`);
    o.log?.(`source checksum range: [${d.start}..${d.end}], sum: ${srcsum}`);
    if (d.sum === srcsum) {
      if (srcsz === d.end) {
        o.log?.('No changes, nothing to do');
        return;
      }
      o.log?.(`doing incremental, starting at: ${d.end}`);
      return doIncrementalBackup(o, d.end, repofiles);
    }
  } else {
    const { size: reposz, sum: reposum } = concat(repofiles);
    o.log?.(`repository state: ${reposz} bytes, md5: ${reposum}`);
    const srcsum = fileChecksum(o.file!, 0, srcsz);
    const srcsumBackedup = fileChecksum(o.file!, 0, reposz);
    o.log?.(`current state   : ${srcsz} bytes, md5: ${srcsum}`);
    o.log?.(`backed up state : ${reposz} bytes, md5: ${srcsumBackedup}`);
    if (srcsz === reposz && srcsum === reposum) {
      o.log?.('No changes, nothing to do');
      return;
    }
    if (srcsz < reposz) {
      o.log?.('file shrunk, possibly because of a pack (full backup)');
      return doFullBackup(o);
    }
    if (reposum === srcsumBackedup) {
      o.log?.(`doing incremental, starting at: ${reposz}`);
      return doIncrementalBackup(o, reposz, repofiles);
    }
  }
  o.log?.('file changed, possibly because of a pack (full backup)');
  return doFullBackup(o);
}

export async function doRecover(o: RepozoOptions): Promise<void> {
  const repofiles = findFiles(o);
  if (!repofiles.length) throw new NoFiles(o.date ? `No files in repository before ${o.date}` : 'No files in repository');
  let write: (b: Buffer) => void;
  let fd: number | null = null;
  const part = o.output !== undefined ? o.output + '.part' : null;
  if (o.output === undefined) {
    o.log?.('Recovering file to stdout');
    write = o.stdout ?? ((b) => process.stdout.write(b));
  } else {
    if (existsSync(o.output)) {
      o.log?.(`Deleting old ${o.output}`);
      unlinkSync(o.output);
    }
    o.log?.(`Recovering file to ${o.output}`);
    const f = openSync(part!, 'w');
    fd = f;
    write = (b) => {
      let off = 0;
      while (off < b.length) off += writeSync(f, b, off, b.length - off);
    };
  }
  try {
    if (o.withverify) {
      const dat = splitext(repofiles[0]!)[0] + '.dat';
      const truth = new Map<string, { size: number; sum: string }>();
      for (const line of readFileSync(dat, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const [fn, s, e, sum] = line.split(/\s+/);
        truth.set(join(o.repository, basename(fn!)), { size: Number(e) - Number(s), sum: sum! });
      }
      let total = 0;
      for (const rf of repofiles) {
        const { size, sum } = concat([rf], write);
        const exp = truth.get(rf);
        if (!exp) throw new VerificationFail(`${rf} is not listed in ${dat}`);
        if (size !== exp.size) throw new VerificationFail(`${rf} is ${size} bytes, should be ${exp.size} bytes`);
        if (sum !== exp.sum) throw new VerificationFail(`${rf} has checksum ${sum} instead of ${exp.sum}`);
        total += size;
        o.log?.(`Recovered chunk ${rf} : ${size} bytes, md5: ${sum}`);
      }
      o.log?.(`Recovered a total of ${total} bytes`);
    } else {
      const { size, sum } = concat(repofiles, write);
      o.log?.(`Recovered ${size} bytes, md5: ${sum}`);
    }
    if (o.output !== undefined) {
      const src = splitext(repofiles[repofiles.length - 1]!)[0] + '.index';
      const dst = `${o.output}.index`;
      if (existsSync(src)) {
        o.log?.(`Restoring index file ${src} to ${dst}`);
        copyFileSync(src, dst);
      } else o.log?.(`No index file to restore: ${src}`);
    }
  } finally {
    if (fd !== null) closeSync(fd);
  }
  if (o.output !== undefined) renameSync(part!, o.output);
}

export async function doVerify(o: RepozoOptions): Promise<void> {
  const repofiles = findFiles(o);
  if (!repofiles.length) throw new NoFiles('No files in repository');
  const dat = splitext(repofiles[0]!)[0] + '.dat';
  for (const line of readFileSync(dat, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const [fn, s, e, sum] = line.split(/\s+/);
    const filename = join(o.repository, basename(fn!));
    const expected = Number(e) - Number(s);
    o.log?.(`Verifying ${filename}`);
    let size: number;
    let actual: string | null = null;
    const gz = filename.endsWith('fsz');
    const when = gz ? ' (when uncompressed)' : '';
    try {
      if (gz) {
        const b = repoFileData(filename);
        size = b.length;
        if (!o.quick) actual = md5hex(b);
      } else {
        size = statSync(filename).size;
        if (!o.quick) actual = fileChecksum(filename, 0, size);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === undefined) throw err;
      throw new VerificationFail(`${filename} is missing`);
    }
    if (size !== expected) throw new VerificationFail(`${filename} is ${size} bytes${when}, should be ${expected} bytes`);
    if (!o.quick && actual !== sum) throw new VerificationFail(`${filename} has checksum ${actual}${when} instead of ${sum}`);
  }
}
