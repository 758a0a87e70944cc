/**
 * The guest side of the KBS JWE exchange: the TEE key pair whose public half is sent as
 * `tee-pubkey` during attestation, and the decryption of resource responses.
 *
 * It behaves like guest-components' `TeeKeyPair` (`attestation-agent/kbs_protocol/src/keypair.rs`):
 *   - key types `ECDH-ES+A256KW-P256` (default), `ECDH-ES+A256KW-P521`, `RSA-OAEP-256` (2048 bits);
 *   - `publicJwk()` is `export_pubkey`: EC `{kty, crv, alg: "ECDH-ES+A256KW", x, y}` with
 *     fixed-length coordinates, RSA `{kty, alg: "RSA-OAEP-256", n, e}` (minimal big-endian);
 *   - `decrypt()` is `decrypt_response`: every binary field is base64url without padding (padding
 *     and non-canonical encodings rejected), the CEK is unwrapped according to the header's `alg`
 *     (`RSA1_5` | `RSA-OAEP-256` | `ECDH-ES+A256KW` with `epk.crv` equal to the key's curve), and the
 *     AES-256-GCM AAD is computed from the RE-SERIALIZED protected header (kbs-types
 *     `ProtectedHeader::generate_aad`), not from the received string. The re-serialization is
 *     serde_json's: compact, `alg`, `enc`, then the other members in `serde_json::Map` order
 *     (sorted by key, the default build without `preserve_order`), recursively.
 *
 * Only Node's `crypto` is used. This module is independent of the server's JWE code on purpose, so
 * that tests exercise the server against a separate implementation of the client's algorithm.
 *
 * The pieces live in their own modules: `serde-json.ts` (serde_json-compatible JSON for the AAD),
 * `jwe-response.ts` (response and protected-header decoding), `cek-unwrap.ts` (RSA / ECDH-ES key
 * unwrapping) and `tee-keypair-error.ts` (the error type, re-exported here).
 */
import {
  createDecipheriv,
  createECDH,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import type { TeePubKey } from '../../server/tee-pubkey.js';
import {
  ALG_ECDH_ES_A256KW,
  ALG_RSA_OAEP_256,
  unwrapCek,
  type EcCurve,
  type EcCurveName,
  type KeyState,
} from './cek-unwrap.js';
import { decodeResponse, serializeProtectedHeader, type ProtectedHeader } from './jwe-response.js';
import { TeeKeyPairError } from './tee-keypair-error.js';

export { TeeKeyPairError, type TeeKeyPairErrorCode } from './tee-keypair-error.js';
export { clientAadFor } from './jwe-response.js';

export type TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256' | 'ECDH-ES+A256KW-P521' | 'RSA-OAEP-256';

const RSA_BITS = 2048;

const EC_CURVES: Readonly<Record<EcCurveName, EcCurve>> = {
  'P-256': { name: 'P-256', openssl: 'prime256v1', coordBytes: 32 },
  'P-521': { name: 'P-521', openssl: 'secp521r1', coordBytes: 66 },
};

/** Node's `namedCurve` → JOSE curve name. */
const CURVE_BY_OPENSSL: Readonly<Record<string, EcCurveName>> = {
  prime256v1: 'P-256',
  secp521r1: 'P-521',
};

function isTeeKeyAlgorithm(v: unknown): v is TeeKeyAlgorithm {
  return v === 'ECDH-ES+A256KW-P256' || v === 'ECDH-ES+A256KW-P521' || v === 'RSA-OAEP-256';
}

function ecStateFromPrivateKey(privateKey: KeyObject): KeyState {
  const named = privateKey.asymmetricKeyDetails?.namedCurve;
  const curveName = named !== undefined && Object.prototype.hasOwnProperty.call(CURVE_BY_OPENSSL, named)
    ? CURVE_BY_OPENSSL[named]
    : undefined;
  if (curveName === undefined) {
    throw new TeeKeyPairError('KEY_INVALID', 'EC private key is not on P-256 or P-521');
  }
  const curve = EC_CURVES[curveName];
  const jwk = privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string') throw new TeeKeyPairError('KEY_INVALID', 'EC private key has no private scalar');
  const ecdh = createECDH(curve.openssl);
  ecdh.setPrivateKey(Buffer.from(jwk.d, 'base64url'));
  return { kind: 'ec', curve, privateKey, ecdh };
}

// ---------------------------------------------------------------------------------------------

export class TeeKeyPair {
  private readonly key: KeyState;

  private constructor(key: KeyState) {
    this.key = key;
  }

  /** New key pair; the default, like guest-components, is EC P-256 (`ECDH-ES+A256KW-P256`). */
  static generate(alg: TeeKeyAlgorithm = 'ECDH-ES+A256KW-P256'): TeeKeyPair {
    if (!isTeeKeyAlgorithm(alg)) {
      throw new TeeKeyPairError('UNSUPPORTED_ALGORITHM', 'unsupported TEE key algorithm');
    }
    if (alg === 'RSA-OAEP-256') {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS, publicExponent: 65537 });
      return new TeeKeyPair({ kind: 'rsa', privateKey });
    }
    const curve = EC_CURVES[alg === 'ECDH-ES+A256KW-P521' ? 'P-521' : 'P-256'];
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve.openssl });
    return new TeeKeyPair(ecStateFromPrivateKey(privateKey));
  }

  /**
   * Load a private key: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), EC P-256/P-521
   * as PKCS#8. (Upstream `from_pem` takes RSA PKCS#1 or EC PKCS#8.)
   */
  static fromPem(pem: string): TeeKeyPair {
    if (typeof pem !== 'string') throw new TeeKeyPairError('KEY_INVALID', 'PEM must be a string');
    const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1];
    if (label !== 'RSA PRIVATE KEY' && label !== 'PRIVATE KEY') {
      throw new TeeKeyPairError('KEY_INVALID', 'private key is not RSA (PKCS#1 or PKCS#8) nor EC P256/P521 (PKCS#8)');
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch (cause) {
      throw new TeeKeyPairError('KEY_INVALID', 'private key PEM could not be parsed', { cause });
    }
    if (privateKey.asymmetricKeyType === 'rsa') return new TeeKeyPair({ kind: 'rsa', privateKey });
    if (privateKey.asymmetricKeyType === 'ec' && label === 'PRIVATE KEY') {
      return new TeeKeyPair(ecStateFromPrivateKey(privateKey));
    }
    throw new TeeKeyPairError('KEY_INVALID', 'private key is not RSA (PKCS#1 or PKCS#8) nor EC P256/P521 (PKCS#8)');
  }

  /** RSA as PKCS#1 PEM, EC as PKCS#8 PEM (as upstream `to_pem`). Contains the private key. */
  toPem(): string {
    const type = this.key.kind === 'rsa' ? 'pkcs1' : 'pkcs8';
    return this.key.privateKey.export({ type, format: 'pem' }).toString();
  }

  /** The `tee-pubkey` JWK, exactly as upstream `export_pubkey`. */
  publicJwk(): TeePubKey {
    if (this.key.kind === 'ec') {
      const raw = this.key.ecdh.getPublicKey(); // 0x04 ‖ X ‖ Y, fixed length
      const n = this.key.curve.coordBytes;
      return {
        kty: 'EC',
        crv: this.key.curve.name,
        alg: ALG_ECDH_ES_A256KW,
        x: raw.subarray(1, 1 + n).toString('base64url'),
        y: raw.subarray(1 + n, 1 + 2 * n).toString('base64url'),
      };
    }
    const jwk = this.key.privateKey.export({ format: 'jwk' });
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') {
      throw new TeeKeyPairError('KEY_INVALID', 'RSA key export failed');
    }
    return { kty: 'RSA', alg: ALG_RSA_OAEP_256, n: jwk.n, e: jwk.e };
  }

  /** `decrypt_response`: the resource bytes of a KBS JWE response (parsed JSON or raw body). */
  decrypt(response: unknown): Uint8Array {
    const r = decodeResponse(response);
    const cek = this.unwrapCek(r.header, r.encryptedKey);
    try {
      const aad = Buffer.from(Buffer.from(serializeProtectedHeader(r.header), 'utf8').toString('base64url'), 'ascii');
      if (cek.length !== 32) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to key');
      if (r.iv.length !== 12) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to nonce');
      if (r.tag.length !== 16) throw new TeeKeyPairError('DECRYPT_FAILED', 'Failed to convert array to tag');
      try {
        const decipher = createDecipheriv('aes-256-gcm', cek, r.iv, { authTagLength: 16 });
        decipher.setAAD(aad);
        decipher.setAuthTag(r.tag);
        return new Uint8Array(Buffer.concat([decipher.update(r.ciphertext), decipher.final()]));
      } catch (cause) {
        throw new TeeKeyPairError('DECRYPT_FAILED', 'aes-256-gcm decrypt failed', { cause });
      }
    } finally {
      cek.fill(0);
    }
  }

  /** `unwrap_cek`, selected by the header's `alg`. */
  private unwrapCek(header: ProtectedHeader, wrapped: Buffer): Buffer {
    return unwrapCek(this.key, header, wrapped);
  }
}
