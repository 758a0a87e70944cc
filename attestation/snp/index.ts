/** The AMD SEV-SNP verifier and its components (see README.md for the stable API). */
export { SnpVerifier, type SnpVerifierOptions, type SnpEvaluation, type SnpEvaluateInput, type SnpMetadata, type VekSource } from './verifier.js';
export {
  parseSnpReport,
  encodeSnpReport,
  checkReportVersion,
  signingKeyOf,
  signatureP1363,
  SNP_REPORT_SIZE,
  SNP_SIGNED_SIZE,
  type SnpReport,
  type SnpReportFields,
  type SnpVersionTriple,
} from './report.js';
export {
  parseSnpEvidence,
  snpReportFromEvidenceJson,
  snpReportToEvidenceJson,
  reportFieldsFromJson,
  type SnpEvidence,
  type SnpCertEntry,
  type SnpCertType,
} from './evidence-json.js';
export {
  generationFromFamilyModel,
  SNP_GENERATIONS,
  REPORT_VERSION_MIN,
  REPORT_VERSION_MAX,
  type SnpGeneration,
  type SnpTcb,
  type TcbLayout,
} from './generation.js';
export {
  verifySnpReportWithCert,
  verifyVekChain,
  checkReportSignature,
  checkReportTcb,
  generationOf,
  type VerifySnpReportOptions,
  type VerifiedVek,
  type SnpVekType,
} from './verify-report.js';
export { checkVmpl, checkReportData, checkHostData, regularize } from './checks.js';
export { snpClaims } from './claims.js';
export { builtinAnchors, anchorsFromPem, ARK_SPKI_SHA256, type AmdAnchors } from './anchors.js';
export { verifyCrl, assertNotRevoked, type VerifiedCrl } from './crl.js';
export { vekExtensions, decodeHwId, certificateValidity, certificateNames, AMD_OID, type VekExtensions } from './cert.js';
export { vcekUrl, crlUrl, hwIdOf, tcbPrefix, kdsGet, KdsClient, KdsError, DEFAULT_KDS_BASE_URL, DEFAULT_KDS_TIMEOUT_MS, type KdsOptions } from './kds.js';
export { vcekPaths, crlPath, readOfflineVcek, writeAtomic } from './collateral.js';

import { builtinAnchors } from './anchors.js';
import type { VerifiedCrl } from './crl.js';
import { verifyCrl } from './crl.js';
import type { SnpGeneration } from './generation.js';

/** Verifies an AMD CRL (DER) with the built-in ARK of `generation` at `now`. */
export function loadAmdCrl(der: Buffer, generation: SnpGeneration, now: Date): VerifiedCrl {
  return verifyCrl(der, builtinAnchors(generation).ark, now, `AMD ${generation} CRL`);
}
