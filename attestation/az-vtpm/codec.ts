/**
 * Strict decoders for the encodings the Azure vTPM evidence uses, as serde reads them upstream:
 * hex strings (`serde_with::hex::Hex`, either case), URL-safe base64 (`Base64<UrlSafe>`, padding
 * optional, canonical trailing bits), JSON arrays of bytes (`Vec<u8>`), and the bincode form of
 * the `az-cvm-vtpm` `Quote` (u64-LE length prefixes). Each returns undefined on invalid input; the
 * callers turn that into an `evidence-format` failure naming the field.
 */
import type { TpmQuote } from '../tpm/quote.js';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

export function decodeHex(v: unknown, maxBytes: number): Buffer | undefined {
  if (typeof v !== 'string' || v.length > maxBytes * 2 || !HEX.test(v)) return undefined;
  return Buffer.from(v, 'hex');
}

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

export function decodeBase64Url(v: unknown, maxBytes: number): Buffer | undefined {
  if (typeof v !== 'string' || v.length > Math.ceil((maxBytes * 4) / 3) + 2 || !B64URL.test(v)) return undefined;
  const body = v.replace(/=+$/, '');
  const padded = v.length !== body.length;
  if (body.length % 4 === 1 || (padded && v.length % 4 !== 0)) return undefined;
  const bytes = Buffer.from(body, 'base64url');
  // Canonical only: re-encoding must give the same characters (no stray trailing bits).
  return bytes.toString('base64url') === body ? bytes : undefined;
}

/** A JSON array of integers 0..255. */
export function decodeByteArray(v: unknown, maxBytes: number): Buffer | undefined {
  if (!Array.isArray(v) || v.length > maxBytes) return undefined;
  const out = Buffer.allocUnsafe(v.length);
  for (let i = 0; i < v.length; i++) {
    const b: unknown = v[i];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) return undefined;
    out[i] = b;
  }
  return out;
}

/** Bounds on the parts of a TPM quote (a TPMS_ATTEST is a few hundred bytes; RSA-4096 at most). */
export const QUOTE_LIMITS = { signature: 512, message: 1024, pcrs: 32, pcrSize: 32 } as const;

/**
 * The `az-cvm-vtpm` `Quote` as bincode 1 serializes it (`quote.bin`): `signature: Vec<u8>`,
 * `message: Vec<u8>`, `pcrs: Vec<[u8; 32]>` (the quote.bin captures predate variable-size PCRs),
 * each length a u64 little-endian; nothing may follow.
 */
export function decodeBincodeQuote(bytes: Uint8Array): TpmQuote | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const len = (max: number): number | undefined => {
    if (pos + 8 > buf.length) return undefined;
    const n = buf.readBigUInt64LE(pos);
    pos += 8;
    return n <= BigInt(max) ? Number(n) : undefined;
  };
  const take = (max: number): Buffer | undefined => {
    const n = len(max);
    if (n === undefined || pos + n > buf.length) return undefined;
    const out = Buffer.from(buf.subarray(pos, pos + n));
    pos += n;
    return out;
  };
  const signature = take(QUOTE_LIMITS.signature);
  const message = signature && take(QUOTE_LIMITS.message);
  const count = message && len(QUOTE_LIMITS.pcrs);
  if (signature === undefined || message === undefined || count === undefined) return undefined;
  const pcrs: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (pos + QUOTE_LIMITS.pcrSize > buf.length) return undefined;
    pcrs.push(Buffer.from(buf.subarray(pos, pos + QUOTE_LIMITS.pcrSize)));
    pos += QUOTE_LIMITS.pcrSize;
  }
  return pos === buf.length ? { signature, message, pcrs } : undefined;
}
