/**
 * The TEE public key as the KBS protocol carries it (kbs-types `TeePubKey`, a JSON object internally
 * tagged by `kty`):
 *
 *   EC:  {"kty":"EC","crv":…,"alg":…,"x":…,"y":…}
 *   RSA: {"kty":"RSA","alg":…,"n":…,"e":…}
 *
 * Upstream deserializes the submitted JWK into that typed enum and re-serializes it, so members it
 * does not know are silently dropped. `parseTeePubKey` does the same projection (protocol doc §6.3).
 *
 * What is checked here is the *shape*: every member a string, the key material (`x`, `y`, `n`, `e`)
 * non-empty base64url without padding, and all of it bounded. `crv` and `alg` are deliberately not
 * restricted to the supported algorithms: upstream accepts e.g. a P-384 key at attestation time and
 * only fails when a resource is encrypted for it (conformance item 40), which `server/jwe.ts` does.
 * `kty` values other than `EC` and `RSA` (including `AKP`, which needs upstream's
 * `pqc-experimental` build) are rejected.
 */

export type TeePubKey =
  | { kty: 'EC'; crv: string; alg: string; x: string; y: string }
  | { kty: 'RSA'; alg: string; n: string; e: string };

export class TeeKeyError extends Error {
  readonly code = 'TEE_KEY_INVALID' as const;

  constructor(message: string) {
    super(message);
    this.name = 'TeeKeyError';
  }
}

/** Longest accepted `alg` / `crv` string (longest registered JOSE names are ~20 characters). */
const MAX_NAME_CHARS = 128;
/** Largest accepted RSA modulus: 16384 bits. */
export const MAX_RSA_MODULUS_BYTES = 16384 / 8;
/** Largest accepted RSA public exponent encoding (upstream's RSA crate caps e at 2^33 - 1). */
const MAX_RSA_EXPONENT_BYTES = 8;
/** Largest accepted EC coordinate (P-521 uses 66; leaves room for unsupported curves to fail later). */
const MAX_EC_COORDINATE_BYTES = 132;

const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Strict base64url-without-padding decoding, as Rust's `URL_SAFE_NO_PAD` engine does it: only the
 * URL-safe alphabet, no `=`, no whitespace, no impossible length, and no non-zero trailing bits
 * (so every byte string has exactly one accepted encoding). Returns `undefined` on any violation.
 */
export function decodeBase64UrlStrict(s: string): Buffer | undefined {
  if (!B64URL_RE.test(s) || s.length % 4 === 1) return undefined;
  const bytes = Buffer.from(s, 'base64url');
  if (bytes.toString('base64url') !== s) return undefined;
  return bytes;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function member(obj: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, name) ? obj[name] : undefined;
}

function nameMember(obj: Record<string, unknown>, name: 'alg' | 'crv'): string {
  const v = member(obj, name);
  if (typeof v !== 'string') throw new TeeKeyError(`tee-pubkey: \`${name}\` must be a string`);
  if (v.length === 0 || v.length > MAX_NAME_CHARS) {
    throw new TeeKeyError(`tee-pubkey: \`${name}\` must be 1 to ${MAX_NAME_CHARS} characters`);
  }
  return v;
}

function keyMaterialMember(obj: Record<string, unknown>, name: 'x' | 'y' | 'n' | 'e', maxBytes: number): string {
  const v = member(obj, name);
  if (typeof v !== 'string') throw new TeeKeyError(`tee-pubkey: \`${name}\` must be a string`);
  // Length check first so an oversized value is never decoded.
  if (v.length === 0 || v.length > Math.ceil((maxBytes * 4) / 3)) {
    throw new TeeKeyError(`tee-pubkey: \`${name}\` must encode 1 to ${maxBytes} bytes`);
  }
  if (decodeBase64UrlStrict(v) === undefined) {
    throw new TeeKeyError(`tee-pubkey: \`${name}\` must be base64url without padding`);
  }
  return v;
}

/**
 * Validate a `tee-pubkey` JSON value and project it onto the members kbs-types knows, in
 * kbs-types' serialization order (`kty` first, then the variant's fields).
 */
export function parseTeePubKey(v: unknown): TeePubKey {
  if (!isPlainObject(v)) throw new TeeKeyError('tee-pubkey must be a JSON object');
  const kty = member(v, 'kty');
  if (typeof kty !== 'string') throw new TeeKeyError('tee-pubkey: `kty` must be a string');
  switch (kty) {
    case 'EC':
      return {
        kty: 'EC',
        crv: nameMember(v, 'crv'),
        alg: nameMember(v, 'alg'),
        x: keyMaterialMember(v, 'x', MAX_EC_COORDINATE_BYTES),
        y: keyMaterialMember(v, 'y', MAX_EC_COORDINATE_BYTES),
      };
    case 'RSA':
      return {
        kty: 'RSA',
        alg: nameMember(v, 'alg'),
        n: keyMaterialMember(v, 'n', MAX_RSA_MODULUS_BYTES),
        e: keyMaterialMember(v, 'e', MAX_RSA_EXPONENT_BYTES),
      };
    default:
      throw new TeeKeyError('tee-pubkey: unsupported `kty` (expected "EC" or "RSA")');
  }
}
