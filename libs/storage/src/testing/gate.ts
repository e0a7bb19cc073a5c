/**
 * A stand-in for an asynchronous durability call (e.g. FileStorage's `fdatasync` option) that the
 * test completes by hand: each call of `hook` waits until the test releases or fails it, in call
 * order. Lets tests order "finished" and "durable" exactly, without sleeps.
 */
export class SyncGate {
  calls = 0;
  private waiting: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private arrived: Array<() => void> = [];
  readonly hook = (..._args: unknown[]): Promise<void> => {
    this.calls++;
    const p = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    for (const a of this.arrived.splice(0)) a();
    return p;
  };

  /** resolves once a call is waiting */
  whenWaiting(): Promise<void> {
    if (this.waiting.length > 0) return Promise.resolve();
    return new Promise((r) => this.arrived.push(r));
  }

  /** complete the oldest waiting call (waiting for one to arrive if needed) */
  async release(): Promise<void> {
    await this.whenWaiting();
    this.waiting.shift()!.resolve();
  }

  /** fail the oldest waiting call with an EIO error */
  async fail(message = 'injected EIO'): Promise<void> {
    await this.whenWaiting();
    this.waiting.shift()!.reject(Object.assign(new Error(message), { code: 'EIO' }));
  }
}

/** A promise's outcome, observable without awaiting it (`settled` resolves once it is known). */
export interface Tracked<T> {
  done: boolean;
  value?: T;
  error?: unknown;
  settled: Promise<void>;
}

/** Follow `p` so a test can check, at any point, whether it has settled and how. */
export function track<T>(p: Promise<T>): Tracked<T> {
  const r: Tracked<T> = { done: false, settled: Promise.resolve() };
  r.settled = p.then(
    (v) => {
      r.done = true;
      r.value = v;
    },
    (e) => {
      r.done = true;
      r.error = e;
    },
  );
  return r;
}
