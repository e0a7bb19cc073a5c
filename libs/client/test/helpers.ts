/** Helpers for the client tests: log capture, connection events, free ports, certificates. */
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { ClientStorage } from '../src/index.ts';

export interface LogCapture {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** resolves with the first record (past or future) whose msg matches */
  waitFor(rx: RegExp): Promise<Record<string, unknown>>;
}

export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ rx: RegExp; resolve: (r: Record<string, unknown>) => void }> = [];
  const stream = {
    write(s: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(s);
      } catch {
        return;
      }
      if (lines.length < 10000) lines.push(rec);
      for (let i = 0; i < waiters.length; i++) {
        if (waiters[i]!.rx.test(String(rec.msg))) {
          waiters[i]!.resolve(rec);
          waiters.splice(i--, 1);
        }
      }
    },
  };
  return {
    logger: pino({ level: 'debug' }, stream),
    lines,
    waitFor(rx) {
      const f = lines.find((l) => rx.test(String(l.msg)));
      if (f) return Promise.resolve(f);
      return new Promise((resolve) => waiters.push({ rx, resolve }));
    },
  };
}

/** Resolves when the client's connection state becomes `want` (at once if it already is). */
export function connectionState(s: ClientStorage, want: boolean, pred: () => boolean = () => true): Promise<void> {
  return new Promise((resolve) => {
    if (s.isConnected() === want && pred()) return resolve();
    const off = s.onConnectionChange((c) => {
      if (c === want && pred()) {
        off();
        resolve();
      }
    });
  });
}

/** A TCP port that was free a moment ago (listen on 0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a rogue client certificate from another CA. */
export function makeCertificates(dir: string): void {
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(join(dir, 'server.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  for (const ca of ['ca', 'rogueca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  }
  const leaf = (name: string, ca: string, ext: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext], dir);
  };
  leaf('server', 'ca', 'server.ext');
  leaf('client', 'ca', 'client.ext');
  leaf('rogue', 'rogueca', 'client.ext');
}
