// Rendering records with <logfile> format/style/dateformat (operations spec §3.5.2, §3.5.3; E1).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLogRecord, loadServerConfig, strftime, type LogFileHandler } from '../src/index.ts';

const created = Date.UTC(2024, 4, 4, 11, 49, 27, 123) / 1000;
const local = new Date(created * 1000);
const p2 = (n: number) => String(n).padStart(2, '0');
const asctime = `${local.getFullYear()}-${p2(local.getMonth() + 1)}-${p2(local.getDate())}T${p2(local.getHours())}:${p2(local.getMinutes())}:${p2(local.getSeconds())}`;
const rec = { name: 'ZEO.runzeo', levelno: 20, message: "(23531) opening storage '1' using FileStorage", created };

function handler(body: string): LogFileHandler {
  const c = loadServerConfig({ text: `<zeo>\naddress 1\n</zeo>\n<mappingstorage/>\n<eventlog>\n<logfile>\npath STDOUT\n${body}\n</logfile>\n</eventlog>\n` });
  return c.eventlog!.handlers[0] as LogFileHandler;
}

test('E1: format %(asctime)s %(message)s gives one line without separator or level', () => {
  assert.equal(formatLogRecord(handler('format %(asctime)s %(message)s'), rec), `${asctime} (23531) opening storage '1' using FileStorage`);
});

test('§3.5.2: the default format is the two-line layout with level and logger name', () => {
  assert.equal(formatLogRecord(handler(''), rec), `------\n${asctime} INFO ZEO.runzeo (23531) opening storage '1' using FileStorage`);
  assert.equal(formatLogRecord(handler(''), { ...rec, levelno: 15 }).split('\n')[1]!.split(' ')[1], 'BLATHER');
  assert.equal(formatLogRecord(handler(''), { ...rec, levelno: 35 }).split('\n')[1]!.split(' ')[1], 'Level');
});

test('§3.5.2: printf conversions, escapes, msecs, exception text', () => {
  const h = handler('format [%(levelname)-8s]\\t%(levelno)03d %(msecs)03d %(created).1f %(name)r %%');
  assert.equal(formatLogRecord(h, rec), `[INFO    ]\t020 123 ${created.toFixed(1)} 'ZEO.runzeo' %`);
  const e = formatLogRecord(handler('format %(message)s'), { ...rec, exc_text: 'Traceback:\n  boom' });
  assert.equal(e, `${rec.message}\nTraceback:\n  boom`);
  assert.equal(formatLogRecord(handler('format %(levelname)5.2s|'), rec), '   IN|');
});

test('§3.5.2: format and template styles ($ doubled in the file, §2.6)', () => {
  assert.equal(formatLogRecord(handler('style format\nformat {levelname:<6}|{name!r}|{{x}}'), rec), "INFO  |'ZEO.runzeo'|{x}");
  assert.equal(formatLogRecord(handler('style template\nformat $$levelname $${name}: $$message $$$$'), rec), `INFO ZEO.runzeo: ${rec.message} $`);
  assert.equal(formatLogRecord(handler('style safe-template\narbitrary-fields true\nformat $$levelname $$nosuch'), rec), 'INFO $nosuch');
});

test('strftime directives', () => {
  const d = new Date(Date.UTC(2024, 0, 5, 15, 4, 9));
  assert.equal(strftime('%Y-%m-%d %H:%M:%S %y %j %a %A %b %B %I%p %% %F %T', d, true), '2024-01-05 15:04:09 24 005 Fri Friday Jan January 03PM % 2024-01-05 15:04:09');
});
