/**
 * Replication addresses (zrs spec §3.1): `PORT`, `HOST:PORT`, `[V6]:PORT`, or a Unix socket
 * path (anything containing '/').
 */
export type ZrsAddress = { host: string; port: number } | string;

export function parseAddress(s: string, role: 'bind' | 'connect'): ZrsAddress {
  const t = s.trim();
  if (t.includes('/')) return t;
  if (/^\d+$/.test(t)) return { host: role === 'bind' ? '' : '127.0.0.1', port: Number(t) };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]*):(\d+)$/.exec(t);
  if (!m) throw new Error(`invalid replication address ${JSON.stringify(s)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`invalid port in replication address ${JSON.stringify(s)}`);
  return { host: m[1]!, port };
}

/** Python-ish repr used in log lines: ('host', port) or 'path'. */
export function addressRepr(a: ZrsAddress): string {
  return typeof a === 'string' ? `'${a}'` : `('${a.host}', ${a.port})`;
}

export function addressText(a: ZrsAddress): string {
  return typeof a === 'string' ? a : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export function listenArgs(a: ZrsAddress): { path: string } | { host?: string; port: number } {
  if (typeof a === 'string') return { path: a };
  return a.host === '' ? { port: a.port } : { host: a.host, port: a.port };
}

export function connectArgs(a: ZrsAddress): { path: string } | { host: string; port: number } {
  if (typeof a === 'string') return { path: a };
  return { host: a.host === '' ? '127.0.0.1' : a.host, port: a.port };
}

export function sameAddress(a: ZrsAddress, b: ZrsAddress): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.port === b.port && (a.host === b.host || (['', '127.0.0.1', 'localhost'].includes(a.host) && ['', '127.0.0.1', 'localhost'].includes(b.host)));
}
