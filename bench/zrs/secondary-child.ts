/**
 * Benchmark helper: a Secondary in its own process. argv: dataPath host port native(auto|never|always|record).
 * Sends {tid, at} over IPC for every applied transaction (at = wall-clock ms, high resolution),
 * {ready:true} once connected. Asked {cmd:'last'}, answers with the last transaction, the last
 * durable one (`durable`: the last tid when `applied` last grew — the Secondary counts a
 * transaction as applied once it is durable) and this process's CPU time.
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
// native: auto | never | always (raw mode when possible) | record (native channel, no raw mode)
const sec = new Secondary(fs, { host: host!, port: Number(port) }, { logger: pino({ level: 'silent' }), native: (native === 'record' ? 'always' : native) as 'auto', raw: native !== 'record', reconnectDelay: 0.05 });
let durable = toHex(fs.lastTransaction());
let seen = 0;
void (async () => {
  for (let i = 0; i < 1e6 && sec.state !== 'connected'; i++) await sec.changed();
  process.send!({ ready: true });
  for (let i = 0; i < 1e12; i++) {
    if (sec.applied !== seen) {
      seen = sec.applied;
      durable = toHex(fs.lastTransaction());
    }
    await sec.changed();
  }
})();
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'last') {
    const cpu = process.cpuUsage();
    process.send!({ last: toHex(fs.lastTransaction()), durable, count, at: now(), cpuSeconds: (cpu.user + cpu.system) / 1e6 });
  }
  if (m.cmd === 'exit') void sec.close().then(() => process.exit(0));
});
