/**
 * Damaged copies of the vector Data.fs, one per fstest check (filestorage spec §8.3), with the
 * message Python's fstest prints for each (checked against ZODB 6.3's fstest when written).
 * Offsets refer to the annotated layout of spec §17.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir } from '@zeo-ts/storage/testing';

export interface Corruption {
  /** spec §8.3 check number */
  check: number;
  name: string;
  make(data: Buffer): Buffer;
  /** expected stderr line without the trailing newline; <path> is replaced by the file name */
  message: string;
}

export function dataFs(): Buffer {
  return readFileSync(join(vectorsDir('filestorage'), 'Data.fs'));
}

const u64 = (b: Buffer, pos: number, v: number) => b.writeBigUInt64BE(BigInt(v), pos);

export const corruptions: Corruption[] = [
  { check: 1, name: 'empty file', make: () => Buffer.alloc(0), message: 'empty file' },
  // (FS21, Python 2's magic, has the FS30 layout and is checked like FS30: see fs21.test.ts)
  { check: 2, name: 'FS20 magic', make: (d) => Buffer.concat([Buffer.from('FS20'), d.subarray(4)]), message: 'invalid file header' },
  { check: 3, name: 'a short header at the end', make: (d) => Buffer.concat([d, Buffer.alloc(10, 0x41)]), message: '<path> truncated at 2471' },
  {
    check: 4,
    name: 'time-stamp reduction (T1 gets the tid of T0)',
    make: (d) => {
      const b = Buffer.from(d);
      d.copy(b, 166, 4, 12);
      return b;
    },
    message: '<path> time-stamp reduction at 166: 0x03f58e0001111111 <= 0x03f58e0001111111',
  },
  { check: 5, name: 'last transaction cut', make: (d) => d.subarray(0, 2434), message: '<path> truncated possibly because of damaged records at 2374' },
  {
    check: 6,
    name: 'checkpoint status on the last transaction',
    make: (d) => {
      const b = Buffer.from(d);
      b[2374 + 16] = 0x63;
      return b;
    },
    message: '<path> checkpoint flag was not cleared at 2374',
  },
  {
    check: 7,
    name: "invalid status 'x'",
    make: (d) => {
      const b = Buffer.from(d);
      b[166 + 16] = 0x78;
      return b;
    },
    message: "<path> has invalid status 'b'x'' at 166",
  },
  {
    check: 8,
    name: 'user length beyond the transaction length',
    make: (d) => {
      const b = Buffer.from(d);
      b.writeUInt16BE(200, 4 + 17);
      return b;
    },
    message: '<path> has an invalid transaction header at 4',
  },
  {
    check: 9,
    name: 'a data record header cut by the transaction end',
    make: (d) => {
      const b = Buffer.from(d);
      u64(b, 2413 + 34, 1); // plen 1: the next "record" starts at 2456, 15 bytes before EOF
      return b;
    },
    message: '<path> truncated at 2456',
  },
  {
    check: 10,
    name: 'tloc of the first record wrong',
    make: (d) => {
      const b = Buffer.from(d);
      u64(b, 52 + 24, 5);
      return b;
    },
    message: '<path> data record exceeds transaction record at 52: tloc 5 != tpos 4',
  },
  {
    check: 11,
    name: 'a record longer than its transaction',
    make: (d) => {
      const b = Buffer.from(d);
      u64(b, 2413 + 34, 100);
      return b;
    },
    message: '<path> has data records that extend beyond the transaction record; end at 2555',
  },
  {
    check: 12,
    name: 'redundant length differs',
    make: (d) => {
      const b = Buffer.from(d);
      u64(b, 2463, 90);
      return b;
    },
    message: '<path> has inconsistent transaction length for undone transaction at 2463',
  },
  {
    check: 12,
    name: "redundant length differs on a 'u' transaction (position of the header)",
    make: (d) => {
      const b = Buffer.from(d);
      b[2374 + 16] = 0x75;
      u64(b, 2463, 90);
      return b;
    },
    message: '<path> has inconsistent transaction length for undone transaction at 2374',
  },
  {
    check: 5,
    name: 'a garbage transaction length beyond 2^53',
    make: (d) => {
      const b = Buffer.from(d);
      b.writeBigUInt64BE(0xfedcba9876543210n, 166 + 8);
      return b;
    },
    message: '<path> truncated possibly because of damaged records at 166',
  },
  {
    check: 10,
    name: 'garbage tloc printed as the full unsigned value',
    make: (d) => {
      const b = Buffer.from(d);
      b.writeBigUInt64BE(0xfedcba9876543210n, 52 + 24);
      return b;
    },
    message: '<path> data record exceeds transaction record at 52: tloc 18364758544493064720 != tpos 4',
  },
];

/**
 * Data.fs with its last record (T6, oid 3, at 2413) rewritten in the pre-3.9 "version" layout
 * (spec §3.4): vlen 3, then non-version position, previous version record, the name "abc",
 * and the 8-byte backpointer. fstest skips such records and accepts the file.
 */
export function legacyVersionFile(): Buffer {
  const d = dataFs();
  const head = Buffer.from(d.subarray(0, 2413));
  const rec = Buffer.alloc(42 + 16 + 3 + 8);
  d.copy(rec, 0, 2413, 2413 + 42);
  rec.writeUInt16BE(3, 32);
  rec.write('abc', 58, 'latin1');
  const tlen = 89 + 19;
  head.writeBigUInt64BE(BigInt(tlen), 2374 + 8);
  const tail = Buffer.alloc(8);
  tail.writeBigUInt64BE(BigInt(tlen), 0);
  return Buffer.concat([head, rec, tail]);
}
