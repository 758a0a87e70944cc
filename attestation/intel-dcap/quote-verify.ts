/**
 * The quote's own cryptography (Intel QVL steps 1–4, verifiers.md §4.3): the PCK chain to the pinned
 * root, the PCK signature over the QE report, the QE report-data binding of the attestation key, and
 * the attestation key's signature over header and body. PCK certificate dates are enforced at `now`.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AttestationFailure } from '../types.js';
import { chainValidAt, commonName, verifyChain, type VerifiedChain } from './certs.js';
import { parsePckExtension, type PlatformInfo } from './pck-extension.js';
import { parsePemChain } from './pem.js';
import { parseQuote, type Quote } from './quote.js';

export const PCK_PLATFORM_CA_CN = 'Intel SGX PCK Platform CA';
export const PCK_PROCESSOR_CA_CN = 'Intel SGX PCK Processor CA';
const PCK_LEAF_CN = 'Intel SGX PCK Certificate';

export interface PckChain {
  readonly chain: VerifiedChain;
  readonly platform: PlatformInfo;
  readonly leafKey: KeyObject;
}

export interface VerifiedQuoteSignatures {
  readonly quote: Quote;
  readonly pck: PckChain;
}

const pckCache = new Map<string, PckChain>();
const qeReportCache = new Set<string>();
const MAX_CACHE = 256;

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= MAX_CACHE) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

/** Verifies (cached by bytes) the quote's PCK chain and reads its SGX extension. */
export function verifyPckChain(pem: Buffer): PckChain {
  const key = createHash('sha256').update(pem).digest('hex');
  const hit = pckCache.get(key);
  if (hit !== undefined) return hit;
  const ders = parsePemChain(pem, 'pck-certificate');
  if (ders.length !== 3) throw new AttestationFailure('pck-certificate', 'PCK chain must hold exactly 3 certificates');
  const chain = verifyChain(ders, 'pck-certificate');
  const [leaf, intermediate] = chain.certs;
  const caName = commonName(intermediate!);
  if (caName !== PCK_PLATFORM_CA_CN && caName !== PCK_PROCESSOR_CA_CN) {
    throw new AttestationFailure('pck-certificate', 'unexpected PCK intermediate CA');
  }
  if (commonName(leaf!) !== PCK_LEAF_CN) throw new AttestationFailure('pck-certificate', 'unexpected PCK leaf certificate');
  const platform = parsePckExtension(ders[0] as Buffer, caName === PCK_PLATFORM_CA_CN);
  const result: PckChain = { chain, platform, leafKey: chain.keys[0] as KeyObject };
  remember(pckCache, key, result);
  return result;
}

function attestationKey(xy: Buffer): KeyObject {
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: xy.subarray(0, 32).toString('base64url'), y: xy.subarray(32, 64).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw new AttestationFailure('quote-signature', 'attestation key is not a valid P-256 point');
  }
}

function ecdsaOk(data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

/**
 * Parses `quoteBytes` and verifies its signatures and PCK chain at `now`. Throws AttestationFailure.
 * Collateral (TCB info, QE identity, CRLs) is not consulted here: see `verify.ts`.
 */
export function verifyQuoteSignatures(quoteBytes: Uint8Array, now: Date): VerifiedQuoteSignatures {
  const quote = parseQuote(quoteBytes);
  const { sig } = quote;
  const pck = verifyPckChain(sig.pckChainPem);
  if (!chainValidAt(pck.chain, now)) {
    throw new AttestationFailure('pck-certificate', 'a PCK chain certificate is expired or not yet valid');
  }
  const qeKey = createHash('sha256')
    .update(sig.qeReport.raw)
    .update(sig.qeReportSignature)
    .update(pck.chain.ders[0] as Buffer)
    .digest('hex');
  if (!qeReportCache.has(qeKey)) {
    if (!ecdsaOk(sig.qeReport.raw, pck.leafKey, sig.qeReportSignature)) {
      throw new AttestationFailure('qe-report-signature', 'QE report signature does not verify with the PCK key');
    }
    if (qeReportCache.size >= MAX_CACHE) qeReportCache.clear();
    qeReportCache.add(qeKey);
  }
  const binding = createHash('sha256').update(sig.attestKey).update(sig.qeAuthData).digest();
  const rd = sig.qeReport.reportData;
  if (!rd.subarray(0, 32).equals(binding) || rd.subarray(32).some((b) => b !== 0)) {
    throw new AttestationFailure('qe-report-binding', 'QE report data does not bind the attestation key');
  }
  if (!ecdsaOk(quote.signedRegion, attestationKey(sig.attestKey), sig.signature)) {
    throw new AttestationFailure('quote-signature', 'quote signature does not verify with the attestation key');
  }
  return { quote, pck };
}
