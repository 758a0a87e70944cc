/**
 * AMD CRLs (KDS `GET /vcek/v1/{product}/crl`): issued by the ARK, listing revoked ASK/ASVK
 * certificates. Upstream never checks them; this verifier does when a CRL is available.
 *
 * A CRL only speaks for certificates of its own issuer (RFC 5280 §6.3), so the ARK's CRL covers the
 * ASK and ASVK. VCEKs/VLEKs are issued by the ASK/ASVK (all with serial 0), so they are revoked by
 * revoking their issuer.
 */
import { constants, verify as cryptoVerify } from 'node:crypto';
import { children, decodeOid, decodeSmallInteger, DerError, expectTag, parseCrl, parseDer, TAG, type Crl } from '../common/der.js';
import { AttestationFailure } from '../types.js';
import { certificateNames, type ParsedCert } from './cert.js';

const OID_RSA_PSS = '1.2.840.113549.1.1.10';
const OID_SHA384_RSA = '1.2.840.113549.1.1.12';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';

export interface VerifiedCrl {
  crl: Crl;
  /** The issuer certificate whose key verified it. */
  issuer: ParsedCert;
}

/** RSASSA-PSS parameters (RFC 4055): only SHA-384 with MGF1-SHA-384 is accepted. Returns the salt length. */
function pssSaltLength(params: Buffer): number {
  const fields = children(expectTag(parseDer(params), TAG.SEQUENCE, 'RSASSA-PSS-params'));
  let hash: string | undefined;
  let mgfHash: string | undefined;
  let salt = 20;
  for (const f of fields) {
    const inner = children(f)[0];
    if (f.tag === 0xa0) hash = decodeOid(expectTag(children(expectTag(inner, TAG.SEQUENCE, 'hashAlgorithm'))[0], TAG.OID, 'hash').value);
    else if (f.tag === 0xa1) {
      const mgf = children(expectTag(inner, TAG.SEQUENCE, 'maskGenAlgorithm'));
      if (decodeOid(expectTag(mgf[0], TAG.OID, 'mgf').value) !== OID_MGF1) throw new DerError('unsupported MGF');
      mgfHash = decodeOid(expectTag(children(expectTag(mgf[1], TAG.SEQUENCE, 'mgf hash'))[0], TAG.OID, 'mgf hash').value);
    } else if (f.tag === 0xa2) salt = decodeSmallInteger(expectTag(inner, TAG.INTEGER, 'saltLength'));
    else if (f.tag !== 0xa3) throw new DerError('unexpected RSASSA-PSS parameter');
  }
  if (hash !== OID_SHA384 || mgfHash !== OID_SHA384) throw new DerError('CRL PSS parameters must use SHA-384');
  return salt;
}

/** Verifies the CRL's signature with `issuer`, its issuer name and its freshness at `now`. */
export function verifyCrl(
  der: Buffer,
  issuer: ParsedCert,
  now: Date,
  what = 'AMD CRL',
  options: { allowStale?: boolean } = {},
): VerifiedCrl {
  let crl: Crl;
  let ok: boolean;
  try {
    crl = parseCrl(der);
    const algorithm = children(expectTag(children(parseDer(der))[1], TAG.SEQUENCE, 'signatureAlgorithm'));
    const key = issuer.x509.publicKey;
    if (crl.signatureAlgorithm === OID_RSA_PSS) {
      const params = algorithm[1];
      if (params === undefined) throw new DerError('RSASSA-PSS without parameters');
      const saltLength = pssSaltLength(params.raw);
      ok = cryptoVerify('sha384', crl.tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, crl.signature);
    } else if (crl.signatureAlgorithm === OID_SHA384_RSA) {
      ok = cryptoVerify('sha384', crl.tbs, { key, padding: constants.RSA_PKCS1_PADDING }, crl.signature);
    } else {
      throw new DerError(`unsupported CRL signature algorithm ${crl.signatureAlgorithm}`);
    }
  } catch (e) {
    throw new AttestationFailure('crl', `${what} cannot be parsed or verified`, { cause: e });
  }
  if (!ok) throw new AttestationFailure('crl', `${what} signature does not verify with its issuer`);
  if (!crl.issuer.equals(certificateNames(issuer.der).subject)) {
    throw new AttestationFailure('crl', `${what} is not issued by the expected certificate`);
  }
  if (options.allowStale === true) return { crl, issuer };
  if (crl.thisUpdate.getTime() > now.getTime()) throw new AttestationFailure('crl', `${what} is not yet valid`);
  if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now.getTime()) {
    throw new AttestationFailure('crl', `${what} is stale (nextUpdate ${crl.nextUpdate.toISOString()}); refresh the collateral`);
  }
  return { crl, issuer };
}

/** Refuses `cert` when it was issued by the CRL's issuer and its serial is listed. */
export function assertNotRevoked(verified: VerifiedCrl, cert: ParsedCert, what: string): void {
  const names = certificateNames(cert.der);
  if (!names.issuer.equals(verified.crl.issuer)) return;
  if (verified.crl.revoked.has(names.serial)) throw new AttestationFailure('crl', `${what} is revoked`);
}
