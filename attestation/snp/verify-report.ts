/**
 * The cryptographic core shared by the `snp` and `az-snp-vtpm` verifiers: a report is genuine when
 * its VEK chains to the pinned ARK (VCEK → ASK → ARK, VLEK → ASVK → ARK), every certificate is
 * valid at `now`, the VEK's ECDSA P-384 signature over bytes [0, 0x2A0) verifies and the VEK's TCB
 * (and, for a VCEK, hwID) extensions match the report.
 */
import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AttestationFailure } from '../types.js';
import { builtinAnchors, checkAnchorDates, signedBy, type AmdAnchors } from './anchors.js';
import { checkValidity, parseCert, vekExtensions, type ParsedCert, type VekExtensions } from './cert.js';
import { assertNotRevoked, type VerifiedCrl } from './crl.js';
import { generationFromFamilyModel, layoutOf, type SnpGeneration } from './generation.js';
import { Lru } from './lru.js';
import {
  checkReportVersion,
  parseSnpReport,
  signatureHasHighBytes,
  signatureP1363,
  signingKeyOf,
  SNP_SIGNED_SIZE,
  type SnpReport,
} from './report.js';

export type SnpVekType = 'VCEK' | 'VLEK';

export interface VerifySnpReportOptions {
  now: Date;
  /** Default: from the report's CPUID (needs a v3+ report). */
  generation?: SnpGeneration;
  /** Default: from key_info.signing_key (0 VCEK, 1 VLEK). */
  vekType?: SnpVekType;
  /** Require report version 3..=5 (default true; Azure: false). */
  checkVersion?: boolean;
  /** Check the Turin fmcSPL extension (default true; Azure: false). */
  checkFmc?: boolean;
  /** A CRL verified with this generation's ARK (`loadAmdCrl`); absent = no revocation check. */
  crl?: VerifiedCrl;
}

/** A VEK whose chain signatures verified (dates are checked per call, never cached). */
export interface VerifiedVek {
  cert: ParsedCert;
  type: SnpVekType;
  generation: SnpGeneration;
  intermediate: ParsedCert;
  key: KeyObject;
  extensions: VekExtensions;
}

const vekCache = new Lru<string, VerifiedVek>(1024);
/** Reports whose signature verified, keyed by SHA-384 of (VEK DER hash, report bytes); successes only. */

/** Trustee's generation rule on a report; a report without CPUID (v2) cannot name one. */
export function generationOf(report: SnpReport): SnpGeneration {
  if (report.cpuidFamId === null || report.cpuidModId === null) {
    throw new AttestationFailure('report-version', 'Attestation Report version is too old: no CPUID to determine the processor generation');
  }
  return generationFromFamilyModel(report.cpuidFamId, report.cpuidModId);
}

function vekTypeOf(report: SnpReport): SnpVekType {
  const key = signingKeyOf(report);
  if (key === 0) return 'VCEK';
  if (key === 1) return 'VLEK';
  throw new AttestationFailure('signature', `SNP report is not signed by a VCEK or VLEK (signing_key ${key})`);
}

/**
 * Verifies `vekDer` under the built-in ASK (VCEK) or ASVK (VLEK) of `generation`. Successful
 * results are cached by (DER hash, generation, type); failures are never cached.
 */
export function verifyVekChain(vekDer: Buffer, generation: SnpGeneration, type: SnpVekType): VerifiedVek {
  const cacheKey = `${generation}/${type}/${createHash('sha256').update(vekDer).digest('hex')}`;
  const hit = vekCache.get(cacheKey);
  if (hit !== undefined && hit.cert.der.equals(vekDer)) return hit;
  const anchors: AmdAnchors = builtinAnchors(generation);
  const intermediate = type === 'VCEK' ? anchors.ask : anchors.asvk;
  const cert = parseCert(vekDer, type);
  if (!signedBy(cert, intermediate)) {
    throw new AttestationFailure('certificate-chain', `${type} is not signed by the AMD ${generation} ${type === 'VCEK' ? 'ASK' : 'ASVK'}`);
  }
  const key = cert.x509.publicKey;
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw new AttestationFailure('certificate-chain', `${type} key is not ECDSA P-384`);
  }
  let extensions: VekExtensions;
  try {
    extensions = vekExtensions(vekDer);
  } catch (e) {
    throw new AttestationFailure('certificate-chain', `${type} TCB extensions are malformed`, { cause: e });
  }
  const verified: VerifiedVek = { cert, type, generation, intermediate, key, extensions };
  vekCache.set(cacheKey, verified);
  return verified;
}

/** Checks the report's ECDSA P-384/SHA-384 signature with the VEK key. */
export function checkReportSignature(report: SnpReport, key: KeyObject): void {
  verifySignatureUncached(report, key);
}

/**
 * The report signature is checked on every call: every genuine attestation carries a fresh report
 * (new nonce), so remembering verified reports would only flatter benchmarks.
 */
function checkReportSignatureCached(report: SnpReport, vek: VerifiedVek): void {
  verifySignatureUncached(report, vek.key);
}

function verifySignatureUncached(report: SnpReport, key: KeyObject): void {
  if (report.sigAlgo !== 1) throw new AttestationFailure('signature', `SNP report sig_algo ${report.sigAlgo} is not ECDSA P-384 with SHA-384`);
  if (signatureHasHighBytes(report)) throw new AttestationFailure('signature', 'SNP report signature is not a P-384 value');
  const ok = cryptoVerify(
    'sha384',
    report.raw.subarray(0, SNP_SIGNED_SIZE),
    { key, dsaEncoding: 'ieee-p1363' },
    signatureP1363(report),
  );
  if (!ok) throw new AttestationFailure('signature', 'Report signature verification against VEK signature failed');
}

/** upstream `verify_report_tcb`, plus the chip-id check for VCEKs whenever the chip id is not masked. */
export function checkReportTcb(report: SnpReport, vek: VerifiedVek, checkFmc: boolean): void {
  const ext = vek.extensions;
  const t = report.reportedTcb;
  if (vek.type === 'VCEK' && !report.chipId.every((b) => b === 0)) {
    const hw = ext.hwId === undefined ? undefined : Buffer.concat([ext.hwId, Buffer.alloc(64 - Math.min(64, ext.hwId.length))]);
    if (hw === undefined || !hw.equals(report.chipId)) throw new AttestationFailure('tcb', 'Chip ID mismatch');
  }
  if (ext.ucodeSPL !== t.microcode) throw new AttestationFailure('tcb', 'Microcode version mismatch');
  if (ext.snpSPL !== t.snp) throw new AttestationFailure('tcb', 'SNP version mismatch');
  if (ext.teeSPL !== t.tee) throw new AttestationFailure('tcb', 'TEE version mismatch');
  if (ext.blSPL !== t.bootloader) throw new AttestationFailure('tcb', 'Boot loader version mismatch');
  if (checkFmc && vek.generation === 'Turin' && (ext.fmcSPL === undefined || ext.fmcSPL !== t.fmc)) {
    throw new AttestationFailure('tcb', 'FMC version mismatch');
  }
}

/**
 * Verifies a report against its endorsement certificate: version (optional), generation, chain to
 * the pinned ARK, certificate dates at `now`, revocation (when a CRL is given), the report
 * signature and the TCB extensions. Returns the parsed report. Policy checks (VMPL, report data,
 * host data) are separate (`checks.ts`).
 */
export function verifySnpReportWithCert(report: Buffer | SnpReport, vekDer: Buffer, options: VerifySnpReportOptions): SnpReport {
  const r = Buffer.isBuffer(report) ? parseSnpReport(report) : report;
  // Bytes after the signature are reserved and unsigned: anything there is not from the firmware.
  if (!r.raw.subarray(0x330).every((b) => b === 0)) {
    throw new AttestationFailure('evidence-format', 'SNP report has non-zero bytes in its unsigned reserved area');
  }
  if (options.checkVersion !== false) checkReportVersion(r.version);
  const generation = options.generation ?? generationOf(r);
  if (r.tcbLayout !== layoutOf(generation)) {
    throw new AttestationFailure('generation', `SNP report TCB layout does not match the ${generation} generation`);
  }
  const type = options.vekType ?? vekTypeOf(r);
  if (options.vekType !== undefined && vekTypeOf(r) !== type) {
    throw new AttestationFailure('signature', `SNP report key_info does not name a ${type} as its signing key`);
  }
  const vek = verifyVekChain(vekDer, generation, type);
  checkValidity(vek.cert, type, options.now);
  checkAnchorDates(builtinAnchors(generation), vek.intermediate, options.now);
  if (options.crl !== undefined) {
    assertNotRevoked(options.crl, vek.intermediate, type === 'VCEK' ? `ASK (${generation})` : `ASVK (${generation})`);
    assertNotRevoked(options.crl, vek.cert, type);
  }
  checkReportSignatureCached(r, vek);
  checkReportTcb(r, vek, options.checkFmc !== false);
  return r;
}
