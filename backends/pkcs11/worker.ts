/**
 * The PKCS#11 worker thread. pkcs11js object calls are synchronous (shared/docs/backends.md §2.4),
 * so every Cryptoki call of the process runs here, never on the main event loop.
 *
 * One worker per module and process owns the Cryptoki instance (C_Initialize once, C_Finalize when
 * the last connection closes). Each Pkcs11Backend is a connection: its own RW session, login and
 * label → handle cache. Messages are handled one at a time and every handler is synchronous, so all
 * calls are serialized: no two finds ever overlap on a session (CKR_OPERATION_ACTIVE).
 *
 * Storage format (see backend.ts for the full description): a resource is a token object
 * CKO_SECRET_KEY / CKK_GENERIC_SECRET, CKA_TOKEN=true, CKA_PRIVATE=true, CKA_SENSITIVE=false,
 * CKA_EXTRACTABLE=true, CKA_LABEL="repo/type/tag", CKA_VALUE = the raw value (may be empty),
 * CKA_ID = object-id.ts ("kbs1" ‖ generation ‖ updatedAt ms ‖ 4 random bytes).
 *
 * The PIN arrives in the `open` request and lives only in its connection; every message leaving
 * this thread is scrubbed of every known PIN.
 *
 * Files: this entry (the message loop and the connection registry), worker-cryptoki.ts (loading and
 * initialising the module), worker-session.ts (token selection, session, login, reconnect),
 * worker-objects.ts (the label cache and object operations), worker-attributes.ts (templates and
 * attribute reading). backend.ts starts this file as `new URL('./worker.js', import.meta.url)`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BackendError } from '../types.js';
import { toBackendError } from './errors.js';
import { Cryptoki } from './worker-cryptoki.js';
import { Conn } from './worker-objects.js';
import type { WorkerHost } from './worker-session.js';
import type { OpenResult, Reply, ReplyPayload, Request, WorkerData, WorkerMessage } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('backends/pkcs11/worker.js must run as a worker thread');
const cryptoki = new Cryptoki((workerData as WorkerData).module);

const conns = new Map<number, Conn>();

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Removes every known PIN (4+ characters; shorter ones would mangle ordinary words) from a message. */
function scrub(message: string, extraPin?: string): string {
  let out = message;
  const pins = [...[...conns.values()].map((c) => c.pin), ...(extraPin === undefined ? [] : [extraPin])];
  for (const pin of pins) {
    if (pin.length >= 4) out = out.split(pin).join('<PIN>');
  }
  return out;
}

const host: WorkerHost = {
  cryptoki,
  log: (conn, level, message) => post({ type: 'log', conn, level, message: scrub(message) }),
  connections: () => conns.values(),
};

// ---------------------------------------------------------------------------------------------------
// Dispatch.

function closeConn(id: number): void {
  const c = conns.get(id);
  if (c !== undefined) {
    c.close();
    conns.delete(id);
  }
  if (conns.size === 0) cryptoki.finalize();
}

function handle(req: Request): { payload: ReplyPayload; transfer: ArrayBuffer[] } {
  const none = { payload: { kind: 'none' } as ReplyPayload, transfer: [] };
  if (req.op === 'open') {
    const c = new Conn(req.conn, req.pin, req, host);
    conns.set(req.conn, c);
    try {
      cryptoki.library();
      c.connect();
    } catch (e) {
      closeConn(req.conn);
      throw e instanceof BackendError ? e : toBackendError(e, { op: 'open', token: c.tokenName });
    }
    const result: OpenResult = { tokenLabel: c.token!.label, serialNumber: c.token!.serial, readOnly: c.readOnly };
    return { payload: { kind: 'open', result }, transfer: [] };
  }
  if (req.op === 'close') {
    closeConn(req.conn);
    return none;
  }
  if (req.op === 'stall') {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, req.ms);
    return none;
  }
  const c = conns.get(req.conn);
  if (c === undefined || c.closed) throw new BackendError('UNAVAILABLE', 'PKCS#11 backend is closed');
  const ctx = { op: req.op, token: c.tokenName, ...('label' in req ? { path: req.label } : {}) };
  try {
    switch (req.op) {
      case 'get': {
        const v = c.run(() => c.get(req.label));
        const copy = new Uint8Array(v.length);
        copy.set(v);
        return { payload: { kind: 'value', value: copy }, transfer: [copy.buffer] };
      }
      case 'put':
        c.run(() => c.put(req.label, req.value));
        return none;
      case 'delete':
        c.run(() => c.delete(req.label));
        return none;
      case 'list':
        return { payload: { kind: 'list', entries: c.run(() => c.list()) }, transfer: [] };
      case 'check':
        c.run(() => c.check());
        return none;
      case 'stats':
        return { payload: { kind: 'stats', stats: c.snapshot() }, transfer: [] };
      case 'fault':
        c.fault(req.kind);
        return none;
    }
  } catch (e) {
    throw toBackendError(e, ctx);
  }
}

port.on('message', (req: Request) => {
  let reply: Reply;
  let transfer: ArrayBuffer[] = [];
  try {
    const r = handle(req);
    reply = { type: 'reply', id: req.id, ok: true, payload: r.payload };
    transfer = r.transfer;
  } catch (e) {
    const be = e instanceof BackendError ? e : toBackendError(e, { op: req.op, token: conns.get(req.conn)?.tokenName ?? 'unknown' });
    reply = { type: 'reply', id: req.id, ok: false, code: be.code, message: scrub(be.message, req.op === 'open' ? req.pin : undefined) };
  }
  post(reply, transfer);
});
