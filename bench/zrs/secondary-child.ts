/**
 * Benchmark helper: a Secondary in its own process. argv: dataPath host port native(auto|never).
 * Sends {tid, at} over IPC for every applied transaction (at = wall-clock ms, high resolution),
 * {ready:true} once connected.
 */
import pino from 'pino';
import { FileStorage } from '@zeo-ts/filestorage';
import { toHex } from '@zeo-ts/storage';
import { Secondary } from '@zeo-ts/zrs';

const [path, host, port, native] = process.argv.slice(2);
const fs = new FileStorage(path!, { logger: pino({ level: 'silent' }) });
const now = () => performance.timeOrigin + performance.now();
const report = process.env.ZRS_BENCH_REPORT !== 'last';
let count = 0;
fs.onCommit((tid) => {
  count++;
  if (report) process.send!({ tid: toHex(tid), at: now() });
});
const sec = new Secondary(fs, { host: host!, port: Number(port) }, { logger: pino({ level: 'silent' }), native: native as 'auto', reconnectDelay: 0.05 });
void (async () => {
  for (let i = 0; i < 1e6 && sec.state !== 'connected'; i++) await sec.changed();
  process.send!({ ready: true });
})();
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'last') process.send!({ last: toHex(fs.lastTransaction()), count, at: now() });
  if (m.cmd === 'exit') void sec.close().then(() => process.exit(0));
});
