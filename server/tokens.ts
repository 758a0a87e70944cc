/**
 * Attestation tokens: signing the EAR tokens this KBS issues (ES256 with a P-256 key, the public
 * key as `jwk` in the header, plus `x5c` when a certificate chain is configured), and verifying
 * tokens presented on resource requests (ours, or issued by a trusted attestation service).
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import {
  SignJWT,
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  importJWK,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { KbsError } from './errors.js';

export const TOKEN_LEEWAY_SECONDS = 60;
const MAX_TOKEN_LENGTH = 256 * 1024;

export class TokenSigner {
  private constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    readonly publicJwk: JWK,
  ) {}

  /** A signer for a P-256 private key, with an optional certificate chain (leaf first) for x5c. */
  static async create(privateKey: KeyObject, chain: X509Certificate[] = []): Promise<TokenSigner> {
    if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the token signing key must be an EC P-256 private key');
    }
    const publicKey = createPublicKey(privateKey);
    const jwk = await exportJWK(publicKey);
    const publicJwk: JWK = { kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string, alg: 'ES256' };
    if (chain.length > 0) {
      const leaf = chain[0] as X509Certificate;
      const leafJwk = await exportJWK(leaf.publicKey);
      if (leafJwk.x !== publicJwk.x || leafJwk.y !== publicJwk.y) {
        throw new Error('the token signing certificate does not match the signing key');
      }
      publicJwk.x5c = chain.map((c) => c.raw.toString('base64'));
    }
    return new TokenSigner(privateKey, publicKey, publicJwk);
  }

  async sign(claims: JWTPayload): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ typ: 'JWT', alg: 'ES256', jwk: this.publicJwk }).sign(this.privateKey);
  }
}

export interface TokenVerifierOptions {
  /** Our own signer's public key: tokens carrying it in their `jwk` header verify with it. */
  ownKey?: KeyObject;
  /** Trusted CA certificates for tokens whose `jwk` header has an `x5c` chain. */
  trustedCerts?: X509Certificate[];
  /** Trusted JWK sets for tokens with a `kid` header. */
  trustedJwks?: JSONWebKeySet[];
  /** Trust whatever key the token header carries (testing only; a loud warning at start). */
  insecureHeaderJwk?: boolean;
  now?: () => Date;
}

function fail(reason: string): KbsError {
  return new KbsError('TokenVerifierError', 'Token Verifier error', { cause: reason });
}

function sameKey(a: JWK, b: JWK): boolean {
  return a.kty === b.kty && a.crv === b.crv && a.x === b.x && a.y === b.y && a.n === b.n && a.e === b.e;
}

export class TokenVerifier {
  private readonly ownJwk: Promise<JWK | undefined>;
  private readonly jwkSets: ReturnType<typeof createLocalJWKSet>[];

  constructor(private readonly options: TokenVerifierOptions) {
    this.ownJwk = options.ownKey ? exportJWK(options.ownKey) : Promise.resolve(undefined);
    this.jwkSets = (options.trustedJwks ?? []).map((s) => createLocalJWKSet(s));
  }

  /** Verifies signature, trust and `exp` (60 s leeway). Returns the claims or throws TokenVerifierError. */
  async verify(token: string): Promise<JWTPayload> {
    if (token.length > MAX_TOKEN_LENGTH) throw fail('token too long');
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw fail('malformed token header');
    }
    if (typeof header.alg !== 'string' || header.alg === 'none') throw fail('missing or forbidden alg');
    const now = this.options.now?.() ?? new Date();
    const verifyOptions = { clockTolerance: TOKEN_LEEWAY_SECONDS, requiredClaims: ['exp'], currentDate: now };
    try {
      if (header.jwk) {
        const jwk = header.jwk as JWK;
        const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
        if (!alg || alg !== header.alg) throw fail('the header jwk has no alg or it differs from the token alg');
        const own = await this.ownJwk;
        if (own !== undefined && this.options.ownKey && sameKey(own, jwk)) {
          // our own token: verify with the key object we already hold (no import per request)
          return (await jwtVerify(token, this.options.ownKey, { ...verifyOptions, algorithms: [alg] })).payload;
        }
        let trusted = false;
        if (this.options.trustedCerts && this.options.trustedCerts.length > 0) trusted = await this.chainTrusted(jwk, now);
        if (!trusted && !this.options.insecureHeaderJwk) throw fail('the token key is not trusted');
        const key = await importJWK({ ...jwk, x5c: undefined }, alg);
        return (await jwtVerify(token, key, { ...verifyOptions, algorithms: [alg] })).payload;
      }
      if (typeof header.kid === 'string') {
        for (const set of this.jwkSets) {
          try {
            return (await jwtVerify(token, set, verifyOptions)).payload;
          } catch {
            // try the next set
          }
        }
        throw fail('no trusted JWK set has this kid or the signature is invalid');
      }
      throw fail('the token has neither a jwk nor a kid header');
    } catch (e) {
      if (e instanceof KbsError) throw e;
      throw fail(e instanceof Error ? e.message : 'verification failed');
    }
  }

  /** The x5c chain in the jwk validates to a trusted certificate and its leaf holds this key. */
  private async chainTrusted(jwk: JWK, now: Date): Promise<boolean> {
    if (!Array.isArray(jwk.x5c) || jwk.x5c.length === 0 || jwk.x5c.length > 10) return false;
    let chain: X509Certificate[];
    try {
      chain = jwk.x5c.map((c) => new X509Certificate(Buffer.from(c, 'base64')));
    } catch {
      return false;
    }
    const leafJwk = await exportJWK((chain[0] as X509Certificate).publicKey);
    if (!sameKey(leafJwk, jwk)) return false;
    const valid = (c: X509Certificate) => new Date(c.validFrom) <= now && now <= new Date(c.validTo);
    if (!chain.every(valid)) return false;
    for (let i = 0; i + 1 < chain.length; i++) {
      const child = chain[i] as X509Certificate;
      const parent = chain[i + 1] as X509Certificate;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return false;
    }
    const top = chain[chain.length - 1] as X509Certificate;
    return (this.options.trustedCerts ?? []).some(
      (ca) => valid(ca) && (ca.raw.equals(top.raw) || (top.checkIssued(ca) && top.verify(ca.publicKey))),
    );
  }
}
