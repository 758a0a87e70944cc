/**
 * The `sample` and `sampledevice` verifiers, as upstream (`deps/verifier/src/sample/mod.rs`,
 * `deps/verifier/src/sample_device/mod.rs`). There is no hardware and no signature: the evidence is
 * `{"svn": "<string>", "report_data": "<std base64>"}` and the only check is that the decoded
 * `report_data` equals the expected report data byte for byte (no padding, no truncation).
 *
 * Claims:
 * - sample (class `cpu`): `{svn, report_data, launch_digest: "abcde", platform_version: {major: 1,
 *   minor: 4}, debug: false}`, plus `init_data` (std base64 of the init-data digest) when one is
 *   given; the sample verifier does not check it (there is nothing to check it against).
 * - sampledevice (class `gpu`): `{svn, report_data}`; an init-data hash is ignored.
 */
import { AttestationFailure, type Claims, type Tee, type Verifier } from '../types.js';

/** Longest accepted `svn` string (upstream has no bound; this keeps tokens small). */
export const SAMPLE_MAX_SVN_LENGTH = 1024;

/** Longest `report_data` string worth decoding: std base64 of a 64-byte digest is 88 characters. */
const MAX_REPORT_DATA_LENGTH = 1024;

interface SampleEvidence {
  svn: string;
  report_data: string;
}

/**
 * serde's view of `SampleTeeEvidence`: `svn` a required string, `report_data` a string defaulting to
 * `""` when absent; other members ignored.
 */
function parseEvidence(tee: Tee, evidence: unknown): SampleEvidence {
  if (typeof evidence !== 'object' || evidence === null || Array.isArray(evidence)) {
    throw new AttestationFailure('evidence-format', `${tee} evidence must be a JSON object`);
  }
  const ev = evidence as Record<string, unknown>;
  const svn = Object.hasOwn(ev, 'svn') ? ev['svn'] : undefined;
  if (typeof svn !== 'string') {
    throw new AttestationFailure('evidence-format', `${tee} evidence field "svn" must be a string`);
  }
  if (svn.length > SAMPLE_MAX_SVN_LENGTH) {
    throw new AttestationFailure('evidence-format', `${tee} evidence field "svn" is too long`);
  }
  const reportData = Object.hasOwn(ev, 'report_data') ? ev['report_data'] : '';
  if (typeof reportData !== 'string') {
    throw new AttestationFailure('evidence-format', `${tee} evidence field "report_data" must be a string`);
  }
  return { svn, report_data: reportData };
}

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict standard base64 as the Rust `base64` crate's STANDARD engine decodes it: padding required,
 * no whitespace, and the unused bits of the last character must be zero. Undefined when invalid.
 */
export function decodeStdBase64(s: string): Buffer | undefined {
  if (!STD_BASE64.test(s)) return undefined;
  const bytes = Buffer.from(s, 'base64');
  // Canonical encodings only: re-encoding must give the same text (rejects non-zero trailing bits).
  return bytes.toString('base64') === s ? bytes : undefined;
}

function checkReportData(tee: Tee, reportData: string, expected: Uint8Array): void {
  if (reportData.length > MAX_REPORT_DATA_LENGTH) {
    throw new AttestationFailure('report-data', `${tee} evidence field "report_data" does not match the runtime data`);
  }
  const decoded = decodeStdBase64(reportData);
  if (decoded === undefined) {
    throw new AttestationFailure('report-data', `${tee} evidence field "report_data" is not standard base64`);
  }
  if (!decoded.equals(expected)) {
    throw new AttestationFailure('report-data', `${tee} evidence field "report_data" does not match the runtime data`);
  }
}

export class SampleVerifier implements Verifier {
  readonly tee = 'sample' as const;
  readonly teeClass = 'cpu';

  async verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    expectedInitDataHash: Uint8Array | undefined,
    _now: Date,
  ): Promise<Claims> {
    const ev = parseEvidence(this.tee, evidence);
    checkReportData(this.tee, ev.report_data, expectedReportData);
    const claims: Claims = {
      svn: ev.svn,
      report_data: ev.report_data,
      launch_digest: 'abcde',
      platform_version: { major: 1, minor: 4 },
      debug: false,
    };
    if (expectedInitDataHash !== undefined) {
      claims['init_data'] = Buffer.from(expectedInitDataHash).toString('base64');
    }
    return claims;
  }
}

export class SampleDeviceVerifier implements Verifier {
  readonly tee = 'sampledevice' as const;
  readonly teeClass = 'gpu';

  async verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    _expectedInitDataHash: Uint8Array | undefined,
    _now: Date,
  ): Promise<Claims> {
    const ev = parseEvidence(this.tee, evidence);
    checkReportData(this.tee, ev.report_data, expectedReportData);
    return { svn: ev.svn, report_data: ev.report_data };
  }
}
