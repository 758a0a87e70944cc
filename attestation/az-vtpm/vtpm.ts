/**
 * The part of the Azure vTPM verification that SNP and TDX share (upstream
 * `az_snp_vtpm::{verify_tpm_signature, verify_tpm_nonce, verify_tpm_pcrs, verify_user_data,
 * verify_init_data, extend_claim}`): the HCL report, the vTPM quote signed by the HCL's AK, its
 * nonce and PCRs, the v2 `user-data` binding, PCR8 against init-data, and the `tpm` claims.
 */
import type { JsonValue } from '../../policy/index.js';
import type { TpmsAttest } from '../tpm/attest.js';
import {
  INITDATA_PCR,
  parseQuoteMessage,
  pcrClaims,
  verifyInitDataPcr,
  verifyPcrDigest,
  verifyQuoteNonce,
  verifyQuoteSignature,
} from '../tpm/quote.js';
import { AttestationFailure, type Claims } from '../types.js';
import type { AzEvidence } from './evidence.js';
import { hclAkPub, parseHclReport, verifyUserData, type HclReport, type HclReportType } from './hcl.js';

/** The Azure vTPM attester always quotes SHA-256 PCRs 0–23 (az-cvm-vtpm `VTPM_QUOTE_PCR_SLOTS`). */
export const AZ_VTPM_PCR_COUNT = 24;

export interface AzVtpmExpectations {
  /** Required: the expected report data (undefined fails `report-data`, as upstream). */
  readonly reportData?: Uint8Array | undefined;
  readonly initDataHash?: Uint8Array | undefined;
  readonly now: Date;
}

/** What the TPM part established, for the TEE-specific checks and the claims. */
export interface VerifiedVtpm {
  readonly hcl: HclReport;
  readonly attest: TpmsAttest;
}

/**
 * Report data is required for the Azure TEEs (upstream bails on `NotProvided`): without it nothing
 * ties the quote to this session.
 */
export function requireReportData(tee: string, reportData: Uint8Array | undefined): Uint8Array {
  if (reportData === undefined) {
    throw new AttestationFailure('report-data', `${tee} needs the expected report data (the vTPM quote nonce must equal it)`);
  }
  return reportData;
}

/**
 * Parses the HCL report (which must carry a `type` hardware report), then checks the quote's
 * signature by the HCL's AK, its nonce against `reportData` exactly, and its PCR digest over
 * PCRs 0–23 (in upstream's order: signature, nonce, PCRs).
 */
export function verifyVtpmQuote(ev: AzEvidence<unknown>, type: HclReportType, reportData: Uint8Array): VerifiedVtpm {
  const hcl = parseHclReport(ev.hclReport);
  if (hcl.reportType !== type) {
    throw new AttestationFailure('evidence-format', `the HCL report holds a ${hcl.reportType.toUpperCase()} report, not ${type.toUpperCase()}`);
  }
  verifyQuoteSignature(ev.tpmQuote, hclAkPub(hcl));
  const attest = parseQuoteMessage(ev.tpmQuote);
  verifyQuoteNonce(attest, reportData);
  const indices = verifyPcrDigest(ev.tpmQuote, attest);
  if (indices.length !== AZ_VTPM_PCR_COUNT || indices.some((pcr, i) => pcr !== i)) {
    throw new AttestationFailure('pcr-digest', `an Azure vTPM quote must cover SHA-256 PCRs 0-${AZ_VTPM_PCR_COUNT - 1}`);
  }
  return { hcl, attest };
}

/** Step `user-data`, only for evidence v2 and later (v0/v1 guests left `user-data` empty). */
export function verifyVersionedUserData(ev: AzEvidence<unknown>, hcl: HclReport, reportData: Uint8Array): void {
  if (ev.version >= 2) verifyUserData(hcl, reportData);
}

/** Step `init-data`: PCR8 against the init-data digest, when one is expected. */
export function verifyVtpmInitData(ev: AzEvidence<unknown>, initDataHash: Uint8Array | undefined): void {
  if (initDataHash === undefined) return;
  const indices = ev.tpmQuote.pcrs.map((_, i) => i);
  verifyInitDataPcr(ev.tpmQuote.pcrs, indices, initDataHash);
}

/**
 * Upstream `extend_claim`: adds `tpm: {pcr00..pcr23}` (hex) at the end, and overwrites (in place)
 * `init_data` with hex(PCR8) and `report_data` with hex(quote nonce).
 */
export function extendWithVtpmClaims(claims: Claims, ev: AzEvidence<unknown>, attest: TpmsAttest): Claims {
  // Plain assignment has IndexMap's order semantics (an existing key keeps its place, a new one is
  // appended); every key here is a fixed literal, so no prototype key can be injected.
  const pcrs = ev.tpmQuote.pcrs;
  const tpm: { [key: string]: JsonValue } = {};
  for (const [k, v] of pcrClaims(pcrs, pcrs.map((_, i) => i))) tpm[k] = v;
  const out: Claims = { ...claims, tpm };
  const pcr8 = pcrs[INITDATA_PCR];
  if (pcr8 !== undefined) out['init_data'] = pcr8.toString('hex');
  out['report_data'] = attest.extraData.toString('hex');
  return out;
}

/**
 * Re-labels a failure from the hardware verifier (`signature` → `snp-signature`), so every step
 * name says which layer failed. Anything that is not an AttestationFailure is wrapped.
 */
export function prefixStep(prefix: 'snp' | 'tdx', e: unknown): AttestationFailure {
  if (e instanceof AttestationFailure) {
    const step = e.step.startsWith(`${prefix}-`) ? e.step : `${prefix}-${e.step}`;
    return new AttestationFailure(step, e.message, { cause: e });
  }
  return new AttestationFailure(`${prefix}-verifier`, `${prefix.toUpperCase()} verification failed`, { cause: e });
}
