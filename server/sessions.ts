/**
 * RCAR sessions: `Authed` after /auth (the challenge), `Attested` after /attest (the token).
 *
 * The store is an interface so that a shared store can replace the in-memory one. The in-memory
 * store expires entries on read and in a periodic purge, and holds at most `maxSessions` live
 * sessions: an /auth flood gets 503 with Retry-After instead of exhausting memory.
 */
import { randomBytesPooled } from './random.js';
import type { Tee } from '../attestation/types.js';
import { KbsError } from './errors.js';

export interface AuthedSession {
  state: 'authed';
  id: string;
  tee: Tee;
  nonce: string;
  expiresAt: number;
}

export interface AttestedSession {
  state: 'attested';
  id: string;
  tee: Tee;
  nonce: string;
  expiresAt: number;
  token: string;
}

export type Session = AuthedSession | AttestedSession;

export interface SessionStore {
  /** Creates an Authed session; throws KbsError SessionCapacityExceeded when full. */
  create(tee: Tee, nonce: string): Promise<AuthedSession>;
  /** The live session with this id, or undefined (unknown or expired). */
  get(id: string): Promise<Session | undefined>;
  /** Marks a session attested (same id and expiry). */
  attest(id: string, token: string): Promise<AttestedSession | undefined>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface MemorySessionStoreOptions {
  ttlMs: number;
  maxSessions: number;
  now?: () => number;
  purgeIntervalMs?: number;
}

const SESSION_ID = /^[0-9a-f]{32}$/;

export function isSessionId(v: string): boolean {
  return SESSION_ID.test(v);
}

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: MemorySessionStoreOptions) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.purge(), options.purgeIntervalMs ?? 60_000);
    this.timer.unref();
  }

  async create(tee: Tee, nonce: string): Promise<AuthedSession> {
    if (this.sessions.size >= this.options.maxSessions) {
      this.purge();
      if (this.sessions.size >= this.options.maxSessions) {
        throw new KbsError('SessionCapacityExceeded', 'Too many live sessions, retry later', {
          headers: { 'Retry-After': String(Math.max(1, Math.ceil(this.options.ttlMs / 1000 / 10))) },
        });
      }
    }
    const session: AuthedSession = {
      state: 'authed',
      id: randomBytesPooled(16).toString('hex'),
      tee,
      nonce,
      expiresAt: this.now() + this.options.ttlMs,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  async get(id: string): Promise<Session | undefined> {
    if (!isSessionId(id)) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  async attest(id: string, token: string): Promise<AttestedSession | undefined> {
    const s = await this.get(id);
    if (!s) return undefined;
    const attested: AttestedSession = { ...s, state: 'attested', token };
    this.sessions.set(id, attested);
    return attested;
  }

  async size(): Promise<number> {
    return this.sessions.size;
  }

  /** Removes expired sessions. */
  purge(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.sessions.clear();
  }
}
