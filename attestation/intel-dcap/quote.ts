/**
 * Intel DCAP quote parser (ECDSA P-256 attestation key): v3 SGX, v4 TDX and v5 TDX (TDX 1.0 and 1.5
 * bodies). Every length is bounds-checked; bytes after the declared signature data are ignored, as
 * upstream does (real captures carry zero padding). The parse is purely structural: signatures are
 * checked in `quote-verify.ts`.
 */
import { AttestationFailure } from '../types.js';

export const HEADER_SIZE = 48;
export const SGX_REPORT_SIZE = 384;
export const TDX10_BODY_SIZE = 584;
export const TDX15_BODY_SIZE = 648;
export const TEE_TYPE_SGX = 0x00000000;
export const TEE_TYPE_TDX = 0x00000081;
const ATT_KEY_TYPE_ECDSA_P256 = 2;
const QE_REPORT_CERT_DATA_TYPE = 6;
const PCK_CHAIN_CERT_DATA_TYPE = 5;
/** Largest quote accepted (real quotes are about 5 KiB). */
export const MAX_QUOTE_SIZE = 64 * 1024;

export interface QuoteHeader {
  readonly version: number;
  readonly attKeyType: number;
  readonly teeType: number;
  /** The 48 raw header bytes. */
  readonly raw: Buffer;
}

/** The SGX report body (also the QE report layout), as raw slices. */
export interface SgxReportBody {
  readonly raw: Buffer;
  readonly cpuSvn: Buffer;
  readonly miscSelect: Buffer;
  readonly attributes: Buffer;
  readonly mrEnclave: Buffer;
  readonly mrSigner: Buffer;
  readonly configId: Buffer;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly reportData: Buffer;
}

/** The TD report body (TDX 1.0; TDX 1.5 adds teeTcbSvn2 and mrServiceTd). */
export interface TdxReportBody {
  readonly raw: Buffer;
  readonly teeTcbSvn: Buffer;
  readonly mrSeam: Buffer;
  readonly mrSignerSeam: Buffer;
  readonly seamAttributes: Buffer;
  readonly tdAttributes: Buffer;
  readonly xfam: Buffer;
  readonly mrTd: Buffer;
  readonly mrConfigId: Buffer;
  readonly mrOwner: Buffer;
  readonly mrOwnerConfig: Buffer;
  readonly rtmrs: readonly [Buffer, Buffer, Buffer, Buffer];
  readonly reportData: Buffer;
  readonly teeTcbSvn2?: Buffer;
  readonly mrServiceTd?: Buffer;
}

export interface QuoteSignatureData {
  /** r‖s, 64 bytes, big-endian. */
  readonly signature: Buffer;
  /** x‖y of the attestation key, 64 bytes. */
  readonly attestKey: Buffer;
  readonly qeReport: SgxReportBody;
  /** r‖s of the PCK signature over the QE report. */
  readonly qeReportSignature: Buffer;
  readonly qeAuthData: Buffer;
  /** The certification data (type 5): a PEM chain, leaf first. */
  readonly pckChainPem: Buffer;
}

interface QuoteCommon {
  readonly header: QuoteHeader;
  /** The bytes the attestation key signs: header and body. */
  readonly signedRegion: Buffer;
  readonly sig: QuoteSignatureData;
  /** Length of the quote proper (signed region, length field, signature data); the rest is padding. */
  readonly length: number;
}

export interface SgxQuote extends QuoteCommon {
  readonly kind: 'sgx';
  readonly body: SgxReportBody;
}

export interface TdxQuote extends QuoteCommon {
  readonly kind: 'tdx';
  readonly body: TdxReportBody;
  /** v5 only: the body type (2 = TDX 1.0, 3 = TDX 1.5) and the 4 raw size bytes. */
  readonly v5?: { readonly type: number; readonly size: Buffer };
}

export type Quote = SgxQuote | TdxQuote;

function fail(message: string): never {
  throw new AttestationFailure('quote-format', message);
}

function slice(buf: Buffer, offset: number, length: number, what: string): Buffer {
  if (offset < 0 || length < 0 || offset + length > buf.length) fail(`quote too short for ${what}`);
  return buf.subarray(offset, offset + length);
}

export function parseSgxReportBody(raw: Buffer): SgxReportBody {
  if (raw.length !== SGX_REPORT_SIZE) fail('SGX report body must be 384 bytes');
  return {
    raw,
    cpuSvn: raw.subarray(0, 16),
    miscSelect: raw.subarray(16, 20),
    attributes: raw.subarray(48, 64),
    mrEnclave: raw.subarray(64, 96),
    mrSigner: raw.subarray(128, 160),
    configId: raw.subarray(192, 256),
    isvProdId: raw.readUInt16LE(256),
    isvSvn: raw.readUInt16LE(258),
    reportData: raw.subarray(320, 384),
  };
}

function parseTdxBody(raw: Buffer): TdxReportBody {
  const f = (o: number, n: number): Buffer => raw.subarray(o, o + n);
  const body: TdxReportBody = {
    raw,
    teeTcbSvn: f(0, 16),
    mrSeam: f(16, 48),
    mrSignerSeam: f(64, 48),
    seamAttributes: f(112, 8),
    tdAttributes: f(120, 8),
    xfam: f(128, 8),
    mrTd: f(136, 48),
    mrConfigId: f(184, 48),
    mrOwner: f(232, 48),
    mrOwnerConfig: f(280, 48),
    rtmrs: [f(328, 48), f(376, 48), f(424, 48), f(472, 48)],
    reportData: f(520, 64),
  };
  if (raw.length === TDX15_BODY_SIZE) return { ...body, teeTcbSvn2: f(584, 16), mrServiceTd: f(600, 48) };
  return body;
}

/** Parses the signature data (`data` is exactly sig_data_len bytes). */
function parseSignatureData(data: Buffer, v3: boolean): QuoteSignatureData {
  let p = 0;
  const signature = slice(data, p, 64, 'quote signature');
  const attestKey = slice(data, p + 64, 64, 'attestation key');
  p += 128;
  if (!v3) {
    const type = slice(data, p, 2, 'certification data type').readUInt16LE(0);
    if (type !== QE_REPORT_CERT_DATA_TYPE) fail(`expected certification data type 6, got ${type}`);
    const size = slice(data, p + 2, 4, 'certification data size').readUInt32LE(0);
    p += 6;
    if (size !== data.length - p) fail('QE report certification data size does not match the signature data');
  }
  const qeReport = parseSgxReportBody(Buffer.from(slice(data, p, SGX_REPORT_SIZE, 'QE report')));
  const qeReportSignature = slice(data, p + SGX_REPORT_SIZE, 64, 'QE report signature');
  p += SGX_REPORT_SIZE + 64;
  const authLen = slice(data, p, 2, 'QE authentication data length').readUInt16LE(0);
  const qeAuthData = slice(data, p + 2, authLen, 'QE authentication data');
  p += 2 + authLen;
  const certType = slice(data, p, 2, 'PCK certification data type').readUInt16LE(0);
  if (certType !== PCK_CHAIN_CERT_DATA_TYPE) fail(`expected PCK certification data type 5, got ${certType}`);
  const certLen = slice(data, p + 2, 4, 'PCK certification data size').readUInt32LE(0);
  p += 6;
  const pckChainPem = slice(data, p, certLen, 'PCK certificate chain');
  if (p + certLen !== data.length) fail('PCK certification data does not end the signature data');
  return { signature, attestKey, qeReport, qeReportSignature, qeAuthData, pckChainPem };
}

function parseSigAt(quote: Buffer, offset: number, v3: boolean): { sig: QuoteSignatureData; length: number } {
  const sigLen = slice(quote, offset, 4, 'signature data length').readUInt32LE(0);
  const data = slice(quote, offset + 4, sigLen, 'signature data');
  return { sig: parseSignatureData(data, v3), length: offset + 4 + sigLen };
}

/** Parses a DCAP quote (SGX v3, TDX v4/v5). Throws AttestationFailure('quote-format') when malformed. */
export function parseQuote(input: Uint8Array): Quote {
  const quote = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (quote.length > MAX_QUOTE_SIZE) fail('quote is too large');
  const raw = slice(quote, 0, HEADER_SIZE, 'header');
  const header: QuoteHeader = {
    version: raw.readUInt16LE(0),
    attKeyType: raw.readUInt16LE(2),
    teeType: raw.readUInt32LE(4),
    raw,
  };
  if (header.attKeyType !== ATT_KEY_TYPE_ECDSA_P256) fail(`unsupported attestation key type ${header.attKeyType}`);
  if (header.version === 3 && header.teeType === TEE_TYPE_SGX) {
    const body = parseSgxReportBody(slice(quote, HEADER_SIZE, SGX_REPORT_SIZE, 'SGX report body'));
    const signedEnd = HEADER_SIZE + SGX_REPORT_SIZE;
    const { sig, length } = parseSigAt(quote, signedEnd, true);
    return { kind: 'sgx', header, body, sig, length, signedRegion: quote.subarray(0, signedEnd) };
  }
  if (header.version === 4 && header.teeType === TEE_TYPE_TDX) {
    const body = parseTdxBody(slice(quote, HEADER_SIZE, TDX10_BODY_SIZE, 'TD report body'));
    const signedEnd = HEADER_SIZE + TDX10_BODY_SIZE;
    const { sig, length } = parseSigAt(quote, signedEnd, false);
    return { kind: 'tdx', header, body, sig, length, signedRegion: quote.subarray(0, signedEnd) };
  }
  if (header.version === 5 && header.teeType === TEE_TYPE_TDX) {
    const type = slice(quote, HEADER_SIZE, 2, 'v5 body type').readUInt16LE(0);
    const size = slice(quote, HEADER_SIZE + 2, 4, 'v5 body size');
    const bodySize = type === 2 ? TDX10_BODY_SIZE : type === 3 ? TDX15_BODY_SIZE : fail(`unsupported v5 body type ${type}`);
    if (size.readUInt32LE(0) !== bodySize) fail('v5 body size does not match its type');
    const body = parseTdxBody(slice(quote, HEADER_SIZE + 6, bodySize, 'TD report body'));
    const signedEnd = HEADER_SIZE + 6 + bodySize;
    const { sig, length } = parseSigAt(quote, signedEnd, false);
    return { kind: 'tdx', header, body, sig, length, signedRegion: quote.subarray(0, signedEnd), v5: { type, size } };
  }
  fail(`unsupported quote version ${header.version} / TEE type 0x${header.teeType.toString(16)}`);
}
