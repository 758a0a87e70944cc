/**
 * Object operations of one connection in the PKCS#11 worker (worker.ts): the label → handle cache
 * built by a full scan, choosing among objects that carry the same label, and get/put/delete/list
 * on resource objects, including handles gone stale because another process changed the token.
 * Session and login handling is in worker-session.ts. Worker thread only.
 */
import pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { BackendError } from '../types.js';
import { encodeObjectId, decodeObjectId } from './object-id.js';
import { CKR, ckrOf, isCkr, isSessionLoss } from './errors.js';
import { readObjectAttributes, readValueAttribute, resourceObjectTemplate, secretKeyTemplate, type Handle } from './worker-attributes.js';
import { SessionConn } from './worker-session.js';
import type { ListedObject, Pkcs11Stats } from './protocol.js';

/** Batch size for C_FindObjects. */
const FIND_BATCH = 512;

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

/** A backend's connection: its session (SessionConn) and the resources on its token. */
export class Conn extends SessionConn {
  readonly cache = new Map<string, Entry>();
  /** Old objects whose destruction failed after an overwrite; destroyed later, or resolved by the next scan. */
  private stale: Array<{ label: string; handle: Handle }> = [];
  private readonly openedAtMs = Date.now();

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
    const attributes = readObjectAttributes(this.p(), this.sess(), handle);
    if (attributes === null) return null;
    const { label, id, size } = attributes;
    const meta = decodeObjectId(id);
    return {
      label,
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
    const handles = this.findAll(secretKeyTemplate());
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
    const handles = this.findAll(secretKeyTemplate(label));
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
    const v = readValueAttribute(this.p(), this.sess(), entry.handle);
    this.stats.valueReads++;
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
    const handle = this.p().C_CreateObject(this.sess(), resourceObjectTemplate(label, id, value));
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
        for (const h of this.findAll(secretKeyTemplate(label))) {
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
      for (const h of this.findAll(secretKeyTemplate(label))) {
        this.destroy(h);
      }
    }
  }

  list(): ListedObject[] {
    return [...this.cache.entries()]
      .map(([label, e]) => ({ label, size: e.size, updatedAtMs: e.updatedAtMs }))
      .sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  }

  snapshot(): Pkcs11Stats {
    return {
      tokenLabel: this.tokenName,
      objects: this.cache.size,
      ...this.stats,
      staleObjects: this.stale.length,
    };
  }
}
