/**
 * The generic `tpm` verifier (upstream `deps/verifier/src/tpm/mod.rs`; verifiers.md §8). Evidence:
 * `{"ak_public": std base64 SPKI DER, "tpm_quote": {"signature": std base64 TPMT_SIGNATURE,
 * "message": std base64 TPMS_ATTEST, "pcrs": [hex × n]}}`.
 *
 * The AK is self-asserted (no EK or AK certificate), so this proves possession of that key only;
 * appraisal policy must pin `ak_public` for it to mean anything. Checks: the AK signature, the PCR
 * digest, the nonce against the expected report data resized to 32 bytes (upstream quirk (e): the
 * attester truncates or zero-pads the 48-byte digest to 32), and PCR8 against the init-data digest.
 * Claims: `init_data` (hex PCR8), `report_data` (hex nonce), `ak_public`, then `pcrNN`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeStdBase64 } from '../sample/verifier.js';
import { AttestationFailure, objectFromEntries, type Claims, type Verifier } from '../types.js';
import { TpmParseError } from './attest.js';
import {
  INITDATA_PCR,
  parseQuoteMessage,
  pcrClaims,
  verifyInitDataPcr,
  verifyPcrDigest,
  verifyQuoteNonce,
  verifyQuoteSignature,
  type TpmQuote,
} from './quote.js';
import { parseTpmtSignature } from './signature.js';

/** The attester resizes the report data to this many bytes before quoting. */
export const TPM_REPORT_DATA_SIZE = 32;
const MAX_FIELD = 8 * 1024;
const PCR_HEX = /^[0-9a-fA-F]{64}$/;

interface TpmEvidence {
  akPublicText: string;
  ak: KeyObject;
  quote: TpmQuote;
}

function formatError(message: string): AttestationFailure {
  return new AttestationFailure('evidence-format', `tpm evidence: ${message}`);
}

function base64Field(obj: Record<string, unknown>, key: string): Buffer {
  const v = Object.hasOwn(obj, key) ? obj[key] : undefined;
  const bytes = typeof v === 'string' && v.length <= MAX_FIELD ? decodeStdBase64(v) : undefined;
  if (bytes === undefined) throw formatError(`"${key}" must be standard base64`);
  return bytes;
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw formatError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function parseEvidence(evidence: unknown): TpmEvidence {
  const ev = asObject(evidence, 'the evidence');
  const q = asObject(Object.hasOwn(ev, 'tpm_quote') ? ev['tpm_quote'] : undefined, '"tpm_quote"');
  const akDer = base64Field(ev, 'ak_public');
  let ak: KeyObject;
  try {
    ak = createPublicKey({ key: akDer, format: 'der', type: 'spki' });
  } catch {
    throw formatError('"ak_public" is not a DER SubjectPublicKeyInfo');
  }
  let signature: Buffer;
  try {
    signature = parseTpmtSignature(base64Field(q, 'signature'));
  } catch (e) {
    if (e instanceof TpmParseError) throw formatError(`"signature": ${e.message}`);
    throw e;
  }
  const message = base64Field(q, 'message');
  const pcrsJson = Object.hasOwn(q, 'pcrs') ? q['pcrs'] : undefined;
  if (!Array.isArray(pcrsJson) || pcrsJson.length > 32 || !pcrsJson.every((p) => typeof p === 'string' && PCR_HEX.test(p))) {
    throw formatError('"pcrs" must be an array of 64-character hex strings');
  }
  const pcrs = (pcrsJson as string[]).map((p) => Buffer.from(p, 'hex'));
  return { akPublicText: ev['ak_public'] as string, ak, quote: { signature, message, pcrs } };
}

export class TpmVerifier implements Verifier {
  readonly tee = 'tpm' as const;
  readonly teeClass = 'cpu';

  async verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    expectedInitDataHash: Uint8Array | undefined,
    _now: Date,
  ): Promise<Claims> {
    return this.evaluate(evidence, { reportData: expectedReportData, initDataHash: expectedInitDataHash });
  }

  /** Like `verify`, with upstream's `NotProvided`: an undefined report data skips the nonce check. */
  async evaluate(evidence: unknown, expected: { reportData?: Uint8Array | undefined; initDataHash?: Uint8Array | undefined }): Promise<Claims> {
    const { akPublicText, ak, quote } = parseEvidence(evidence);
    verifyQuoteSignature(quote, ak);
    const attest = parseQuoteMessage(quote);
    const indices = verifyPcrDigest(quote, attest);
    if (!indices.includes(INITDATA_PCR)) {
      throw new AttestationFailure('pcr-digest', `the TPM quote does not cover PCR${INITDATA_PCR}`);
    }
    if (expected.reportData !== undefined) {
      const resized = Buffer.alloc(TPM_REPORT_DATA_SIZE);
      Buffer.from(expected.reportData).copy(resized, 0, 0, TPM_REPORT_DATA_SIZE);
      verifyQuoteNonce(attest, resized);
    }
    if (expected.initDataHash !== undefined) verifyInitDataPcr(quote.pcrs, indices, expected.initDataHash);
    const pcr8 = quote.pcrs[indices.indexOf(INITDATA_PCR)] as Buffer;
    return objectFromEntries([
      ['init_data', pcr8.toString('hex')],
      ['report_data', attest.extraData.toString('hex')],
      ['ak_public', akPublicText],
      ...pcrClaims(quote.pcrs, indices),
    ]);
  }
}
