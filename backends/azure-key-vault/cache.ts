/**
 * Read cache for Key Vault secrets: entries live `ttlMs` (0 disables caching, not single-flight),
 * and concurrent reads of one key share one request (single-flight). Key Vault throttles per vault
 * (~4000 transactions / 10 s), so a burst of attested clients asking for one secret costs one call.
 *
 * A local write or delete `invalidate`s the key: the entry is dropped and a read already in flight
 * is not stored (its generation is stale), so this process never serves a value older than its own
 * last write. Writes by other processes show up after at most `ttlMs`.
 *
 * Both values and "not found" outcomes are cached (a client probing a missing name does not reach
 * the vault each time); other errors are never cached.
 */
export type CacheOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

interface Entry<T> {
  outcome: CacheOutcome<T>;
  expires: number;
}

interface Flight<T> {
  promise: Promise<T>;
  /** Set by invalidate(): the outcome must not be cached. */
  stale: boolean;
}

export class ReadCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly inflight = new Map<string, Flight<T>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
    /** Which failures may be cached (e.g. NOT_FOUND). */
    private readonly cacheableError: (e: unknown) => boolean = () => false,
  ) {}

  /** The cached outcome, the shared in-flight read, or a new read by `load`. */
  get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.expires > this.now()) return hit.outcome.ok ? Promise.resolve(hit.outcome.value) : Promise.reject(hit.outcome.error);
      this.entries.delete(key);
    }
    const running = this.inflight.get(key);
    if (running !== undefined) return running.promise;

    const flight: Flight<T> = { promise: Promise.resolve() as Promise<never>, stale: false };
    flight.promise = (async () => {
      try {
        const value = await load();
        this.store(key, flight, { ok: true, value });
        return value;
      } catch (error) {
        if (this.cacheableError(error)) this.store(key, flight, { ok: false, error });
        throw error;
      } finally {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, flight);
    return flight.promise;
  }

  private store(key: string, flight: Flight<T>, outcome: CacheOutcome<T>): void {
    if (this.ttlMs <= 0 || flight.stale) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { outcome, expires: this.now() + this.ttlMs });
  }

  /** Forgets `key`: a read started before this call neither answers later reads nor gets stored. */
  invalidate(key: string): void {
    this.entries.delete(key);
    const flight = this.inflight.get(key);
    if (flight !== undefined) {
      flight.stale = true;
      this.inflight.delete(key);
    }
  }

  clear(): void {
    for (const key of [...this.entries.keys(), ...this.inflight.keys()]) this.invalidate(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
