/**
 * The stand-in's directory: tenants, service principals (app registrations and managed identities),
 * trusted federation issuers, and the Entra signing key that access tokens are issued with.
 */
import { createHash, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import * as jose from 'jose';
import { certificateThumbprints } from './tls.js';
import type { AzureStandInOptions, ClientSpec, FederatedCredentialSpec, ManagedIdentitySpec, TrustedIssuerSpec } from './types.js';

export interface RegisteredCertificate {
  key: KeyObject;
  pem: string;
  x5t: string;
  x5tS256: string;
}

export interface Principal {
  kind: 'app' | 'managedIdentity';
  tenantId: string;
  clientId: string;
  objectId: string;
  secrets: string[];
  certificates: RegisteredCertificate[];
  federated: FederatedCredentialSpec[];
  resourceId?: string;
  systemAssigned: boolean;
}

export interface Tenant {
  id: string;
  domains: string[];
}

/** Claims of an access token the stand-in issued, as the vault sees them. */
export interface AccessTokenClaims {
  aud: string;
  iss: string;
  tid: string;
  appid: string;
  oid: string;
  iat: number;
  exp: number;
}

export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';
export const DEFAULT_RESOURCES = ['https://vault.azure.net', 'https://management.azure.com', 'https://graph.microsoft.com', 'https://storage.azure.com'];

/** Object id derived from the client id, stable across runs (real ids are independent GUIDs). */
function deriveObjectId(clientId: string): string {
  const h = createHash('sha256').update(`oid:${clientId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function v1Issuer(tenantId: string): string {
  return `https://sts.windows.net/${tenantId}/`;
}

export class Directory {
  readonly tenants = new Map<string, Tenant>();
  readonly principals: Principal[] = [];
  readonly issuers = new Map<string, jose.JWTVerifyGetKey>();
  readonly resources: Set<string>;
  tokenLifetimeSeconds: number;
  /** Tokens issued before this (epoch seconds) are rejected by vaults (`revokeTokens`). */
  revokedBefore = 0;
  readonly kid = randomUUID();
  #privateKey!: jose.CryptoKey;
  #publicJwk!: jose.JWK;
  #publicKey!: jose.CryptoKey;

  private constructor(opts: AzureStandInOptions) {
    this.tokenLifetimeSeconds = opts.tokenLifetimeSeconds ?? 3599;
    this.resources = new Set((opts.resources ?? DEFAULT_RESOURCES).map((r) => r.replace(/\/+$/, '')));
  }

  static async create(opts: AzureStandInOptions): Promise<Directory> {
    const d = new Directory(opts);
    const pair = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
    d.#privateKey = pair.privateKey;
    d.#publicKey = pair.publicKey;
    d.#publicJwk = { ...(await jose.exportJWK(pair.publicKey)), kid: d.kid, use: 'sig', alg: 'RS256' };
    for (const t of opts.tenants ?? []) d.addTenant(t.id, t.domains ?? []);
    for (const c of opts.clients ?? []) d.registerClient(c);
    for (const m of opts.managedIdentities ?? []) d.registerManagedIdentity(m);
    for (const i of opts.trustedIssuers ?? []) d.trustIssuer(i);
    return d;
  }

  registerClient(c: ClientSpec): void {
    this.addTenant(c.tenantId, []);
    this.addPrincipal({
      kind: 'app', tenantId: c.tenantId, clientId: c.clientId, objectId: c.objectId ?? deriveObjectId(c.clientId),
      secrets: [...(c.secrets ?? [])], certificates: (c.certificates ?? []).map(registerCertificate),
      federated: [...(c.federated ?? [])], systemAssigned: false,
    });
  }

  registerManagedIdentity(m: ManagedIdentitySpec): void {
    this.addTenant(m.tenantId, []);
    if (m.systemAssigned && this.principals.some((p) => p.systemAssigned)) throw new Error('only one system-assigned identity');
    this.addPrincipal({
      kind: 'managedIdentity', tenantId: m.tenantId, clientId: m.clientId, objectId: m.objectId ?? deriveObjectId(m.clientId),
      secrets: [], certificates: [], federated: [...(m.federated ?? [])], systemAssigned: m.systemAssigned === true,
      ...(m.resourceId ? { resourceId: m.resourceId } : {}),
    });
  }

  addTenant(id: string, domains: string[]): void {
    if (!/^[0-9a-zA-Z.-]+$/.test(id)) throw new Error(`invalid tenant id ${id}`);
    const t = this.tenants.get(id.toLowerCase());
    if (t) t.domains.push(...domains.map((x) => x.toLowerCase()));
    else this.tenants.set(id.toLowerCase(), { id, domains: domains.map((x) => x.toLowerCase()) });
  }

  addPrincipal(p: Principal): void {
    if (this.principals.some((q) => q.clientId.toLowerCase() === p.clientId.toLowerCase() && q.tenantId === p.tenantId)) {
      throw new Error(`client ${p.clientId} registered twice in tenant ${p.tenantId}`);
    }
    this.principals.push(p);
  }

  trustIssuer(spec: TrustedIssuerSpec): void {
    this.issuers.set(spec.issuer, jose.createLocalJWKSet(spec.jwks as jose.JSONWebKeySet));
  }

  /** Resolves a tenant id or domain as it appears in an authority URL. */
  tenant(idOrDomain: string): Tenant | undefined {
    const k = idOrDomain.toLowerCase();
    return this.tenants.get(k) ?? [...this.tenants.values()].find((t) => t.domains.includes(k));
  }

  principal(tenantId: string, clientId: string): Principal | undefined {
    const c = clientId.toLowerCase();
    return this.principals.find((p) => p.tenantId === tenantId && p.clientId.toLowerCase() === c);
  }

  /** The principal a client id names in any tenant (for AADSTS700016 vs. wrong-tenant messages). */
  anyTenantPrincipal(clientId: string): Principal | undefined {
    const c = clientId.toLowerCase();
    return this.principals.find((p) => p.clientId.toLowerCase() === c);
  }

  jwks(): { keys: jose.JWK[] } {
    return { keys: [this.#publicJwk] };
  }

  /** Issues a v1-shaped app-only access token (what Entra returns for `https://vault.azure.net/.default`). */
  async issueAccessToken(p: Principal, resource: string, acr: '1' | '2', lifetimeSeconds = this.tokenLifetimeSeconds): Promise<{ token: string; expiresOn: number }> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + lifetimeSeconds;
    const token = await new jose.SignJWT({
      tid: p.tenantId, appid: p.clientId, appidacr: acr, oid: p.objectId, idtyp: 'app', ver: '1.0',
      xms_mirid: p.resourceId, xms_cc: ['cp1'],
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .setIssuer(v1Issuer(p.tenantId)).setAudience(resource).setSubject(p.objectId)
      .setIssuedAt(now).setNotBefore(now - 300).setExpirationTime(exp).setJti(randomUUID())
      .sign(this.#privateKey);
    return { token, expiresOn: exp };
  }

  /** Verifies a token this directory issued (signature and expiry, no clock skew: one clock; the caller checks aud/iss). */
  async verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    const cached = this.#verified.get(token);
    if (cached) {
      if (cached.exp <= Math.floor(Date.now() / 1000)) throw new Error('token expired');
      return cached;
    }
    const claims = await this.#verify(token);
    if (this.#verified.size >= 1000) this.#verified.clear();
    this.#verified.set(token, claims);
    return claims;
  }

  /** Verified tokens (signature checks are the costly part of each vault request). */
  readonly #verified = new Map<string, AccessTokenClaims>();

  async #verify(token: string): Promise<AccessTokenClaims> {
    const { payload } = await jose.jwtVerify(token, this.#publicKey, { algorithms: ['RS256'] });
    const { aud, iss, tid, appid, oid, iat, exp } = payload as Record<string, unknown>;
    if (typeof aud !== 'string' || typeof iss !== 'string' || typeof tid !== 'string' || typeof appid !== 'string'
      || typeof oid !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') {
      throw new Error('token lacks required claims');
    }
    return { aud, iss, tid, appid, oid, iat, exp };
  }
}

/** Accepts any RSA signature scheme (MSAL signs PS256, hand-made assertions RS256), hence a KeyObject. */
function registerCertificate(pem: string): RegisteredCertificate {
  const t = certificateThumbprints(pem);
  return { key: new X509Certificate(pem).publicKey, pem, x5t: t.x5t, x5tS256: t.x5tS256 };
}
