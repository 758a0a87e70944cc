/**
 * Azure vTPM verifier throughput with warm caches (AK import, VCEK chain, PCK chain):
 *   npx tsc -p tsconfig.json && node dist/bench/az-vtpm.js
 * Prints verifications per second and milliseconds per verification for az-snp-vtpm evidence-v2.json
 * (target ≤ 1 ms) and az-tdx-vtpm evidence-v1.json (offline: no Intel collateral).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AzSnpVtpmVerifier } from '../attestation/az-snp-vtpm/verifier.js';
import { AzTdxVtpmVerifier } from '../attestation/az-tdx-vtpm/verifier.js';
import type { Verifier } from '../attestation/types.js';
import { packageRoot } from '../policy/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const NOW = new Date('2026-01-01T00:00:00Z');

async function measure(name: string, v: Verifier, evidenceFile: string, reportData: Buffer): Promise<void> {
  const evidence = JSON.parse(readFileSync(join(VECTORS, evidenceFile), 'utf8')) as unknown;
  for (let i = 0; i < 200; i++) await v.verify(evidence, reportData, undefined, NOW);
  const n = 2000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await v.verify(evidence, reportData, undefined, NOW);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(`${name}: ${Math.round((n * 1000) / ms)} verifications/s, ${(ms / n).toFixed(3)} ms each`);
}

await measure(
  'az-snp-vtpm evidence-v2.json',
  new AzSnpVtpmVerifier(),
  'az-snp-vtpm/evidence-v2.json',
  Buffer.from('982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef', 'hex'),
);
await measure('az-tdx-vtpm evidence-v1.json', new AzTdxVtpmVerifier(), 'az-tdx-vtpm/evidence-v1.json', Buffer.from('challenge'));
