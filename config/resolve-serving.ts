/**
 * Resolution of the serving keys: TLS profile, HTTP timeouts and crypto threads of `[http_server]`, and
 * `[rate_limit]` (defaults applied, cross-key rules checked).
 */
import { availableParallelism } from 'node:os';
import { DEFAULTS, type HttpServerConfig, type KbsConfigTomlInput, type RateLimitConfig } from './schema.js';
import type { Resolver } from './paths.js';

/** `crypto_threads` when not set: one worker thread when a second CPU can run it, none otherwise. */
export function defaultCryptoThreads(): number {
  return availableParallelism() > 1 ? 1 : 0;
}

type ServingKeys = Pick<HttpServerConfig, 'tlsProfile' | 'shutdownGraceMs' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs' | 'cryptoThreads'>;

export function resolveServing(r: Resolver, toml: KbsConfigTomlInput): ServingKeys {
  const hs = toml.http_server ?? {};
  const requestTimeout = hs.request_timeout_seconds ?? DEFAULTS.requestTimeoutSeconds;
  const headersTimeout = hs.headers_timeout_seconds ?? Math.min(DEFAULTS.headersTimeoutSeconds, requestTimeout);
  if (headersTimeout > requestTimeout) {
    r.issues.add(['http_server', 'headers_timeout_seconds'], 'must not exceed request_timeout_seconds (the whole request includes its headers)');
  }
  if (hs.insecure_http === true && hs.tls_profile !== undefined) {
    r.warnings.push('http_server: insecure_http = true, so tls_profile is ignored');
  }
  return {
    tlsProfile: hs.tls_profile ?? DEFAULTS.tlsProfile,
    shutdownGraceMs: (hs.shutdown_grace_seconds ?? DEFAULTS.shutdownGraceSeconds) * 1000,
    requestTimeoutMs: requestTimeout * 1000,
    headersTimeoutMs: headersTimeout * 1000,
    keepAliveTimeoutMs: (hs.keep_alive_timeout_seconds ?? DEFAULTS.keepAliveTimeoutSeconds) * 1000,
    cryptoThreads: hs.crypto_threads ?? defaultCryptoThreads(),
  };
}

export function resolveRateLimit(r: Resolver, toml: KbsConfigTomlInput): RateLimitConfig {
  const rl = toml.rate_limit ?? {};
  const enabled = rl.enabled ?? DEFAULTS.rateLimitEnabled;
  if (!enabled) {
    r.warnings.push('rate_limit: enabled = false: /kbs/v0/auth and /kbs/v0/attest are not rate limited per client');
  }
  return {
    enabled,
    auth: { perSecond: rl.auth_per_second ?? DEFAULTS.authPerSecond, burst: rl.auth_burst ?? DEFAULTS.authBurst },
    attest: { perSecond: rl.attest_per_second ?? DEFAULTS.attestPerSecond, burst: rl.attest_burst ?? DEFAULTS.attestBurst },
    maxClients: rl.max_clients ?? DEFAULTS.rateLimitMaxClients,
    trustedProxies: rl.trusted_proxies ?? [],
  };
}
