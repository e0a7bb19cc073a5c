/** The running MD5 of a replication connection (zrs spec §6.7). */
import { createHash, type Hash } from 'node:crypto';

export class RunningChecksum {
  private h: Hash;
  constructor(startTid: Buffer) {
    this.h = createHash('md5');
    this.h.update(startTid);
  }
  update(payload: Uint8Array): void {
    if (payload.length) this.h.update(payload);
  }
  /** the digest of everything fed so far (the state goes on) */
  digest(): Buffer {
    return this.h.copy().digest();
  }
}
