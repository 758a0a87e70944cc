/**
 * A small, strict DER reader for what Node's `X509Certificate` does not expose: certificate
 * extensions (AMD VCEK TCB/hwID OIDs, the Intel SGX PCK extension, CRL distribution points) and CRLs
 * (RFC 5280 §5). Every read is bounds-checked; malformed input throws DerError, never returns garbage.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** Universal tags used by the callers. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const;

/** One TLV. `tag` is the full identifier octet (class and constructed bits included). */
export interface Tlv {
  readonly tag: number;
  /** The whole TLV (header and contents). */
  readonly raw: Buffer;
  /** The contents octets. */
  readonly value: Buffer;
}

const MAX_DEPTH = 32;

/** Reads the TLV at `offset`; returns it and the offset just after it. Only single-octet tags. */
export function readTlv(buf: Buffer, offset = 0): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated DER header');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-octet DER tags are not supported');
  let lengthByte = buf[offset + 1] as number;
  let pos = offset + 2;
  let length: number;
  if (lengthByte < 0x80) {
    length = lengthByte;
  } else {
    lengthByte &= 0x7f;
    if (lengthByte === 0) throw new DerError('indefinite DER length');
    if (lengthByte > 4) throw new DerError('DER length too large');
    if (pos + lengthByte > buf.length) throw new DerError('truncated DER length');
    length = 0;
    for (let i = 0; i < lengthByte; i++) length = length * 256 + (buf[pos + i] as number);
    if (length < 0x80 || (lengthByte > 1 && (buf[pos] as number) === 0)) throw new DerError('non-minimal DER length');
    pos += lengthByte;
  }
  const end = pos + length;
  if (end > buf.length) throw new DerError('DER value runs past the end of its container');
  return { tlv: { tag, raw: buf.subarray(offset, end), value: buf.subarray(pos, end) }, next: end };
}

/** Parses `buf` as exactly one TLV (no trailing bytes). */
export function parseDer(buf: Buffer): Tlv {
  const { tlv, next } = readTlv(buf, 0);
  if (next !== buf.length) throw new DerError('trailing bytes after DER value');
  return tlv;
}

/** The child TLVs of a constructed TLV. */
export function children(tlv: Tlv): Tlv[] {
  if ((tlv.tag & 0x20) === 0) throw new DerError('expected a constructed DER value');
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < tlv.value.length) {
    const { tlv: child, next } = readTlv(tlv.value, pos);
    out.push(child);
    pos = next;
  }
  return out;
}

/** Asserts the tag of `tlv` and returns it. */
export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`missing ${what}`);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** Decodes an OBJECT IDENTIFIER's contents to dotted form. */
export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new DerError('empty OID');
  const parts: number[] = [];
  let n = 0;
  let started = false;
  for (const b of value) {
    if (!started && b === 0x80) throw new DerError('non-minimal OID arc');
    started = true;
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if ((b & 0x80) === 0) {
      parts.push(n);
      n = 0;
      started = false;
    }
  }
  if (started) throw new DerError('truncated OID');
  const first = parts[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...parts.slice(1)].join('.');
}

/** Decodes an INTEGER's contents (two's complement) to a bigint. */
export function decodeInteger(value: Buffer): bigint {
  if (value.length === 0) throw new DerError('empty INTEGER');
  let n = 0n;
  for (const b of value) n = (n << 8n) | BigInt(b);
  if (((value[0] as number) & 0x80) !== 0) n -= 1n << BigInt(value.length * 8);
  return n;
}

/** Decodes a small non-negative INTEGER TLV to a number (throws when out of the safe range). */
export function decodeSmallInteger(tlv: Tlv): number {
  if (tlv.tag !== TAG.INTEGER && tlv.tag !== TAG.ENUMERATED) throw new DerError('expected an INTEGER');
  const n = decodeInteger(tlv.value);
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new DerError('INTEGER out of range');
  return Number(n);
}

/** Decodes a UTCTime or GeneralizedTime TLV (the `Z` forms RFC 5280 requires). */
export function decodeTime(tlv: Tlv): Date {
  const s = tlv.value.toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (m === null) throw new DerError('malformed UTCTime');
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tlv.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (m === null) throw new DerError('malformed GeneralizedTime');
    year = Number(m[1]);
  } else {
    throw new DerError('expected a time value');
  }
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime())) throw new DerError('invalid time value');
  return d;
}

/** Hex of the TLV contents of an INTEGER serial number, lower case, leading zero octets removed. */
export function serialHex(value: Buffer): string {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  return value.subarray(i).toString('hex');
}

export interface Extension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's contents (the DER of the extension's own value). */
  readonly value: Buffer;
}

/**
 * The extensions of an X.509 certificate (DER), keyed by dotted OID. A repeated OID throws
 * (RFC 5280 §4.2). A certificate without extensions gives an empty map.
 */
export function certificateExtensions(certDer: Buffer): Map<string, Extension> {
  const cert = expectTag(parseDer(certDer), TAG.SEQUENCE, 'Certificate');
  const tbs = expectTag(children(cert)[0], TAG.SEQUENCE, 'TBSCertificate');
  const out = new Map<string, Extension>();
  const explicit = children(tbs).find((t) => t.tag === 0xa3);
  if (explicit === undefined) return out;
  const list = expectTag(children(explicit)[0], TAG.SEQUENCE, 'Extensions');
  for (const ext of children(list)) {
    const parts = children(expectTag(ext, TAG.SEQUENCE, 'Extension'));
    const oid = decodeOid(expectTag(parts[0], TAG.OID, 'extnID').value);
    let critical = false;
    let valueTlv = parts[1];
    if (valueTlv?.tag === TAG.BOOLEAN) {
      critical = valueTlv.value.length === 1 && valueTlv.value[0] !== 0;
      valueTlv = parts[2];
    }
    const value = expectTag(valueTlv, TAG.OCTET_STRING, 'extnValue').value;
    if (out.has(oid)) throw new DerError(`certificate repeats extension ${oid}`);
    out.set(oid, { critical, value });
  }
  return out;
}

/** The URIs of a certificate's CRL distribution points extension (2.5.29.31), if any. */
export function crlDistributionPoints(certDer: Buffer): string[] {
  const ext = certificateExtensions(certDer).get('2.5.29.31');
  if (ext === undefined) return [];
  const uris: string[] = [];
  const walk = (tlv: Tlv, depth: number): void => {
    if (depth > MAX_DEPTH) throw new DerError('DER nesting too deep');
    if (tlv.tag === 0x86) {
      uris.push(tlv.value.toString('latin1'));
      return;
    }
    if ((tlv.tag & 0x20) !== 0) for (const c of children(tlv)) walk(c, depth + 1);
  };
  walk(parseDer(ext.value), 0);
  return uris;
}

/** A parsed CRL (RFC 5280 §5.1). The signature is not checked here: see `tbs` and `signature`. */
export interface Crl {
  /** The DER of TBSCertList: the signed bytes. */
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  /** The signature BIT STRING's bits (DER ECDSA signature or RSA signature bytes). */
  readonly signature: Buffer;
  /** The DER of the issuer Name. */
  readonly issuer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers as lower-case hex (see `serialHex`). */
  readonly revoked: ReadonlySet<string>;
}

export function parseCrl(der: Buffer): Crl {
  const top = children(expectTag(parseDer(der), TAG.SEQUENCE, 'CertificateList'));
  const tbsTlv = expectTag(top[0], TAG.SEQUENCE, 'TBSCertList');
  const algorithm = children(expectTag(top[1], TAG.SEQUENCE, 'signatureAlgorithm'));
  const signatureAlgorithm = decodeOid(expectTag(algorithm[0], TAG.OID, 'signature algorithm').value);
  const sigBits = expectTag(top[2], TAG.BIT_STRING, 'signatureValue').value;
  if (sigBits.length < 1 || sigBits[0] !== 0) throw new DerError('CRL signature has unused bits');
  const fields = children(tbsTlv);
  let i = 0;
  if (fields[i]?.tag === TAG.INTEGER) i++; // version
  expectTag(fields[i++], TAG.SEQUENCE, 'CRL signature'); // signature AlgorithmIdentifier
  const issuer = expectTag(fields[i++], TAG.SEQUENCE, 'CRL issuer').raw;
  const thisUpdate = decodeTime(fields[i++] ?? throwMissing('thisUpdate'));
  let nextUpdate: Date | undefined;
  const maybeNext = fields[i];
  if (maybeNext !== undefined && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = decodeTime(maybeNext);
    i++;
  }
  const revoked = new Set<string>();
  const list = fields[i];
  if (list !== undefined && list.tag === TAG.SEQUENCE) {
    for (const entry of children(list)) {
      const serial = expectTag(children(expectTag(entry, TAG.SEQUENCE, 'revokedCertificate'))[0], TAG.INTEGER, 'serial');
      revoked.add(serialHex(serial.value));
    }
  }
  return { tbs: tbsTlv.raw, signatureAlgorithm, signature: sigBits.subarray(1), issuer, thisUpdate, nextUpdate, revoked };
}

function throwMissing(what: string): never {
  throw new DerError(`missing ${what}`);
}
