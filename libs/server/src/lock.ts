/**
 * The per-storage commit lock (zeo5-protocol §10.3): one holder, a bounded FIFO of waiting voters,
 * the optional transaction-timeout watchdog (§10.11) and the `lock_time` / `waiting` counters.
 */
import type { Logger } from 'pino';
import { StorageTransactionError } from '@zeo-ts/storage';

export interface LockClient {
  /** label for log lines */
  readonly label: string;
  /** called when the holder exceeded the transaction timeout: must close the connection */
  onTransactionTimeout(seconds: number): void;
}

interface Waiter {
  client: LockClient;
  grant: () => void;
  refuse: (err: Error) => void;
}

export class CommitLock {
  private holder: LockClient | null = null;
  private readonly waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** epoch seconds when the current holder got the lock, null when free */
  lockTime: number | null = null;

  constructor(
    readonly storageName: string,
    private readonly log: Logger,
    /** seconds, or null for no timeout */
    readonly transactionTimeout: number | null,
    /** bound of the waiting queue */
    readonly maxWaiting = 1000,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  get locked(): LockClient | null {
    return this.holder;
  }

  isHolder(c: LockClient): boolean {
    return this.holder === c;
  }

  isWaiting(c: LockClient): boolean {
    return this.waiters.some((w) => w.client === c);
  }

  /**
   * Resolve once `c` holds the lock. Waiters are served in arrival order. Rejects if `c` is
   * dequeued (abort/disconnect) before getting the lock.
   */
  acquire(c: LockClient): Promise<void> {
    if (this.holder === c) throw new StorageTransactionError('Already voting (locked)');
    if (this.isWaiting(c)) throw new StorageTransactionError('Already voting (waiting)');
    if (this.holder === null && this.waiters.length === 0) {
      this.take(c);
      return Promise.resolve();
    }
    if (this.waiters.length >= this.maxWaiting) {
      throw new StorageTransactionError(`too many transactions waiting for the commit lock of storage '${this.storageName}' (${this.waiters.length})`);
    }
    return new Promise<void>((grant, refuse) => {
      this.waiters.push({ client: c, grant, refuse });
      this.logWaiting(c, 'queue lock');
    });
  }

  /** Release the lock if `c` holds it, or drop `c` from the queue. Idempotent. */
  release(c: LockClient, dequeueReason?: Error): void {
    if (this.holder === c) {
      this.holder = null;
      this.lockTime = null;
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.logWaiting(c, 'unlock');
      const next = this.waiters.shift();
      if (next) {
        this.take(next.client);
        next.grant();
      }
      return;
    }
    const i = this.waiters.findIndex((w) => w.client === c);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      this.logWaiting(c, 'dequeue lock');
      w!.refuse(dequeueReason ?? new StorageTransactionError('transaction aborted while waiting for the commit lock'));
    }
  }

  private take(c: LockClient): void {
    this.holder = c;
    this.lockTime = Date.now() / 1000;
    this.logWaiting(c, 'lock');
    if (this.transactionTimeout !== null) {
      const seconds = this.transactionTimeout;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.holder === c) c.onTransactionTimeout(seconds);
      }, Math.max(0, seconds * 1000));
    }
  }

  private logWaiting(c: LockClient, what: string): void {
    const n = this.waiters.length;
    if (n <= 3 && !this.log.isLevelEnabled('debug')) return; // twice per commit: no string when unused
    const msg = `(${c.label}) ('${this.storageName}') ${what}: transactions waiting: ${n}`;
    if (n > 9) this.log.fatal(msg);
    else if (n > 3) this.log.warn(msg);
    else this.log.debug(msg);
  }

  /** Refuse every waiter (server shutdown). */
  refuseAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.refuse(err);
  }
}
