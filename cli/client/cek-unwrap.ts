/**
 * Content-encryption-key unwrapping for the TEE key pair (guest-components `unwrap_cek`): RSA
 * (`RSA1_5`, `RSA-OAEP-256`) and ECDH-ES+A256KW (Concat KDF, then AES key unwrap), selected by the
 * JWE protected header's `alg`.
 */
import { constants, createDecipheriv, createHash, privateDecrypt, type ECDH, type KeyObject } from 'node:crypto';
import { decodeB64u, type ProtectedHeader } from './jwe-response.js';
import { mapEntries, type JsonValue } from './serde-json.js';
import { TeeKeyPairError } from './tee-keypair-error.js';

const ALG_RSA1_5 = 'RSA1_5';
export const ALG_RSA_OAEP_256 = 'RSA-OAEP-256';
export const ALG_ECDH_ES_A256KW = 'ECDH-ES+A256KW';
const AES_KW_DEFAULT_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export type EcCurveName = 'P-256' | 'P-521';

export interface EcCurve {
  readonly name: EcCurveName;
  readonly openssl: string;
  readonly coordBytes: number;
}

export type KeyState =
  | { readonly kind: 'ec'; readonly curve: EcCurve; readonly privateKey: KeyObject; readonly ecdh: ECDH }
  | { readonly kind: 'rsa'; readonly privateKey: KeyObject };

/** EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3) of a raw RSA decryption result. */
function pkcs1v15Unpad(em: Buffer, k: number): Buffer {
  // em is k bytes: 0x00 ‖ 0x02 ‖ PS (>= 8 non-zero bytes) ‖ 0x00 ‖ M
  let bad = em.length !== k || k < 11 ? 1 : 0;
  bad |= em[0] ?? 1;
  bad |= (em[1] ?? 0) ^ 0x02;
  let sep = 0;
  for (let i = 2; i < em.length; i++) {
    const isZero = em[i] === 0 ? 1 : 0;
    if (sep === 0 && isZero === 1) sep = i;
  }
  bad |= sep === 0 ? 1 : 0;
  bad |= sep !== 0 && sep < 10 ? 1 : 0;
  if (bad !== 0) throw new TeeKeyPairError('DECRYPT_FAILED', 'RSA key pkcs1v15 decrypt failed');
  return em.subarray(sep + 1);
}

function concatKdfA256kw(z: Uint8Array): Buffer {
  const alg = Buffer.from(ALG_ECDH_ES_A256KW, 'ascii');
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    return b;
  };
  const otherInfo = Buffer.concat([u32(alg.length), alg, u32(0), u32(0), u32(256)]);
  return createHash('sha256').update(u32(1)).update(z).update(otherInfo).digest();
}

function jsonStringMember(obj: JsonValue, name: string): string {
  const v = obj.t === 'obj' ? mapEntries(obj.entries).find(([k]) => k === name)?.[1] : undefined;
  if (v === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', `Invalid JWE ProtectedHeader. Without \`${name}\``);
  if (v.t !== 'str') throw new TeeKeyPairError('RESPONSE_MALFORMED', `Invalid JWE ProtectedHeader. \`${name}\` is not a string`);
  return v.v;
}

function ecPoint(curve: EcCurve, x: Buffer, y: Buffer): Buffer {
  if (x.length !== curve.coordBytes) throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid bytes length of coordinates X');
  if (y.length !== curve.coordBytes) throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid bytes length of coordinates Y');
  return Buffer.concat([Buffer.from([0x04]), x, y]);
}

/** `unwrap_cek`, selected by the header's `alg`. */
export function unwrapCek(key: KeyState, header: ProtectedHeader, wrapped: Buffer): Buffer {
  if (header.alg === ALG_RSA1_5 || header.alg === ALG_RSA_OAEP_256) {
    if (key.kind !== 'rsa') throw new TeeKeyPairError('KEY_MISMATCH', 'Unmatched key. Must be RSA key');
    const k = Math.ceil((key.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
    if (wrapped.length !== k) throw new TeeKeyPairError('DECRYPT_FAILED', 'RSA ciphertext length mismatch');
    try {
      if (header.alg === ALG_RSA_OAEP_256) {
        return privateDecrypt(
          { key: key.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
          wrapped,
        );
      }
      // Node 20 refuses RSA_PKCS1_PADDING for private decryption (CVE-2023-46809); decode the
      // padding from the raw RSA result instead.
      const em = privateDecrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, wrapped);
      return pkcs1v15Unpad(em, k);
    } catch (cause) {
      if (cause instanceof TeeKeyPairError) throw cause;
      throw new TeeKeyPairError('DECRYPT_FAILED', `RSA key decrypt (${header.alg}) failed`, { cause });
    }
  }
  if (header.alg === ALG_ECDH_ES_A256KW) {
    const epk = header.other.find(([k]) => k === 'epk')?.[1];
    if (epk === undefined) throw new TeeKeyPairError('RESPONSE_MALFORMED', 'Invalid JWE ProtectedHeader. Without `epk`');
    const crv = jsonStringMember(epk, 'crv');
    const x = decodeB64u(jsonStringMember(epk, 'x'), 'epk.x');
    const y = decodeB64u(jsonStringMember(epk, 'y'), 'epk.y');
    if (key.kind !== 'ec') throw new TeeKeyPairError('KEY_MISMATCH', 'Unmatched key. Must be EC key');
    if (crv !== key.curve.name) throw new TeeKeyPairError('KEY_MISMATCH', `Unmatched curve: ${JSON.stringify(crv.slice(0, 32))}`);
    let z: Buffer;
    try {
      z = key.ecdh.computeSecret(ecPoint(key.curve, x, y));
    } catch (cause) {
      if (cause instanceof TeeKeyPairError) throw cause;
      throw new TeeKeyPairError('DECRYPT_FAILED', 'invalid public key', { cause });
    }
    const kek = concatKdfA256kw(z);
    z.fill(0);
    try {
      if (wrapped.length < 24 || wrapped.length % 8 !== 0) throw new Error('invalid wrapped key length');
      const decipher = createDecipheriv('id-aes256-wrap', kek, AES_KW_DEFAULT_IV);
      return Buffer.concat([decipher.update(wrapped), decipher.final()]);
    } catch (cause) {
      throw new TeeKeyPairError('DECRYPT_FAILED', 'failed to unwrap key', { cause });
    } finally {
      kek.fill(0);
    }
  }
  throw new TeeKeyPairError(
    'UNSUPPORTED_ALGORITHM',
    `Unsupported algorithm: ${JSON.stringify(header.alg.slice(0, 64))}`,
  );
}
