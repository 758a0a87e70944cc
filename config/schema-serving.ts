/**
 * TOML shape of the serving keys: TLS profile and HTTP timeouts of `[http_server]`, and the
 * `[rate_limit]` section (per-client token buckets on /auth and /attest). Resolved by
 * `config/resolve-serving.ts`.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { nonEmptyString, tomlInteger } from './field-checks.js';

/** Trustee's profile names; `old` and `custom` are refused (weak ciphers / free-form lists). */
export const TLS_PROFILES = ['intermediate', 'modern'] as const;

export const tlsProfile = z.enum(TLS_PROFILES, {
  error: 'expected "intermediate" (TLS 1.2 with ECDHE + AEAD ciphers, and TLS 1.3) or "modern" (TLS 1.3 only); "old" and "custom" are not supported',
});

/** `[http_server]` keys of this file, merged into HttpServerToml. */
export const HttpServingToml = {
  tls_profile: tlsProfile.optional(),
  /** Seconds close() lets in-flight requests finish on SIGTERM/SIGINT. */
  shutdown_grace_seconds: tomlInteger(0, 3600, 'integer (seconds)').optional(),
  /** Seconds a client has to send a whole request (headers and body). */
  request_timeout_seconds: tomlInteger(1, 3600, 'positive integer (seconds)').optional(),
  /** Seconds a client has to send the request headers. */
  headers_timeout_seconds: tomlInteger(1, 3600, 'positive integer (seconds)').optional(),
  /** Seconds an idle keep-alive connection stays open. */
  keep_alive_timeout_seconds: tomlInteger(1, 3600, 'positive integer (seconds)').optional(),
  /** Worker threads for the ECDH of resource JWEs (0: the event loop does it); default 1 on 2+ CPUs. */
  crypto_threads: tomlInteger(0, 16, 'integer (threads, 0 to 16)').optional(),
};

/** An IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`). */
export const ipOrCidr = z.string().refine(
  (text) => {
    const [addr, bits, extra] = text.split('/');
    if (extra !== undefined || addr === undefined) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    if (bits === undefined) return true;
    if (!/^[0-9]{1,3}$/.test(bits)) return false;
    return Number(bits) <= (family === 4 ? 32 : 128);
  },
  { error: 'expected an IP address or CIDR block (e.g. "10.0.0.0/8", "fd00::/8")' },
);

const rate = tomlInteger(1, 1_000_000, 'positive integer (requests per second)');
const burst = tomlInteger(1, 1_000_000, 'positive integer (requests)');

export const RateLimitToml = z.strictObject({
  enabled: z.boolean().optional(),
  auth_per_second: rate.optional(),
  auth_burst: burst.optional(),
  attest_per_second: rate.optional(),
  attest_burst: burst.optional(),
  /** Most clients tracked at once (least recently seen forgotten first). */
  max_clients: tomlInteger(1, 10_000_000, 'positive integer').optional(),
  /** Peers whose X-Forwarded-For is believed (reverse proxies, ingress). */
  trusted_proxies: z.array(nonEmptyString.pipe(ipOrCidr)).optional(),
});

export type RateLimitTomlInput = z.output<typeof RateLimitToml>;
