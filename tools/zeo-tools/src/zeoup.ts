/**
 * zeoup: end-to-end liveness check through a real ClientStorage (operations §7.2).
 */
import { hostname } from 'node:os';
import pino from 'pino';
import { z64 } from '@zeo-ts/storage';
import { ClientStorage, type AddressLike } from '@zeo-ts/client';
import { getopt, processIO, type ToolIO } from './common.ts';
import { bumpZeoupCounter } from './monitor-objects.ts';

export const ZEOUP_USAGE = `Make sure a ZEO server is running.

usage: zeoup [options]

The check connects to a ZEO server (waiting up to 30 seconds), loads the root object and
increments the zeoup counter (root['monitor']['zeoup'], a ZODB.tests.MinPO.MinPO). A
ConflictError counts as success: the client was able to start a transaction.

Options:

    -p port -- port to connect to

    -h host -- host to connect to (default is current host)

    -S storage -- storage name (default '1')

    -U path -- Unix-domain socket to connect to

    --nowrite -- Do not update the zeoup counter.

    -1 -- accepted and ignored (ZEO 1 compatibility)

You must specify either -p and -h or -U.
`;

export interface ZeoupOptions {
  /** seconds to wait for the connection (default 30) */
  waitTimeout?: number;
}

export async function zeoupMain(argv: string[], io: ToolIO = processIO, options: ZeoupOptions = {}): Promise<number> {
  let host: string | null = null;
  let port: number | null = null;
  let unix: string | null = null;
  let write = true;
  let storage = '1';
  const usage = () => {
    io.stdout(ZEOUP_USAGE + '\n');
    io.stdout(['zeoup', ...argv].join(' ') + '\n');
    return 1;
  };
  try {
    const { opts } = getopt(argv, 'p:h:U:S:1', ['nowrite']);
    for (const [o, a] of opts) {
      if (o === '-p') {
        if (!/^\s*[+-]?\d+\s*$/.test(a)) throw new Error(`invalid literal for int() with base 10: '${a}'`);
        port = Number(a);
      } else if (o === '-h') host = a;
      else if (o === '-U') unix = a;
      else if (o === '-S') storage = a;
      else if (o === '--nowrite') write = false;
    }
  } catch (e) {
    const err = e as Error;
    io.stdout(`${err.name === 'Error' ? 'ValueError' : err.name}${err.message ? ': ' + err.message : ''}\n`);
    return usage();
  }
  let addr: AddressLike;
  if (unix !== null) addr = unix;
  else {
    if (port === null) return usage();
    addr = { host: host ?? hostname(), port };
  }
  const logger = pino({ level: 'error' }, pino.destination({ dest: 2, sync: true }));
  const t0 = Date.now();
  let cs: ClientStorage | null = null;
  try {
    cs = await ClientStorage.open({ addresses: addr, storage, readOnly: !write, waitTimeout: options.waitTimeout ?? (Number(process.env['ZEO_TS_ZEOUP_WAIT']) || 30), logger });
    if (write) await bumpZeoupCounter(cs);
    else await cs.load(z64);
  } catch (e) {
    const err = e as Error;
    io.stdout(`${err.name}${err.message ? ': ' + err.message : ''}\n`);
    await cs?.close().catch(() => undefined);
    return 1;
  }
  await cs.close();
  io.stdout(`Elapsed time: ${((Date.now() - t0) / 1000).toFixed(2)}\n`);
  return 0;
}
