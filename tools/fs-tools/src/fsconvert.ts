/**
 * fsconvert-fs21: copy a Python 2 data file (magic FS21) into a new FS30 data file that Python 3
 * ZODB and zeo-ts open read-write (filestorage spec §3, §10.4).
 *
 * The copy replays every transaction with copyTransactionsFrom (tids, statuses, user,
 * description, extension and data records as they are; backpointers stay backpointers), so the
 * new file normally equals the old one byte for byte after the 4-byte magic; the tool compares
 * them at the end and says so. The object pickles are NOT changed: Python 2 `str` values and
 * protocol-1/2 opcodes stay as they are. Turning them into Python 3 values is zodbupdate's job
 * (`zodbupdate --convert-py3 --file OUT`), run after this conversion.
 *
 * The input is only read (opened read-only: no lock, no index written beside it). The output
 * must not exist; it is created exclusively.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { FileStorage, MAGIC_LEN, type FileTransactionRecord } from '@zeo-ts/filestorage';
import { copyTransactionsFrom, type Tid } from '@zeo-ts/storage';
import { ToolError } from './fsio.ts';

export interface ConvertProgress {
  /** input position reached (end of the last transaction read) */
  pos: number;
  /** committed size of the input */
  size: number;
  transactions: number;
}

export interface ConvertOptions {
  /** called each time another `progressBytes` of the input were read (and once at the end) */
  progress?: (p: ConvertProgress) => void;
  /** progress granularity in input bytes (default 64 MiB) */
  progressBytes?: number;
  /** warnings (time stamps out of order, bytes left out); default: ignored */
  warn?: (message: string) => void;
  /** also convert an FS30 input (a plain copy); default: refuse it */
  allowFs30?: boolean;
}

export interface ConvertResult {
  inputFormat: 'FS21' | 'FS30';
  transactions: number;
  records: number;
  /** committed size of the input (a damaged or unfinished tail is not copied) */
  inputSize: number;
  outputSize: number;
  lastTid: Tid;
  /** the output equals the input after the magic (and the input has no uncopied tail) */
  identical: boolean;
  /** first differing position when not identical (-1 when the sizes alone differ) */
  firstDifference: number | null;
}

/** A pino-shaped logger for copyTransactionsFrom that hands warnings and errors to `warn`. */
function warnLogger(warn: (message: string) => void): Logger {
  const text = (a: unknown, b?: unknown) => {
    if (typeof a === 'string') return a;
    const msg = typeof b === 'string' ? b : '';
    const fields = a && typeof a === 'object' ? Object.entries(a as Record<string, unknown>).filter(([k]) => k !== 'err').map(([k, v]) => `${k}=${String(v)}`) : [];
    const err = a && typeof a === 'object' && 'err' in a ? ` (${String((a as { err: unknown }).err)})` : '';
    return [msg, ...fields].join(' ') + err;
  };
  const logger = {
    trace() {},
    debug() {},
    info() {},
    warn: (a: unknown, b?: unknown) => warn(text(a, b)),
    error: (a: unknown, b?: unknown) => warn(text(a, b)),
    fatal: (a: unknown, b?: unknown) => warn(text(a, b)),
    child: () => logger,
  };
  return logger as unknown as Logger;
}

/** Compare `a` from `aStart` with `b` from `bStart` for `len` bytes, in bounded chunks. */
function firstDiff(aPath: string, aStart: number, bPath: string, bStart: number, len: number): number | null {
  const fa = openSync(aPath, 'r');
  const fb = openSync(bPath, 'r');
  try {
    const CH = 1 << 20;
    const ba = Buffer.allocUnsafe(CH);
    const bb = Buffer.allocUnsafe(CH);
    for (let off = 0; off < len; off += CH) {
      const n = Math.min(CH, len - off);
      const na = readSync(fa, ba, 0, n, aStart + off);
      const nb = readSync(fb, bb, 0, n, bStart + off);
      if (na !== n || nb !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) {
        for (let i = 0; i < Math.min(na, nb); i++) if (ba[i] !== bb[i]) return bStart + off + i;
        return bStart + off + Math.min(na, nb);
      }
    }
    return null;
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/**
 * Convert `inPath` (FS21) into the new FS30 file `outPath`. Throws ToolError when the output
 * exists or the input is not an FS21 file, the storage errors of a damaged input otherwise (the
 * partial output is then left for inspection; the input is never touched).
 */
export async function convertFs21(inPath: string, outPath: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const warn = opts.warn ?? (() => {});
  for (const p of [outPath, outPath + '.index']) if (existsSync(p)) throw new ToolError(`${p} exists; refusing to overwrite it`);
  const input = new FileStorage(inPath, { readOnly: true, logger: warnLogger(warn) });
  let output: FileStorage | null = null;
  try {
    const inputFormat = input.fileFormat();
    if (inputFormat !== 'FS21' && !opts.allowFs30) throw new ToolError(`${inPath} is already an FS30 file; nothing to convert`);
    const size = input.getSize();
    const fileSize = statSync(inPath).size;
    if (fileSize > size) warn(`${inPath}: the ${fileSize - size} bytes after position ${size} are not a complete committed transaction and are not copied`);
    // create the output exclusively (no overwrite even if it appeared meanwhile); FileStorage
    // writes the FS30 magic into the empty file
    closeSync(openSync(outPath, 'wx'));
    output = new FileStorage(outPath, { logger: warnLogger(warn) });

    const every = Math.max(1, opts.progressBytes ?? 64 * 1024 * 1024);
    let next = every;
    let transactions = 0;
    const report = (pos: number) => opts.progress?.({ pos, size, transactions });
    // the input as copyTransactionsFrom sees it, with an iterator that reports progress
    const tracked = new Proxy(input, {
      get(target, prop) {
        if (prop === 'iterator') {
          return (start?: Tid, stop?: Tid) => ({
            [Symbol.asyncIterator]: async function* (): AsyncGenerator<FileTransactionRecord> {
              for await (const t of target.iterator(start, stop)) {
                yield t;
                transactions++;
                if (t.pos >= next) {
                  report(t.pos);
                  next = (Math.floor(t.pos / every) + 1) * every;
                }
              }
            },
          });
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const r = await copyTransactionsFrom(tracked, output, { logger: warnLogger(warn) });
    report(size);
    await output.close();
    const outputSize = output.getSize();
    output = null;
    let firstDifference: number | null = null;
    if (outputSize !== size) firstDifference = firstDiff(inPath, MAGIC_LEN, outPath, MAGIC_LEN, Math.min(size, outputSize) - MAGIC_LEN) ?? -1;
    else firstDifference = firstDiff(inPath, MAGIC_LEN, outPath, MAGIC_LEN, size - MAGIC_LEN);
    return {
      inputFormat,
      transactions: r.transactions,
      records: r.records,
      inputSize: size,
      outputSize,
      lastTid: r.lastTid,
      identical: firstDifference === null && fileSize === size,
      firstDifference,
    };
  } finally {
    if (output) await output.close();
    await input.close();
  }
}
