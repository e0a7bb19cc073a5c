/**
 * The in-memory index oid → position of the current record (spec §5), as a compact
 * open-addressing hash table over typed arrays: 16 bytes per slot (two u32 halves of the oid and
 * a float64 position), load factor ≤ 0.5, so ~32–64 bytes per object and no per-entry objects.
 *
 * Position 0 means "absent" (valid record positions are ≥ 4); setting 0 removes an entry.
 */
const TWO32 = 0x100000000;
const SAFE_LIMIT = 2n ** 53n;

export class FsIndex {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private pos: Float64Array;
  /** slots in use (including entries whose position was set back to 0) */
  private used = 0;
  private live = 0;
  private mask: number;
  private maxHi = 0;
  private maxLo = 0;
  private hasMax = false;

  constructor(expected = 1024) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.pos = new Float64Array(cap);
    this.mask = cap - 1;
  }

  /** bytes held by the table's typed arrays */
  get byteLength(): number {
    return this.hi.byteLength + this.lo.byteLength + this.pos.byteLength;
  }

  /** number of oids with a position */
  get size(): number {
    return this.live;
  }

  private static slot(hi: number, lo: number, mask: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
    h ^= h >>> 15;
    return h & mask;
  }

  /** Position for (hi, lo) halves of an oid, 0 if absent. */
  getParts(hi: number, lo: number): number {
    const mask = this.mask;
    let i = FsIndex.slot(hi, lo, mask);
    const P = this.pos;
    // bounded: the table is never full (load ≤ 0.5); an empty slot (0) ends the probe
    for (;;) {
      const p = P[i]!;
      if (p === 0) return 0;
      if (this.lo[i] === lo && this.hi[i] === hi) return p;
      i = (i + 1) & mask;
    }
  }

  /** Position of oid's current record, 0 if absent. */
  get(oid: bigint): number {
    if (oid < SAFE_LIMIT) {
      const n = Number(oid);
      const p = this.getParts(Math.floor(n / TWO32), n >>> 0);
      return p > 0 ? p : 0;
    }
    const p = this.getParts(Number(oid >> 32n), Number(oid & 0xffffffffn));
    return p > 0 ? p : 0;
  }

  has(oid: bigint): boolean {
    return this.get(oid) !== 0;
  }

  /** Set (or with pos 0, remove) the position of (hi, lo). */
  setParts(hi: number, lo: number, p: number): void {
    if (!(p >= 0)) throw new RangeError(`bad index position ${p}`);
    const mask = this.mask;
    let i = FsIndex.slot(hi, lo, mask);
    const P = this.pos;
    for (;;) {
      const cur = P[i]!;
      if (cur === 0) {
        // empty slot: insert
        if (p === 0) return;
        this.hi[i] = hi;
        this.lo[i] = lo;
        P[i] = p;
        this.used++;
        this.live++;
        if (!this.hasMax || hi > this.maxHi || (hi === this.maxHi && lo > this.maxLo)) {
          this.maxHi = hi;
          this.maxLo = lo;
          this.hasMax = true;
        }
        if (this.used * 2 > mask + 1) this.grow();
        return;
      }
      if (this.lo[i] === lo && this.hi[i] === hi) {
        if (cur < 0 && p > 0) this.live++;
        if (cur > 0 && p === 0) this.live--;
        P[i] = p === 0 ? -1 : p; // -1 keeps the probe chain intact
        return;
      }
      i = (i + 1) & mask;
    }
  }

  set(oid: bigint, p: number): void {
    if (oid < SAFE_LIMIT && oid >= 0n) {
      const n = Number(oid);
      this.setParts(Math.floor(n / TWO32), n >>> 0, p);
    } else {
      if (oid < 0n || oid > 0xffffffffffffffffn) throw new RangeError(`oid out of range: ${oid}`);
      this.setParts(Number(oid >> 32n), Number(oid & 0xffffffffn), p);
    }
  }

  delete(oid: bigint): void {
    this.set(oid, 0);
  }

  /** The largest oid ever set (z64 when empty); entries removed later still count (new_oid floor). */
  maxOid(): bigint {
    if (!this.hasMax) return 0n;
    return (BigInt(this.maxHi) << 32n) | BigInt(this.maxLo);
  }

  /** Largest oid currently present (scans; used after pack). */
  maxLiveOid(): bigint {
    let bh = -1;
    let bl = -1;
    const P = this.pos;
    for (let i = 0; i <= this.mask; i++) {
      if (P[i]! > 0 && (this.hi[i]! > bh || (this.hi[i] === bh && this.lo[i]! > bl))) {
        bh = this.hi[i]!;
        bl = this.lo[i]!;
      }
    }
    return bh < 0 ? 0n : (BigInt(bh) << 32n) | BigInt(bl);
  }

  private grow(): void {
    const { hi, lo, pos } = this;
    const cap = (this.mask + 1) * 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.pos = new Float64Array(cap);
    this.mask = cap - 1;
    this.used = 0;
    this.live = 0;
    for (let i = 0; i < pos.length; i++) {
      const p = pos[i]!;
      if (p > 0) this.insertFresh(hi[i]!, lo[i]!, p);
    }
  }

  private insertFresh(hi: number, lo: number, p: number): void {
    const mask = this.mask;
    let i = FsIndex.slot(hi, lo, mask);
    while (this.pos[i] !== 0) i = (i + 1) & mask;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.pos[i] = p;
    this.used++;
    this.live++;
  }

  /** Call fn(hi, lo, pos) for every live entry, in table order (unsorted). */
  forEachParts(fn: (hi: number, lo: number, pos: number) => void): void {
    const P = this.pos;
    for (let i = 0; i <= this.mask; i++) if (P[i]! > 0) fn(this.hi[i]!, this.lo[i]!, P[i]!);
  }

  /** All live entries sorted by oid: parallel arrays (hi, lo, pos). */
  sortedParts(): { hi: Uint32Array; lo: Uint32Array; pos: Float64Array } {
    const n = this.live;
    const P = this.pos;
    const H = this.hi;
    const L = this.lo;
    const hi = new Uint32Array(n);
    const lo = new Uint32Array(n);
    const pos = new Float64Array(n);
    // Fast path: every oid < 2^53 is exactly a double; sort the keys natively, then look the
    // positions up again (no comparator calls).
    let small = true;
    for (let i = 0; i <= this.mask; i++) if (P[i]! > 0 && H[i]! >= 0x200000) {
      small = false;
      break;
    }
    if (small) {
      const keys = new Float64Array(n);
      let k = 0;
      for (let i = 0; i <= this.mask; i++) if (P[i]! > 0) keys[k++] = H[i]! * TWO32 + L[i]!;
      keys.sort();
      for (let j = 0; j < n; j++) {
        const key = keys[j]!;
        const h = Math.floor(key / TWO32);
        const l = key - h * TWO32;
        hi[j] = h;
        lo[j] = l;
        pos[j] = this.getParts(h, l);
      }
      return { hi, lo, pos };
    }
    const idx = new Uint32Array(n);
    let k = 0;
    for (let i = 0; i <= this.mask; i++) if (P[i]! > 0) idx[k++] = i;
    idx.sort((a, b) => H[a]! - H[b]! || L[a]! - L[b]!);
    for (let j = 0; j < n; j++) {
      const i = idx[j]!;
      hi[j] = H[i]!;
      lo[j] = L[i]!;
      pos[j] = P[i]!;
    }
    return { hi, lo, pos };
  }

  /** All oids, sorted. */
  sortedOids(): bigint[] {
    const s = this.sortedParts();
    const out: bigint[] = new Array(s.hi.length);
    for (let j = 0; j < s.hi.length; j++) out[j] = (BigInt(s.hi[j]!) << 32n) | BigInt(s.lo[j]!);
    return out;
  }

  /** Iterate (oid, pos) pairs, unsorted. */
  *entries(): Generator<[bigint, number]> {
    const P = this.pos;
    for (let i = 0; i <= this.mask; i++) if (P[i]! > 0) yield [(BigInt(this.hi[i]!) << 32n) | BigInt(this.lo[i]!), P[i]!];
  }

  clone(): FsIndex {
    const c = new FsIndex(0);
    c.hi = this.hi.slice();
    c.lo = this.lo.slice();
    c.pos = this.pos.slice();
    c.mask = this.mask;
    c.used = this.used;
    c.live = this.live;
    c.maxHi = this.maxHi;
    c.maxLo = this.maxLo;
    c.hasMax = this.hasMax;
    return c;
  }
}
