/**
 * Decoding of a KBS JWE resource response (kbs-types `Response`) on the guest side: strict
 * base64url fields, the protected header read with serde's rules, and its re-serialization, which
 * is what the Rust client uses as the AES-256-GCM AAD (`ProtectedHeader::generate_aad`).
 */
import { JsonReader, mapEntries, writeString, writeValue, type JsonValue } from './serde-json.js';
import { TeeKeyPairError } from './tee-keypair-error.js';

// ---------------------------------------------------------------------------------------------
// base64url (Rust `URL_SAFE_NO_PAD`: no padding, no whitespace, no non-zero trailing bits)

const B64URL_RE = /^[A-Za-z0-9_-]*$/;

export function decodeB64u(s: string, field: string): Buffer {
  if (B64URL_RE.test(s) && s.length % 4 !== 1) {
    const bytes = Buffer.from(s, 'base64url');
    if (bytes.toString('base64url') === s) return bytes;
  }
  throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE \`${field}\` is not base64url without padding`);
}

// ---------------------------------------------------------------------------------------------
// Protected header (kbs-types `ProtectedHeader`)

export interface ProtectedHeader {
  readonly alg: string;
  readonly enc: string;
  /** Every other member, deduplicated and sorted. */
  readonly other: ReadonlyArray<readonly [string, JsonValue]>;
}

/** kbs-types `ProtectedHeader` deserialization (from the decoded `protected` bytes). */
function parseProtectedHeader(bytes: Uint8Array): ProtectedHeader {
  let root: JsonValue;
  try {
    root = JsonReader.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch (cause) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header is not valid JSON', { cause });
  }
  if (root.t !== 'obj') throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header is not a JSON object');
  let alg: string | undefined;
  let enc: string | undefined;
  const rest: Array<readonly [string, JsonValue]> = [];
  for (const [k, v] of root.entries) {
    if (k === 'alg' || k === 'enc') {
      if ((k === 'alg' ? alg : enc) !== undefined) {
        throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE protected header: duplicate field \`${k}\``);
      }
      if (v.t !== 'str') throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE protected header: \`${k}\` is not a string`);
      if (k === 'alg') alg = v.v;
      else enc = v.v;
    } else {
      rest.push([k, v]);
    }
  }
  if (alg === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header: missing field `alg`');
  if (enc === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE protected header: missing field `enc`');
  return { alg, enc, other: mapEntries(rest) };
}

/** `serde_json::to_string(&ProtectedHeader)`: alg, enc, then the other members (flattened). */
export function serializeProtectedHeader(h: ProtectedHeader): string {
  const parts = [`"alg":${writeString(h.alg)}`, `"enc":${writeString(h.enc)}`];
  for (const [k, v] of h.other) parts.push(`${writeString(k)}:${writeValue(v)}`);
  return `{${parts.join(',')}}`;
}

/**
 * The GCM AAD the Rust client computes for a `protected` value: base64url(re-serialized header).
 * A server is interoperable only if this equals the `protected` string it sent.
 */
export function clientAadFor(protectedB64: string): string {
  const header = parseProtectedHeader(decodeB64u(protectedB64, 'protected'));
  return Buffer.from(serializeProtectedHeader(header), 'utf8').toString('base64url');
}

// ---------------------------------------------------------------------------------------------
// Response (kbs-types `Response`)

export interface DecodedResponse {
  readonly header: ProtectedHeader;
  readonly encryptedKey: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

const RESPONSE_FIELDS = ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'] as const;

/** A raw body is read with the same duplicate-field rule as serde's derived struct visitor. */
function responseFromRaw(raw: string | Uint8Array): Record<string, unknown> {
  let root: JsonValue;
  try {
    const text = typeof raw === 'string' ? raw : new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    root = JsonReader.parse(text);
  } catch (cause) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not valid JSON', { cause });
  }
  if (root.t !== 'obj') throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not a JSON object');
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of root.entries) {
    if (!(RESPONSE_FIELDS as readonly string[]).includes(k) && k !== 'aad') continue; // ignored
    if (Object.prototype.hasOwnProperty.call(out, k)) {
      throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: duplicate field \`${k}\``);
    }
    out[k] = v.t === 'str' ? v.v : v;
  }
  return out;
}

export function decodeResponse(response: unknown): DecodedResponse {
  const obj = typeof response === 'string' || response instanceof Uint8Array ? responseFromRaw(response) : response;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response is not a JSON object');
  }
  const rec = obj as Record<string, unknown>;
  const field = (name: string): string => {
    const v = Object.prototype.hasOwnProperty.call(rec, name) ? rec[name] : undefined;
    if (v === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: missing field \`${name}\``);
    if (typeof v !== 'string') throw new TeeKeyPairError('RESPONSE_MALFORMED', `JWE response: \`${name}\` is not a string`);
    return v;
  };
  const header = parseProtectedHeader(decodeB64u(field('protected'), 'protected'));
  const encryptedKey = decodeB64u(field('encrypted_key'), 'encrypted_key');
  // `aad`, when present, must be a string; it is not used for decryption.
  if (Object.prototype.hasOwnProperty.call(rec, 'aad') && typeof rec['aad'] !== 'string') {
    throw new TeeKeyPairError('RESPONSE_MALFORMED', 'JWE response: `aad` is not a string');
  }
  const iv = decodeB64u(field('iv'), 'iv');
  const ciphertext = decodeB64u(field('ciphertext'), 'ciphertext');
  const tag = decodeB64u(field('tag'), 'tag');
  return { header, encryptedKey, iv, ciphertext, tag };
}
