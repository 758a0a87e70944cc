/**
 * Client-assertion checks of the Entra stand-in: certificate credentials (JWT signed with the key of
 * a registered certificate, named by `x5t`/`x5t#S256`, `iss` = `sub` = client id, `aud` = token
 * endpoint) and workload-identity federation (a JWT from a trusted issuer matching a federated
 * credential's issuer/subject/audience). Also the built-in OIDC issuer that plays an AKS cluster.
 */
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import type { Directory, Principal } from './directory.js';
import { TOKEN_EXCHANGE_AUDIENCE } from './directory.js';

/** An Entra failure: OAuth error, AADSTS number, HTTP status. */
export class EntraError extends Error {
  constructor(readonly status: number, readonly error: string, readonly aadsts: number, message: string) {
    super(`AADSTS${aadsts}: ${message}`);
  }
}

const invalidClient = (n: number, m: string): EntraError => new EntraError(401, 'invalid_client', n, m);

function decode(assertion: string): { header: jose.ProtectedHeaderParameters; claims: jose.JWTPayload } {
  try {
    return { header: jose.decodeProtectedHeader(assertion), claims: jose.decodeJwt(assertion) };
  } catch {
    throw new EntraError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
  }
}

function timeError(error: unknown): EntraError | undefined {
  if (error instanceof jose.errors.JWTExpired) return invalidClient(700024, 'Client assertion is not within its valid time range.');
  if (error instanceof jose.errors.JWTClaimValidationFailed && (error.claim === 'nbf' || error.claim === 'iat')) {
    return invalidClient(700024, 'Client assertion is not within its valid time range.');
  }
  return undefined;
}

/** Audiences Entra accepts for a client assertion sent to this tenant's token endpoint. */
export function assertionAudiences(base: string, tenantNames: string[]): string[] {
  return tenantNames.flatMap((t) => [`${base}/${t}/oauth2/v2.0/token`, `${base}/${t}/oauth2/token`, `${base}/${t}/v2.0`, `${base}/${t}/`]);
}

/** Verifies a certificate-credential assertion for `p`. */
export async function verifyCertificateAssertion(
  p: Principal, assertion: string, audiences: string[], toleranceSeconds: number,
): Promise<void> {
  const { header, claims } = decode(assertion);
  const x5tS256 = header['x5t#S256'];
  const cert = p.certificates.find((c) => (typeof x5tS256 === 'string' && c.x5tS256 === x5tS256) || (header.x5t !== undefined && c.x5t === header.x5t));
  if (!cert) {
    throw invalidClient(700027, `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${String(header.x5t ?? x5tS256 ?? '')}']`);
  }
  if (claims.sub !== p.clientId) throw invalidClient(700023, 'Client assertion subject does not match the client id.');
  if (claims.aud === undefined || ![claims.aud].flat().some((a) => audiences.includes(a))) {
    throw invalidClient(700021, 'Client assertion audience claim does not match Realm issuer.');
  }
  try {
    await jose.jwtVerify(assertion, cert.key, { algorithms: ['RS256', 'PS256'], clockTolerance: toleranceSeconds, requiredClaims: ['exp'] });
  } catch (error) {
    throw timeError(error) ?? invalidClient(700027, 'Client assertion failed signature validation.');
  }
}

/** Verifies a federated (workload identity) assertion for `p` against its federated credentials. */
export async function verifyFederatedAssertion(
  dir: Directory, p: Principal, assertion: string, toleranceSeconds: number,
): Promise<void> {
  const { claims } = decode(assertion);
  const byIssuer = p.federated.filter((f) => f.issuer === claims.iss);
  if (byIssuer.length === 0) {
    throw new EntraError(400, 'invalid_request', 700211, `No matching federated identity record found for presented assertion issuer '${String(claims.iss)}'.`);
  }
  const bySubject = byIssuer.filter((f) => f.subject === claims.sub);
  if (bySubject.length === 0) {
    throw new EntraError(400, 'invalid_request', 700213, `No matching federated identity record found for presented assertion subject '${String(claims.sub)}'.`);
  }
  const auds = [claims.aud ?? []].flat();
  if (!bySubject.some((f) => (f.audiences ?? [TOKEN_EXCHANGE_AUDIENCE]).some((a) => auds.includes(a)))) {
    throw new EntraError(400, 'invalid_request', 700212, `No matching federated identity record found for presented assertion audience '${auds.join(',')}'.`);
  }
  const keys = dir.issuers.get(String(claims.iss));
  if (!keys) {
    throw new EntraError(400, 'invalid_request', 700223, `The issuer '${String(claims.iss)}' could not be reached to fetch its signing keys.`);
  }
  try {
    await jose.jwtVerify(assertion, keys, { algorithms: ['RS256', 'ES256', 'PS256'], clockTolerance: toleranceSeconds, requiredClaims: ['exp'] });
  } catch (error) {
    throw timeError(error) ?? invalidClient(700027, 'Client assertion failed signature validation.');
  }
}

/** A Kubernetes-style OIDC issuer minting projected service-account tokens. */
export class FederatedIssuer {
  readonly issuer: string;
  #key!: jose.CryptoKey;
  #jwks!: { keys: jose.JWK[] };
  readonly kid = randomUUID();

  private constructor(issuer: string) {
    this.issuer = issuer;
  }

  static async create(issuer = `https://oidc.prod-aks.azure.com/${randomUUID()}/`): Promise<FederatedIssuer> {
    const f = new FederatedIssuer(issuer);
    const pair = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
    f.#key = pair.privateKey;
    f.#jwks = { keys: [{ ...(await jose.exportJWK(pair.publicKey)), kid: f.kid, use: 'sig', alg: 'RS256' }] };
    return f;
  }

  jwks(): { keys: jose.JWK[] } {
    return this.#jwks;
  }

  /** A projected service-account token as the AKS webhook mounts it (default audience `api://AzureADTokenExchange`). */
  async issue(subject: string, opts: { audience?: string; lifetimeSeconds?: number; notBeforeOffsetSeconds?: number } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject);
    return new jose.SignJWT(m ? { 'kubernetes.io': { namespace: m[1], serviceaccount: { name: m[2], uid: randomUUID() } } } : {})
      .setProtectedHeader({ alg: 'RS256', kid: this.kid })
      .setIssuer(this.issuer).setSubject(subject).setAudience(opts.audience ?? TOKEN_EXCHANGE_AUDIENCE)
      .setIssuedAt(now).setNotBefore(now + (opts.notBeforeOffsetSeconds ?? 0))
      .setExpirationTime(now + (opts.lifetimeSeconds ?? 3600))
      .sign(this.#key);
  }
}
