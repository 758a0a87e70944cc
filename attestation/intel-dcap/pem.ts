/**
 * Strict PEM certificate-chain reading for DCAP: the quote's certification data (type 5) and the
 * PCS issuer-chain headers. Only CERTIFICATE blocks with canonical base64 are accepted; between and
 * after blocks only whitespace and NUL padding may appear.
 */
import { AttestationFailure } from '../types.js';

const BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END CERTIFICATE-----/y;
const FILLER = /[\s\0]*/y;
const MAX_CERTS = 8;

/** Decodes a PEM chain to DER certificates, in order. Throws AttestationFailure(step) when malformed. */
export function parsePemChain(text: Buffer | string, step: string): Buffer[] {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  const out: Buffer[] = [];
  let pos = 0;
  FILLER.lastIndex = 0;
  pos = FILLER.exec(s) === null ? 0 : FILLER.lastIndex;
  while (pos < s.length) {
    BLOCK.lastIndex = pos;
    const m = BLOCK.exec(s);
    if (m === null) throw new AttestationFailure(step, 'malformed PEM certificate chain');
    const b64 = (m[1] as string).replace(/[\r\n]/g, '');
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64 || der.length === 0) {
      throw new AttestationFailure(step, 'PEM certificate is not canonical base64');
    }
    out.push(der);
    if (out.length > MAX_CERTS) throw new AttestationFailure(step, 'too many certificates in PEM chain');
    FILLER.lastIndex = BLOCK.lastIndex;
    FILLER.exec(s);
    pos = FILLER.lastIndex;
  }
  return out;
}
