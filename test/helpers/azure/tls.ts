/**
 * Test PKI for the Azure stand-in, made with the `openssl` CLI at test time: a throw-away CA, a
 * server certificate for the stand-in's listeners (SANs cover loopback and the production-shaped
 * names `*.vault.azure.net` / `login.microsoftonline.com`, so a client can keep host verification on
 * through a loopback-resolving agent), and RSA client certificates for certificate credentials.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  /** Folder holding ca.pem, server.pem, server.key (removed by `dispose`). */
  dir: string;
  caPem: string;
  caFile: string;
  serverCertPem: string;
  serverKeyPem: string;
  dispose(): void;
}

/** An RSA certificate + key an app registration can hold (Entra certificate credential). */
export interface TestClientCertificate {
  certificatePem: string;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** certificate + key in one PEM: what ClientCertificateCredential's `certificate` option takes. */
  combinedPem: string;
  /** SHA-1 of the DER certificate, upper-case hex, as the Azure portal shows it. */
  thumbprintSha1Hex: string;
  /** base64url SHA-1 (`x5t` JWT header). */
  x5t: string;
  /** base64url SHA-256 (`x5t#S256` JWT header). */
  x5tS256: string;
}

/** Names the server certificate is valid for. */
export const SERVER_SANS = ['DNS:localhost', 'IP:127.0.0.1', 'DNS:*.vault.azure.net', 'DNS:login.microsoftonline.com'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates a CA (EC P-256, fast) and a server certificate signed by it, both valid for one day. */
export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'azure-standin-'));
  try {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
      '-days', '1', '-subj', '/CN=kbs test Azure stand-in CA', '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
      '-subj', '/CN=azure-standin'], dir);
    writeFileSync(join(dir, 'server.ext'), `subjectAltName=${SERVER_SANS.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem',
      '-days', '1', '-extfile', 'server.ext'], dir);
    rmSync(join(dir, 'ca.key'));
    const caFile = join(dir, 'ca.pem');
    return {
      dir,
      caPem: readFileSync(caFile, 'utf8'),
      caFile,
      serverCertPem: readFileSync(join(dir, 'server.pem'), 'utf8'),
      serverKeyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Thumbprints of a PEM certificate, in the encodings Entra and JWT headers use. */
export function certificateThumbprints(certificatePem: string): { sha1Hex: string; x5t: string; x5tS256: string } {
  const der = new X509Certificate(certificatePem).raw;
  const sha1 = createHash('sha1').update(der).digest();
  return {
    sha1Hex: sha1.toString('hex').toUpperCase(),
    x5t: sha1.toString('base64url'),
    x5tS256: createHash('sha256').update(der).digest('base64url'),
  };
}

/** A self-signed RSA-2048 certificate, as one uploads to an app registration. */
export function createClientCertificate(commonName = 'kbs-test-client'): TestClientCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'azure-client-cert-'));
  try {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2',
      '-subj', `/CN=${commonName.replace(/[^A-Za-z0-9 ._-]/g, '')}`], dir);
    const certificatePem = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const privateKeyPem = readFileSync(join(dir, 'key.pem'), 'utf8');
    const t = certificateThumbprints(certificatePem);
    return {
      certificatePem,
      privateKeyPem,
      combinedPem: `${certificatePem.trim()}\n${privateKeyPem.trim()}\n`,
      thumbprintSha1Hex: t.sha1Hex,
      x5t: t.x5t,
      x5tS256: t.x5tS256,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
