/**
 * Entry point of a crypto worker thread (started by server/crypto-pool.ts): ECDH key agreements
 * for resource JWEs, off the event loop. Messages are `{id, curve, peer}`; answers `{id, epk, z}`,
 * or `{id}` alone when the peer point is not on the curve. Only the two curves the JWE code knows
 * are accepted; anything else is answered as a refusal, never thrown.
 */
import { parentPort } from 'node:worker_threads';
import { ecdhAgreeSync } from './jwe.js';

const CURVES = new Set(['prime256v1', 'secp521r1']);

interface AgreeRequest {
  id: number;
  curve: string;
  peer: Uint8Array;
}

function isRequest(m: unknown): m is AgreeRequest {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return typeof r['id'] === 'number' && typeof r['curve'] === 'string' && r['peer'] instanceof Uint8Array;
}

const port = parentPort;
if (port === null) throw new Error('crypto-thread.js runs as a worker thread');

port.on('message', (m: unknown) => {
  if (!isRequest(m)) return;
  const agreement = CURVES.has(m.curve) ? ecdhAgreeSync(m.curve, m.peer) : undefined;
  if (agreement === undefined) {
    port.postMessage({ id: m.id });
    return;
  }
  // right-sized copies, handed over (never a slice of a shared pool); the originals are wiped
  const epk = new Uint8Array(agreement.epk);
  const z = new Uint8Array(agreement.z);
  agreement.z.fill(0);
  port.postMessage({ id: m.id, epk, z }, [epk.buffer, z.buffer]);
});
