/**
 * JWE encryption of resource payloads for the attested TEE key (protocol doc §8; upstream
 * `kbs/src/jwe/mod.rs` `jwe`).
 *
 * Output is the flattened-JSON JWE that kbs-types' `Response` serializes to:
 * `{"protected","encrypted_key","iv","ciphertext","tag"}`, every field base64url without padding,
 * no `aad` member, `enc` always `A256GCM`.
 *
 * Key management by the key's `kty`/`crv`/`alg`:
 *   RSA  + RSA-OAEP-256    → RSAES-OAEP, SHA-256 and MGF1-SHA-256, empty label
 *   RSA  + RSA1_5          → RSAES-PKCS1-v1_5 (deprecated; reported through `onDeprecated`)
 *   EC P-256 / P-521 + ECDH-ES+A256KW → ephemeral-static ECDH, Concat KDF (SHA-256), AES-256-KW
 * Anything else is a `JweError` (the HTTP layer answers 401 JweError).
 *
 * The protected header is emitted compact with `alg` first, `enc` second and the remaining members
 * sorted, `epk` members sorted (`crv, kty, x, y`). The Rust client does not use the received
 * `protected` string for the GCM AAD: it decodes and re-serializes the header, and this is the one
 * form that survives that round trip byte-for-byte (protocol doc §8.4).
 *
 * Only Node's `crypto` is used (no `jose`: it orders `epk` members differently).
 */
import {
  constants,
  createCipheriv,
  createECDH,
  createHash,
  createPublicKey,
  publicEncrypt,
  type KeyObject,
} from 'node:crypto';
import { randomBytesPooled } from './random.js';
import { decodeBase64UrlStrict, type TeePubKey } from './tee-pubkey.js';

export interface JweResponse {
  protected: string;
  encrypted_key: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export type JweErrorCode = 'JWE_UNSUPPORTED' | 'JWE_INVALID_KEY';

/** Encryption failure. Messages name algorithms and curves, never key material. */
export class JweError extends Error {
  readonly code: JweErrorCode;

  constructor(code: JweErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JweError';
    this.code = code;
  }
}

export interface JweOptions {
  /** Called when a deprecated algorithm (RSA1_5) is used, with a human-readable message. */
  onDeprecated?: (message: string) => void;
}

const ENC_A256GCM = 'A256GCM';
const ALG_RSA_OAEP_256 = 'RSA-OAEP-256';
const ALG_RSA1_5 = 'RSA1_5';
const ALG_ECDH_ES_A256KW = 'ECDH-ES+A256KW';

const CEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** RFC 3394 §2.2.3.1 default initial value. */
const AES_KW_DEFAULT_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

/** Smallest RSA modulus we encrypt to (upstream has no floor; a 2048-bit minimum is policy). */
const RSA_MIN_BITS = 2048;
/** Largest RSA modulus: upstream's `rsa` crate (`RsaPublicKey::new`) refuses more than 4096 bits. */
const RSA_MAX_BITS = 4096;
/** Largest public exponent upstream's `rsa` crate accepts. */
const RSA_MAX_EXPONENT = (1n << 33n) - 1n;

interface CurveInfo {
  /** OpenSSL curve name for `createECDH`. */
  readonly openssl: string;
  /** Fixed coordinate length in bytes. */
  readonly coordBytes: number;
  /** Field prime; every coordinate must be below it. */
  readonly p: bigint;
}

const CURVES: Readonly<Record<string, CurveInfo>> = {
  'P-256': {
    openssl: 'prime256v1',
    coordBytes: 32,
    p: BigInt('0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff'),
  },
  'P-521': {
    openssl: 'secp521r1',
    coordBytes: 66,
    p: (1n << 521n) - 1n,
  },
};

/** Quote an attacker-supplied algorithm/curve name for an error message, bounded and escaped. */
function quoteName(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`);
}

/**
 * Concat KDF of NIST SP 800-56A / RFC 7518 §4.6.2 with SHA-256:
 * `Hash(counter ‖ Z ‖ len(AlgorithmID) ‖ AlgorithmID ‖ len(PartyUInfo) ‖ PartyUInfo ‖
 * len(PartyVInfo) ‖ PartyVInfo ‖ SuppPubInfo=keydatalen-in-bits)`, counter from 1, output
 * truncated to `keyBits / 8` bytes. KBS uses empty PartyUInfo/PartyVInfo and
 * AlgorithmID = the JWE `alg` (`ECDH-ES+A256KW`, 256 bits).
 */
export function concatKdfSha256(
  z: Uint8Array,
  algorithmId: string,
  keyBits: number,
  partyUInfo: Uint8Array = new Uint8Array(0),
  partyVInfo: Uint8Array = new Uint8Array(0),
): Buffer {
  if (!Number.isInteger(keyBits) || keyBits <= 0 || keyBits % 8 !== 0 || keyBits > 0xffffffff) {
    throw new RangeError('concat KDF: key length must be a positive multiple of 8 bits');
  }
  const alg = Buffer.from(algorithmId, 'utf8');
  const otherInfo = Buffer.concat([
    u32be(alg.length),
    alg,
    u32be(partyUInfo.length),
    partyUInfo,
    u32be(partyVInfo.length),
    partyVInfo,
    u32be(keyBits),
  ]);
  const outBytes = keyBits / 8;
  const blocks: Buffer[] = [];
  const rounds = Math.ceil(outBytes / 32);
  for (let counter = 1; counter <= rounds; counter++) {
    blocks.push(createHash('sha256').update(u32be(counter)).update(z).update(otherInfo).digest());
  }
  return Buffer.concat(blocks).subarray(0, outBytes);
}

/** AES-256 key wrap (RFC 3394, default IV). */
function aes256KeyWrap(kek: Uint8Array, keyData: Uint8Array): Buffer {
  const cipher = createCipheriv('id-aes256-wrap', kek, AES_KW_DEFAULT_IV);
  return Buffer.concat([cipher.update(keyData), cipher.final()]);
}

/** AES-256-GCM over `plaintext` with the ASCII of the encoded protected header as AAD. */
function sealContent(protectedJson: string, cek: Buffer, plaintext: Uint8Array, encryptedKey: Uint8Array): JweResponse {
  const protectedB64 = Buffer.from(protectedJson, 'utf8').toString('base64url');
  const iv = randomBytesPooled(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(protectedB64, 'ascii'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const tag = cipher.getAuthTag();
  // Member order is kbs-types' `Response` order (without the absent `aad`).
  return {
    protected: protectedB64,
    encrypted_key: b64u(encryptedKey),
    iv: b64u(iv),
    ciphertext: b64u(ciphertext),
    tag: b64u(tag),
  };
}

function decodeKeyMember(value: string, what: string): Buffer {
  const bytes = typeof value === 'string' ? decodeBase64UrlStrict(value) : undefined;
  if (bytes === undefined) {
    throw new JweError('JWE_INVALID_KEY', `invalid TEE public key: ${what} is not base64url without padding`);
  }
  return bytes;
}

function rsaPublicKey(n: string, e: string): KeyObject {
  const nBytes = decodeKeyMember(n, 'RSA modulus');
  const eBytes = decodeKeyMember(e, 'RSA exponent');
  const nInt = bytesToBigInt(nBytes);
  const eInt = bytesToBigInt(eBytes);
  const bits = nInt === 0n ? 0 : nInt.toString(2).length;
  if (bits < RSA_MIN_BITS) {
    throw new JweError('JWE_UNSUPPORTED', `RSA keys smaller than ${RSA_MIN_BITS} bits are not supported`);
  }
  if (bits > RSA_MAX_BITS) {
    throw new JweError('JWE_UNSUPPORTED', `RSA keys larger than ${RSA_MAX_BITS} bits are not supported`);
  }
  if ((nInt & 1n) === 0n) throw new JweError('JWE_INVALID_KEY', 'invalid TEE public key: RSA modulus is even');
  if (eInt < 3n || (eInt & 1n) === 0n || eInt > RSA_MAX_EXPONENT || eInt >= nInt) {
    throw new JweError('JWE_INVALID_KEY', 'invalid TEE public key: unsupported RSA public exponent');
  }
  // Re-encode minimally (a leading zero octet is harmless upstream, where it is read as a BigUint).
  const hexOf = (v: bigint): string => {
    const h = v.toString(16);
    return h.length % 2 === 0 ? h : `0${h}`;
  };
  try {
    return createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(hexOf(nInt), 'hex').toString('base64url'),
        e: Buffer.from(hexOf(eInt), 'hex').toString('base64url'),
      },
      format: 'jwk',
    });
  } catch (cause) {
    throw new JweError('JWE_INVALID_KEY', 'invalid TEE public key: RSA key rejected', { cause });
  }
}

function encryptRsa(
  alg: typeof ALG_RSA_OAEP_256 | typeof ALG_RSA1_5,
  n: string,
  e: string,
  plaintext: Uint8Array,
): JweResponse {
  const key = rsaPublicKey(n, e);
  const cek = randomBytesPooled(CEK_BYTES);
  try {
    const encryptedKey =
      alg === ALG_RSA_OAEP_256
        ? publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek)
        : publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, cek);
    // kbs-types `ProtectedHeader { alg, enc }` with no other members.
    const protectedJson = JSON.stringify({ alg, enc: ENC_A256GCM });
    return sealContent(protectedJson, cek, plaintext, encryptedKey);
  } finally {
    cek.fill(0);
  }
}

/** The ECDH-ES inputs of an EC TEE key: checked coordinates and the uncompressed peer point. */
interface EcdhEsTarget {
  readonly crv: string;
  readonly curve: CurveInfo;
  /** `0x04 ‖ x ‖ y`. */
  readonly peer: Buffer;
}

function ecdhEsTarget(crv: string, curve: CurveInfo, x: string, y: string): EcdhEsTarget {
  const xBytes = decodeKeyMember(x, 'EC x coordinate');
  const yBytes = decodeKeyMember(y, 'EC y coordinate');
  if (xBytes.length !== curve.coordBytes || yBytes.length !== curve.coordBytes) {
    throw new JweError(
      'JWE_INVALID_KEY',
      `invalid TEE public key: ${crv} coordinates must be exactly ${curve.coordBytes} bytes`,
    );
  }
  if (bytesToBigInt(xBytes) >= curve.p || bytesToBigInt(yBytes) >= curve.p) {
    throw new JweError('JWE_INVALID_KEY', `invalid TEE public key: coordinate out of range for ${crv}`);
  }
  return { crv, curve, peer: Buffer.concat([Buffer.from([0x04]), xBytes, yBytes]) };
}

/** The result of one ephemeral-static key agreement. */
export interface EcdhAgreement {
  /** The ephemeral public key, uncompressed (`0x04 ‖ x ‖ y`). */
  epk: Buffer;
  /** The shared secret (the x-coordinate, padded to the field size). The caller zeroes it. */
  z: Buffer;
}

/**
 * Where the key agreement of ECDH-ES runs: on the calling thread (`ecdhAgreeSync`), or elsewhere
 * (the crypto worker, server/crypto-pool.ts). Resolves `undefined` when the peer point is not on
 * the curve.
 */
export type EcdhAgree = (opensslCurve: string, peer: Buffer) => Promise<EcdhAgreement | undefined>;

/**
 * A fresh ephemeral key pair on `opensslCurve` and its shared secret with `peer`; `undefined` when
 * OpenSSL refuses the peer point (not on the curve).
 */
export function ecdhAgreeSync(opensslCurve: string, peer: Uint8Array): EcdhAgreement | undefined {
  const ephemeral = createECDH(opensslCurve);
  const epk = ephemeral.generateKeys();
  try {
    // OpenSSL decodes the uncompressed point and refuses it unless it lies on the curve.
    return { epk, z: ephemeral.computeSecret(peer) };
  } catch {
    return undefined;
  }
}

/** Key wrap and content encryption once the key agreement is done; zeroes `z`. */
function sealEcdhEs(target: EcdhEsTarget, agreement: EcdhAgreement | undefined, plaintext: Uint8Array): JweResponse {
  const { crv, curve } = target;
  if (agreement === undefined) throw new JweError('JWE_INVALID_KEY', `invalid TEE public key: not a point on ${crv}`);
  const { epk, z } = agreement;
  if (z.length !== curve.coordBytes || epk.length !== 1 + 2 * curve.coordBytes) {
    // computeSecret pads the shared x-coordinate to the field size; anything else is a bug.
    z.fill(0);
    throw new JweError('JWE_INVALID_KEY', `invalid TEE public key: unexpected ${crv} shared secret length`);
  }
  const cek = randomBytesPooled(CEK_BYTES);
  const kek = concatKdfSha256(z, ALG_ECDH_ES_A256KW, 256);
  z.fill(0);
  try {
    const encryptedKey = aes256KeyWrap(kek, cek);
    const epkX = epk.subarray(1, 1 + curve.coordBytes).toString('base64url');
    const epkY = epk.subarray(1 + curve.coordBytes).toString('base64url');
    // alg, enc, then the other members sorted; epk members sorted (crv, kty, x, y).
    const protectedJson = JSON.stringify({
      alg: ALG_ECDH_ES_A256KW,
      enc: ENC_A256GCM,
      epk: { crv, kty: 'EC', x: epkX, y: epkY },
    });
    return sealContent(protectedJson, cek, plaintext, encryptedKey);
  } finally {
    kek.fill(0);
    cek.fill(0);
  }
}

/** The key management of a TEE key: RSA (encrypted on the calling thread) or ECDH-ES. */
type KeyManagement = { rsa: typeof ALG_RSA_OAEP_256 | typeof ALG_RSA1_5; n: string; e: string } | { ec: EcdhEsTarget };

function keyManagement(key: TeePubKey, options: JweOptions): KeyManagement {
  if (key.kty === 'RSA') {
    if (key.alg === ALG_RSA_OAEP_256) return { rsa: ALG_RSA_OAEP_256, n: key.n, e: key.e };
    if (key.alg === ALG_RSA1_5) {
      options.onDeprecated?.(
        'JWE key management algorithm RSA1_5 (RSAES-PKCS1-v1_5) is deprecated and has known weaknesses; ' +
          'the TEE should use RSA-OAEP-256 or ECDH-ES+A256KW',
      );
      return { rsa: ALG_RSA1_5, n: key.n, e: key.e };
    }
    throw new JweError('JWE_UNSUPPORTED', `RSA key algorithm ${quoteName(key.alg)} is not supported`);
  }
  if (key.kty === 'EC') {
    const curve = Object.prototype.hasOwnProperty.call(CURVES, key.crv) ? CURVES[key.crv] : undefined;
    if (curve === undefined || key.alg !== ALG_ECDH_ES_A256KW) {
      throw new JweError(
        'JWE_UNSUPPORTED',
        `curve ${quoteName(key.crv)} and algorithm ${quoteName(key.alg)} is not supported`,
      );
    }
    return { ec: ecdhEsTarget(key.crv, curve, key.x, key.y) };
  }
  const kty: unknown = (key as { kty?: unknown }).kty;
  throw new JweError(
    'JWE_UNSUPPORTED',
    `key type ${typeof kty === 'string' ? quoteName(kty) : 'of the TEE public key'} is not supported`,
  );
}

/**
 * Encrypt `plaintext` for the TEE key as a flattened-JSON JWE (`enc` A256GCM), entirely on the
 * calling thread. Throws `JweError` for unsupported algorithms/curves and invalid keys.
 */
export function encryptForTeeKey(key: TeePubKey, plaintext: Uint8Array, options: JweOptions = {}): JweResponse {
  const km = keyManagement(key, options);
  if ('rsa' in km) return encryptRsa(km.rsa, km.n, km.e, plaintext);
  return sealEcdhEs(km.ec, ecdhAgreeSync(km.ec.curve.openssl, km.ec.peer), plaintext);
}

/**
 * `encryptForTeeKey` with the ECDH key agreement (the one costly step: a fresh key pair and a
 * scalar multiplication) done by `agree`, e.g. off the event loop. The JWE is the same.
 */
export async function encryptForTeeKeyWith(
  agree: EcdhAgree,
  key: TeePubKey,
  plaintext: Uint8Array,
  options: JweOptions = {},
): Promise<JweResponse> {
  const km = keyManagement(key, options);
  if ('rsa' in km) return encryptRsa(km.rsa, km.n, km.e, plaintext);
  return sealEcdhEs(km.ec, await agree(km.ec.curve.openssl, km.ec.peer), plaintext);
}
