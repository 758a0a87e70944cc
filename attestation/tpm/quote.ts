/**
 * The checks every TPM-quote-based verifier shares (upstream `az_snp_vtpm::verify_tpm_*`, the
 * `az-cvm-vtpm` `Quote::verify_*` and `tpm::verify_*`): the AK signature over the TPMS_ATTEST, the
 * PCR digest over the PCR values sent beside it, the nonce (`extraData`) and PCR8 against the
 * init-data digest. Each throws an AttestationFailure naming its step.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { AttestationFailure } from '../types.js';
import { parseQuoteAttest, TPM_ALG_SHA256, TpmParseError, type TpmsAttest } from './attest.js';
import { isUsableAk, verifyRsaSsaSha256 } from './signature.js';

/** A TPM quote as the attesters send it: the signed TPMS_ATTEST, its raw signature, the PCR values. */
export interface TpmQuote {
  /** Raw RSASSA signature (not a TPMT_SIGNATURE). */
  readonly signature: Buffer;
  /** The marshalled TPMS_ATTEST. */
  readonly message: Buffer;
  /** SHA-256 PCR values, in selection order (32 bytes each). */
  readonly pcrs: readonly Buffer[];
}

/** The PCR that init-data is measured into (extended once from zero). */
export const INITDATA_PCR = 8;
export const SHA256_PCR_SIZE = 32;

/** Step `tpm-signature`: the quote message is signed by `ak` (RSASSA-PKCS1-v1_5, SHA-256). */
export function verifyQuoteSignature(quote: TpmQuote, ak: KeyObject): void {
  if (!isUsableAk(ak)) throw new AttestationFailure('tpm-signature', 'the attestation key is not an RSA key of at least 2048 bits');
  if (!verifyRsaSsaSha256(ak, quote.message, quote.signature)) {
    throw new AttestationFailure('tpm-signature', 'the TPM quote is not signed by the attestation key');
  }
}

/** Parses the (already signature-checked) message; a malformed one is an `evidence-format` failure. */
export function parseQuoteMessage(quote: TpmQuote): TpmsAttest {
  try {
    return parseQuoteAttest(quote.message);
  } catch (e) {
    if (e instanceof TpmParseError) throw new AttestationFailure('evidence-format', `TPM quote message: ${e.message}`);
    throw e;
  }
}

/**
 * Step `pcr-digest`: the quote selects one SHA-256 bank, exactly as many PCRs as were sent, and its
 * pcrDigest is SHA-256 of the sent values in selection order. Returns the selected PCR indices, so
 * `pcrs[i]` is PCR `indices[i]` (upstream assumes position = index; this makes it a checked fact).
 */
export function verifyPcrDigest(quote: TpmQuote, attest: TpmsAttest): readonly number[] {
  const [bank, ...others] = attest.pcrSelections;
  if (bank === undefined || others.length > 0 || bank.hash !== TPM_ALG_SHA256) {
    throw new AttestationFailure('pcr-digest', 'the TPM quote must select exactly one SHA-256 PCR bank');
  }
  if (bank.pcrs.length !== quote.pcrs.length) {
    throw new AttestationFailure(
      'pcr-digest',
      `the TPM quote selects ${bank.pcrs.length} PCRs but ${quote.pcrs.length} PCR values were sent`,
    );
  }
  const h = createHash('sha256');
  for (const pcr of quote.pcrs) h.update(pcr);
  if (!h.digest().equals(attest.pcrDigest)) {
    throw new AttestationFailure('pcr-digest', 'the digest of the PCR values differs from the digest in the TPM quote');
  }
  return bank.pcrs;
}

/** Step `tpm-nonce`: the quote's extraData equals `expected` exactly. */
export function verifyQuoteNonce(attest: TpmsAttest, expected: Uint8Array): void {
  if (!attest.extraData.equals(expected)) {
    throw new AttestationFailure('tpm-nonce', 'the TPM quote nonce differs from the expected report data');
  }
}

/**
 * Step `init-data`: PCR8 equals SHA-256(32 zero bytes ‖ digest), one extend from zero. Upstream
 * copies the digest into a 32-byte slot and panics on any other length (quirk (d)); here a digest
 * that is not 32 bytes (init-data `algorithm` other than sha256) is rejected with a clear message.
 */
export function verifyInitDataPcr(pcrs: readonly Buffer[], indices: readonly number[], digest: Uint8Array): void {
  if (digest.length !== SHA256_PCR_SIZE) {
    throw new AttestationFailure(
      'init-data',
      `TPM-based TEEs bind init-data through PCR${INITDATA_PCR}, which needs a 32-byte (sha256) init-data digest, got ${digest.length} bytes`,
    );
  }
  const at = indices.indexOf(INITDATA_PCR);
  const pcr = at >= 0 ? pcrs[at] : undefined;
  if (pcr === undefined) throw new AttestationFailure('init-data', `the TPM quote does not cover PCR${INITDATA_PCR}`);
  const expected = createHash('sha256').update(Buffer.alloc(SHA256_PCR_SIZE)).update(digest).digest();
  if (!expected.equals(pcr)) {
    throw new AttestationFailure('init-data', `PCR${INITDATA_PCR} differs from the expected init-data digest`);
  }
}

/** `{pcr00: hex, …}` keyed by the PCR index. */
export function pcrClaims(pcrs: readonly Buffer[], indices: readonly number[]): Array<[string, string]> {
  return pcrs.map((p, i) => [`pcr${String(indices[i]).padStart(2, '0')}`, p.toString('hex')]);
}
