/**
 * ClientZ5Codec: error replies that Python servers pickle with ZODB.POSException._recon
 * (UndoError, MultipleUndoErrors) become the errors of §6.5 (zeo5-protocol C-6, C-16).
 * The payloads are built with our own pickler in the shape Python servers send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyGlobal, PyObject, dumps, tuple } from '@zeo-ts/pickle';
import { MultipleUndoErrors, UndoError, p64 } from '@zeo-ts/storage';
import { ProtocolError, errorFromWire, errorReplyParts } from '@zeo-ts/wire';
import { ClientZ5Codec } from '../src/z5-client.ts';

const RECON = new PyGlobal('ZODB.POSException', '_recon');
const undoErr = (reason: string, oid: Buffer) =>
  new PyObject('reduce', RECON, tuple(new PyGlobal('ZODB.POSException', 'UndoError'), new Map<unknown, unknown>([['_reason', reason], ['_oid', oid], ['args', tuple(reason, oid)]])));

test('a _recon UndoError reply decodes to UndoError with reason and oid (zeo5 C-6)', () => {
  const payload = dumps(tuple(7, true, '.reply', tuple('ZODB.POSException.UndoError', undoErr('Some data were modified by a later transaction', p64(1n)))), { protocol: 3, memo: false });
  const m = new ClientZ5Codec().decode(payload);
  assert.equal(m.msgid, 7);
  const [cls, state] = errorReplyParts(m);
  const err = errorFromWire(cls, state);
  assert.ok(err instanceof UndoError);
  assert.equal(err.reason, 'Some data were modified by a later transaction');
  assert.equal(err.oid, 1n);
});

test('a MultipleUndoErrors reply with (oid, UndoError) pairs decodes to MultipleUndoErrors (zeo5 C-6)', () => {
  const reason = "Can't undo an add transaction followed by conflicting transactions.";
  const state = new Map<unknown, unknown>([['_reason', p64(1n)], ['_oid', undoErr(reason, p64(1n))], ['_errs', [tuple(p64(1n), undoErr(reason, p64(1n)))]]]);
  const payload = dumps(tuple(13, 2, '.reply', tuple('ZODB.POSException.MultipleUndoErrors', state)), { protocol: 3, memo: false });
  const m = new ClientZ5Codec().decode(payload);
  const err = errorFromWire(...errorReplyParts(m));
  assert.ok(err instanceof MultipleUndoErrors);
  assert.equal(err.errors.length, 1);
  assert.equal(err.errors[0]!.reason, reason);
  assert.equal(err.errors[0]!.oid, 1n);
});

test('other forbidden globals still close the connection (ProtocolError)', () => {
  const payload = dumps(tuple(1, false, 'invalidateTransaction', tuple(new PyObject('reduce', new PyGlobal('os', 'system'), tuple('x')))), { protocol: 3, memo: false });
  assert.throws(() => new ClientZ5Codec().decode(payload), ProtocolError);
  const plain = dumps(tuple(3, false, '.reply', tuple(p64(5n))), { protocol: 3, memo: false });
  assert.deepEqual(new ClientZ5Codec().decode(plain).args, [p64(5n)]);
});
