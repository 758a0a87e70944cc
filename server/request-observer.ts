/**
 * The outermost middleware: request id, request-bound logger, HTTP metrics and the access log.
 *
 *  - An incoming `X-Request-Id` is kept only when it matches `REQUEST_ID` (letters, digits and
 *    `._:-`, at most 128): anything else is replaced by a random UUID, so ids cannot inject text
 *    into logs. The id is returned in `X-Request-Id` on every response, errors included.
 *  - `ctx.state.log` is a pino child logger bound to the id; routes log through it.
 *  - HTTP metrics count requests under `/kbs` only, like Trustee (scrapes and probes would distort
 *    them), labelled by route pattern, never by raw path.
 *  - One access-log line per request: method, route pattern (the raw path, clipped, only when no
 *    route matched), status, duration, sizes and id. Never headers, cookies, queries or bodies.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { KbsState } from './routes/types.js';
import type { Services } from './services.js';

export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The id for a request: the client's when well formed, a fresh UUID otherwise. */
export function requestIdFor(incoming: string | undefined): string {
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** A route pattern as a label: `/kbs/v0/auth{/*rest}` → `/kbs/v0/auth`. */
function routeLabel(matched: unknown): string | undefined {
  return typeof matched === 'string' ? matched.replace(/\{\/\*rest\}$/, '') : undefined;
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

/**
 * A JSON body (a plain object or array) serialized here, once: Koa's `response.length` would
 * stringify it to measure it, and its `respond` a second time to send it. Same bytes, same
 * Content-Type; Content-Length is set from the text.
 */
function serializeJsonBody(ctx: Context): void {
  const body: unknown = ctx.body;
  if (body === null || typeof body !== 'object') return;
  const proto: unknown = Object.getPrototypeOf(body);
  if (!Array.isArray(body) && proto !== Object.prototype && proto !== null) return; // Buffer, stream, Blob…
  // Koa keeps the Content-Type it set for the object (setting a string body only types untyped ones)
  ctx.body = JSON.stringify(body);
}

export function observeRequests(s: Services): Middleware<KbsState> {
  const m = s.metrics;
  return async function observeRequest(ctx, next) {
    const started = process.hrtime.bigint();
    const requestId = requestIdFor(ctx.get('X-Request-Id') || undefined);
    const log = s.log.child({ reqId: requestId });
    ctx.state.requestId = requestId;
    ctx.state.log = log;
    ctx.set('X-Request-Id', requestId);
    const counted = ctx.path === '/kbs' || ctx.path.startsWith('/kbs/');
    if (counted) {
      m.httpActive.inc();
      const length = Number(ctx.get('Content-Length'));
      m.httpRequestSize.observe(Number.isSafeInteger(length) && length >= 0 ? length : 0);
    }
    try {
      await next();
    } finally {
      // the error handler sits inside this middleware: status and body are final here
      ctx.set('X-Request-Id', requestId);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel((ctx as { _matchedRoute?: unknown })._matchedRoute);
      const status = ctx.status;
      serializeJsonBody(ctx);
      const bytes = ctx.response.length;
      if (counted) {
        m.httpActive.dec();
        m.httpRequests.inc({ method: ctx.method, route: route ?? 'unmatched', status: String(status) });
        m.httpDuration.observe({ method: ctx.method, route: route ?? 'unmatched' }, seconds);
        if (bytes !== undefined) m.httpResponseSize.observe(bytes);
      }
      log.info(
        {
          method: ctx.method,
          ...(route !== undefined ? { route } : { path: clip(ctx.path) }),
          status,
          ms: Math.round(seconds * 1e6) / 1e3,
          ...(bytes !== undefined ? { bytes } : {}),
        },
        'request',
      );
    }
  };
}
