/**
 * The X.509 pieces the SNP verifier needs beyond Node's `X509Certificate`: the validity window
 * (read from the DER, so dates are exact), the AMD VEK extensions (TCB SPLs, hwID) and the CN.
 */
import { X509Certificate } from 'node:crypto';
import { AttestationFailure } from '../types.js';
import {
  certificateExtensions,
  children,
  DerError,
  decodeSmallInteger,
  decodeTime,
  expectTag,
  parseDer,
  serialHex,
  TAG,
  type Extension,
  type Tlv,
} from '../common/der.js';

/** AMD VEK extension OIDs (1.3.6.1.4.1.3704.1.*). */
export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSPL: '1.3.6.1.4.1.3704.1.3.1',
  teeSPL: '1.3.6.1.4.1.3704.1.3.2',
  snpSPL: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSPL: '1.3.6.1.4.1.3704.1.3.8',
  fmcSPL: '1.3.6.1.4.1.3704.1.3.9',
  hwID: '1.3.6.1.4.1.3704.1.4',
  cspID: '1.3.6.1.4.1.3704.1.5',
} as const;

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** A parsed certificate, kept with its DER. */
export interface ParsedCert {
  der: Buffer;
  x509: X509Certificate;
  validity: Validity;
}

/** Reads TBSCertificate.validity from a certificate's DER. */
export function certificateValidity(der: Buffer): Validity {
  const cert = expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const tbs = children(expectTag(children(cert)[0], TAG.SEQUENCE, 'TBSCertificate'));
  const start = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const validity = children(expectTag(tbs[start + 3], TAG.SEQUENCE, 'Validity'));
  if (validity.length !== 2) throw new DerError('Validity must have two times');
  return { notBefore: decodeTime(validity[0] as Tlv), notAfter: decodeTime(validity[1] as Tlv) };
}

/** Parses a DER certificate; failures are AttestationFailure(step). */
export function parseCert(der: Buffer, what: string, step = 'certificate-chain'): ParsedCert {
  try {
    const x509 = new X509Certificate(der);
    if (!x509.raw.equals(der)) throw new DerError('trailing bytes after the certificate');
    return { der: Buffer.from(der), x509, validity: certificateValidity(der) };
  } catch (e) {
    if (e instanceof AttestationFailure) throw e;
    throw new AttestationFailure(step, `${what} is not a valid X.509 certificate`, { cause: e });
  }
}

/** Checks `now` against the validity window (both ends inclusive, as RFC 5280 §4.1.2.5). */
export function checkValidity(cert: ParsedCert, what: string, now: Date): void {
  const t = now.getTime();
  if (Number.isNaN(t)) throw new AttestationFailure('certificate-validity', 'invalid verification time');
  if (t < cert.validity.notBefore.getTime()) {
    throw new AttestationFailure('certificate-validity', `${what} is not valid before ${cert.validity.notBefore.toISOString()}`);
  }
  if (t > cert.validity.notAfter.getTime()) {
    throw new AttestationFailure('certificate-validity', `${what} expired at ${cert.validity.notAfter.toISOString()}`);
  }
}

/** The subject CN, when there is exactly one. */
export function commonName(cert: X509Certificate): string | undefined {
  const cns = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
  return cns.length === 1 ? (cns[0] as string).slice(3) : undefined;
}

/** The AMD VEK extensions as upstream reads them. */
export interface VekExtensions {
  blSPL: number;
  teeSPL: number;
  snpSPL: number;
  ucodeSPL: number;
  /** Present on Turin VEKs. */
  fmcSPL: number | undefined;
  /** The 64-byte hwID (VCEK only; absent on VLEKs). */
  hwId: Buffer | undefined;
}

function splValue(ext: Extension | undefined, name: string): number {
  if (ext === undefined) throw new DerError(`missing ${name} extension`);
  const n = decodeSmallInteger(parseDer(ext.value));
  if (n > 0xff) throw new DerError(`${name} does not fit a byte`);
  return n;
}

/**
 * hwID: 64 raw bytes (the legacy encoding) or a DER OCTET STRING holding 64 bytes, as upstream's
 * `get_oid_octets::<64>`.
 */
export function decodeHwId(value: Buffer): Buffer {
  if (value.length === 64) return Buffer.from(value);
  const tlv = expectTag(parseDer(value), TAG.OCTET_STRING, 'hwID');
  if (tlv.value.length !== 64) throw new DerError('hwID must be 64 bytes');
  return Buffer.from(tlv.value);
}

/** Reads the SPL and hwID extensions of a VCEK/VLEK (DER). Throws DerError when malformed. */
export function vekExtensions(der: Buffer): VekExtensions {
  const exts = certificateExtensions(der);
  const fmc = exts.get(AMD_OID.fmcSPL);
  const hw = exts.get(AMD_OID.hwID);
  return {
    blSPL: splValue(exts.get(AMD_OID.blSPL), 'blSPL'),
    teeSPL: splValue(exts.get(AMD_OID.teeSPL), 'teeSPL'),
    snpSPL: splValue(exts.get(AMD_OID.snpSPL), 'snpSPL'),
    ucodeSPL: splValue(exts.get(AMD_OID.ucodeSPL), 'ucodeSPL'),
    fmcSPL: fmc === undefined ? undefined : splValue(fmc, 'fmcSPL'),
    hwId: hw === undefined ? undefined : decodeHwId(hw.value),
  };
}

/** Issuer and subject Name DER and the serial number (hex, as `serialHex`) of a certificate. */
export function certificateNames(der: Buffer): { serial: string; issuer: Buffer; subject: Buffer } {
  const cert = expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate');
  const tbs = children(expectTag(children(cert)[0], TAG.SEQUENCE, 'TBSCertificate'));
  const start = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expectTag(tbs[start], TAG.INTEGER, 'serialNumber');
  return {
    serial: serialHex(serial.value),
    issuer: expectTag(tbs[start + 2], TAG.SEQUENCE, 'issuer').raw,
    subject: expectTag(tbs[start + 4], TAG.SEQUENCE, 'subject').raw,
  };
}
