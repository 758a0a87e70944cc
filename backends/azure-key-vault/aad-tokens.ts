/**
 * The `aad-token` plugin's token sources: named Entra ID credentials whose access tokens the KBS
 * releases (JWE-encrypted, after attestation and policy) to workloads that hold no credential
 * themselves, as SCONE's CAS does with `kind: aad-token` secrets.
 *
 * A token is cached until shortly before it expires (REFRESH_MARGIN_MS, at most half its
 * lifetime) and concurrent requests for one source share one token request. The credential never
 * leaves this module; failures are BackendError UNAVAILABLE with an Entra-side reason, unknown
 * names NOT_FOUND.
 */
import type { AccessToken, TokenCredential } from '@azure/identity';
import { BackendError } from '../types.js';
import { createCredential, credentialSecrets, describeCredential, type AzureCredentialConfig, type IdentityTransportOptions } from './credential.js';
import { DeadlineError, identityProblem, scrub } from './errors.js';

/** Refresh a cached token when less than this remains (or half its lifetime, if shorter). */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export interface AadTokenSource {
  name: string;
  credential: AzureCredentialConfig;
  /** OAuth scope, e.g. `https://vault.azure.net/.default`. */
  scope: string;
}

export interface AadTokenBrokerOptions extends IdentityTransportOptions {
  sources: readonly AadTokenSource[];
  /** Deadline of one token request, retries included (default 10 s). */
  timeoutMs?: number;
  now?: () => number;
}

/** What the plugin releases (as JSON, inside the JWE). */
export interface ReleasedAadToken {
  access_token: string;
  token_type: 'Bearer';
  /** Unix seconds. */
  expires_on: number;
  scope: string;
}

interface Source {
  name: string;
  scope: string;
  credential: TokenCredential;
  secrets: string[];
  description: string;
  cached: { token: AccessToken; refreshAt: number } | undefined;
  pending: Promise<AccessToken> | undefined;
}

export class AadTokenBroker {
  private readonly sources = new Map<string, Source>();
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(options: AadTokenBrokerOptions) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.now = options.now ?? Date.now;
    for (const s of options.sources) {
      if (this.sources.has(s.name)) throw new Error(`aad-token: duplicate token source ${JSON.stringify(s.name)}`);
      this.sources.set(s.name, {
        name: s.name,
        scope: s.scope,
        credential: createCredential(s.credential, options),
        secrets: credentialSecrets(s.credential),
        description: describeCredential(s.credential),
        cached: undefined,
        pending: undefined,
      });
    }
  }

  get names(): string[] {
    return [...this.sources.keys()];
  }

  describe(name: string): string | undefined {
    const s = this.sources.get(name);
    return s === undefined ? undefined : `${s.description}, scope ${s.scope}`;
  }

  /** A valid token of source `name` (cached, or freshly requested). */
  async token(name: string): Promise<ReleasedAadToken> {
    if (this.closed) throw new BackendError('UNAVAILABLE', 'aad-token: closed');
    const s = this.sources.get(name);
    if (s === undefined) throw new BackendError('NOT_FOUND', `aad-token: no token source named ${JSON.stringify(name.slice(0, 100))}`);
    const now = this.now();
    if (s.cached !== undefined && now < s.cached.refreshAt) return this.released(s, s.cached.token);
    s.pending ??= this.fetch(s).finally(() => {
      s.pending = undefined;
    });
    return this.released(s, await s.pending);
  }

  private released(s: Source, token: AccessToken): ReleasedAadToken {
    return { access_token: token.token, token_type: 'Bearer', expires_on: Math.floor(token.expiresOnTimestamp / 1000), scope: s.scope };
  }

  private async fetch(s: Source): Promise<AccessToken> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new DeadlineError(this.timeoutMs);
        ac.abort(e);
        reject(e);
      }, this.timeoutMs);
    });
    let token: AccessToken | null;
    try {
      token = await Promise.race([s.credential.getToken(s.scope, { abortSignal: ac.signal }), deadline]);
    } catch (e) {
      const why = e instanceof DeadlineError ? `timed out (${e.message})` : e instanceof Error && e.name === 'AbortError' ? 'timed out' : identityProblem(e, s.secrets);
      throw new BackendError('UNAVAILABLE', scrub(`aad-token ${s.name}: could not obtain an Entra ID token (${s.description}, scope ${s.scope}): ${why}`, s.secrets));
    } finally {
      clearTimeout(timer);
    }
    if (token === null) throw new BackendError('UNAVAILABLE', `aad-token ${s.name}: the credential returned no token`);
    const now = this.now();
    const lifetime = token.expiresOnTimestamp - now;
    if (!(lifetime > 0)) throw new BackendError('UNAVAILABLE', `aad-token ${s.name}: Entra ID returned an already expired token`);
    const margin = Math.min(REFRESH_MARGIN_MS, lifetime / 2);
    s.cached = { token, refreshAt: token.expiresOnTimestamp - margin };
    return token;
  }

  close(): void {
    this.closed = true;
    for (const s of this.sources.values()) s.cached = undefined;
  }
}
