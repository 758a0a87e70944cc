/**
 * The Koa application: the KBS protocol under /kbs/v0, as Trustee routes it. Built-in endpoints
 * match on their first path segment and method (extra segments are ignored, as upstream); anything
 * else under /kbs/v0 is an unknown plugin (404 PluginNotFound).
 */
import Koa from 'koa';
import { Router } from '@koa/router';
import { errorHandler } from './error-handler.js';
import { KbsError } from './errors.js';
import { healthzRoute, metricsRoute, readyzRoute } from './health.js';
import { observeRequests } from './request-observer.js';
import { aadTokenRoute } from './routes/aad-token.js';
import { attestRoute } from './routes/attest.js';
import { authRoute } from './routes/auth.js';
import { deleteResourceRoute, getResourceRoute, listResourcesRoute, setResourceRoute } from './routes/resource.js';
import { setAttestationPolicyRoute } from './routes/attestation-policy.js';
import { getReferenceValueRoute, setReferenceValueRoute } from './routes/reference-value.js';
import { getResourcePolicyRoute, setResourcePolicyRoute } from './routes/resource-policy.js';
import { rateLimitStep } from './rate-limit.js';
import type { KbsState, Step } from './routes/types.js';
import type { Services } from './services.js';

const PROTOCOL_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE']);

export function createApp(s: Services): Koa<KbsState> {
  const app = new Koa<KbsState>({ proxy: false });
  app.silent = true;
  const router = new Router<KbsState>();

  router.post('/kbs/v0/auth{/*rest}', rateLimitStep(s.rateLimiter, 'auth'), ...(authRoute(s) as Step[]));
  router.post('/kbs/v0/attest{/*rest}', rateLimitStep(s.rateLimiter, 'attest'), ...attestRoute(s));
  router.get('/kbs/v0/resource/*path', ...getResourceRoute(s));
  router.post('/kbs/v0/resource/*path', ...setResourceRoute(s));
  router.delete('/kbs/v0/resource/*path', ...deleteResourceRoute(s));
  router.post('/kbs/v0/resource-policy{/*rest}', ...setResourcePolicyRoute(s));
  router.get('/kbs/v0/resource-policy{/*rest}', ...getResourcePolicyRoute(s));
  router.get('/kbs/v0/resources', ...listResourcesRoute(s));
  if (s.aadTokens !== undefined) router.get('/kbs/v0/aad-token/*name', ...aadTokenRoute(s, s.aadTokens));
  router.post('/kbs/v0/attestation-policy{/*rest}', ...setAttestationPolicyRoute(s));
  router.post('/kbs/v0/reference-value{/*rest}', ...setReferenceValueRoute(s));
  router.get('/kbs/v0/reference-value{/*rest}', ...getReferenceValueRoute(s));
  router.get('/healthz', healthzRoute());
  router.get('/readyz', readyzRoute(s));
  if (s.metricsEnabled) router.all('/metrics', metricsRoute(s));

  app.use(observeRequests(s)); // request id, request logger, HTTP metrics, access log
  app.use(errorHandler(s.log));
  app.use(router.routes());
  app.use(async function unknownRoute(ctx) {
    if (!PROTOCOL_METHODS.has(ctx.method)) throw new KbsError('MethodNotAllowed', `Method ${ctx.method} not allowed`);
    const prefix = '/kbs/v0/';
    const plugin = ctx.path.startsWith(prefix) ? (ctx.path.slice(prefix.length).split('/')[0] as string) : '';
    // the resource plugin answers PUT (and paths without a resource) with an internal error upstream
    if (plugin === 'resource') throw new KbsError('PluginInternalError', 'Plugin internal error');
    throw new KbsError('PluginNotFound', `Plugin ${clip(plugin)} not found`);
  });
  return app;
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
