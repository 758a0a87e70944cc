/**
 * `kbs collateral fetch` for AMD: fills the SNP collateral directory (attestation/snp/README.md)
 * from AMD KDS: each product's CRL, and the VCEK of every SNP evidence file given. Everything
 * downloaded is verified against the built-in AMD anchors before it is written, and every write is
 * atomic, so a failed run never leaves a partial or unverified file behind.
 */
import { readFile } from 'node:fs/promises';
import {
  crlPath,
  crlUrl,
  generationOf,
  kdsGet,
  loadAmdCrl,
  parseSnpEvidence,
  parseSnpReport,
  SNP_GENERATIONS,
  vcekPaths,
  vcekUrl,
  verifySnpReportWithCert,
  writeAtomic,
  type SnpGeneration,
  type SnpReport,
} from '../attestation/snp/index.js';

export interface FetchAmdCollateralOptions {
  /** The collateral directory (the SNP verifier's `collateralDir`). */
  dir: string;
  kdsBaseUrl: string;
  timeoutMs: number;
  /** SNP evidence JSON files (or raw 1184-byte reports) whose VCEKs to fetch. */
  evidenceFiles?: string[];
  /** Products whose CRLs to fetch (default: Milan, Genoa, Turin). */
  products?: string[];
  now?: Date;
}

function productOf(name: string): SnpGeneration {
  const g = SNP_GENERATIONS.find((p) => p.toLowerCase() === name.toLowerCase());
  if (g === undefined) throw new Error(`unknown AMD product "${name}" (expected ${SNP_GENERATIONS.join(', ')})`);
  return g;
}

async function reportFromFile(path: string): Promise<SnpReport> {
  const bytes = await readFile(path);
  if (bytes.length === 1184) return parseSnpReport(bytes);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${path}: neither SNP evidence JSON nor a 1184-byte report`, { cause: e });
  }
  return parseSnpEvidence(json).report;
}

/** Downloads and verifies; returns the paths written, in order. Throws on the first failure. */
export async function fetchAmdCollateral(opts: FetchAmdCollateralOptions): Promise<string[]> {
  const now = opts.now ?? new Date();
  const written: string[] = [];
  for (const product of (opts.products ?? [...SNP_GENERATIONS]).map(productOf)) {
    const der = await kdsGet(crlUrl(opts.kdsBaseUrl, product), opts.timeoutMs);
    loadAmdCrl(der, product, now);
    const path = crlPath(opts.dir, product);
    await writeAtomic(path, der);
    written.push(path);
  }
  for (const file of opts.evidenceFiles ?? []) {
    const report = await reportFromFile(file);
    if (report.chipId.every((b) => b === 0)) throw new Error(`${file}: the chip id is masked; KDS cannot serve its VCEK`);
    const generation = generationOf(report);
    const der = await kdsGet(vcekUrl(opts.kdsBaseUrl, generation, report), opts.timeoutMs);
    verifySnpReportWithCert(report, der, { now, generation, vekType: 'VCEK' });
    const path = vcekPaths(opts.dir, report, generation).tcb;
    await writeAtomic(path, der);
    written.push(path);
  }
  return written;
}
