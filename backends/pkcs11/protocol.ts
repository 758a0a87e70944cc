/**
 * Messages between Pkcs11Backend (main thread) and the PKCS#11 worker thread (worker.ts).
 *
 * One worker per PKCS#11 module and process owns the Cryptoki instance; each open backend is a
 * "connection" in it (its own session, login and label cache). Requests carry an id; the worker
 * answers each with exactly one Reply. Only the `open` request carries the PIN; it stays in the
 * worker. Values travel as Uint8Array whose ArrayBuffer is transferred (the sender made a copy).
 */
import type { BackendErrorCode } from '../types.js';

export interface OpenRequest {
  op: 'open';
  slotIndex?: number;
  tokenLabel?: string;
  pin: string;
  maxValueBytes: number;
}

export type FaultKind = 'logout' | 'close-all-sessions';

export type RequestBody =
  | OpenRequest
  | { op: 'get'; label: string }
  | { op: 'put'; label: string; value: Uint8Array }
  | { op: 'delete'; label: string }
  | { op: 'list' }
  | { op: 'check' }
  | { op: 'stats' }
  | { op: 'close' }
  /** Fault injection for tests and operator drills: lose the session/login behind the backend's back. */
  | { op: 'fault'; kind: FaultKind }
  /** Fault injection: keep the worker busy (synchronously) for `ms`, as a stuck HSM would. */
  | { op: 'stall'; ms: number };

export type Request = RequestBody & { id: number; conn: number };

export interface ListedObject {
  label: string;
  size: number;
  updatedAtMs: number;
}

/** Counters kept per connection. Never contains the PIN or values. */
export interface Pkcs11Stats {
  /** Label of the token in use. */
  tokenLabel: string;
  /** Resources currently cached (label → handle). */
  objects: number;
  /** C_FindObjectsInit calls (full scans and by-label finds). */
  findCalls: number;
  /** C_GetAttributeValue calls that read CKA_VALUE. */
  valueReads: number;
  /** C_CreateObject calls that succeeded. */
  creates: number;
  /** C_DestroyObject calls that succeeded. */
  destroys: number;
  /** Session re-opens + logins after a session or login loss. */
  reconnects: number;
  /** Full scans of the token (one at open, one after each reconnect). */
  scans: number;
  /** Objects with a duplicated label that open/rescan destroyed (crash leftovers). */
  duplicatesDestroyed: number;
  /** Old objects whose destruction after an overwrite failed (retried at the next scan). */
  staleObjects: number;
  /** Secret-key objects on the token whose label is not a resource path (ignored). */
  ignoredObjects: number;
}

export interface OpenResult {
  tokenLabel: string;
  serialNumber: string;
  readOnly: boolean;
}

export type ReplyPayload =
  | { kind: 'none' }
  | { kind: 'value'; value: Uint8Array }
  | { kind: 'list'; entries: ListedObject[] }
  | { kind: 'stats'; stats: Pkcs11Stats }
  | { kind: 'open'; result: OpenResult };

export type Reply =
  | { type: 'reply'; id: number; ok: true; payload: ReplyPayload }
  | { type: 'reply'; id: number; ok: false; code: BackendErrorCode; message: string };

/** Log lines from the worker, forwarded to the backend's logger. Already free of PIN and values. */
export interface LogMessage {
  type: 'log';
  conn: number;
  level: 'info' | 'warn';
  message: string;
}

export type WorkerMessage = Reply | LogMessage;

export interface WorkerData {
  module: string;
}
