/**
 * The `resource` plugin: `GET /kbs/v0/resource/<repo>/<type>/<tag>` releases a secret to an
 * attested TEE (token → policy → storage → JWE); `POST`/`DELETE` (admin) write it; `GET
 * /kbs/v0/resources` (admin) lists what is stored, never values.
 */
import { evaluateResourcePolicy, type JsonValue } from '../../policy/index.js';
import { BackendError } from '../../backends/types.js';
import { parseResourcePath, formatResourcePath } from '../../backends/resource-path.js';
import { readRawBody } from '../body.js';
import { readSessionCookie } from '../cookie.js';
import { KbsError } from '../errors.js';
import { encryptForTeeKey, encryptForTeeKeyWith, JweError, type JweOptions } from '../jwe.js';
import type { Services } from '../services.js';
import { parseTeePubKey, type TeePubKey } from '../tee-pubkey.js';
import { adminChange, auditRelease, policyDecision } from '../observe.js';
import { requireAdmin } from './admin.js';
import type { KbsContext, Step } from './types.js';
import type { ResourcePath } from '../../backends/types.js';

/** Where Trustee looks for the TEE key in token claims (JSON pointers), first hit wins. */
const TEE_KEY_POINTERS = [
  ['tdx', 'attester_runtime_data', 'tee-pubkey'],
  ['tdx', 'attester_user_data', 'tee-pubkey'],
  ['customized_claims', 'runtime_data', 'tee-pubkey'],
  ['submods', 'cpu0', 'ear.veraison.annotated-evidence', 'runtime_data_claims', 'tee-pubkey'],
  ['tee-pubkey'],
];

const BEARER = /^Bearer (\S+)$/;

/** RFC 6901 JSON pointer text → path segments. */
function parsePointer(text: string): string[] {
  return text === '' ? [] : text.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function pointer(doc: unknown, path: string[]): unknown {
  let cur = doc;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** The resource path segments after `/kbs/v0/resource/` (raw, empty segments kept). */
export function pathSegments(ctx: KbsContext, prefix: string): string[] {
  const rest = ctx.path.slice(prefix.length);
  return rest === '' ? [] : rest.split('/');
}

function queryMap(ctx: KbsContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(ctx.querystring)) {
    if (!Object.hasOwn(out, k)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function storageError(e: unknown, path: string): KbsError {
  if (e instanceof BackendError) {
    if (e.code === 'NOT_FOUND') return new KbsError('ResourceNotFound', `Resource ${path} not found`, { cause: e });
    if (e.code === 'UNAVAILABLE') return new KbsError('ServiceUnavailable', 'Storage backend unavailable', { cause: e });
    if (e.code === 'READ_ONLY') return new KbsError('ResourceReadOnly', `Resource ${path} is read-only`, { cause: e });
  }
  return new KbsError('PluginInternalError', 'Plugin internal error', { cause: e });
}

export function getResourceRoute(s: Services): Step[] {
  const findCredentials: Step = async (ctx, next) => {
    const id = readSessionCookie(ctx.get('Cookie'));
    const session = id ? await s.sessions.get(id) : undefined;
    if (session?.state === 'attested') {
      ctx.state.token = session.token;
    } else {
      const m = BEARER.exec(ctx.get('Authorization'));
      if (!m) throw new KbsError('TokenNotFound', 'Attestation Token not found');
      ctx.state.token = m[1] as string;
    }
    await next();
  };

  const verifyToken: Step = async (ctx, next) => {
    ctx.state.claims = await s.verifier.verify(ctx.state.token as string);
    await next();
  };

  const authorizeByPolicy: Step = async (ctx, next) => {
    const segments = pathSegments(ctx, '/kbs/v0/resource/');
    ctx.state.segments = segments;
    const decision = evaluateResourcePolicy(
      s.policies.current(),
      ctx.state.claims as JsonValue,
      { plugin: 'resource', resourcePath: segments, query: queryMap(ctx) },
      { stepBudget: s.policyStepBudget },
    );
    await policyDecision(s, ctx, segments.join('/'), decision);
    if (!decision.allow) {
      throw new KbsError('PolicyDeny', 'Access denied by policy', { cause: decision.reason });
    }
    await next();
  };

  const readResource: Step = async (ctx, next) => {
    let path: ResourcePath;
    try {
      path = parseResourcePath(ctx.state.segments as string[]);
    } catch (e) {
      throw new KbsError('PluginInternalError', 'Plugin internal error', { cause: e });
    }
    try {
      ctx.state.resource = await s.backend.get(path);
    } catch (e) {
      throw storageError(e, formatResourcePath(path));
    }
    ctx.state.resourcePath = path;
    await next();
  };

  const pointers = [...s.extraTeeKeyPaths.map(parsePointer), ...TEE_KEY_POINTERS];
  /** TEE keys by claims object: a remembered token's claims are one frozen object, reused by every GET. */
  const teeKeys = new WeakMap<object, TeePubKey>();

  const encryptForTee: Step = async (ctx) => {
    const claims = ctx.state.claims as object;
    let key = teeKeys.get(claims);
    if (key === undefined) {
      const raw = pointers.map((p) => pointer(claims, p)).find((v) => v !== undefined);
      try {
        key = parseTeePubKey(raw);
      } catch (e) {
        throw new KbsError('TokenVerifierError', 'Token Verifier error', { cause: e });
      }
      if (Object.isFrozen(claims)) teeKeys.set(claims, key);
    }
    const teeKey = key;
    const plaintext = ctx.state.resource as Uint8Array;
    const options: JweOptions = { onDeprecated: (message) => (ctx.state.log ?? s.log).warn({ alg: teeKey.alg }, message) };
    try {
      ctx.body = s.cryptoPool
        ? await encryptForTeeKeyWith(s.cryptoPool.agree, teeKey, plaintext, options)
        : encryptForTeeKey(teeKey, plaintext, options);
    } catch (e) {
      if (e instanceof JweError) throw new KbsError('JweError', 'JWE failed', { cause: e });
      throw e;
    }
    ctx.status = 200;
    ctx.type = 'application/json';
  };

  return [findCredentials, verifyToken, authorizeByPolicy, auditRelease(s), readResource, encryptForTee];
}

function adminResourcePath(ctx: KbsContext): ResourcePath {
  try {
    return parseResourcePath(pathSegments(ctx, '/kbs/v0/resource/'));
  } catch (e) {
    throw new KbsError('PluginInternalError', 'Plugin internal error', { cause: e });
  }
}

/** Upstream answers admin writes with 200, an empty body and `Content-Type: text/xml`. */
function emptyOk(ctx: KbsContext): void {
  ctx.status = 200;
  ctx.body = '';
  ctx.type = 'text/xml';
}

export function setResourceRoute(s: Services): Step[] {
  const writeResource: Step = async (ctx) => {
    const path = adminResourcePath(ctx);
    await adminChange(s, ctx, 'resource.write', formatResourcePath(path), async () => {
      const value = await readRawBody(ctx, s.payloadLimitBytes);
      try {
        await s.backend.put(path, value);
      } catch (e) {
        throw storageError(e, formatResourcePath(path));
      }
      return { size: value.length };
    });
    emptyOk(ctx);
  };
  return [requireAdmin(s), writeResource];
}

export function deleteResourceRoute(s: Services): Step[] {
  const deleteResource: Step = async (ctx) => {
    const path = adminResourcePath(ctx);
    await adminChange(s, ctx, 'resource.delete', formatResourcePath(path), async () => {
      try {
        await s.backend.delete(path);
      } catch (e) {
        throw storageError(e, formatResourcePath(path));
      }
      return {};
    });
    emptyOk(ctx);
  };
  return [requireAdmin(s), deleteResource];
}

export function listResourcesRoute(s: Services): Step[] {
  const listResources: Step = async (ctx) => {
    let list;
    try {
      list = await s.backend.list();
    } catch (e) {
      throw storageError(e, '*');
    }
    ctx.status = 200;
    ctx.body = list.map((r) => ({ path: r.path, size: r.size, updated: r.updatedAt.toISOString() }));
  };
  return [requireAdmin(s, 'resources'), listResources];
}
