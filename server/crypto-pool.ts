/**
 * The ECDH key agreements of resource JWEs (a fresh key pair and a scalar multiplication, about
 * 0.15 ms for P-256, the largest single cost of a resource GET) run on worker threads, so the event
 * loop keeps parsing, authorizing and answering requests while another core does the curve
 * arithmetic (`[http_server] crypto_threads`, one by default on a machine with two or more CPUs).
 *
 * The event loop never waits on a worker that cannot answer: when every worker already has
 * `MAX_QUEUED_PER_THREAD` agreements in flight, or none is running, the agreement is computed on the
 * calling thread instead. A worker that dies is replaced on a later request (at most once per
 * `RESPAWN_DELAY_MS`), and the agreements it had in flight are computed on the calling thread, so
 * no request fails because of it. The JWE is the same wherever the agreement ran.
 */
import { Worker } from 'node:worker_threads';
import { ecdhAgreeSync, type EcdhAgree, type EcdhAgreement } from './jwe.js';
import type { Logger } from './log.js';

const MAX_QUEUED_PER_THREAD = 256;
const RESPAWN_DELAY_MS = 1000;
const THREAD_ENTRY = new URL('./crypto-thread.js', import.meta.url);

interface Pending {
  curve: string;
  peer: Buffer;
  resolve: (a: EcdhAgreement | undefined) => void;
}

interface Slot {
  worker: Worker | undefined;
  pending: Map<number, Pending>;
  /** Earliest time a replacement may be started (after a crash). */
  respawnAt: number;
}

interface AgreeAnswer {
  id: number;
  epk?: Uint8Array;
  z?: Uint8Array;
}

function isAnswer(m: unknown): m is AgreeAnswer {
  return typeof m === 'object' && m !== null && typeof (m as { id?: unknown }).id === 'number';
}

export class CryptoPool {
  private readonly slots: Slot[];
  private nextId = 1;
  private closed = false;
  /** Agreements computed on the calling thread because no worker could take them. */
  inlineFallbacks = 0;

  /** `agree` for encryptForTeeKeyWith. */
  readonly agree: EcdhAgree = (curve, peer) => this.run(curve, peer);

  constructor(
    readonly threads: number,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: threads }, () => ({ worker: undefined, pending: new Map(), respawnAt: 0 }));
    for (const slot of this.slots) this.spawn(slot);
  }

  private spawn(slot: Slot): void {
    let worker: Worker;
    try {
      worker = new Worker(THREAD_ENTRY, { name: 'kbs-crypto' });
    } catch (e) {
      // e.g. out of memory for a new isolate: computed on the event loop, tried again later
      slot.respawnAt = Date.now() + RESPAWN_DELAY_MS;
      this.log.error({ reason: e instanceof Error ? e.message : String(e) }, 'crypto worker thread could not start; computing key agreements on the event loop');
      return;
    }
    worker.unref(); // never what keeps the process alive; close() ends it
    slot.worker = worker;
    worker.on('message', (m: unknown) => {
      if (!isAnswer(m)) return;
      const p = slot.pending.get(m.id);
      if (p === undefined) return;
      slot.pending.delete(m.id);
      if (m.epk instanceof Uint8Array && m.z instanceof Uint8Array) {
        p.resolve({ epk: Buffer.from(m.epk.buffer, m.epk.byteOffset, m.epk.byteLength), z: Buffer.from(m.z.buffer, m.z.byteOffset, m.z.byteLength) });
      } else {
        p.resolve(undefined);
      }
    });
    worker.on('error', (e) => this.lost(slot, worker, e));
    worker.on('exit', (code) => this.lost(slot, worker, code));
  }

  /** A worker ended: what it had in flight is computed here, and it is replaced later. */
  private lost(slot: Slot, worker: Worker, why: unknown): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const pending = [...slot.pending.values()];
    slot.pending.clear();
    for (const p of pending) p.resolve(ecdhAgreeSync(p.curve, p.peer));
    if (this.closed) return;
    slot.respawnAt = Date.now() + RESPAWN_DELAY_MS;
    const reason = why instanceof Error ? why.message : `exit code ${String(why)}`;
    this.log.error({ reason, inFlight: pending.length }, 'crypto worker thread stopped; computing key agreements on the event loop until it is replaced');
  }

  private run(curve: string, peer: Buffer): Promise<EcdhAgreement | undefined> {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.worker === undefined && !this.closed && Date.now() >= slot.respawnAt) this.spawn(slot);
      if (slot.worker !== undefined && slot.pending.size < MAX_QUEUED_PER_THREAD && (best === undefined || slot.pending.size < best.pending.size)) {
        best = slot;
      }
    }
    const worker = best?.worker;
    if (best === undefined || worker === undefined) {
      this.inlineFallbacks++;
      return Promise.resolve(ecdhAgreeSync(curve, peer));
    }
    const slot = best;
    const id = this.nextId++;
    return new Promise((resolve) => {
      slot.pending.set(id, { curve, peer, resolve });
      // a copy in a buffer of its own, handed over: `peer` may be a slice of Node's shared 8 KiB
      // pool, and posting a slice copies the whole pool (other requests' bytes) to the thread
      const bytes = new Uint8Array(peer);
      worker.postMessage({ id, curve, peer: bytes }, [bytes.buffer]);
    });
  }

  /** Agreements in flight on the workers. */
  get inFlight(): number {
    return this.slots.reduce((n, s) => n + s.pending.size, 0);
  }

  /** Stops the workers; agreements still in flight are computed on the calling thread. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        if (worker === undefined) return;
        this.lost(slot, worker, 0);
        await worker.terminate();
      }),
    );
  }
}
