/**
 * Session and login management of one connection in the PKCS#11 worker (worker.ts): token
 * selection (by label, slot index or first initialised token, and the same token again after a
 * loss), C_OpenSession and C_Login, the reconnect-once-and-retry rule for session or login loss,
 * liveness checks, fault injection and close. Object operations build on it (worker-objects.ts).
 * Worker thread only.
 */
import pkcs11js from 'pkcs11js';
import { BackendError } from '../types.js';
import { CKR, ckrOf, isCkr, isSessionLoss, toBackendError } from './errors.js';
import type { Cryptoki } from './worker-cryptoki.js';
import type { Handle } from './worker-attributes.js';
import type { FaultKind, OpenRequest } from './protocol.js';

/** CK_STATE values (not exported by pkcs11js). */
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

/** What a connection needs from the worker around it. */
export interface WorkerHost {
  readonly cryptoki: Cryptoki;
  /** Sends a log line of connection `conn` to the main thread, scrubbed of every known PIN. */
  log(conn: number, level: 'info' | 'warn', message: string): void;
  /** Every connection of this worker. */
  connections(): Iterable<SessionConn>;
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

/** A synthetic CKR error, so that "logged out" found by C_GetSessionInfo follows the session-loss path. */
function notLoggedIn(): Error {
  return new Error(`CKR_USER_NOT_LOGGED_IN:${CKR.USER_NOT_LOGGED_IN}`);
}

export abstract class SessionConn {
  session: Handle | null = null;
  token: TokenChoice | null = null;
  readOnly = false;
  closed = false;
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
    protected readonly request: OpenRequest,
    protected readonly host: WorkerHost,
  ) {}

  /** Rebuilds the connection's view of the token's objects; run after every (re)connect. */
  abstract scan(): void;

  get tokenName(): string {
    return this.token?.label ?? this.request.tokenLabel ?? (this.request.slotIndex === undefined ? '(first token)' : `(slot index ${this.request.slotIndex})`);
  }

  log(level: 'info' | 'warn', message: string): void {
    this.host.log(this.id, level, message);
  }

  protected p(): pkcs11js.PKCS11 {
    return this.host.cryptoki.library();
  }

  protected sess(): Handle {
    if (this.session === null) throw notLoggedIn();
    return this.session;
  }

  // ---- token selection, session, login

  private selectToken(): TokenChoice {
    const p = this.p();
    const modulePath = this.host.cryptoki.modulePath;
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
    if (isCkr(cause, CKR.CRYPTOKI_NOT_INITIALIZED)) {
      try {
        this.host.cryptoki.reinitialize();
      } catch (e) {
        throw toBackendError(e, { op: 'reinitialise', token: this.tokenName });
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

  protected assertLoggedIn(): void {
    const state = this.p().C_GetSessionInfo(this.sess()).state;
    if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) throw notLoggedIn();
  }

  check(): void {
    const info = this.p().C_GetTokenInfo(this.token!.slot);
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) {
      throw new BackendError('UNAVAILABLE', `token "${this.tokenName}" is no longer initialised`);
    }
    this.assertLoggedIn();
  }

  fault(kind: FaultKind): void {
    const p = this.p();
    if (kind === 'logout') p.C_Logout(this.sess());
    else p.C_CloseAllSessions(this.token!.slot);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const p = this.host.cryptoki.loaded;
    const session = this.session;
    this.session = null;
    if (p === null || session === null) return;
    const sharesLogin = [...this.host.connections()].some(
      (c) => c !== this && !c.closed && c.session !== null && c.token?.serial === this.token?.serial,
    );
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
