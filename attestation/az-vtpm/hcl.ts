/**
 * The Azure HCL (paravisor) attestation report that an Azure confidential VM's vTPM exposes at NV
 * index 0x01400001 (upstream `az-cvm-vtpm` `hcl::HclReport`; verifiers.md §6.2). Little-endian:
 *
 *   0x000  header: "HCLA", version, report_size, request_type, status, reserved[3]   (unsigned)
 *   0x020  hardware report: SNP report (1184 bytes) or TD report (1024, padded to 1184)
 *   0x4C0  IGVM request data: data_size, version, report_type (2 SNP, 4 TDX), hash type, var size
 *   0x4D4  variable data: UTF-8 JSON {keys:[HCLAkPub JWK, …], vm-configuration, user-data}
 *
 * The hardware report's report_data[0..32] is SHA-256 of the variable data, which is how the vTPM's
 * attestation key (in the variable data) is bound to the hardware-signed report.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AttestationFailure } from '../types.js';

export const HCL_HEADER_SIZE = 0x20;
export const SNP_REPORT_SIZE = 1184;
export const TD_REPORT_SIZE = 1024;
/** The hardware-report slot is sized for the larger of the two reports. */
const HW_REPORT_SLOT = SNP_REPORT_SIZE;
const IGVM_OFFSET = HCL_HEADER_SIZE + HW_REPORT_SLOT;
export const VAR_DATA_OFFSET = IGVM_OFFSET + 20;
/** "HCLA" read as a little-endian u32. */
const HCL_SIGNATURE = 0x414c4348;
const REPORT_TYPE_SNP = 2;
const REPORT_TYPE_TDX = 4;
/** IgvmHashType: 0 invalid, 1 SHA-256, 2 SHA-384, 3 SHA-512. */
const HASH_TYPE_SHA256 = 1;
const HASH_TYPE_MAX = 3;
/** The AK's key id in the variable data. */
export const HCL_AKPUB_KID = 'HCLAkPub';

export type HclReportType = 'snp' | 'tdx';

export interface HclReport {
  readonly reportType: HclReportType;
  /** The SNP report (1184 bytes) or TD report (1024 bytes). */
  readonly hwReport: Buffer;
  /** IgvmHashType of report_data (only 1, SHA-256, can be verified). */
  readonly hashType: number;
  /** The variable data, exactly `variable_data_size` bytes. */
  readonly varData: Buffer;
}

function formatError(message: string): AttestationFailure {
  return new AttestationFailure('evidence-format', `HCL report: ${message}`);
}

/** Parses an HCL report (strict on everything the verifier relies on). */
export function parseHclReport(bytes: Buffer): HclReport {
  if (bytes.length < VAR_DATA_OFFSET) throw formatError(`${bytes.length} bytes is shorter than the fixed part`);
  if (bytes.readUInt32LE(0) !== HCL_SIGNATURE) throw formatError('the header signature is not "HCLA"');
  const reportTypeCode = bytes.readUInt32LE(IGVM_OFFSET + 8);
  const hashType = bytes.readUInt32LE(IGVM_OFFSET + 12);
  const varSize = bytes.readUInt32LE(IGVM_OFFSET + 16);
  let reportType: HclReportType;
  if (reportTypeCode === REPORT_TYPE_SNP) reportType = 'snp';
  else if (reportTypeCode === REPORT_TYPE_TDX) reportType = 'tdx';
  else throw formatError(`invalid hardware report type ${reportTypeCode}`);
  if (hashType > HASH_TYPE_MAX) throw formatError(`invalid report data hash type ${hashType}`);
  if (varSize > bytes.length - VAR_DATA_OFFSET) throw formatError('the variable data runs past the end of the report');
  const hwSize = reportType === 'snp' ? SNP_REPORT_SIZE : TD_REPORT_SIZE;
  return {
    reportType,
    hwReport: bytes.subarray(HCL_HEADER_SIZE, HCL_HEADER_SIZE + hwSize),
    hashType,
    varData: bytes.subarray(VAR_DATA_OFFSET, VAR_DATA_OFFSET + varSize),
  };
}

/**
 * SHA-256 of the variable data, which the hardware report's report_data[0..32] must equal. Only
 * SHA-256 is defined upstream (which panics on the others); any other hash type fails `hcl-binding`.
 */
export function varDataSha256(hcl: HclReport): Buffer {
  if (hcl.hashType !== HASH_TYPE_SHA256) {
    throw new AttestationFailure('hcl-binding', `HCL report data hash type ${hcl.hashType} is not SHA-256`);
  }
  return createHash('sha256').update(hcl.varData).digest();
}

/** Step `hcl-binding`: `reportData[0..32]` (from the hardware-signed report) is SHA-256(var_data). */
export function verifyVarDataBinding(hcl: HclReport, reportData: Uint8Array, what: string): void {
  const digest = varDataSha256(hcl);
  if (reportData.length < digest.length || !digest.equals(reportData.subarray(0, digest.length))) {
    throw new AttestationFailure('hcl-binding', `SHA-256 of the HCL variable data differs from the ${what} report_data`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function varDataJson(hcl: HclReport, step: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(hcl.varData));
  } catch {
    throw new AttestationFailure(step, 'the HCL variable data is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AttestationFailure(step, 'the HCL variable data is not a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** Imported AKs by JWK (n, e); the same VM presents the same AK on every attestation. */
const akCache = new Map<string, KeyObject>();
const AK_CACHE_MAX = 1024;

function importRsaJwk(n: string, e: string): KeyObject {
  const id = `${e}.${n}`;
  const hit = akCache.get(id);
  if (hit !== undefined) return hit;
  const key = createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' });
  if (akCache.size >= AK_CACHE_MAX) akCache.delete(akCache.keys().next().value as string);
  akCache.set(id, key);
  return key;
}

/**
 * The vTPM attestation key: the RSA JWK with `kid` "HCLAkPub" in the variable data's `keys`.
 * Failing to find or import it fails `tpm-signature` (the quote cannot be checked without it).
 */
export function hclAkPub(hcl: HclReport): KeyObject {
  const json = varDataJson(hcl, 'tpm-signature');
  const keys = json['keys'];
  if (!Array.isArray(keys)) throw new AttestationFailure('tpm-signature', 'the HCL variable data has no "keys" array');
  const jwk: unknown = keys.find(
    (k: unknown) => typeof k === 'object' && k !== null && (k as Record<string, unknown>)['kid'] === HCL_AKPUB_KID,
  );
  if (jwk === undefined) throw new AttestationFailure('tpm-signature', `the HCL variable data has no ${HCL_AKPUB_KID} key`);
  const { kty, n, e } = jwk as Record<string, unknown>;
  if (kty !== 'RSA' || typeof n !== 'string' || typeof e !== 'string') {
    throw new AttestationFailure('tpm-signature', `${HCL_AKPUB_KID} is not an RSA JWK`);
  }
  try {
    return importRsaJwk(n, e);
  } catch {
    throw new AttestationFailure('tpm-signature', `${HCL_AKPUB_KID} is not a valid RSA JWK`);
  }
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Step `user-data` (evidence v2+): the variable data's `user-data` (hex, the guest pads the report
 * data to 64 bytes) starts with the expected report data.
 */
export function verifyUserData(hcl: HclReport, expected: Uint8Array): void {
  const userData = varDataJson(hcl, 'user-data')['user-data'];
  if (typeof userData !== 'string' || !HEX.test(userData)) {
    throw new AttestationFailure('user-data', 'the HCL variable data has no hex "user-data"');
  }
  const bytes = Buffer.from(userData, 'hex');
  if (bytes.length < expected.length || !bytes.subarray(0, expected.length).equals(expected)) {
    throw new AttestationFailure('user-data', 'the HCL variable data "user-data" differs from the expected report data');
  }
}
