/**
 * Certificate chains to the pinned Intel SGX Root CA: the PCK chain from a quote and the issuer
 * chains of collateral (TCB signing, PCK CRL issuer). Signatures are verified once per distinct
 * chain (cached by the DER bytes; failures are never cached); validity dates are checked per call
 * against the caller's `now`, because they depend on it.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { AttestationFailure } from '../types.js';
import { ecPoint, INTEL_ROOT_PUBLIC_KEY } from './root.js';

export interface VerifiedChain {
  /** Leaf first, root last. */
  readonly certs: readonly X509Certificate[];
  readonly ders: readonly Buffer[];
  /** The public keys, in chain order (all loadable: checked while verifying). */
  readonly keys: readonly KeyObject[];
  /** The latest notBefore and the earliest notAfter of the chain: its common validity window. */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const MAX_CACHE = 256;
const cache = new Map<string, VerifiedChain>();

function cacheKey(ders: readonly Buffer[]): string {
  const h = createHash('sha256');
  for (const d of ders) h.update(createHash('sha256').update(d).digest());
  return h.digest('hex');
}

function parseCert(der: Buffer, step: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new AttestationFailure(step, 'certificate cannot be parsed');
  }
}

/** The CN of a certificate subject (Node's multi-line subject string), or undefined. */
export function commonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

function verifySignatures(ders: readonly Buffer[], step: string): VerifiedChain {
  try {
    return verifyChecked(ders, step);
  } catch (e) {
    // OpenSSL may accept a certificate's outer DER yet fail on its key or signature fields.
    if (e instanceof AttestationFailure) throw e;
    throw new AttestationFailure(step, 'certificate chain cannot be verified');
  }
}

function verifyChecked(ders: readonly Buffer[], step: string): VerifiedChain {
  if (ders.length < 2) throw new AttestationFailure(step, 'certificate chain is too short');
  const certs = ders.map((d) => parseCert(d, step));
  const keys = certs.map((c) => c.publicKey);
  const root = certs[certs.length - 1] as X509Certificate;
  const point = ecPoint(root);
  if (point === undefined || !point.equals(INTEL_ROOT_PUBLIC_KEY)) {
    throw new AttestationFailure(step, 'certificate chain does not end at the pinned Intel SGX Root CA key');
  }
  if (!root.verify(root.publicKey)) throw new AttestationFailure(step, 'Intel root certificate is not self-signed');
  for (let i = 0; i < certs.length - 1; i++) {
    const cert = certs[i] as X509Certificate;
    const issuer = certs[i + 1] as X509Certificate;
    if (!issuer.ca) throw new AttestationFailure(step, 'certificate issuer is not a CA');
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new AttestationFailure(step, `certificate ${i} is not signed by the next certificate in the chain`);
    }
  }
  let notBefore = new Date(certs[0]!.validFrom);
  let notAfter = new Date(certs[0]!.validTo);
  for (const c of certs) {
    const nb = new Date(c.validFrom);
    const na = new Date(c.validTo);
    if (nb > notBefore) notBefore = nb;
    if (na < notAfter) notAfter = na;
  }
  return { certs, ders, keys, notBefore, notAfter };
}

/** Verifies every signature of `ders` (leaf first) up to the pinned root. Cached by the bytes. */
export function verifyChain(ders: readonly Buffer[], step: string): VerifiedChain {
  const key = cacheKey(ders);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const chain = verifySignatures(ders, step);
  if (cache.size >= MAX_CACHE) cache.delete(cache.keys().next().value as string);
  cache.set(key, chain);
  return chain;
}

/** True when every certificate of the chain is valid at `now`. */
export function chainValidAt(chain: VerifiedChain, now: Date): boolean {
  return chain.notBefore.getTime() <= now.getTime() && now.getTime() <= chain.notAfter.getTime();
}

/** All certificates' notBefore values, for the issue-date claims. */
export function chainIssueDates(chain: VerifiedChain): Date[] {
  return chain.certs.map((c) => new Date(c.validFrom));
}
