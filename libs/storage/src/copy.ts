/**
 * copyTransactionsFrom: replay every transaction of one storage into another with restore(),
 * keeping tids, statuses, metadata and backpointers (filestorage spec §10.4, ZODB's
 * BaseStorage.copyTransactionsFrom).
 */
import { pino, type Logger } from 'pino';
import { oidRepr, type Tid } from './ids.ts';
import { TimeStamp } from './timestamp.ts';
import { TransactionMetaData, isBlobStorage, type IStorage } from './interface.ts';
import { POSKeyError } from './errors.ts';
import { copyBlobToTemp, isBlobRecord, removeCommitted } from './blob.ts';

export interface CopyOptions {
  /** where progress and time-stamp warnings go (pino JSON) */
  logger?: Logger;
  /** log progress every this many transactions (default 1000) */
  progressEvery?: number;
  /** copy only source transactions with start <= tid <= stop */
  start?: Tid;
  stop?: Tid;
}

export interface CopyResult {
  transactions: number;
  records: number;
  /** blob files copied (destination and source both blob storages) */
  blobs: number;
  /** tid of the last transaction written to dest (z64 when nothing was copied) */
  lastTid: Tid;
}

/**
 * For each source transaction, oldest first: tpc_begin(dest, tid, status), restore every record
 * (data_txn becomes restore's prevTxn), tpc_vote, tpc_finish. A tid not later than the previous
 * one is replaced by the smallest later TimeStamp (logged), as ZODB does. On any error the
 * current destination transaction is aborted and the error is rethrown; transactions already
 * copied stay committed.
 *
 * Blobs (filestorage spec §13): when both storages are blob storages, a blob record whose file
 * the source has (`loadBlob(oid, record.tid)`) is copied into a temporary file of the
 * destination and written with `restoreBlob`; a blob record without a file is restored alone.
 */
export async function copyTransactionsFrom(source: IStorage, dest: IStorage, options: CopyOptions = {}): Promise<CopyResult> {
  const log = options.logger ?? pino({ name: 'copyTransactionsFrom', level: process.env.ZEO_TS_LOG_LEVEL ?? 'warn' });
  const every = Math.max(1, options.progressEvery ?? 1000);
  let prev: TimeStamp | null = null;
  let inOrder = true;
  let transactions = 0;
  let records = 0;
  let blobs = 0;
  let lastTid = 0n;
  const withBlobs = isBlobStorage(dest) && isBlobStorage(source);
  for await (const t of source.iterator(options.start, options.stop)) {
    let tid = t.tid;
    if (prev !== null && tid <= prev.raw) {
      const bumped = new TimeStamp(tid).laterThan(prev);
      if (inOrder) log.warn({ previous: prev.toString(), tid: new TimeStamp(tid).toString() }, 'Time stamps out of order');
      inOrder = false;
      tid = bumped.raw;
    } else if (!inOrder) {
      log.warn({ tid: new TimeStamp(tid).toString() }, 'Time stamps back in order');
      inOrder = true;
    }
    prev = new TimeStamp(tid);
    const meta = new TransactionMetaData(Buffer.from(t.user), Buffer.from(t.description), Buffer.from(t.extension));
    await dest.tpc_begin(meta, tid, t.status);
    try {
      for (const r of t.records) {
        let blobFile: string | null = null;
        if (withBlobs && isBlobRecord(r.data)) {
          try {
            blobFile = await source.loadBlob(r.oid, r.tid);
          } catch (e) {
            if (!(e instanceof POSKeyError)) throw e;
          }
        }
        if (blobFile !== null && isBlobStorage(dest)) {
          const tmp = copyBlobToTemp(blobFile, dest.temporaryDirectory(), 'CTFT');
          try {
            await dest.restoreBlob(r.oid, r.tid, r.data, tmp, r.data_txn, meta); // takes the file
          } catch (e) {
            removeCommitted(tmp);
            throw e;
          }
          blobs++;
        } else {
          await dest.restore(r.oid, r.tid, r.data, r.data_txn, meta);
        }
        records++;
      }
      await dest.tpc_vote(meta);
      await dest.tpc_finish(meta);
    } catch (e) {
      try {
        await dest.tpc_abort(meta);
      } catch (abortErr) {
        log.error({ err: abortErr, tid: oidRepr(tid) }, 'tpc_abort failed after a copy error');
      }
      log.error({ err: e, tid: oidRepr(tid) }, 'copy failed');
      throw e;
    }
    lastTid = tid;
    transactions++;
    if (transactions % every === 0) log.info({ transactions, records, tid: oidRepr(tid) }, 'copy progress');
  }
  log.info({ transactions, records, blobs }, 'copy finished');
  return { transactions, records, blobs, lastTid };
}
