/**
 * The persistent.TimeStamp encoding of a tid (filestorage spec §2.2).
 *
 *   bytes 0..3: A = ((((year-1900)*12 + month-1)*31 + day-1)*24 + hour)*60 + minute
 *   bytes 4..7: B = floor(seconds / (60 / 2^32))
 */
import { type Tid } from './ids.ts';

/** 60 / 2^32: one unit of the low word, in seconds. Exactly representable as a double. */
export const SECONDS_PER_UNIT = 60 / 2 ** 32;

export interface TimeStampParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  /** seconds within the minute, as the double Python computes */
  second: number;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return m === 2 && isLeap(y) ? 29 : DAYS_IN_MONTH[m - 1]!;
}

function highWord(year: number, month: number, day: number, hour: number, minute: number): number {
  return ((((year - 1900) * 12 + (month - 1)) * 31 + (day - 1)) * 24 + hour) * 60 + minute;
}

export class TimeStamp {
  /** The 8-byte tid value. */
  readonly raw: Tid;

  constructor(raw: Tid) {
    if (raw < 0n || raw > 0xffffffffffffffffn) throw new RangeError(`TimeStamp out of range: ${raw}`);
    this.raw = raw;
  }

  /** A TimeStamp from calendar fields (UTC); seconds may have a fraction. */
  static fromParts(year: number, month: number, day: number, hour: number, minute: number, second = 0): TimeStamp {
    if (year < 1900 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59) {
      throw new RangeError(`invalid TimeStamp fields ${year}-${month}-${day} ${hour}:${minute}`);
    }
    if (!(second >= 0 && second < 60)) throw new RangeError(`invalid TimeStamp seconds ${second}`);
    const a = highWord(year, month, day, hour, minute);
    const b = Math.trunc(second / SECONDS_PER_UNIT);
    return new TimeStamp((BigInt(a) << 32n) | BigInt(b >>> 0));
  }

  /** TimeStamp(*gmtime(t)[:5] + (t % 60,)) for t seconds since the epoch. */
  static fromTime(t: number): TimeStamp {
    const d = new Date(Math.floor(t) * 1000);
    let sec = t % 60;
    if (sec < 0) sec += 60;
    return TimeStamp.fromParts(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), sec);
  }

  /** The TimeStamp of the current wall-clock time. */
  static now(): TimeStamp {
    return TimeStamp.fromTime(Date.now() / 1000);
  }

  get high(): number {
    return Number(this.raw >> 32n);
  }

  get low(): number {
    return Number(this.raw & 0xffffffffn);
  }

  parts(): TimeStampParts {
    const a = this.high;
    return {
      minute: a % 60,
      hour: Math.floor(a / 60) % 24,
      day: (Math.floor(a / 1440) % 31) + 1,
      month: (Math.floor(a / 44640) % 12) + 1,
      year: Math.floor(a / 535680) + 1900,
      second: this.low * SECONDS_PER_UNIT,
    };
  }

  /** Seconds since the epoch (TimeStamp.timeTime()). */
  timeTime(): number {
    const p = this.parts();
    const days = Date.UTC(p.year, p.month - 1, p.day) / 86400000;
    return days * 86400 + p.hour * 3600 + p.minute * 60 + p.second;
  }

  /** str(TimeStamp): "%4.4d-%2.2d-%2.2d %2.2d:%2.2d:%09.6f" with C (round-half-even) rounding. */
  toString(): string {
    const p = this.parts();
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    return `${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)} ${pad(p.hour, 2)}:${pad(p.minute, 2)}:${formatSeconds(this.low)}`;
  }

  /** The smallest TimeStamp strictly later than `prev` if this one is not already later. */
  laterThan(prev: TimeStamp | Tid): TimeStamp {
    const p = prev instanceof TimeStamp ? prev.raw : prev;
    if (this.raw > p) return this;
    const low = Number(p & 0xffffffffn);
    if (low !== 0xffffffff) return new TimeStamp((p & 0xffffffff00000000n) | BigInt(low + 1));
    // Carry into the minute with real calendar lengths; seconds become 0.
    const pp = new TimeStamp(p).parts();
    let { year, month, day, hour, minute } = pp;
    minute++;
    if (minute === 60) {
      minute = 0;
      hour++;
      if (hour === 24) {
        hour = 0;
        day++;
        if (day > daysInMonth(year, month)) {
          day = 1;
          month++;
          if (month === 13) {
            month = 1;
            year++;
          }
        }
      }
    }
    return new TimeStamp(BigInt(highWord(year, month, day, hour, minute)) << 32n);
  }
}

/**
 * Format the seconds of low word `b` as C's "%09.6f" would: the exact binary value
 * b * 15 / 2^30, rounded half to even at the sixth decimal.
 */
export function formatSeconds(b: number): string {
  const num = BigInt(b) * 15n * 1000000n; // value * 10^6 = num / 2^30
  const den = 1n << 30n;
  let q = num / den;
  const r = num % den;
  const twice = r * 2n;
  if (twice > den || (twice === den && q % 2n === 1n)) q += 1n;
  const intPart = q / 1000000n;
  const frac = q % 1000000n;
  return `${intPart.toString().padStart(2, '0')}.${frac.toString().padStart(6, '0')}`;
}

/** A new tid for a transaction beginning now, strictly later than `last`. */
export function newTid(last: Tid, now: number = Date.now() / 1000): Tid {
  return TimeStamp.fromTime(now).laterThan(last).raw;
}
