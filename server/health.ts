/**
 * Probes and the metrics endpoint, outside `/kbs/v0` (Trustee serves `/healthz` and `/metrics`
 * there; `/readyz` is ours):
 *  - `GET /healthz`: liveness, 200 while the event loop answers.
 *  - `GET /readyz`: readiness, 200 when every check passes, else 503 with a problem body naming
 *    the failing checks (names only: no paths, errors or secrets; the causes are logged).
 *    Checks: `backend` (its `check()` within `READY_TIMEOUT_MS`), `token_key`, `admin_keys`,
 *    `policy`, `audit` (writable when required), `shutdown` (not draining). Concurrent probes share
 *    one evaluation and a result is reused for `READY_CACHE_MS`, so the endpoint cannot be used to
 *    hammer the storage.
 *  - `GET /metrics`: Prometheus text format; unauthenticated like Trustee's. `[metrics] enabled =
 *    false` removes it (404).
 */
import type { Middleware } from 'koa';
import { KbsError } from './errors.js';
import type { KbsState } from './routes/types.js';
import type { Services } from './services.js';

export const READY_TIMEOUT_MS = 2000;
export const READY_CACHE_MS = 500;

export interface Readiness {
  ready: boolean;
  checks: Record<string, 'ok' | 'failed'>;
}

type Check = () => void | Promise<void>;

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function checksOf(s: Services): Record<string, Check> {
  return {
    shutdown: () => {
      if (s.lifecycle.draining) throw new Error('shutting down');
    },
    backend: () => withTimeout(s.backend.check(), READY_TIMEOUT_MS),
    token_key: () => {
      if (s.signer.publicKey.type !== 'public') throw new Error('no token signing key');
    },
    admin_keys: () => {
      const c = s.admin.config;
      if (c.mode === 'Ed25519Key' && c.publicKey.type !== 'public') throw new Error('no admin public key');
      if (c.mode === 'AuthenticatedAuthorization' && !c.providers.some((p) => p.publicKeys.length > 0 || (p.jwks?.keys.length ?? 0) > 0)) {
        throw new Error('no identity provider key');
      }
    },
    policy: () => {
      if (!s.policies.current().source) throw new Error('no resource policy');
    },
    audit: () => {
      if (s.audit.required && !s.audit.healthy) throw new Error('required audit log not writable');
    },
  };
}

/** Runs every check; failures are logged with their cause, reported by name only. */
export async function evaluateReadiness(s: Services): Promise<Readiness> {
  const entries = Object.entries(checksOf(s));
  const results = await Promise.allSettled(entries.map(async ([, check]) => check()));
  const checks: Readiness['checks'] = {};
  results.forEach((r, i) => {
    const name = (entries[i] as [string, Check])[0];
    checks[name] = r.status === 'fulfilled' ? 'ok' : 'failed';
    if (r.status === 'rejected') {
      s.log.warn({ check: name, cause: r.reason instanceof Error ? r.reason.message : String(r.reason) }, 'readiness check failed');
    }
  });
  return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
}

export function healthzRoute(): Middleware<KbsState> {
  return async function healthz(ctx) {
    ctx.status = 200;
    ctx.body = '';
  };
}

export function readyzRoute(s: Services): Middleware<KbsState> {
  let inFlight: Promise<Readiness> | undefined;
  let cached: { at: number; value: Readiness } | undefined;
  const readiness = (): Promise<Readiness> => {
    if (cached && Date.now() - cached.at < READY_CACHE_MS) return Promise.resolve(cached.value);
    inFlight ??= evaluateReadiness(s)
      .then((value) => {
        cached = { at: Date.now(), value };
        return value;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  return async function readyz(ctx) {
    const r = await readiness();
    ctx.set('Cache-Control', 'no-store');
    if (!r.ready) {
      const failing = Object.keys(r.checks).filter((k) => r.checks[k] !== 'ok');
      throw new KbsError('ServiceUnavailable', `Not ready: ${failing.join(', ')}`);
    }
    ctx.status = 200;
    ctx.body = { status: 'ready', checks: r.checks };
  };
}

export function metricsRoute(s: Services): Middleware<KbsState> {
  return async function metrics(ctx) {
    // Trustee answers 405 to a POST; so do we, to every method but GET (and HEAD)
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new KbsError('MethodNotAllowed', `Method ${ctx.method} not allowed`);
    const { contentType, text } = await s.metrics.exposition();
    ctx.status = 200;
    ctx.type = contentType;
    ctx.body = text;
  };
}
