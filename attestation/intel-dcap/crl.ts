/**
 * Intel CRLs (DER): the PCK CRL (issued by the PCK Platform/Processor CA) and the Root CA CRL.
 * Each is verified with the key of the CA that issued the certificate being checked, so a CRL of a
 * different CA is refused rather than silently ignored.
 */
import { createHash, verify, type X509Certificate } from 'node:crypto';
import { children, decodeInteger, decodeOid, DerError, parseCrl, parseDer, readTlv, TAG, type Crl } from '../common/der.js';
import { AttestationFailure } from '../types.js';

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const CRL_NUMBER = '2.5.29.20';

export interface VerifiedCrl {
  readonly crl: Crl;
  /** The CRL Number extension, 0 when absent. */
  readonly number: number;
}

const cache = new Map<string, VerifiedCrl>();

/** Reads the CRL Number extension from the TBSCertList (0 when absent or out of range). */
function crlNumber(tbs: Buffer): number {
  const fields = children(parseDer(tbs));
  const ext = fields.find((f) => f.tag === 0xa0);
  if (ext === undefined) return 0;
  const list = children(ext)[0];
  if (list === undefined || list.tag !== TAG.SEQUENCE) throw new DerError('malformed CRL extensions');
  for (const e of children(list)) {
    const parts = children(e);
    if (parts[0]?.tag !== TAG.OID || decodeOid(parts[0].value) !== CRL_NUMBER) continue;
    const octets = parts[parts.length - 1];
    if (octets?.tag !== TAG.OCTET_STRING) throw new DerError('malformed CRL number');
    const n = decodeInteger(readTlv(octets.value).tlv.value);
    return n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : 0;
  }
  return 0;
}

/** Parses `der` and verifies its signature with `issuer`'s key. Cached by bytes and issuer. */
export function verifyCrl(der: Buffer, issuer: X509Certificate, what: string): VerifiedCrl {
  const key = createHash('sha256').update(der).update(issuer.raw).digest('hex');
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  let crl: Crl;
  let number: number;
  try {
    crl = parseCrl(der);
    number = crlNumber(crl.tbs);
  } catch (e) {
    if (e instanceof DerError) throw new AttestationFailure('collateral-crl', `${what} cannot be parsed: ${e.message}`);
    throw e;
  }
  if (crl.signatureAlgorithm !== ECDSA_WITH_SHA256) throw new AttestationFailure('collateral-crl', `${what} has an unexpected signature algorithm`);
  let ok = false;
  try {
    ok = verify('sha256', crl.tbs, { key: issuer.publicKey, dsaEncoding: 'der' }, crl.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new AttestationFailure('collateral-crl', `${what} is not signed by the expected CA`);
  const result = { crl, number };
  if (cache.size >= 64) cache.clear();
  cache.set(key, result);
  return result;
}

/** True when `cert`'s serial number is listed in `crl`. */
export function isRevoked(crl: Crl, cert: X509Certificate): boolean {
  const serial = cert.serialNumber.toLowerCase().replace(/^(00)+(?=..)/, '');
  return crl.revoked.has(serial);
}
