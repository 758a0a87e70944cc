/**
 * Key material the server generates on first start (files mode 0600 in work_dir): the P-256 key that
 * signs attestation tokens, and for the embedded default the Ed25519 admin key pair and an admin
 * token (re-minted at start when it expires within 30 days).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SignJWT, compactVerify, decodeJwt } from 'jose';
import { writeAtomic } from '../policy/store.js';

export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Loads the token signing key, or generates and persists one when `create` is set. */
export async function loadTokenKey(path: string, create: boolean): Promise<{ key: KeyObject; generated: boolean }> {
  const pem = await readIfExists(path);
  if (pem !== undefined) return { key: createPrivateKey(pem), generated: false };
  if (!create) throw new Error(`token signing key ${path} does not exist`);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeAtomic(path, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  return { key: privateKey, generated: true };
}

export interface AdminCredentialPaths {
  publicKeyPath: string;
  privateKeyPath: string;
  tokenPath: string;
}

export const ADMIN_TOKEN_ISSUER = 'kbs';
const ADMIN_TOKEN_DAYS = 90;
const ADMIN_TOKEN_RENEW_DAYS = 30;

/** Creates the embedded default's admin key pair and token when missing (or the token is expiring). */
export async function ensureAdminCredentials(paths: AdminCredentialPaths, now = new Date()): Promise<{ generated: string[] }> {
  const generated: string[] = [];
  let privatePem = await readIfExists(paths.privateKeyPath);
  if (privatePem === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeAtomic(paths.privateKeyPath, privatePem);
    await writeAtomic(paths.publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }) as string);
    generated.push(paths.privateKeyPath, paths.publicKeyPath);
  } else if ((await readIfExists(paths.publicKeyPath)) === undefined) {
    await writeAtomic(paths.publicKeyPath, createPublicKey(privatePem).export({ type: 'spki', format: 'pem' }) as string);
    generated.push(paths.publicKeyPath);
  }
  const token = await readIfExists(paths.tokenPath);
  const privateKey = createPrivateKey(privatePem);
  if (
    token === undefined ||
    expiresWithin(token.trim(), now, ADMIN_TOKEN_RENEW_DAYS) ||
    // a token left from a previous key pair (the pair was deleted to rotate it) would never verify
    !(await signedBy(token.trim(), createPublicKey(privateKey)))
  ) {
    await writeAtomic(paths.tokenPath, (await mintAdminToken(privateKey, now, ADMIN_TOKEN_DAYS)) + '\n');
    generated.push(paths.tokenPath);
  }
  return { generated };
}

export async function mintAdminToken(key: KeyObject, now: Date, days: number, role = 'admin'): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ role })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setIssuer(ADMIN_TOKEN_ISSUER)
    .setSubject('admin')
    .setIssuedAt(iat)
    .setExpirationTime(iat + days * 86400)
    .sign(key);
}

async function signedBy(token: string, publicKey: KeyObject): Promise<boolean> {
  try {
    await compactVerify(token, publicKey, { algorithms: ['EdDSA', 'Ed25519'] });
    return true;
  } catch {
    return false;
  }
}

function expiresWithin(token: string, now: Date, days: number): boolean {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp !== 'number' || exp * 1000 < now.getTime() + days * 86400_000;
  } catch {
    return true;
  }
}
