/**
 * TPM quote signatures: the marshalled `TPMT_SIGNATURE` the generic TPM attester sends, and the
 * RSASSA-PKCS1-v1_5/SHA-256 check every TPM-based verifier does (the Azure vTPM AK and the generic
 * TPM AK are RSA keys; TPM2_Quote with the default scheme signs SHA-256(message)).
 */
import { constants, verify, type KeyObject } from 'node:crypto';
import { BeReader, TPM_ALG_SHA256, TpmParseError } from './attest.js';

/** TPM_ALG_RSASSA. */
export const TPM_ALG_RSASSA = 0x0014;
/** TPM2B_PUBLIC_KEY_RSA holds at most a 4096-bit signature. */
const MAX_RSA_SIGNATURE = 512;
/** Smallest RSA modulus accepted for an attestation key. */
export const MIN_AK_RSA_BITS = 2048;

/**
 * Parses a marshalled TPMT_SIGNATURE and returns the raw RSASSA signature. Only RSASSA with SHA-256
 * is accepted (upstream accepts RSASSA only and always verifies with SHA-256).
 */
export function parseTpmtSignature(bytes: Uint8Array): Buffer {
  const r = new BeReader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const sigAlg = r.u16('sigAlg');
  if (sigAlg !== TPM_ALG_RSASSA) throw new TpmParseError(`signature algorithm 0x${sigAlg.toString(16)} is not RSASSA`);
  const hash = r.u16('hash');
  if (hash !== TPM_ALG_SHA256) throw new TpmParseError(`signature hash 0x${hash.toString(16)} is not SHA-256`);
  const sig = r.tpm2b(MAX_RSA_SIGNATURE, 'signature');
  r.end('TPMT_SIGNATURE');
  return sig;
}

/** True when `key` is an RSA public key of at least MIN_AK_RSA_BITS bits. */
export function isUsableAk(key: KeyObject): boolean {
  return (
    key.type === 'public' &&
    key.asymmetricKeyType === 'rsa' &&
    (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_AK_RSA_BITS
  );
}

/** RSASSA-PKCS1-v1_5 with SHA-256 over `message`. Never throws for a malformed signature. */
export function verifyRsaSsaSha256(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}
