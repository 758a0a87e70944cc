/**
 * Per-client token buckets for the unauthenticated, expensive endpoints (/auth creates a session,
 * /attest verifies evidence). A client is its IP address (an IPv6 client is its /64, since one
 * host usually holds the whole prefix); behind configured reverse proxies, the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy. Memory is bounded: at most
 * `maxClients` buckets per endpoint, the least recently seen evicted first (an evicted client
 * starts again with a full bucket, which is the state an idle client would have reached anyway).
 */
import { BlockList, isIP } from 'node:net';
import type { RateLimitConfig } from '../config/index.js';
import { KbsError } from './errors.js';
import type { Step } from './routes/types.js';

export type LimitedEndpoint = 'auth' | 'attest';

interface Bucket {
  tokens: number;
  /** Seconds (monotonic) when `tokens` was last brought up to date. */
  at: number;
}

/** Outcome of one request against its bucket. */
export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number };

export interface RateLimiterOptions {
  /** Monotonic clock in seconds (tests). */
  now?: () => number;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? (m[1] as string) : address;
}

/** The first four 16-bit groups of an IPv6 address (its /64), in canonical hex. */
function ipv6Prefix64(address: string): string {
  const [head = '', tail] = address.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  // an embedded IPv4 tail only matters past the /64, so it counts as two groups here
  const right = tail === undefined ? [] : groups(tail).flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const full = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${full.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export class RateLimiter {
  readonly config: RateLimitConfig;
  private readonly now: () => number;
  private readonly proxies: BlockList | null;
  private readonly buckets: Record<LimitedEndpoint, Map<string, Bucket>> = { auth: new Map(), attest: new Map() };

  constructor(config: RateLimitConfig, options: RateLimiterOptions = {}) {
    this.config = config;
    this.now = options.now ?? (() => performance.now() / 1000);
    this.proxies = config.trustedProxies.length > 0 ? RateLimiter.blockList(config.trustedProxies) : null;
  }

  private static blockList(entries: readonly string[]): BlockList {
    const list = new BlockList();
    for (const entry of entries) {
      const [address = '', bits] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(address, family);
      else list.addSubnet(address, Number(bits), family);
    }
    return list;
  }

  private isTrustedProxy(address: string): boolean {
    const family = isIP(address);
    return this.proxies !== null && family !== 0 && this.proxies.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The client a request is counted against: the socket peer, or (when the peer is a trusted
   * proxy) the right-most X-Forwarded-For address that is not a trusted proxy. A malformed entry
   * ends the walk: the last address known to be real is used.
   */
  clientOf(peer: string | undefined, forwardedFor: string | undefined): string {
    let client = unmapped(peer ?? 'unknown');
    if (forwardedFor !== undefined && this.isTrustedProxy(client)) {
      const hops = forwardedFor.split(',').map((h) => unmapped(h.trim()));
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i] as string;
        if (isIP(hop) === 0) break;
        client = hop;
        if (!this.isTrustedProxy(hop)) break;
      }
    }
    return isIP(client) === 6 ? ipv6Prefix64(client) : client;
  }

  /** Takes one token from the client's bucket for `endpoint`. */
  take(endpoint: LimitedEndpoint, client: string): Admission {
    const { perSecond, burst } = this.config[endpoint];
    const map = this.buckets[endpoint];
    const now = this.now();
    const known = map.get(client);
    const bucket: Bucket = known ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * perSecond);
    bucket.at = now;
    // re-insert: Map iteration order is insertion order, so the first key is the least recently seen
    if (known) map.delete(client);
    map.set(client, bucket);
    if (map.size > this.config.maxClients) map.delete(map.keys().next().value as string);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
  }

  /** Buckets currently held for `endpoint` (bounded by `maxClients`). */
  size(endpoint: LimitedEndpoint): number {
    return this.buckets[endpoint].size;
  }
}

/** The Koa step in front of /auth or /attest: 429 TooManyRequests with Retry-After when over the limit. */
export function rateLimitStep(limiter: RateLimiter | undefined, endpoint: LimitedEndpoint): Step {
  return async (ctx, next) => {
    if (limiter) {
      const forwarded = ctx.req.headers['x-forwarded-for'];
      const client = limiter.clientOf(ctx.req.socket.remoteAddress, Array.isArray(forwarded) ? forwarded.join(',') : forwarded);
      const admission = limiter.take(endpoint, client);
      if (!admission.ok) {
        throw new KbsError('TooManyRequests', 'Too many requests from this client; retry later', {
          headers: { 'Retry-After': String(admission.retryAfterSeconds) },
          cause: `rate limit on /${endpoint} for ${client}`,
        });
      }
    }
    await next();
  };
}
