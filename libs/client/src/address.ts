/**
 * Server addresses of a ZEO client (operations §4.6): a TCP `(host, port)` pair, a bare port
 * (127.0.0.1), or a Unix socket path.
 */

export type ServerAddress = { host: string; port: number } | { path: string };

/** What the constructor accepts for one address: a port number, a socket path, or an object. */
export type AddressLike = number | string | ServerAddress;

/** Normalise one address (a number is a port on 127.0.0.1, a string a Unix socket path). */
export function normalizeAddress(a: AddressLike): ServerAddress {
  if (typeof a === 'number') {
    if (!Number.isInteger(a) || a < 0 || a > 65535) throw new RangeError(`invalid port number ${a}`);
    return { host: '127.0.0.1', port: a };
  }
  if (typeof a === 'string') {
    if (a === '') throw new RangeError('empty Unix socket path');
    return { path: a };
  }
  if ('path' in a) return { path: a.path };
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new RangeError(`invalid port number ${a.port}`);
  // the reference client connects to 127.0.0.1 when the host part is empty (zeo5-protocol §14.1)
  return { host: a.host === '' ? '127.0.0.1' : a.host, port: a.port };
}

/** Normalise a list (or one) of addresses; at least one is required. */
export function normalizeAddresses(a: AddressLike | AddressLike[]): ServerAddress[] {
  const list = Array.isArray(a) ? a.map(normalizeAddress) : [normalizeAddress(a)];
  if (list.length === 0) throw new RangeError('a ZEO client needs at least one server address');
  return list;
}

function pyStr(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Python repr of one address, as upstream prints it: `('127.0.0.1', 8100)` or `'/path'`. */
export function addressRepr(a: ServerAddress): string {
  return 'path' in a ? pyStr(a.path) : `(${pyStr(a.host)}, ${a.port})`;
}

/** The default client name: the Python repr of the address list (operations §4.3). */
export function addressListRepr(list: ServerAddress[]): string {
  return `[${list.map(addressRepr).join(', ')}]`;
}
