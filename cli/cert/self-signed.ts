/**
 * A self-signed TLS server certificate for the KBS, built with node:crypto and a small DER writer
 * (no openssl binary needed): EC P-256 key, ECDSA-SHA256 signature, X.509 v3 with a subjectAltName
 * entry per host name or IP address, basicConstraints CA:FALSE (rustls / webpki refuse a CA
 * certificate as a server certificate; a self-signed leaf can still be a client's trust anchor),
 * keyUsage digitalSignature, extendedKeyUsage serverAuth, subject and authority key identifiers.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  objectIdentifier,
  octetString,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der-writer.js';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface SelfSignedOptions {
  /** DNS names (`kbs.example.com`, `*.example.com`) and IP addresses; at least one. */
  hosts: readonly string[];
  /** Validity in days from `now` (1–3650). */
  days: number;
  now?: Date;
}

export interface SelfSigned {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

/** Problem text for a host that is neither an IP address nor a DNS name; null when valid. */
export function hostProblem(host: string): string | null {
  if (isIP(host) !== 0) return null;
  if (DNS_NAME.test(host) && !/^[0-9.]+$/.test(host)) return null;
  return `not a DNS name or IP address: ${JSON.stringify(host)}`;
}

/** The 16 bytes of an IPv6 address (`::` and an embedded IPv4 tail allowed). */
function ipv6Bytes(address: string): Buffer {
  const words = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (g.includes('.')) {
            const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
            return [(a << 8) | b, (c << 8) | d];
          }
          return [parseInt(g, 16)];
        });
  const [head = '', tail] = address.split('::');
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  const all = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

function generalName(host: string): Buffer {
  const family = isIP(host);
  if (family === 4) return implicitPrimitive(7, Buffer.from(host.split('.').map(Number)));
  if (family === 6) return implicitPrimitive(7, ipv6Bytes(host.replace(/%.*$/, '')));
  return implicitPrimitive(2, Buffer.from(host.toLowerCase(), 'ascii'));
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return sequence(objectIdentifier(oid), ...(critical ? [boolean(true)] : []), octetString(value));
}

/** The uncompressed EC point of a P-256 public key. */
function ecPoint(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
}

export function selfSignedCertificate(options: SelfSignedOptions): SelfSigned {
  if (options.hosts.length === 0) throw new Error('at least one host name or IP address is needed');
  for (const h of options.hosts) {
    const problem = hostProblem(h);
    if (problem) throw new Error(problem);
  }
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > 3650) throw new Error('days must be an integer from 1 to 3650');
  const now = options.now ?? new Date();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const keyId = createHash('sha1').update(ecPoint(publicKey)).digest();

  const first = options.hosts[0] as string;
  const name = sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(first.length <= 64 ? first : 'kbs'))));
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01; // positive, 16 significant bytes
  const algorithm = sequence(objectIdentifier(OID.ecdsaWithSha256));
  const notBefore = new Date(now.getTime() - 5 * 60_000); // tolerate a few minutes of client clock skew
  const notAfter = new Date(now.getTime() + options.days * 86_400_000);

  const extensions = sequence(
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
    extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
    extension(OID.subjectAltName, false, sequence(...[...new Set(options.hosts)].map(generalName))),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
    extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, keyId))),
  );
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(serial),
    algorithm,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    spki,
    explicit(3, extensions),
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  const base64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
  };
}
