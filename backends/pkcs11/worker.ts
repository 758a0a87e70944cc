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
 */
import { parentPort, workerData } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { BackendError } from '../types.js';
import { segmentProblem } from '../resource-path.js';
import { encodeObjectId, decodeObjectId } from './object-id.js';
import { CKR, ckrOf, isCkr, isSessionLoss, toBackendError } from './errors.js';
import type { ListedObject, OpenRequest, OpenResult, Pkcs11Stats, Reply, ReplyPayload, Request, WorkerData, WorkerMessage } from './protocol.js';

type Handle = Buffer;

const port = parentPort;
if (port === null) throw new Error('backends/pkcs11/worker.js must run as a worker thread');
const modulePath = (workerData as WorkerData).module;

/** CK_STATE values (not exported by pkcs11js). */
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;
/** Batch size for C_FindObjects. */
const FIND_BATCH = 512;

function readUlong(b: Buffer | undefined): number | null {
  if (b === undefined) return null;
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  return null;
}

function isResourceLabel(label: string): boolean {
  const parts = label.split('/');
  return parts.length === 3 && parts.every((p) => segmentProblem(p) === null);
}

/** A synthetic CKR error, so that "logged out" found by C_GetSessionInfo follows the session-loss path. */
function notLoggedIn(): Error {
  return new Error(`CKR_USER_NOT_LOGGED_IN:${CKR.USER_NOT_LOGGED_IN}`);
}

// ---------------------------------------------------------------------------------------------------
// The Cryptoki instance.

let lib: pkcs11js.PKCS11 | null = null;

function library(): pkcs11js.PKCS11 {
  if (lib !== null) return lib;
  const p = new pkcs11js.PKCS11();
  try {
    p.load(modulePath);
  } catch (e) {
    const msg = e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
    throw new BackendError('UNAVAILABLE', `cannot load PKCS#11 module "${modulePath}": ${msg}`);
  }
  try {
    p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (!isCkr(e, CKR.CRYPTOKI_ALREADY_INITIALIZED)) {
      try {
        p.close();
      } catch {
        // the library is being abandoned anyway
      }
      const name = ckrOf(e)?.name ?? (e instanceof Error ? e.message : String(e));
      throw new BackendError(
        'UNAVAILABLE',
        `cannot initialise PKCS#11 module "${modulePath}" (${name})` +
          (name === 'CKR_GENERAL_ERROR' ? '; for SoftHSM check SOFTHSM2_CONF and that its tokendir exists and is readable' : ''),
      );
    }
  }
  lib = p;
  return p;
}

function finalizeLibrary(): void {
  if (lib === null) return;
  const p = lib;
  lib = null;
  try {
    p.C_Finalize();
  } catch {
    // already finalized or never fully initialized
  }
  try {
    p.close();
  } catch {
    // unloading is best effort
  }
}

// ---------------------------------------------------------------------------------------------------
// Connections.

interface Entry {
  handle: Handle;
  /** Further objects with the same label that this backend did not write (kept, replaced by put/delete). */
  others: Handle[];
  size: number;
  generation: bigint;
  updatedAtMs: number;
}

interface Candidate {
  handle: Handle;
  id: Buffer;
  ours: boolean;
  size: number;
  generation: bigint;
  updatedAtMs: number;
}

interface TokenChoice {
  slot: Handle;
  label: string;
  serial: string;
  flags: number;
}

function tokenInfo(p: pkcs11js.PKCS11, slot: Handle): TokenChoice | null {
  try {
    const info = p.C_GetTokenInfo(slot);
    return { slot, label: info.label.trim(), serial: info.serialNumber.trim(), flags: info.flags };
  } catch {
    return null; // removed between C_GetSlotList and now
  }
}

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

class Conn {
  readonly cache = new Map<string, Entry>();
  /** Old objects whose destruction failed after an overwrite; destroyed later, or resolved by the next scan. */
  private stale: Array<{ label: string; handle: Handle }> = [];
  session: Handle | null = null;
  token: TokenChoice | null = null;
  readOnly = false;
  closed = false;
  private readonly openedAtMs = Date.now();
  readonly stats = {
    findCalls: 0,
    valueReads: 0,
    creates: 0,
    destroys: 0,
    reconnects: 0,
    scans: 0,
    duplicatesDestroyed: 0,
    ignoredObjects: 0,
  };

  constructor(
    readonly id: number,
    readonly pin: string,
    private readonly request: OpenRequest,
  ) {}

  get tokenName(): string {
    return this.token?.label ?? this.request.tokenLabel ?? (this.request.slotIndex === undefined ? '(first token)' : `(slot index ${this.request.slotIndex})`);
  }

  log(level: 'info' | 'warn', message: string): void {
    post({ type: 'log', conn: this.id, level, message: scrub(message) });
  }

  private p(): pkcs11js.PKCS11 {
    return library();
  }

  private sess(): Handle {
    if (this.session === null) throw notLoggedIn();
    return this.session;
  }

  // ---- token selection, session, login

  private selectToken(): TokenChoice {
    const p = this.p();
    const slots = p.C_GetSlotList(true);
    const tokens = slots.map((s) => tokenInfo(p, s));
    const present = tokens.filter((t): t is TokenChoice => t !== null);
    const initialized = present.filter((t) => (t.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0);
    const names = initialized.map((t) => JSON.stringify(t.label)).join(', ') || 'none';
    if (this.token !== null) {
      // Reconnecting: the same token, wherever its slot is now.
      const known = this.token;
      const same = initialized.find((t) => t.serial === known.serial && t.label === known.label);
      if (same === undefined) {
        throw new BackendError('UNAVAILABLE', `token "${known.label}" (serial ${known.serial}) not present any more in module "${modulePath}"; initialised tokens: ${names}`);
      }
      return same;
    }
    const { tokenLabel, slotIndex } = this.request;
    if (tokenLabel !== undefined) {
      const matches = initialized.filter((t) => t.label === tokenLabel);
      if (matches.length === 0) {
        throw new BackendError('UNAVAILABLE', `no initialised token labelled "${tokenLabel}" in PKCS#11 module "${modulePath}"; initialised tokens: ${names}`);
      }
      if (matches.length > 1) {
        this.log('warn', `${matches.length} tokens are labelled "${tokenLabel}"; using the one with serial ${matches[0]!.serial}`);
      }
      return matches[0]!;
    }
    if (slotIndex !== undefined) {
      const chosen = tokens[slotIndex];
      if (slotIndex >= tokens.length) {
        throw new BackendError('UNAVAILABLE', `slot_index ${slotIndex} is out of range: PKCS#11 module "${modulePath}" has ${tokens.length} slot(s) with a token present`);
      }
      if (chosen === null || chosen === undefined) {
        throw new BackendError('UNAVAILABLE', `token not present in the slot at slot_index ${slotIndex} (module "${modulePath}")`);
      }
      if ((chosen.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) {
        throw new BackendError('UNAVAILABLE', `the token at slot_index ${slotIndex} is not initialised; initialised tokens: ${names}`);
      }
      return chosen;
    }
    const first = initialized[0];
    if (first === undefined) {
      throw new BackendError('UNAVAILABLE', `no initialised token in PKCS#11 module "${modulePath}" (${present.length} slot(s) with an uninitialised token)`);
    }
    return first;
  }

  private login(session: Handle): void {
    try {
      this.p().C_Login(session, pkcs11js.CKU_USER, this.pin);
    } catch (e) {
      if (isCkr(e, CKR.USER_ALREADY_LOGGED_IN)) return;
      throw toBackendError(e, { op: 'login', token: this.tokenName });
    }
  }

  /** Selects the token, opens a session, logs in and scans. Used at open and after a session loss. */
  connect(): void {
    const p = this.p();
    const token = this.selectToken();
    this.token = token;
    this.readOnly = (token.flags & pkcs11js.CKF_WRITE_PROTECTED) !== 0;
    const flags = pkcs11js.CKF_SERIAL_SESSION | (this.readOnly ? 0 : pkcs11js.CKF_RW_SESSION);
    let session: Handle;
    try {
      session = p.C_OpenSession(token.slot, flags);
    } catch (e) {
      throw toBackendError(e, { op: 'open session', token: token.label });
    }
    try {
      this.login(session);
      this.session = session;
      this.scan();
    } catch (e) {
      this.session = null;
      try {
        p.C_CloseSession(session);
      } catch {
        // the session is being abandoned
      }
      throw e;
    }
  }

  private reconnect(cause: unknown): void {
    this.stats.reconnects++;
    const old = this.session;
    this.session = null;
    if (old !== null) {
      try {
        this.p().C_CloseSession(old);
      } catch {
        // already gone: that is why we are here
      }
    }
    if (isCkr(cause, CKR.CRYPTOKI_NOT_INITIALIZED) && lib !== null) {
      try {
        lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      } catch (e) {
        if (!isCkr(e, CKR.CRYPTOKI_ALREADY_INITIALIZED)) throw toBackendError(e, { op: 'reinitialise', token: this.tokenName });
      }
    }
    this.connect();
    this.log('info', `re-opened the session with token "${this.tokenName}" and logged in again after ${ckrOf(cause)?.name ?? 'a session loss'}`);
  }

  /** Runs `fn` with a live session; on a session/login loss re-connects once and retries. */
  run<T>(fn: () => T): T {
    if (this.closed) throw new BackendError('UNAVAILABLE', 'PKCS#11 backend is closed');
    if (this.session === null) this.reconnect(notLoggedIn());
    try {
      return fn();
    } catch (e) {
      if (!isSessionLoss(e)) throw e;
      this.reconnect(e);
      return fn();
    }
  }

  private assertLoggedIn(): void {
    const state = this.p().C_GetSessionInfo(this.sess()).state;
    if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) throw notLoggedIn();
  }

  // ---- objects

  private findAll(template: pkcs11js.Template): Handle[] {
    const p = this.p();
    const s = this.sess();
    this.stats.findCalls++;
    p.C_FindObjectsInit(s, template);
    const out: Handle[] = [];
    try {
      for (;;) {
        const batch = p.C_FindObjects(s, FIND_BATCH);
        if (batch.length === 0) break;
        out.push(...batch);
      }
    } finally {
      p.C_FindObjectsFinal(s);
    }
    return out;
  }

  /** Label, id and size of an object; null if it vanished or is not a resource. */
  private describe(handle: Handle): { label: string; candidate: Candidate } | null {
    const p = this.p();
    const s = this.sess();
    const get = (type: number): Buffer | undefined => {
      try {
        return p.C_GetAttributeValue(s, handle, [{ type }])[0]?.value;
      } catch (e) {
        if (isCkr(e, CKR.OBJECT_HANDLE_INVALID) || isSessionLoss(e)) throw e;
        return undefined; // attribute absent or unreadable
      }
    };
    let label: Buffer | undefined;
    let id: Buffer | undefined;
    let len: Buffer | undefined;
    try {
      const r = p.C_GetAttributeValue(s, handle, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_ID }, { type: pkcs11js.CKA_VALUE_LEN }]);
      [label, id, len] = [r[0]?.value, r[1]?.value, r[2]?.value];
    } catch (e) {
      if (isCkr(e, CKR.OBJECT_HANDLE_INVALID)) return null;
      if (isSessionLoss(e)) throw e;
      // Some attribute is missing on an object provisioned by another tool: read them one by one.
      label = get(pkcs11js.CKA_LABEL);
      id = get(pkcs11js.CKA_ID);
      len = get(pkcs11js.CKA_VALUE_LEN);
    }
    const labelText = label?.toString('utf8') ?? '';
    if (!isResourceLabel(labelText)) return null;
    let size = readUlong(len);
    if (size === null) {
      const v = get(pkcs11js.CKA_VALUE);
      size = v?.length ?? 0;
    }
    const meta = decodeObjectId(id);
    return {
      label: labelText,
      candidate: {
        handle,
        id: id ?? Buffer.alloc(0),
        ours: meta !== null,
        size,
        generation: meta?.generation ?? 0n,
        updatedAtMs: meta?.updatedAtMs ?? this.openedAtMs,
      },
    };
  }

  private destroy(handle: Handle): void {
    this.p().C_DestroyObject(this.sess(), handle);
    this.stats.destroys++;
  }

  /**
   * Picks the object served for `label` among those carrying it. Objects written by this backend
   * win over foreign ones; among ours the highest CKA_ID wins (generation, then time, then nonce):
   * after a crash between "create new" and "destroy old", the new value wins and the old objects
   * are destroyed. Foreign duplicates (provisioned by other tools) are never destroyed here.
   */
  private resolve(label: string, candidates: Candidate[]): Entry | null {
    if (candidates.length === 0) return null;
    const sorted = [...candidates].sort((a, b) => {
      if (a.ours !== b.ours) return a.ours ? -1 : 1;
      return a.ours ? Buffer.compare(b.id, a.id) : 0; // foreign: keep the token's order (Trustee reads objects[0])
    });
    const winner = sorted[0]!;
    const losers = sorted.slice(1);
    const others: Handle[] = [];
    if (winner.ours && losers.length > 0 && !this.readOnly) {
      for (const l of losers) {
        try {
          this.destroy(l.handle);
          this.stats.duplicatesDestroyed++;
        } catch (e) {
          if (isSessionLoss(e)) throw e;
          if (!isCkr(e, CKR.OBJECT_HANDLE_INVALID)) others.push(l.handle);
        }
      }
      this.log('warn', `resolved ${losers.length + 1} objects labelled ${label} on token "${this.tokenName}" (left by an interrupted overwrite): kept generation ${winner.generation}, destroyed ${losers.length - others.length}`);
    } else if (losers.length > 0) {
      others.push(...losers.map((l) => l.handle));
      this.log('warn', `${losers.length + 1} objects on token "${this.tokenName}" are labelled ${label}; serving the first found. Writing ${label} replaces them all`);
    }
    return { handle: winner.handle, others, size: winner.size, generation: winner.generation, updatedAtMs: winner.updatedAtMs };
  }

  /** One full scan: rebuilds the cache from every secret key on the token. */
  scan(): void {
    this.stats.scans++;
    const handles = this.findAll([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
    const groups = new Map<string, Candidate[]>();
    let ignored = 0;
    for (const h of handles) {
      const d = this.describe(h);
      if (d === null) {
        ignored++;
        continue;
      }
      const g = groups.get(d.label);
      if (g === undefined) groups.set(d.label, [d.candidate]);
      else g.push(d.candidate);
    }
    this.stats.ignoredObjects = ignored;
    this.cache.clear();
    this.stale = [];
    for (const [label, candidates] of groups) {
      const entry = this.resolve(label, candidates);
      if (entry !== null) this.cache.set(label, entry);
    }
  }

  /** Re-finds one label (its cached handle went stale: another process changed the token). */
  private refind(label: string): Entry | null {
    const handles = this.findAll([
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    const candidates: Candidate[] = [];
    for (const h of handles) {
      const d = this.describe(h);
      if (d !== null && d.label === label) candidates.push(d.candidate);
    }
    const entry = this.resolve(label, candidates);
    if (entry === null) this.cache.delete(label);
    else this.cache.set(label, entry);
    return entry;
  }

  /** Turns a stale-handle error into a session loss when the real cause is a lost login. */
  private handleInvalid(e: unknown): boolean {
    if (!isCkr(e, CKR.OBJECT_HANDLE_INVALID)) return false;
    this.assertLoggedIn(); // throws the session-loss error if logged out (private objects vanish then)
    return true;
  }

  private notFound(label: string): BackendError {
    return new BackendError('NOT_FOUND', `resource ${label} not found on token "${this.tokenName}"`);
  }

  private tooLarge(label: string, size: number): BackendError {
    return new BackendError('TOO_LARGE', `resource ${label} is ${size} bytes on token "${this.tokenName}", above the limit of ${this.request.maxValueBytes} bytes`);
  }

  private readValue(label: string, entry: Entry): Buffer {
    if (entry.size > this.request.maxValueBytes) throw this.tooLarge(label, entry.size);
    const r = this.p().C_GetAttributeValue(this.sess(), entry.handle, [{ type: pkcs11js.CKA_VALUE }]);
    this.stats.valueReads++;
    const v = r[0]?.value ?? Buffer.alloc(0);
    if (v.length > this.request.maxValueBytes) throw this.tooLarge(label, v.length);
    return v;
  }

  get(label: string): Buffer {
    const entry = this.cache.get(label);
    if (entry === undefined) throw this.notFound(label);
    try {
      return this.readValue(label, entry);
    } catch (e) {
      if (!this.handleInvalid(e)) throw e;
      const fresh = this.refind(label);
      if (fresh === null) throw this.notFound(label);
      return this.readValue(label, fresh);
    }
  }

  private assertWritable(label: string): void {
    if (this.readOnly) throw new BackendError('READ_ONLY', `token "${this.tokenName}" is write-protected; ${label} was not changed`);
  }

  private retryStale(): void {
    if (this.stale.length === 0) return;
    const left: Array<{ label: string; handle: Handle }> = [];
    for (const s of this.stale) {
      try {
        this.destroy(s.handle);
      } catch (e) {
        if (isSessionLoss(e)) throw e;
        if (!isCkr(e, CKR.OBJECT_HANDLE_INVALID)) left.push(s);
      }
    }
    this.stale = left;
  }

  put(label: string, value: Uint8Array): void {
    this.assertWritable(label);
    if (value.byteLength > this.request.maxValueBytes) {
      throw new BackendError('TOO_LARGE', `value for ${label} is ${value.byteLength} bytes, above the limit of ${this.request.maxValueBytes} bytes; the previous value is unchanged`);
    }
    this.retryStale();
    const old = this.cache.get(label);
    const generation = (old?.generation ?? 0n) + 1n;
    const now = Date.now();
    const id = encodeObjectId(generation, now, randomBytes(4));
    // 1. Create the new object. Until this succeeds nothing else changes: the old value stays.
    const handle = this.p().C_CreateObject(this.sess(), [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: false },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_MODIFIABLE, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) },
    ]);
    this.stats.creates++;
    // 2. Serve it at once.
    this.cache.set(label, { handle, others: [], size: value.byteLength, generation, updatedAtMs: now });
    // 3. Destroy what it replaces. A failure here is not the caller's: the new value is stored and
    //    wins over the old objects at the next scan (higher generation); they are retried meanwhile.
    if (old === undefined) return;
    let sawInvalid = false;
    for (const h of [old.handle, ...old.others]) {
      try {
        this.destroy(h);
      } catch (e) {
        if (isCkr(e, CKR.OBJECT_HANDLE_INVALID)) sawInvalid = true;
        else {
          this.stale.push({ label, handle: h });
          this.log('warn', `could not destroy the previous object of ${label} on token "${this.tokenName}" (${ckrOf(e)?.name ?? 'error'}); the new value is served and the old object will be removed later`);
        }
      }
    }
    if (sawInvalid) {
      // Another process replaced or removed the old object: make sure only ours remains.
      try {
        for (const h of this.findAll([
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_LABEL, value: label },
        ])) {
          if (!h.equals(handle)) this.destroy(h);
        }
      } catch (e) {
        this.log('warn', `could not clean up other objects labelled ${label} on token "${this.tokenName}" (${ckrOf(e)?.name ?? 'error'}); the next scan resolves them`);
      }
    }
  }

  delete(label: string): void {
    this.assertWritable(label);
    const entry = this.cache.get(label);
    if (entry === undefined) throw this.notFound(label);
    this.retryStale();
    let sawInvalid = false;
    // Foreign duplicates first, the served object last: a failure never changes the served value.
    const remaining = [...entry.others];
    while (remaining.length > 0) {
      const h = remaining[0]!;
      try {
        this.destroy(h);
      } catch (e) {
        if (!this.handleInvalid(e)) {
          entry.others = remaining;
          throw e;
        }
        sawInvalid = true;
      }
      remaining.shift();
    }
    entry.others = [];
    try {
      this.destroy(entry.handle);
    } catch (e) {
      if (!this.handleInvalid(e)) throw e;
      sawInvalid = true;
    }
    this.cache.delete(label);
    if (sawInvalid) {
      // Another process changed this label: remove whatever now carries it.
      for (const h of this.findAll([
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_LABEL, value: label },
      ])) {
        this.destroy(h);
      }
    }
  }

  list(): ListedObject[] {
    return [...this.cache.entries()]
      .map(([label, e]) => ({ label, size: e.size, updatedAtMs: e.updatedAtMs }))
      .sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  }

  check(): void {
    const info = this.p().C_GetTokenInfo(this.token!.slot);
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) {
      throw new BackendError('UNAVAILABLE', `token "${this.tokenName}" is no longer initialised`);
    }
    this.assertLoggedIn();
  }

  snapshot(): Pkcs11Stats {
    return {
      tokenLabel: this.tokenName,
      objects: this.cache.size,
      ...this.stats,
      staleObjects: this.stale.length,
    };
  }

  fault(kind: 'logout' | 'close-all-sessions'): void {
    const p = this.p();
    if (kind === 'logout') p.C_Logout(this.sess());
    else p.C_CloseAllSessions(this.token!.slot);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const p = lib;
    const session = this.session;
    this.session = null;
    if (p === null || session === null) return;
    const sharesLogin = [...conns.values()].some((c) => c !== this && !c.closed && c.session !== null && c.token?.serial === this.token?.serial);
    if (!sharesLogin) {
      try {
        p.C_Logout(session);
      } catch {
        // not logged in any more
      }
    }
    try {
      p.C_CloseSession(session);
    } catch {
      // already closed
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Dispatch.

function closeConn(id: number): void {
  const c = conns.get(id);
  if (c !== undefined) {
    c.close();
    conns.delete(id);
  }
  if (conns.size === 0) finalizeLibrary();
}

function handle(req: Request): { payload: ReplyPayload; transfer: ArrayBuffer[] } {
  const none = { payload: { kind: 'none' } as ReplyPayload, transfer: [] };
  if (req.op === 'open') {
    const c = new Conn(req.conn, req.pin, req);
    conns.set(req.conn, c);
    try {
      library();
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
