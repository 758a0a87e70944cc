/**
 * Admin authentication and authorization, as Trustee's `[admin]` modes:
 *  - InsecureAllowAll: everything allowed (a loud warning at every start);
 *  - DenyAll: everything refused;
 *  - AuthenticatedAuthorization: a Bearer JWT verified against configured identity providers (PEM
 *    keys or JWK sets; `exp` required with 60 s leeway; `iss`/`aud` when configured), a `role`
 *    claim, and a regex ACL on the full request URI (RE2: linear time on hostile URIs);
 *  - Ed25519Key: the legacy mode where one Ed25519 public key signs admin tokens (no role).
 *
 * A denial is an AdminDenied whose message is the upstream Display text; the route decides which
 * KbsError variant carries it (AdminAuthAccess or AdminAuthInitialization, as upstream).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { RE2JS } from 're2js';

export interface IdentityProvider {
  issuer?: string;
  audience?: string;
  /** PEM public keys (Ed25519, EC or RSA). */
  publicKeys: KeyObject[];
  jwks?: JSONWebKeySet;
}

export interface AclRule {
  role: string;
  allowedEndpoints: string;
}

export type AdminAuthConfig =
  | { mode: 'InsecureAllowAll' }
  | { mode: 'DenyAll' }
  | { mode: 'AuthenticatedAuthorization'; providers: IdentityProvider[]; acls: AclRule[] }
  | { mode: 'Ed25519Key'; publicKey: KeyObject };

export class AdminDenied extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdminDenied';
  }
}

export interface AdminIdentity {
  /** `sub` of the admin token, when there is one. */
  subject?: string;
  role?: string;
}

const LEEWAY_SECONDS = 60;
const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;

function denied(reason: string): AdminDenied {
  return new AdminDenied(`Admin access denied: ${reason}`);
}

/** PEM text that may hold several public keys → key objects. */
export function publicKeysFromPem(pem: string): KeyObject[] {
  const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  return blocks.map((b) => createPublicKey(b));
}

function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      if (curve === 'secp521r1') return ['ES512'];
      return [];
    }
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    default:
      return [];
  }
}

async function verifyWithKey(token: string, key: KeyObject): Promise<JWTPayload | undefined> {
  const algorithms = algorithmsFor(key);
  if (algorithms.length === 0) return undefined;
  try {
    const { payload } = await jwtVerify(token, key, { algorithms, clockTolerance: LEEWAY_SECONDS, requiredClaims: ['exp'] });
    return payload;
  } catch {
    return undefined;
  }
}

async function verifyWithJwks(token: string, jwks: JSONWebKeySet): Promise<JWTPayload | undefined> {
  try {
    const header = decodeProtectedHeader(token);
    if (!header.alg || header.alg === 'none') return undefined;
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { clockTolerance: LEEWAY_SECONDS, requiredClaims: ['exp'] });
    return payload;
  } catch {
    return undefined;
  }
}

function audienceMatches(aud: JWTPayload['aud'], expected: string): boolean {
  return typeof aud === 'string' ? aud === expected : Array.isArray(aud) && aud.includes(expected);
}

export class AdminAuthorizer {
  private readonly acls: Array<{ role: string; re: RE2JS }>;

  constructor(readonly config: AdminAuthConfig) {
    this.acls =
      config.mode === 'AuthenticatedAuthorization'
        ? config.acls.map((a) => ({ role: a.role, re: RE2JS.compile(a.allowedEndpoints) }))
        : [];
  }

  get insecure(): boolean {
    return this.config.mode === 'InsecureAllowAll';
  }

  /**
   * Checks an admin request. `authorization` is the Authorization header, `uri` the request URI
   * with its query string. Resolves to the admin identity or throws AdminDenied.
   */
  async authorize(authorization: string | undefined, uri: string): Promise<AdminIdentity> {
    const config = this.config;
    switch (config.mode) {
      case 'InsecureAllowAll':
        return {};
      case 'DenyAll':
        throw denied('Admin access denied as DenyAll authorization_mode is enabled');
      case 'Ed25519Key': {
        const token = bearer(authorization);
        const payload = await verifyWithKey(token, config.publicKey);
        if (!payload) throw denied('Cannot verify token with any of the issuers');
        return payload.sub === undefined ? {} : { subject: payload.sub };
      }
      case 'AuthenticatedAuthorization': {
        const token = bearer(authorization);
        for (const provider of config.providers) {
          let payload: JWTPayload | undefined;
          for (const key of provider.publicKeys) {
            payload = await verifyWithKey(token, key);
            if (payload) break;
          }
          if (!payload && provider.jwks) payload = await verifyWithJwks(token, provider.jwks);
          if (!payload) continue;
          // upstream reads the role right after the signature check, before iss/aud
          const role = payload['role'];
          if (typeof role !== 'string') throw denied('Failed to parse claims from token: Missing required `role` claim in JWT');
          if (provider.issuer !== undefined && payload.iss !== provider.issuer) continue;
          if (provider.audience !== undefined && !audienceMatches(payload.aud, provider.audience)) continue;
          if (!this.acls.some((a) => a.role === role && a.re.matcher(uri).find())) {
            throw denied(`Role ${clip(role)} not allowed for path ${clip(uri)}`);
          }
          return payload.sub === undefined ? { role } : { role, subject: payload.sub };
        }
        throw denied('Cannot verify token with any of the issuers');
      }
    }
  }
}

function bearer(authorization: string | undefined): string {
  const m = authorization === undefined ? null : BEARER.exec(authorization);
  if (!m) throw new AdminDenied('Failed to parse HTTP Auth Bearer header');
  return m[1] as string;
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
