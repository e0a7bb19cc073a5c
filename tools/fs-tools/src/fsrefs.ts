/**
 * fsrefs (filestorage spec §11.4): report current objects that refer to missing objects, objects
 * that fail to load, or objects whose creation was undone.
 */
import { RawFile } from './fsio.ts';
import { classParts, getRefs } from './pickle.ts';
import { LoadKeyError, loadCurrent, scanIndex } from './scan.ts';
import { oidRepr, pyHex, strRepr, tsText } from './pyfmt.ts';
import type { Out } from './output.ts';

export interface FsrefsOptions {
  out: Out;
  verbose: number;
  /** where -v load failures go (Python prints tracebacks on stderr) */
  err?: (s: string) => void;
}

export async function fsrefs(path: string, opts: FsrefsOptions): Promise<void> {
  const f = new RawFile(path);
  try {
    const { index } = scanIndex(f);
    const order = [...index.entries()].sort((a, b) => a[1] - b[1]).map(([oid]) => oid);
    const undone = new Set<bigint>();
    const noload = new Set<bigint>();
    for (const oid of order) {
      try {
        loadCurrent(f, index, oid);
      } catch (e) {
        if (e instanceof LoadKeyError) undone.add(oid);
        else {
          if (opts.verbose && opts.err) opts.err(`${(e as Error).name}: ${(e as Error).message}\n`);
          noload.add(oid);
        }
      }
    }
    for (const oid of order) {
      if (noload.has(oid) || undone.has(oid)) continue;
      const { data, tid } = loadCurrent(f, index, oid);
      const missing: Array<[bigint, string, string]> = [];
      for (const [ref, klass] of getRefs(data)) {
        const info = klass ?? '<unknown>';
        if (!index.has(ref)) missing.push([ref, info, 'missing']);
        if (noload.has(ref)) missing.push([ref, info, 'failed to load']);
        if (undone.has(ref)) missing.push([ref, info, 'object creation was undone']);
      }
      if (missing.length) {
        const { module, name } = classParts(data);
        const o = opts.out;
        o.write(`oid ${pyHex(oid)} ${module}.${name}\n`);
        o.write(`last updated: ${tsText(tid)}, tid=${pyHex(tid)}\n`);
        o.write(`refers to invalid object${missing.length > 1 ? 's' : ''}:\n`);
        for (const [ref, info, reason] of missing) o.write(`\toid ${oidRepr(ref)} ${reason}: ${strRepr(info)}\n`);
        o.write('\n');
        await o.maybeFlush();
      }
    }
  } finally {
    f.close();
  }
}
