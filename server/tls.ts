/**
 * TLS for the listeners: the protocol versions and cipher suites of each `tls_profile`, and
 * loading (and reloading, on SIGHUP) the certificate chain and private key. A key/certificate pair
 * is checked before use: the key must parse and match the leaf certificate, so a bad file leaves
 * the server on its previous, working pair.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { TlsFilesConfig } from '../config/index.js';

export type TlsProfile = 'intermediate' | 'modern';

/**
 * TLS 1.3 suites (all AEAD), then TLS 1.2 suites with forward secrecy (ECDHE) and AEAD only:
 * no CBC, no RSA key exchange, no SHA-1 MACs.
 */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** Protocol options of a profile (without key and certificate). */
export function profileOptions(profile: TlsProfile): SecureContextOptions & { minVersion: 'TLSv1.2' | 'TLSv1.3' } {
  return {
    minVersion: profile === 'modern' ? 'TLSv1.3' : 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_SUITES, ...(profile === 'modern' ? [] : TLS12_SUITES)].join(':'),
    honorCipherOrder: true,
  };
}

export interface TlsMaterial {
  key: string;
  cert: string;
  /** What the log says about the leaf certificate (no key material). */
  leaf: { subject: string; subjectAltName: string | undefined; validTo: string; fingerprint256: string; expired: boolean };
}

/**
 * Reads and checks the key and certificate files: the key parses, the chain parses, the key
 * matches the leaf (OpenSSL refuses a mismatched pair when the context is built).
 */
export async function loadTlsMaterial(files: TlsFilesConfig, profile: TlsProfile, now: Date = new Date()): Promise<TlsMaterial> {
  const [key, cert] = await Promise.all([readFile(files.privateKeyPath, 'utf8'), readFile(files.certificatePath, 'utf8')]);
  try {
    createPrivateKey(key);
  } catch {
    throw new Error(`http_server.private_key ${files.privateKeyPath}: not a PEM private key`);
  }
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(cert);
  let leaf: X509Certificate;
  try {
    if (!first) throw new Error('no certificate');
    leaf = new X509Certificate(first[0]);
  } catch {
    throw new Error(`http_server.certificate ${files.certificatePath}: not a PEM certificate`);
  }
  try {
    createSecureContext({ ...profileOptions(profile), key, cert });
  } catch (e) {
    const why = e instanceof Error && /mismatch/i.test(e.message) ? 'the private key does not match the certificate' : 'unusable key/certificate pair';
    throw new Error(`http_server: ${why} (${files.privateKeyPath}, ${files.certificatePath})`);
  }
  return {
    key,
    cert,
    leaf: {
      subject: leaf.subject,
      subjectAltName: leaf.subjectAltName,
      validTo: leaf.validTo,
      fingerprint256: leaf.fingerprint256,
      expired: new Date(leaf.validTo).getTime() < now.getTime(),
    },
  };
}
