/**
 * Hardware evidence verification throughput, one verifier at a time, warm caches (certificate
 * chains, AK imports, collateral), on the real vectors:
 *   npm run bench:verify
 * Every iteration re-checks the evidence's own signatures (report or quote, TPM quote): nothing
 * per-evidence is cached, as every real attestation carries a fresh report. Targets on this
 * machine: SNP and Azure vTPM ≤ 1 ms, TDX ≤ 2 ms per evidence.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AzSnpVtpmVerifier } from '../attestation/az-snp-vtpm/verifier.js';
import { AzTdxVtpmVerifier } from '../attestation/az-tdx-vtpm/verifier.js';
import { SgxVerifier } from '../attestation/sgx/verifier.js';
import { SnpVerifier } from '../attestation/snp/index.js';
import { TdxVerifier } from '../attestation/tdx/verifier.js';
import type { Verifier } from '../attestation/types.js';
import { packageRoot } from '../policy/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const ITERATIONS = Number(process.env['BENCH_ITERATIONS'] ?? 1000);

interface Case {
  name: string;
  verifier: Verifier;
  file: string;
  reportData: Buffer;
  now: Date;
  target: number;
}

async function measure(c: Case): Promise<string> {
  const evidence = JSON.parse(readFileSync(join(VECTORS, c.file), 'utf8')) as unknown;
  for (let i = 0; i < 100; i++) await c.verifier.verify(evidence, c.reportData, undefined, c.now);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) await c.verifier.verify(evidence, c.reportData, undefined, c.now);
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / ITERATIONS;
  const verdict = ms <= c.target ? 'ok' : 'OVER TARGET';
  return `${c.name.padEnd(44)} ${String(Math.round(1000 / ms)).padStart(6)} /s  ${ms.toFixed(3)} ms  (target <= ${c.target} ms: ${verdict})`;
}

/** Report data the vectors were made with (see shared/vectors/README.md). */
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const snpE2e = JSON.parse(readFileSync(join(VECTORS, 'snp/e2e-evidence.json'), 'utf8')) as { attestation_report: { report_data: number[] } };
const quote6 = readFileSync(join(VECTORS, 'tdx/tdx_quote_6.dat'));
const occlum = readFileSync(join(VECTORS, 'sgx/occlum_quote.dat'));
// report_data sits at the same offset in the v4 TD report body (568) and the v3 enclave report (368).
const td6ReportData = quote6.subarray(48 + 520, 48 + 520 + 64);
const sgxReportData = occlum.subarray(48 + 320, 48 + 320 + 64);

const cases: Case[] = [
  { name: 'snp e2e-evidence.json (Genoa, VCEK in chain)', verifier: new SnpVerifier(), file: 'snp/e2e-evidence.json', reportData: Buffer.from(snpE2e.attestation_report.report_data), now: new Date('2026-01-01T00:00:00Z'), target: 1 },
  { name: 'az-snp-vtpm evidence-v2.json', verifier: new AzSnpVtpmVerifier(), file: 'az-snp-vtpm/evidence-v2.json', reportData: hex('982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef'), now: new Date('2026-01-01T00:00:00Z'), target: 1 },
  { name: 'az-tdx-vtpm evidence-v1.json (no collateral)', verifier: new AzTdxVtpmVerifier(), file: 'az-tdx-vtpm/evidence-v1.json', reportData: Buffer.from('challenge'), now: new Date('2026-01-01T00:00:00Z'), target: 1 },
  { name: 'tdx evidence-quote6.json (no collateral)', verifier: new TdxVerifier(), file: 'tdx/evidence-quote6.json', reportData: td6ReportData.subarray(0, 48), now: new Date('2025-11-01T00:00:00Z'), target: 2 },
  { name: 'sgx evidence-occlum.json (no collateral)', verifier: new SgxVerifier(), file: 'sgx/evidence-occlum.json', reportData: sgxReportData, now: new Date('2026-01-01T00:00:00Z'), target: 2 },
];

console.log(`Evidence verification, ${ITERATIONS} iterations each after 100 warm-up (node ${process.version})`);
for (const c of cases) console.log(await measure(c));
