/**
 * The `aad-token` plugin: `GET /kbs/v0/aad-token/<name>` releases a short-lived Entra ID access
 * token of a configured token source to an attested TEE, through the same steps as a resource
 * (token → policy with `data.plugin == "aad-token"` and `data["resource-path"] == [<name>]` →
 * JWE to the TEE key). The payload is JSON: `{access_token, token_type, expires_on, scope}`.
 * The credential behind the token never leaves the KBS.
 */
import { evaluateResourcePolicy, type JsonValue } from '../../policy/index.js';
import { BackendError } from '../../backends/types.js';
import type { AadTokenBroker } from '../../backends/azure-key-vault/aad-tokens.js';
import { KbsError } from '../errors.js';
import type { Services } from '../services.js';
import { getResourceRoute, pathSegments } from './resource.js';
import type { KbsContext, Step } from './types.js';

export const AAD_TOKEN_PLUGIN = 'aad-token';
const PREFIX = `/kbs/v0/${AAD_TOKEN_PLUGIN}/`;

function queryMap(ctx: KbsContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(ctx.querystring)) {
    if (!Object.hasOwn(out, k)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The resource route's step of that name (credentials lookup, token check, JWE are shared). */
function sharedStep(s: Services, name: string): Step {
  const step = getResourceRoute(s).find((f) => f.name === name);
  if (step === undefined) throw new Error(`aad-token: the resource route has no step ${name}`);
  return step;
}

export function aadTokenRoute(s: Services, broker: AadTokenBroker): Step[] {
  const authorizeByPolicy: Step = async (ctx, next) => {
    const segments = pathSegments(ctx, PREFIX);
    ctx.state.segments = segments;
    const decision = evaluateResourcePolicy(
      s.policies.current(),
      ctx.state.claims as JsonValue,
      { plugin: AAD_TOKEN_PLUGIN, resourcePath: segments, query: queryMap(ctx) },
      { stepBudget: s.policyStepBudget },
    );
    if (!decision.allow) {
      s.log.info({ plugin: AAD_TOKEN_PLUGIN, name: segments.join('/'), reason: decision.reason }, 'aad-token release denied by policy');
      throw new KbsError('PolicyDeny', 'Access denied by policy', { cause: decision.reason });
    }
    await next();
  };

  const fetchToken: Step = async (ctx, next) => {
    const segments = ctx.state.segments as string[];
    const name = segments.length === 1 ? (segments[0] as string) : '';
    let token;
    try {
      token = await broker.token(name);
    } catch (e) {
      if (e instanceof BackendError && e.code === 'NOT_FOUND') throw new KbsError('ResourceNotFound', `Token source ${name.slice(0, 100)} not found`, { cause: e });
      if (e instanceof BackendError && e.code === 'UNAVAILABLE') {
        s.log.warn({ plugin: AAD_TOKEN_PLUGIN, source: name, cause: e.message }, 'aad-token: token request failed');
        throw new KbsError('ServiceUnavailable', 'Token source unavailable', { cause: e });
      }
      throw new KbsError('PluginInternalError', 'Plugin internal error', { cause: e });
    }
    ctx.state.resource = new TextEncoder().encode(JSON.stringify(token));
    // What the shared JWE step logs as released.
    ctx.state.resourcePath = { repo: AAD_TOKEN_PLUGIN, type: 'token', tag: name };
    await next();
  };

  return [sharedStep(s, 'findCredentials'), sharedStep(s, 'verifyToken'), authorizeByPolicy, fetchToken, sharedStep(s, 'encryptForTee')];
}
