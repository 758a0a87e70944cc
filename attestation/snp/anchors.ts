/**
 * AMD trust anchors per generation: the ARK pinned by public key, and the ASK (VCEK issuer) and
 * ASVK (VLEK issuer) verified under it. The PEMs ship in `roots/` (see its README); they are read
 * once, checked against the pins, and the result is memoised only on success.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../policy/samples.js';
import { AttestationFailure } from '../types.js';
import { checkValidity, commonName, parseCert, type ParsedCert } from './cert.js';
import type { SnpGeneration } from './generation.js';

/** SHA-256 of each ARK's DER SubjectPublicKeyInfo (RSA-4096), computed from AMD's published ARKs. */
export const ARK_SPKI_SHA256: Readonly<Record<SnpGeneration, string>> = {
  Milan: '9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9',
  Genoa: '429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831',
  Turin: '4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08',
};

export interface AmdAnchors {
  generation: SnpGeneration;
  ark: ParsedCert;
  ask: ParsedCert;
  asvk: ParsedCert;
}

export function rootsDir(): string {
  return join(packageRoot(), 'attestation', 'snp', 'roots');
}

export function spkiSha256(cert: ParsedCert): string {
  return createHash('sha256').update(cert.x509.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

function pemBlocks(text: string): Buffer[] {
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;
  return [...text.matchAll(re)].map((m) => Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64'));
}

/** True when `issuer` signed `cert` and names it as issuer (RSA-PSS/SHA-384 for AMD's CAs). */
export function signedBy(cert: ParsedCert, issuer: ParsedCert): boolean {
  try {
    return cert.x509.checkIssued(issuer.x509) && cert.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

/** Loads and checks one generation's anchors from PEM text (ASK, ARK, ASVK). Throws Error. */
export function anchorsFromPem(generation: SnpGeneration, pem: string): AmdAnchors {
  const ders = pemBlocks(pem);
  if (ders.length !== 3) throw new Error(`${generation} anchors: expected 3 certificates (ASK, ARK, ASVK)`);
  const [ask, ark, asvk] = ders.map((d, i) => parseCert(d, `${generation} anchor ${i}`)) as [ParsedCert, ParsedCert, ParsedCert];
  if (spkiSha256(ark) !== ARK_SPKI_SHA256[generation]) throw new Error(`${generation} ARK does not match its pinned key`);
  if (commonName(ark.x509) !== `ARK-${generation}`) throw new Error(`${generation} ARK has an unexpected CN`);
  if (!signedBy(ark, ark)) throw new Error(`${generation} ARK is not self-signed`);
  if (!signedBy(ask, ark)) throw new Error(`${generation} ASK is not signed by the ARK`);
  if (!signedBy(asvk, ark)) throw new Error(`${generation} ASVK is not signed by the ARK`);
  return { generation, ark, ask, asvk };
}

const loaded = new Map<SnpGeneration, AmdAnchors>();

/** The built-in anchors of a generation (memoised after the first successful load). */
export function builtinAnchors(generation: SnpGeneration): AmdAnchors {
  const cached = loaded.get(generation);
  if (cached !== undefined) return cached;
  let anchors: AmdAnchors;
  try {
    const file = join(rootsDir(), `${generation.toLowerCase()}_ask_ark_asvk.pem`);
    anchors = anchorsFromPem(generation, readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AttestationFailure('certificate-chain', `built-in AMD ${generation} trust anchors are unusable`, { cause: e });
  }
  loaded.set(generation, anchors);
  return anchors;
}

/** Checks the validity dates of the ARK and the intermediate used (ASK or ASVK) at `now`. */
export function checkAnchorDates(anchors: AmdAnchors, intermediate: ParsedCert, now: Date): void {
  checkValidity(anchors.ark, `ARK-${anchors.generation}`, now);
  checkValidity(intermediate, intermediate === anchors.asvk ? `ASVK (${anchors.generation})` : `ASK (${anchors.generation})`, now);
}
