/**
 * PKCS#11 resource backend (`type = "Pkcs11"`): resources live in an HSM token, as in Trustee's
 * Pkcs11 backend, but persistent and replace-on-write.
 *
 * Storage format (one object per resource):
 * - class CKO_SECRET_KEY, key type CKK_GENERIC_SECRET, CKA_TOKEN=true (persistent; Trustee omits it
 *   and gets session objects that vanish), CKA_PRIVATE=true (invisible without login),
 *   CKA_SENSITIVE=false and CKA_EXTRACTABLE=true (both needed to read CKA_VALUE back).
 * - CKA_LABEL = "repo/type/tag", the same label Trustee uses, so keys provisioned for Trustee by
 *   other tools are served (any secret key whose label is a valid resource path).
 * - CKA_VALUE = the value, raw. No prefix or envelope: SoftHSM 2.6 accepts an empty CKA_VALUE for a
 *   generic secret (checked), so empty values need no special encoding. Size is CKA_VALUE_LEN.
 * - CKA_ID = "kbs1" ‖ generation (u64 big endian) ‖ updatedAt (ms since epoch, u64 BE) ‖ 4 random
 *   bytes. PKCS#11 keeps no modification time, so `list()` reports this timestamp; objects written by
 *   other tools (no "kbs1" id) report the time the backend was opened.
 *
 * Overwrite: CKA_VALUE is read-only after creation, so a put creates the new object (same label,
 * generation + 1) and only then destroys the old one. A failed create changes nothing. A crash
 * between the two leaves both objects; the scan at the next open keeps the highest CKA_ID (i.e. the
 * newest generation) and destroys the others. Objects not written by this backend never outrank
 * ours, and are only destroyed when a put or delete of their label replaces them.
 *
 * Cache: one full scan (C_FindObjectsInit on CKO_SECRET_KEY) at open builds label → handle, size,
 * generation; get/list/put/delete then never scan (finds on SoftHSM are O(objects on the token)).
 * A stale handle (CKR_OBJECT_HANDLE_INVALID: another process changed the token) triggers one
 * by-label find. The cache is authoritative for absence: a resource added by another process is
 * visible after the next open (or session loss, which rescans).
 *
 * Threads: every Cryptoki call runs in one worker thread per module (worker.ts), which owns the
 * library, sessions and caches; calls are serialized there and the main event loop never blocks.
 * Each call has a deadline (callTimeoutMs): past it the caller gets UNAVAILABLE, never a hung
 * request.
 *
 * Sessions: login once at open; on CKR_USER_NOT_LOGGED_IN, CKR_SESSION_HANDLE_INVALID,
 * CKR_SESSION_CLOSED, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_TOKEN_NOT_PRESENT or CKR_DEVICE_REMOVED the
 * worker re-opens a session, logs in, rescans and retries the call once.
 *
 * PIN: passed once to the worker in the open message and kept only there. It is not stored on this
 * object, not logged, not in stats and scrubbed from every message the worker sends.
 *
 * Token selection: `tokenLabel` (recommended: SoftHSM renumbers slots), else `slotIndex` (index in
 * C_GetSlotList(tokenPresent=true), as Trustee's `slot_index`), else the first slot holding an
 * initialised token (Trustee: "No slot_index is set, the first slot will be used").
 */
import { Worker } from 'node:worker_threads';
import { BackendError, type ResourceInfo, type ResourcePath, type StorageBackend } from '../types.js';
import { assertValidResourcePath, formatResourcePath } from '../resource-path.js';
import type { FaultKind, Pkcs11Stats, Reply, ReplyPayload, RequestBody, WorkerData, WorkerMessage } from './protocol.js';

export type { Pkcs11Stats } from './protocol.js';

/** Largest value stored or served when `maxValueBytes` is not configured (HSM storage is scarce). */
export const PKCS11_DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
/** Deadline of one PKCS#11 call (including its wait in the queue) when `callTimeoutMs` is not configured. */
export const PKCS11_DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** Where the backend reports what operators should know (duplicate labels, re-logins). Messages never contain the PIN or values. */
export interface Pkcs11Logger {
  info(message: string): void;
  warn(message: string): void;
}

export interface Pkcs11Options {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so */
  module: string;
  /** Index among the slots with a token present (Trustee's `slot_index`). Exclusive with tokenLabel. */
  slotIndex?: number;
  /** Label of the token to use (recommended). Exclusive with slotIndex. */
  tokenLabel?: string;
  /** The user PIN, already resolved from pin / pin_file / environment. */
  pin: string;
  /** Largest value accepted by put and served by get (default PKCS11_DEFAULT_MAX_VALUE_BYTES). */
  maxValueBytes?: number;
  /** Deadline of each call in ms (default PKCS11_DEFAULT_CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
  logger?: Pkcs11Logger;
}

// ---------------------------------------------------------------------------------------------------
// The worker host: one worker per module and process, shared by the backends opened on it.

interface Pending {
  resolve: (payload: ReplyPayload) => void;
  reject: (e: BackendError) => void;
  timer: NodeJS.Timeout;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

class WorkerHost {
  private static readonly hosts = new Map<string, WorkerHost>();
  /** Hosts whose worker is finalizing: a new worker for the module waits (Cryptoki is process-wide). */
  private static readonly retiring = new Map<string, Promise<void>>();
  private static nextConn = 1;

  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly loggers = new Map<number, Pkcs11Logger | undefined>();
  private nextId = 1;
  private dead: string | null = null;

  private constructor(private readonly module: string) {
    const data: WorkerData = { module };
    this.worker = new Worker(WORKER_URL, { workerData: data });
    // An idle backend does not keep the process alive; each pending call's timer does.
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', (e: Error) => this.fail(`PKCS#11 worker failed: ${e.message.split('\n')[0] ?? ''}`));
    this.worker.on('exit', (code: number) => this.fail(`PKCS#11 worker exited (code ${code})`));
  }

  /** Reserves a connection id on the module's worker (created on first use). */
  static async acquire(module: string, logger: Pkcs11Logger | undefined): Promise<{ host: WorkerHost; conn: number }> {
    for (;;) {
      const retiring = WorkerHost.retiring.get(module);
      if (retiring === undefined) break;
      await retiring;
    }
    let host = WorkerHost.hosts.get(module);
    if (host === undefined || host.dead !== null) {
      host = new WorkerHost(module);
      WorkerHost.hosts.set(module, host);
    }
    const conn = WorkerHost.nextConn++;
    host.loggers.set(conn, logger);
    return { host, conn };
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'log') {
      const logger = this.loggers.get(m.conn);
      if (logger !== undefined) logger[m.level](`pkcs11: ${m.message}`);
      return;
    }
    this.settle(m);
  }

  private settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (p === undefined) return; // timed out earlier
    this.pending.delete(r.id);
    clearTimeout(p.timer);
    if (r.ok) p.resolve(r.payload);
    else p.reject(new BackendError(r.code, r.message));
  }

  private fail(reason: string): void {
    if (this.dead !== null) return;
    this.dead = reason;
    if (WorkerHost.hosts.get(this.module) === this) WorkerHost.hosts.delete(this.module);
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new BackendError('UNAVAILABLE', reason));
    }
  }

  request(conn: number, body: RequestBody, timeoutMs: number, describe: () => string, transfer: ArrayBuffer[] = []): Promise<ReplyPayload> {
    if (this.dead !== null) return Promise.reject(new BackendError('UNAVAILABLE', this.dead));
    const id = this.nextId++;
    return new Promise<ReplyPayload>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BackendError('UNAVAILABLE', `${describe()} did not complete within ${timeoutMs} ms: the HSM is slow or not answering`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.worker.postMessage({ ...body, id, conn }, transfer);
      } catch (e) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new BackendError('UNAVAILABLE', `cannot reach the PKCS#11 worker: ${e instanceof Error ? e.message : String(e)}`));
      }
    });
  }

  /** Closes a connection; the last one finalizes the library and stops the worker. */
  async release(conn: number, timeoutMs: number): Promise<void> {
    if (!this.loggers.has(conn)) return;
    let closeError: unknown = null;
    try {
      await this.request(conn, { op: 'close' }, timeoutMs, () => 'PKCS#11 close');
    } catch (e) {
      closeError = e;
    }
    this.loggers.delete(conn);
    if (this.loggers.size > 0) {
      if (closeError !== null) throw closeError;
      return;
    }
    if (WorkerHost.hosts.get(this.module) === this) WorkerHost.hosts.delete(this.module);
    this.dead ??= 'PKCS#11 worker stopped';
    // Wait for the thread to end before another worker may initialise the library again. A worker
    // stuck in a native call cannot be interrupted; do not wait for it forever.
    const stopped = this.worker.terminate().then(
      () => undefined,
      () => undefined,
    );
    let timer: NodeJS.Timeout | undefined;
    const done = Promise.race([stopped, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]).finally(() => {
      clearTimeout(timer);
      if (WorkerHost.retiring.get(this.module) === done) WorkerHost.retiring.delete(this.module);
    });
    WorkerHost.retiring.set(this.module, done);
    await done;
    if (closeError !== null) throw closeError;
  }
}

// ---------------------------------------------------------------------------------------------------

function positiveInt(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`Pkcs11: ${name} must be an integer >= ${min}, got ${String(value)}`);
  return v;
}

export class Pkcs11Backend implements StorageBackend {
  readonly kind = 'Pkcs11';
  readonly readOnly: boolean;
  /** Label of the token in use. */
  readonly tokenLabel: string;
  /** Serial number of the token in use. */
  readonly tokenSerial: string;
  readonly module: string;
  readonly maxValueBytes: number;
  readonly callTimeoutMs: number;
  private host: WorkerHost | null;
  private readonly conn: number;
  private closing: Promise<void> | null = null;

  private constructor(
    host: WorkerHost,
    conn: number,
    info: { module: string; tokenLabel: string; tokenSerial: string; readOnly: boolean; maxValueBytes: number; callTimeoutMs: number },
  ) {
    this.host = host;
    this.conn = conn;
    this.module = info.module;
    this.tokenLabel = info.tokenLabel;
    this.tokenSerial = info.tokenSerial;
    this.readOnly = info.readOnly;
    this.maxValueBytes = info.maxValueBytes;
    this.callTimeoutMs = info.callTimeoutMs;
  }

  static async open(options: Pkcs11Options): Promise<Pkcs11Backend> {
    if (typeof options !== 'object' || options === null) throw new TypeError('Pkcs11: options are required');
    const { module, slotIndex, tokenLabel } = options;
    if (typeof module !== 'string' || module.length === 0) throw new TypeError('Pkcs11: module (path of the PKCS#11 library) is required');
    if (slotIndex !== undefined && tokenLabel !== undefined) {
      throw new RangeError('Pkcs11: give slot_index or token_label, not both');
    }
    if (slotIndex !== undefined && (!Number.isSafeInteger(slotIndex) || slotIndex < 0)) {
      throw new RangeError(`Pkcs11: slot_index must be a non-negative integer, got ${String(slotIndex)}`);
    }
    if (tokenLabel !== undefined && (typeof tokenLabel !== 'string' || tokenLabel.length === 0 || Buffer.byteLength(tokenLabel) > 32)) {
      throw new RangeError('Pkcs11: token_label must be a non-empty string of at most 32 bytes');
    }
    // Never echo the PIN, not even in a type error.
    if (typeof options.pin !== 'string' || options.pin.length === 0) throw new TypeError('Pkcs11: a non-empty user PIN is required');
    const maxValueBytes = positiveInt('maxValueBytes', options.maxValueBytes, PKCS11_DEFAULT_MAX_VALUE_BYTES, 0);
    const callTimeoutMs = positiveInt('callTimeoutMs', options.callTimeoutMs, PKCS11_DEFAULT_CALL_TIMEOUT_MS, 1);

    const { host, conn } = await WorkerHost.acquire(module, options.logger);
    const what = tokenLabel !== undefined ? `token "${tokenLabel}"` : slotIndex !== undefined ? `slot_index ${slotIndex}` : 'the first token';
    let payload: ReplyPayload;
    try {
      payload = await host.request(
        conn,
        {
          op: 'open',
          pin: options.pin,
          maxValueBytes,
          ...(slotIndex === undefined ? {} : { slotIndex }),
          ...(tokenLabel === undefined ? {} : { tokenLabel }),
        },
        callTimeoutMs,
        () => `opening PKCS#11 ${what} of module "${module}"`,
      );
    } catch (e) {
      await host.release(conn, callTimeoutMs).catch(() => undefined);
      throw e;
    }
    if (payload.kind !== 'open') {
      await host.release(conn, callTimeoutMs).catch(() => undefined);
      throw new BackendError('UNAVAILABLE', 'PKCS#11 worker answered open unexpectedly');
    }
    const r = payload.result;
    return new Pkcs11Backend(host, conn, {
      module,
      tokenLabel: r.tokenLabel,
      tokenSerial: r.serialNumber,
      readOnly: r.readOnly,
      maxValueBytes,
      callTimeoutMs,
    });
  }

  private call(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<ReplyPayload> {
    const host = this.host;
    if (host === null || this.closing !== null) {
      return Promise.reject(new BackendError('UNAVAILABLE', `PKCS#11 backend (token "${this.tokenLabel}") is closed`));
    }
    const describe = (): string => `PKCS#11 ${body.op}${'label' in body ? ` of ${body.label}` : ''} on token "${this.tokenLabel}"` + (body.op === 'put' || body.op === 'delete' ? ' (it may still complete)' : '');
    return host.request(this.conn, body, this.callTimeoutMs, describe, transfer);
  }

  async get(path: ResourcePath): Promise<Uint8Array> {
    const label = formatResourcePath(assertValidResourcePath(path));
    const r = await this.call({ op: 'get', label });
    if (r.kind !== 'value') throw new BackendError('IO', `PKCS#11 worker answered get of ${label} unexpectedly`);
    return r.value; // a fresh buffer transferred from the worker: the caller owns it
  }

  async put(path: ResourcePath, value: Uint8Array): Promise<void> {
    const label = formatResourcePath(assertValidResourcePath(path));
    if (!(value instanceof Uint8Array)) throw new TypeError('Pkcs11: value must be a Uint8Array');
    if (this.host !== null && this.closing === null) {
      if (this.readOnly) throw new BackendError('READ_ONLY', `token "${this.tokenLabel}" is write-protected; ${label} was not changed`);
      if (value.byteLength > this.maxValueBytes) {
        throw new BackendError('TOO_LARGE', `value for ${label} is ${value.byteLength} bytes, above the limit of ${this.maxValueBytes} bytes; the previous value is unchanged`);
      }
    }
    const copy = new Uint8Array(value); // the caller may reuse its buffer; ours is transferred
    await this.call({ op: 'put', label, value: copy }, [copy.buffer]);
  }

  async delete(path: ResourcePath): Promise<void> {
    const label = formatResourcePath(assertValidResourcePath(path));
    await this.call({ op: 'delete', label });
  }

  async list(): Promise<ResourceInfo[]> {
    const r = await this.call({ op: 'list' });
    if (r.kind !== 'list') throw new BackendError('IO', 'PKCS#11 worker answered list unexpectedly');
    return r.entries.map((e) => ({ path: e.label, size: e.size, updatedAt: new Date(e.updatedAtMs) }));
  }

  /** Pings the token (C_GetTokenInfo) and checks the session is still logged in (re-logging in if not). */
  async check(): Promise<void> {
    await this.call({ op: 'check' });
  }

  /** Counters for /metrics and tests (finds, reads, creates, re-connects…). Never contains the PIN. */
  async stats(): Promise<Pkcs11Stats> {
    const r = await this.call({ op: 'stats' });
    if (r.kind !== 'stats') throw new BackendError('IO', 'PKCS#11 worker answered stats unexpectedly');
    return r.stats;
  }

  /**
   * Fault injection for tests and operator drills: `logout` logs the session out, `close-all-sessions`
   * closes every session of the token's slot (as an HSM restart would). The next call re-connects.
   */
  async simulateSessionLoss(kind: FaultKind): Promise<void> {
    await this.call({ op: 'fault', kind });
  }

  /** Fault injection: blocks the worker for `ms` (a stuck HSM); calls queued meanwhile hit their deadline. */
  async simulateStall(ms: number): Promise<void> {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError('Pkcs11: stall must be a non-negative integer of ms');
    await this.call({ op: 'stall', ms });
  }

  /** Logs out (unless another backend of this process uses the token), closes the session, finalizes with the last backend. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      const host = this.host;
      this.closing = host === null ? Promise.resolve() : host.release(this.conn, this.callTimeoutMs).catch(() => undefined);
      this.host = null;
    }
    return this.closing;
  }
}
