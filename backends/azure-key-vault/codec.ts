/**
 * Resource bytes ⇄ Key Vault secret value (a string, at most AKV_MAX_VALUE_BYTES UTF-8 octets).
 *
 * Written by this KBS:
 * - printable UTF-8 text (no control characters but TAB, LF, CR) is stored as itself with
 *   `contentType = "text/plain; charset=utf-8"`, so other tools (CSI driver, az CLI) see the
 *   same text;
 * - anything else is stored base64 (standard alphabet, padded) with
 *   `contentType = "application/octet-stream; base64"` (BINARY_CONTENT_TYPE).
 *
 * Read: a secret whose contentType is the base64 marker (case and spaces around `;` ignored) is
 * base64-decoded strictly; every other secret (plain text, PEM, JSON written by other tools) is
 * served as the UTF-8 bytes of its value.
 */
import { BackendError } from '../types.js';

/** Key Vault's limit on a secret value, in UTF-8 octets (25 KB). */
export const AKV_MAX_VALUE_BYTES = 25 * 1024;
/** Largest binary value that fits once base64-encoded. */
export const AKV_MAX_BINARY_BYTES = Math.floor(AKV_MAX_VALUE_BYTES / 4) * 3;

export const BINARY_CONTENT_TYPE = 'application/octet-stream; base64';
export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';

const BINARY_MARKER = /^\s*application\/octet-stream\s*;\s*base64\s*$/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface EncodedValue {
  value: string;
  contentType: string;
}

function printableText(bytes: Uint8Array): string | null {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return null;
  }
  return CONTROL.test(text) ? null : text;
}

/** Encodes a value for setSecret; TOO_LARGE (before any request) when it cannot fit. */
export function encodeValue(bytes: Uint8Array, name: string): EncodedValue {
  if (bytes.byteLength > AKV_MAX_VALUE_BYTES) {
    throw new BackendError(
      'TOO_LARGE',
      `cannot write resource ${name}: value is ${bytes.byteLength} bytes, above Azure Key Vault's limit of ${AKV_MAX_VALUE_BYTES} bytes per secret`,
    );
  }
  const text = printableText(bytes);
  if (text !== null) return { value: text, contentType: TEXT_CONTENT_TYPE };
  if (bytes.byteLength > AKV_MAX_BINARY_BYTES) {
    throw new BackendError(
      'TOO_LARGE',
      `cannot write resource ${name}: binary value is ${bytes.byteLength} bytes; base64-encoded it exceeds Azure Key Vault's limit of ${AKV_MAX_VALUE_BYTES} bytes per secret (binary values up to ${AKV_MAX_BINARY_BYTES} bytes fit)`,
    );
  }
  return { value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), contentType: BINARY_CONTENT_TYPE };
}

export function isBinaryContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && BINARY_MARKER.test(contentType);
}

/** The bytes a secret stands for; IO when a base64-marked value is not base64. */
export function decodeValue(value: string | undefined, contentType: string | undefined, name: string): Uint8Array {
  const v = value ?? '';
  if (!isBinaryContentType(contentType)) return new Uint8Array(Buffer.from(v, 'utf8'));
  const compact = v.replace(/[\r\n]/g, '');
  if (!BASE64.test(compact)) {
    throw new BackendError('IO', `secret for ${name} is marked "${BINARY_CONTENT_TYPE}" but its value is not valid base64`);
  }
  return new Uint8Array(Buffer.from(compact, 'base64'));
}

/** Size in bytes of the decoded value, without decoding. */
export function decodedSize(value: string | undefined, contentType: string | undefined): number {
  const v = value ?? '';
  if (!isBinaryContentType(contentType)) return Buffer.byteLength(v, 'utf8');
  const compact = v.replace(/[\r\n]/g, '');
  const pad = compact.endsWith('==') ? 2 : compact.endsWith('=') ? 1 : 0;
  return (compact.length / 4) * 3 - pad;
}
