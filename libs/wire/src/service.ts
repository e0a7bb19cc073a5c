/**
 * Our own service-to-service channel (not ZEO; architecture rule 6): protobuf messages in the
 * same 4-byte sized frames, for ZRS replication acknowledgements and lag reports and for
 * monitor feeds. Python ZODB software never sees these. Pure: bytes in, values out.
 *
 * tids are bigints in the API and `fixed64` on the wire; times are milliseconds since the epoch.
 */
import protobuf from 'protobufjs';
import { TimeStamp } from '@zeo-ts/storage';
import { ProtocolError } from './errors.ts';

/** The schema (package zeo_ts.service.v1). Field numbers are stable; only add fields. */
export const SERVICE_PROTO = `
syntax = "proto3";
package zeo_ts.service.v1;

// First message on a service channel, in both directions.
message Hello {
  string service = 1;   // e.g. "zrs-ack", "monitor"
  uint32 version = 2;   // schema version the sender speaks (1)
  string peer = 3;      // sender's name or address, for logs
}

// A secondary tells its primary the last transaction it has durably applied.
message ReplicaAck {
  string storage = 1;
  string replica = 2;
  fixed64 tid = 3;
  uint64 applied_at_ms = 4;
}

// Replication lag of one replica of one storage, as seen by whoever computed it.
message LagReport {
  string storage = 1;
  string replica = 2;
  fixed64 primary_tid = 3;
  fixed64 replica_tid = 4;
  double lag_seconds = 5;  // time of primary_tid minus time of replica_tid, never negative
  uint64 reported_at_ms = 6;
}

message Heartbeat {
  uint64 sent_at_ms = 1;
}

message ServiceMessage {
  oneof body {
    Hello hello = 1;
    ReplicaAck ack = 2;
    LagReport lag = 3;
    Heartbeat heartbeat = 4;
  }
}
`;

export const SERVICE_VERSION = 1;

export interface Hello {
  service: string;
  version: number;
  peer: string;
}
export interface ReplicaAck {
  storage: string;
  replica: string;
  tid: bigint;
  appliedAtMs: number;
}
export interface LagReport {
  storage: string;
  replica: string;
  primaryTid: bigint;
  replicaTid: bigint;
  lagSeconds: number;
  reportedAtMs: number;
}
export interface Heartbeat {
  sentAtMs: number;
}

export type ServiceMessage =
  | { kind: 'hello'; hello: Hello }
  | { kind: 'ack'; ack: ReplicaAck }
  | { kind: 'lag'; lag: LagReport }
  | { kind: 'heartbeat'; heartbeat: Heartbeat };

const root = protobuf.parse(SERVICE_PROTO, { keepCase: false }).root;
const ServiceMessageType = root.lookupType('zeo_ts.service.v1.ServiceMessage');

const U64 = 0xffffffffffffffffn;

function u64String(v: bigint, what: string): string {
  if (typeof v !== 'bigint' || v < 0n || v > U64) throw new RangeError(`${what} must be a bigint in 0..2^64-1, got ${String(v)}`);
  return v.toString();
}

function msField(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${v}`);
  return v;
}

/** Encode one service message (payload only; frame it with encodeFrame). */
export function encodeServiceMessage(m: ServiceMessage): Buffer {
  let obj: Record<string, unknown>;
  switch (m.kind) {
    case 'hello':
      obj = { hello: { service: m.hello.service, version: m.hello.version, peer: m.hello.peer } };
      break;
    case 'ack':
      obj = { ack: { storage: m.ack.storage, replica: m.ack.replica, tid: u64String(m.ack.tid, 'ack.tid'), appliedAtMs: msField(m.ack.appliedAtMs, 'ack.appliedAtMs') } };
      break;
    case 'lag':
      obj = {
        lag: {
          storage: m.lag.storage,
          replica: m.lag.replica,
          primaryTid: u64String(m.lag.primaryTid, 'lag.primaryTid'),
          replicaTid: u64String(m.lag.replicaTid, 'lag.replicaTid'),
          lagSeconds: m.lag.lagSeconds,
          reportedAtMs: msField(m.lag.reportedAtMs, 'lag.reportedAtMs'),
        },
      };
      break;
    case 'heartbeat':
      obj = { heartbeat: { sentAtMs: msField(m.heartbeat.sentAtMs, 'heartbeat.sentAtMs') } };
      break;
    default:
      throw new TypeError(`unknown service message kind ${String((m as { kind: unknown }).kind)}`);
  }
  const msg = ServiceMessageType.fromObject(obj);
  const out = ServiceMessageType.encode(msg).finish();
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Decode one service message; ProtocolError when it is not one. */
export function decodeServiceMessage(payload: Uint8Array): ServiceMessage {
  let o: Record<string, Record<string, unknown> | undefined>;
  try {
    const msg = ServiceMessageType.decode(payload);
    o = ServiceMessageType.toObject(msg, { longs: String, defaults: true, oneofs: true }) as typeof o;
  } catch (e) {
    throw new ProtocolError(`undecodable service message (${payload.length} bytes): ${(e as Error).message}`);
  }
  const body = (o as unknown as { body?: string }).body;
  const big = (v: unknown) => BigInt(String(v ?? '0'));
  const num = (v: unknown) => Number(String(v ?? '0'));
  switch (body) {
    case 'hello': {
      const h = o['hello']!;
      return { kind: 'hello', hello: { service: String(h['service'] ?? ''), version: Number(h['version'] ?? 0), peer: String(h['peer'] ?? '') } };
    }
    case 'ack': {
      const a = o['ack']!;
      return { kind: 'ack', ack: { storage: String(a['storage'] ?? ''), replica: String(a['replica'] ?? ''), tid: big(a['tid']), appliedAtMs: num(a['appliedAtMs']) } };
    }
    case 'lag': {
      const l = o['lag']!;
      return {
        kind: 'lag',
        lag: {
          storage: String(l['storage'] ?? ''),
          replica: String(l['replica'] ?? ''),
          primaryTid: big(l['primaryTid']),
          replicaTid: big(l['replicaTid']),
          lagSeconds: Number(l['lagSeconds'] ?? 0),
          reportedAtMs: num(l['reportedAtMs']),
        },
      };
    }
    case 'heartbeat':
      return { kind: 'heartbeat', heartbeat: { sentAtMs: num(o['heartbeat']!['sentAtMs']) } };
    default:
      throw new ProtocolError(`service message (${payload.length} bytes) has no known body`);
  }
}

/** Lag in seconds between two tids (their TimeStamp times), never negative. */
export function lagSeconds(primaryTid: bigint, replicaTid: bigint): number {
  if (replicaTid >= primaryTid) return 0;
  return Math.max(0, new TimeStamp(primaryTid).timeTime() - new TimeStamp(replicaTid).timeTime());
}
