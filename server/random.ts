/**
 * Random bytes for the request path (challenge nonces, session ids, JWE content keys and IVs) from a
 * pool refilled 4 KiB at a time by the CSPRNG, as Node's own `randomUUID` does: each
 * `crypto.randomBytes` call costs a job set-up of its own (about 2.5 µs for 16 bytes, several of
 * them per RCAR flow). Every byte is handed out once, as a copy, and wiped from the pool as it
 * leaves; what the pool still holds is only bytes nobody has seen.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
/** Requests larger than this are served by the CSPRNG directly. */
const MAX_POOLED = 256;

const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** `n` fresh random bytes (a new Buffer the caller owns). */
export function randomBytesPooled(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('randomBytesPooled: n must be a non-negative integer');
  const out = Buffer.allocUnsafe(n);
  if (n > MAX_POOLED) return randomFillSync(out);
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  pool.copy(out, 0, offset, offset + n);
  pool.fill(0, offset, offset + n);
  offset += n;
  return out;
}
