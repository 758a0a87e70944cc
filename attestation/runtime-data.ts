/**
 * Runtime-data binding (kbs-protocol.md §6.3): RFC 8785 (JCS) canonical JSON and the digest the TEE
 * evidence must carry as its report data.
 *
 * Primary evidence binds `{"additional-evidence", "nonce", "tee-pubkey"}`; each additional device binds
 * `{"nonce", "tee-pubkey"}`. Upstream hashes `serde_json_canonicalizer` output with SHA-384 (SHA-512
 * for IBM SE) (`attestation-service/src/lib.rs` `parse_runtime_data`).
 */
import { createHash } from 'node:crypto';

/** Nesting limit of canonicalJson (serde_json's own recursion limit is 128). */
export const CANONICAL_JSON_MAX_DEPTH = 128;

export class CanonicalJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

/** True when `s` has no lone UTF-16 surrogate (so it has an exact UTF-8 encoding). */
export function isWellFormedString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

function serializeString(s: string): string {
  if (!isWellFormedString(s)) throw new CanonicalJsonError('string with a lone surrogate');
  // ECMAScript JSON.stringify string escaping is exactly RFC 8785 §3.2.2.2 for well-formed strings:
  // \" \\ \b \t \n \f \r, other C0 controls as \u00xx (lower-case hex), everything else verbatim.
  return JSON.stringify(s);
}

function serializeNumber(n: number): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError('non-finite number');
  // ECMAScript Number::toString, with -0 as 0 (RFC 8785 §3.2.2.3); JSON.stringify does both.
  return JSON.stringify(n);
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function serialize(value: unknown, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return serializeNumber(value);
    case 'string':
      return serializeString(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${typeof value} is not a JSON value`);
  }
  if (depth >= CANONICAL_JSON_MAX_DEPTH) throw new CanonicalJsonError('nesting too deep');
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!Object.hasOwn(value, i)) throw new CanonicalJsonError('sparse array');
      parts.push(serialize(value[i], depth + 1));
    }
    return `[${parts.join(',')}]`;
  }
  if (!isPlainObject(value)) throw new CanonicalJsonError('not a plain JSON object');
  const obj = value as Record<string, unknown>;
  // Members sorted by their names as arrays of UTF-16 code units (RFC 8785 §3.2.3): that is the
  // default order of Array.prototype.sort on strings.
  const keys = Object.keys(obj).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) throw new CanonicalJsonError('undefined member value');
    parts.push(`${serializeString(k)}:${serialize(v, depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * RFC 8785 JSON Canonicalization Scheme: members sorted by UTF-16 code units, no whitespace, ECMAScript
 * number and string serialization. Accepts JSON values only (null, booleans, finite numbers,
 * well-formed strings, dense arrays, plain objects); anything else throws CanonicalJsonError.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, 0);
}

export type RuntimeDataHash = 'sha384' | 'sha512';

/**
 * The runtime-data object the evidence of a TEE is bound to. Member order follows upstream's
 * `json!` construction (`kbs/src/attestation/backend.rs` `__attest`): `tee-pubkey`, `nonce`, then
 * `additional-evidence` for the primary evidence only. Canonicalisation sorts it anyway; the order
 * matters only for the `runtime_data_claims` in the token.
 */
export function runtimeDataObject(
  nonce: string,
  teePubKey: object,
  additionalEvidence: string | undefined,
): { [key: string]: unknown } {
  const rd: { [key: string]: unknown } = { 'tee-pubkey': teePubKey, nonce };
  if (additionalEvidence !== undefined) rd['additional-evidence'] = additionalEvidence;
  return rd;
}

/**
 * `hash(JCS({"additional-evidence", "nonce", "tee-pubkey"}))`, or `hash(JCS({"nonce", "tee-pubkey"}))`
 * for a device (additionalEvidence undefined). `teePubKey` is the already projected JWK (only the
 * members of the typed key). Throws CanonicalJsonError when the values are not canonicalisable.
 */
export function runtimeDataDigest(
  nonce: string,
  teePubKey: object,
  additionalEvidence: string | undefined,
  hash: RuntimeDataHash = 'sha384',
): Buffer {
  const text = canonicalJson(runtimeDataObject(nonce, teePubKey, additionalEvidence));
  return createHash(hash).update(Buffer.from(text, 'utf8')).digest();
}
