/**
 * Attestation tokens: signing the EAR tokens this KBS issues (ES256 with a P-256 key, the public
 * key as `jwk` in the header, plus `x5c` when a certificate chain is configured), and verifying
 * tokens presented on resource requests (ours, or issued by a trusted attestation service).
 */
import { X509Certificate, createPublicKey, sign, type KeyObject } from 'node:crypto';
import {
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
/** Verified tokens remembered (oldest forgotten first), and the longest token remembered. */
const VERIFIED_CACHE_ENTRIES = 4096;
const VERIFIED_CACHE_MAX_TOKEN_LENGTH = 16 * 1024;

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

  /**
   * The compact JWS that jose's `new SignJWT(claims).setProtectedHeader({typ: 'JWT', alg: 'ES256',
   * jwk}).sign(key)` produces, byte for byte in header and payload (same checks, same structured
   * clone and JSON serialization), with the ES256 signature (IEEE P1363 r‖s) computed by node:crypto
   * on the thread pool: jose signs through WebCrypto, whose job set-up costs the event loop more
   * than the signature itself.
   */
  async sign(claims: JWTPayload): Promise<string> {
    if (!isObject(claims)) throw new TypeError('JWT Claims Set MUST be an object');
    // jose structured-clones the claims first; for the JSON values signed here that changes nothing
    // JSON.stringify would see, so the clone is skipped.
    const claimsSet = claims;
    for (const claim of ['iat', 'nbf', 'exp'] as const) {
      const value = claimsSet[claim];
      if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`"${claim}" claim must be a finite number`);
    }
    const header = { typ: 'JWT', alg: 'ES256', jwk: this.publicJwk };
    const signingInput = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claimsSet))}`;
    // the callback form runs the ECDSA signature on libuv's thread pool, off the event loop
    const signature = await new Promise<Buffer>((resolve, reject) =>
      sign('sha256', Buffer.from(signingInput, 'ascii'), { key: this.privateKey, dsaEncoding: 'ieee-p1363' }, (e, sig) => (e ? reject(e) : resolve(sig))),
    );
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}

function b64u(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** jose's `isObject`: a plain object (prototype null, or a prototype whose prototype is null). */
function isObject(input: unknown): input is Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Object.prototype.toString.call(input) !== '[object Object]') return false;
  const prototype: unknown = Object.getPrototypeOf(input);
  return prototype === null || Object.getPrototypeOf(prototype) === null;
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

/** Freezes a parsed JSON document and everything in it (claims are shared by every request of a token). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function sameKey(a: JWK, b: JWK): boolean {
  return a.kty === b.kty && a.crv === b.crv && a.x === b.x && a.y === b.y && a.n === b.n && a.e === b.e;
}

/**
 * A token whose signature and trust were verified: everything about it that does not depend on the
 * clock. `nbf`/`exp` are checked again at every use, exactly as jose's jwtVerify checks them.
 */
interface VerifiedToken {
  /** The decoded claims, deep-frozen: every caller gets the same immutable object. */
  payload: JWTPayload;
  nbf: number | undefined;
  exp: number;
}

export class TokenVerifier {
  private readonly ownJwk: Promise<JWK | undefined>;
  private readonly jwkSets: ReturnType<typeof createLocalJWKSet>[];
  /**
   * Tokens already verified, by their exact text. A resource GET verifies its token every time (the
   * session's token or the Bearer one); the signature check and key import dominate that cost, and
   * their outcome for a given token never changes: the keys trusted here are fixed at construction.
   * Tokens trusted through an x5c chain are not remembered (certificate validity depends on the date).
   */
  private readonly verified = new Map<string, VerifiedToken>();

  constructor(private readonly options: TokenVerifierOptions) {
    this.ownJwk = options.ownKey ? exportJWK(options.ownKey) : Promise.resolve(undefined);
    this.jwkSets = (options.trustedJwks ?? []).map((s) => createLocalJWKSet(s));
  }

  /** Verifies signature, trust and `exp` (60 s leeway). Returns the claims or throws TokenVerifierError. */
  async verify(token: string): Promise<JWTPayload> {
    if (token.length > MAX_TOKEN_LENGTH) throw fail('token too long');
    const now = this.options.now?.() ?? new Date();
    const known = this.verified.get(token);
    if (known !== undefined) {
      const nowSeconds = Math.floor(now.getTime() / 1000);
      if (Number.isFinite(nowSeconds)) return this.checkTimes(token, known, nowSeconds);
    }
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw fail('malformed token header');
    }
    if (typeof header.alg !== 'string' || header.alg === 'none') throw fail('missing or forbidden alg');
    const verifyOptions = { clockTolerance: TOKEN_LEEWAY_SECONDS, requiredClaims: ['exp'], currentDate: now };
    try {
      if (header.jwk) {
        const jwk = header.jwk as JWK;
        const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
        if (!alg || alg !== header.alg) throw fail('the header jwk has no alg or it differs from the token alg');
        const own = await this.ownJwk;
        if (own !== undefined && this.options.ownKey && sameKey(own, jwk)) {
          // our own token: verify with the key object we already hold (no import per request)
          const { payload } = await jwtVerify(token, this.options.ownKey, { ...verifyOptions, algorithms: [alg] });
          this.remember(token, payload);
          return payload;
        }
        let trusted = false;
        if (this.options.trustedCerts && this.options.trustedCerts.length > 0) trusted = await this.chainTrusted(jwk, now);
        if (!trusted && !this.options.insecureHeaderJwk) throw fail('the token key is not trusted');
        const key = await importJWK({ ...jwk, x5c: undefined }, alg);
        const { payload } = await jwtVerify(token, key, { ...verifyOptions, algorithms: [alg] });
        // trust that came from a certificate chain depends on the date: not remembered
        if (this.options.insecureHeaderJwk) this.remember(token, payload);
        return payload;
      }
      if (typeof header.kid === 'string') {
        for (const set of this.jwkSets) {
          try {
            const { payload } = await jwtVerify(token, set, verifyOptions);
            this.remember(token, payload);
            return payload;
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

  /**
   * A token `signer` has just issued: when `signer` is our own trusted key, `verify` would accept this
   * exact text on its signature and trust (the header carries that key, with alg ES256), so only its
   * claims are checked, as jwtVerify checks them, and the token is remembered. The first resource
   * GET of an RCAR flow then skips a signature verification of a token this process signed.
   */
  rememberIssued(token: string, signer: TokenSigner): void {
    if (this.options.ownKey === undefined || !this.options.ownKey.equals(signer.publicKey)) return;
    if (token.length > MAX_TOKEN_LENGTH) return;
    const encodedPayload = token.split('.')[1];
    if (encodedPayload === undefined) return;
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(encodedPayload, 'base64url').toString('utf8'));
    } catch {
      return;
    }
    if (!isObject(payload)) return;
    const numberOrAbsent = (v: unknown) => v === undefined || typeof v === 'number';
    if (typeof payload['exp'] !== 'number' || !numberOrAbsent(payload['iat']) || !numberOrAbsent(payload['nbf'])) return;
    this.remember(token, payload);
  }

  /** The `nbf`/`exp` checks of jose's jwtVerify (same tolerance, same messages) for a known token. */
  private checkTimes(token: string, known: VerifiedToken, nowSeconds: number): JWTPayload {
    if (known.nbf !== undefined && known.nbf > nowSeconds + TOKEN_LEEWAY_SECONDS) throw fail('"nbf" claim timestamp check failed');
    if (known.exp <= nowSeconds - TOKEN_LEEWAY_SECONDS) {
      this.verified.delete(token);
      throw fail('"exp" claim timestamp check failed');
    }
    return known.payload;
  }

  private remember(token: string, payload: JWTPayload): void {
    if (token.length > VERIFIED_CACHE_MAX_TOKEN_LENGTH || typeof payload.exp !== 'number') return;
    if (payload.nbf !== undefined && typeof payload.nbf !== 'number') return;
    if (this.verified.size >= VERIFIED_CACHE_ENTRIES) {
      // the oldest quarter at once: evicting one entry per insert made every insert walk the
      // deleted slots at the head of the Map (its iterator skips them one by one)
      let n = VERIFIED_CACHE_ENTRIES / 4;
      for (const oldest of this.verified.keys()) {
        this.verified.delete(oldest);
        if (--n === 0) break;
      }
    }
    // `payload` was parsed from exactly this token's bytes (by jose, or by rememberIssued); from now
    // on it is shared by every use of the token, so it is frozen.
    this.verified.set(token, { payload: deepFreeze(payload), nbf: payload.nbf, exp: payload.exp });
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
