/**
 * Python text formatting helpers (filestorage spec §11 output conventions, §15 quirks) and the
 * Python-style argument parsing. Expected values are CPython 3.11's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesRepr, fixed, fixedLeft, floatRepr, oidRepr, pyHex, reprBytesOrEmptyStr, strRepr, tsText } from '../src/pyfmt.ts';
import { getopt, GetoptError } from '../src/getopt.ts';
import { parsePyInt, shorten } from '../src/fsoids.ts';
import { fsstats } from '../src/fsstats.ts';
import { StringOut } from '../src/output.ts';

test('floatRepr is repr(float) (fsstats means, spec §11.6)', () => {
  const cases: Array<[number, string]> = [
    [344.42857142857144, '344.42857142857144'],
    [3, '3.0'],
    [0.1, '0.1'],
    [1e16, '1e+16'],
    [1234567890123456, '1234567890123456.0'],
    [12345678901234567, '1.2345678901234568e+16'],
    [1e-4, '0.0001'],
    [1e-5, '1e-05'],
    [0.00012345, '0.00012345'],
    [1.025, '1.025'],
    [2.5e-7, '2.5e-07'],
    [1e22, '1e+22'],
    [123456789, '123456789.0'],
    [100 / 3, '33.333333333333336'],
    [-1.5, '-1.5'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
  ];
  for (const [v, s] of cases) assert.equal(floatRepr(v), s, `repr(${v})`);
});

test('bytesRepr / strRepr / reprBytesOrEmptyStr follow Python (spec §11, §15 #17)', () => {
  assert.equal(bytesRepr(Buffer.from('a\'b"c\\\x00\x7f\x80\t\n\r', 'latin1')), "b'a\\'b\"c\\\\\\x00\\x7f\\x80\\t\\n\\r'");
  assert.equal(bytesRepr(Buffer.from("it's")), 'b"it\'s"');
  assert.equal(bytesRepr(Buffer.from('say "hi"')), "b'say \"hi\"'");
  assert.equal(bytesRepr(Buffer.alloc(0)), "b''");
  assert.equal(reprBytesOrEmptyStr(Buffer.alloc(0)), "''");
  assert.equal(reprBytesOrEmptyStr(Buffer.from('gc')), "b'gc'");
  assert.equal(strRepr(' '), "' '");
  assert.equal(strRepr('<unknown>'), "'<unknown>'");
  assert.equal(strRepr('\x00'), "'\\x00'");
});

test('oid_repr, hex(), TimeStamp text with C rounding (spec §2.2, §11)', () => {
  assert.equal(oidRepr(0n), '0x00');
  assert.equal(oidRepr(1n), '0x01');
  assert.equal(oidRepr(0x123456n), '0x123456');
  assert.equal(oidRepr(0x03f58e0600000000n), '0x03f58e0600000000');
  assert.equal(pyHex(0n), '0x0');
  assert.equal(pyHex(0x03f58e0100000000n), '0x3f58e0100000000');
  // B = 3·2^23: seconds 0.3515625 — C prints 00.351562 (ties to even)
  assert.equal(tsText((0x03f58e00n << 32n) | BigInt(3 * 2 ** 23)), '2024-01-01 00:00:00.351562');
  assert.equal(fixedLeft('x'.repeat(60), 50), 'x'.repeat(50));
  assert.equal(fixedLeft('ab', 5), 'ab   ');
});

test('fsoids shorten(): 22 leading + " ... " + 28 trailing bytes (spec §11.5)', () => {
  const s = Buffer.from('0123456789'.repeat(6));
  assert.equal(shorten(s).toString(), '0123456789012345678901 ... 2345678901234567890123456789');
  assert.equal(shorten(Buffer.from('short')).toString(), 'short');
});

test('getopt as Python: flags, values, stop at the first argument', () => {
  assert.deepEqual(getopt(['-vv', '-v', 'Data.fs'], 'v'), { opts: [['-v', ''], ['-v', ''], ['-v', '']], args: ['Data.fs'] });
  assert.deepEqual(getopt(['-n5', 'x'], 'n:'), { opts: [['-n', '5']], args: ['x'] });
  assert.deepEqual(getopt(['-n', '5', 'x', '-n', '3'], 'n:'), { opts: [['-n', '5']], args: ['x', '-n', '3'] });
  assert.deepEqual(getopt(['--', '-v'], 'v'), { opts: [], args: ['-v'] });
  assert.throws(() => getopt(['-x'], 'v'), GetoptError);
  assert.throws(() => getopt(['-n'], 'n:'), GetoptError);
});

test('int(s, 0) for fsoids oids', () => {
  assert.equal(parsePyInt('26'), 26n);
  assert.equal(parsePyInt('0x1a'), 26n);
  assert.equal(parsePyInt(' 0X1A\n'), 26n);
  assert.equal(parsePyInt('0o32'), 26n);
  assert.equal(parsePyInt('0b11010'), 26n);
  assert.equal(parsePyInt('1_000'), 1000n);
  assert.equal(parsePyInt('0'), 0n);
  assert.throws(() => parsePyInt('010'));
  assert.throws(() => parsePyInt('abc'));
  assert.throws(() => parsePyInt(''));
});

test('fsstats with a bin of 40+ entries prints floor(count/dot) stars and dot as a float (spec §11.6, §15 #7)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fsstats-'));
  try {
    const lines: string[] = [];
    for (let t = 0; t < 41; t++) {
      lines.push(`Trans #${String(t).padStart(5, '0')} tid=${(0x03f58e0000000000n + BigInt(t)).toString(16).padStart(16, '0')} size=100 time=x offset=52`);
      lines.push("    status=' ' user=b'' description=b''");
      lines.push(`  data #00000 oid=${BigInt(t % 3).toString(16).padStart(16, '0')} size=10 class=m.C`);
    }
    writeFileSync(join(dir, 'dump.txt'), lines.join('\n') + '\n');
    const out = new StringOut();
    await fsstats(join(dir, 'dump.txt'), out);
    const text = out.text;
    assert.ok(text.startsWith('Summary: 41 txns, 3 objects, 41 revisions\n\n'));
    assert.ok(text.includes('Transaction size (bytes)\nTotal 41 Median 100 Mean 100.0 Mode 100 Max 100\nOne * represents 1.025\n     0     41 100% 100% ' + '*'.repeat(40) + '\n'));
    assert.ok(text.includes('  num median   mean   mode   class                                             \n'));
    assert.ok(text.includes('   41     10   10.0     10   m.C                                               \n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fixed() is "%.Nf" with C rounding of the exact binary value (analyze, spec §11.7)', () => {
  const cases: Array<[number, string, string, string]> = [
    [0.125, '0.12', '0.1', '0'],
    [0.375, '0.38', '0.4', '0'],
    [2.675, '2.67', '2.7', '3'],
    [1.005, '1.00', '1.0', '1'],
    [0.5, '0.50', '0.5', '0'],
    [1.5, '1.50', '1.5', '2'],
    [2.5, '2.50', '2.5', '2'],
    [1234.5678, '1234.57', '1234.6', '1235'],
    [1e-7, '0.00', '0.0', '0'],
    [99.995, '100.00', '100.0', '100'],
  ];
  for (const [x, a, b, c] of cases) assert.deepEqual([fixed(x, 2), fixed(x, 1), fixed(x, 0)], [a, b, c], `%f of ${x}`);
});
