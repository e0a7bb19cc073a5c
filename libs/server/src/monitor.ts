/**
 * The legacy plain-text monitor listener (operations §6.4 [L]): every accepted connection gets the
 * report and is closed; nothing is read from it. Always plaintext.
 */
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import type { StorageServer } from './server.ts';
import type { ListenAddress, Listener } from './net.ts';

export async function serveMonitor(server: StorageServer, address: ListenAddress, logger?: Logger): Promise<Listener> {
  const log = (logger ?? pino({ level: 'silent' })).child({ name: 'ZEO.monitor' });
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.end(server.monitorReport(), 'utf8');
  });
  srv.maxConnections = 1000;
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    const done = () => {
      srv.off('error', reject);
      resolve();
    };
    if ('path' in address) {
      if (existsSync(address.path)) unlinkSync(address.path);
      srv.listen(address.path, done);
    } else srv.listen(address.port, address.host || undefined, done);
  });
  const bound: ListenAddress = 'path' in address ? address : { host: address.host, port: (srv.address() as net.AddressInfo).port };
  log.info({ address: bound }, `listening on ${'path' in bound ? bound.path : `('${bound.host}', ${bound.port})`}`);
  let closing: Promise<void> | null = null;
  return {
    address: bound,
    get connectionCount() {
      return sockets.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        srv.close(() => resolve());
        for (const s of sockets) s.destroy();
      }).then(() => {
        if ('path' in bound && existsSync(bound.path)) unlinkSync(bound.path);
      });
      return closing;
    },
  };
}
