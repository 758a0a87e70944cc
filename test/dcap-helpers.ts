/** Shared fixtures of the Intel DCAP tests: vector paths and a collateral directory built from them. */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';

export const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
export const vec = (rel: string): Buffer => readFileSync(join(VECTORS, rel));
export const vecText = (rel: string): string => readFileSync(join(VECTORS, rel), 'utf8');

/** Before the shipped collateral's nextUpdate (2025-11-26) and after its issue date. */
export const BEFORE_EXPIRY = new Date('2025-11-01T00:00:00Z');
export const AFTER_EXPIRY = new Date('2025-12-15T00:00:00Z');

/** A fresh `<dir>` with `<dir>/intel/` holding the shipped TDX collateral for FMSPC 00A06D080000. */
export function collateralDir(opts: { tcbInfoText?: string } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-dcap-'));
  const intel = join(dir, 'intel');
  mkdirSync(join(intel, 'tcbinfo', 'tdx'), { recursive: true });
  mkdirSync(join(intel, 'qeidentity'), { recursive: true });
  writeFileSync(join(intel, 'tcbinfo', 'tdx', '00A06D080000.json'), opts.tcbInfoText ?? vecText('intel_dcap/tcbInfo.json'));
  writeFileSync(join(intel, 'qeidentity', 'tdx.json'), vecText('intel_dcap/enclaveIdentity.json'));
  writeFileSync(join(intel, 'signing-chain.pem'), vecText('intel_dcap/intel_sgx_tcb_signing_2018.pem'));
  return dir;
}

/** The 64-byte REPORT_DATA of a TDX v4 quote. */
export const tdxReportData = (quote: Buffer): Buffer => Buffer.from(quote.subarray(48 + 520, 48 + 584));
