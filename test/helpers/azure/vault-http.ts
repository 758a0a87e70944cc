/**
 * Key Vault secrets REST API stand-in: bearer challenge (401 + WWW-Authenticate naming the vault's
 * tenant and `https://vault.azure.net`), token checks (signature, audience, tenant, revocation as a
 * CAE claims challenge), per-principal permissions, and the secret routes the SDK uses.
 */
import type { Directory, AccessTokenClaims } from './directory.js';
import { v1Issuer } from './directory.js';
import type { Exchange, Reply } from './transport.js';
import type { SecretPermission } from './types.js';
import {
  MAX_CONTENT_TYPE_LENGTH, MAX_SECRET_VALUE_BYTES, MAX_TAGS, VaultError, VaultStore, checkName,
  type DeletedEntry, type SecretEntry, type SecretVersion, type SetSecretInput, type UpdateSecretInput,
} from './vault-store.js';

export const VAULT_RESOURCE = 'https://vault.azure.net';
/** api-versions the stand-in answers (the SDK's default first). */
export const API_VERSIONS = ['2025-07-01', '7.6', '7.5', '7.4', '7.3', '7.2', '7.1', '7.0', '2016-10-01'];
export const MAX_PAGE_SIZE = 25;

export interface Vault {
  name: string;
  tenantId: string;
  access?: Map<string, ReadonlySet<SecretPermission>>;
  store: VaultStore;
}

const ACTIONS: Record<SecretPermission, string> = {
  get: 'getSecret/action', list: 'readMetadata/action', set: 'setSecret/action',
  delete: 'delete', recover: 'recover/action', purge: 'purge/action',
};

export function vaultErrorReply(status: number, code: string, message: string, inner?: string, headers?: Record<string, string>): Reply {
  return {
    status,
    errorCode: code,
    ...(headers ? { headers } : {}),
    body: { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } },
  };
}

function challenge(v: Vault, message: string): Reply {
  return vaultErrorReply(401, 'Unauthorized', message, undefined, {
    'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${v.tenantId}", resource="${VAULT_RESOURCE}"`,
  });
}

/** CAE: the token was revoked; ask the client for a token issued after `since`. */
function claimsChallenge(since: number): Reply {
  const claims = Buffer.from(JSON.stringify({ access_token: { nbf: { essential: true, value: String(since) } } })).toString('base64');
  return vaultErrorReply(401, 'Unauthorized', 'AKV10013: Token has been revoked.', undefined, {
    'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="${claims}"`,
  });
}

async function authenticate(dir: Directory, v: Vault, ex: Exchange): Promise<AccessTokenClaims | Reply> {
  const auth = ex.headers.authorization;
  if (typeof auth !== 'string') return challenge(v, 'AKV10000: Request is missing a Bearer or PoP token.');
  const m = /^Bearer ([A-Za-z0-9_.-]+)$/i.exec(auth);
  if (!m) return challenge(v, 'AKV10000: Request is missing a Bearer or PoP token.');
  let claims: AccessTokenClaims;
  try {
    claims = await dir.verifyAccessToken(m[1]!);
  } catch {
    return challenge(v, 'AKV10016: Token validation failed: the token is expired, not yet valid, malformed or not signed by the tenant.');
  }
  if (claims.aud.replace(/\/+$/, '') !== VAULT_RESOURCE) {
    return challenge(v, `AKV10022: Invalid audience. Expected ${VAULT_RESOURCE}, found: ${claims.aud}.`);
  }
  if (claims.tid !== v.tenantId || claims.iss !== v1Issuer(v.tenantId)) {
    return challenge(v, `AKV10032: Invalid issuer. Expected one of ${v1Issuer(v.tenantId)}, found ${claims.iss}.`);
  }
  if (claims.iat < dir.revokedBefore) return claimsChallenge(dir.revokedBefore);
  return claims;
}

function authorize(v: Vault, c: AccessTokenClaims, perm: SecretPermission): void {
  if (!v.access) return;
  if (v.access.get(c.appid.toLowerCase())?.has(perm)) return;
  throw new VaultError(403, 'Forbidden', `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${c.appid};oid=${c.oid};iss=${c.iss}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/${ACTIONS[perm]}'\r\nResource: '/vaults/${v.name}/secrets'\r\nAssignment: (not found)\r\nVault: ${v.name};location=westeurope\r\n`, 'ForbiddenByRbac');
}

function attributes(store: VaultStore, s: SecretVersion): object {
  return {
    enabled: s.enabled,
    ...(s.nbf !== undefined ? { nbf: s.nbf } : {}),
    ...(s.exp !== undefined ? { exp: s.exp } : {}),
    created: s.created,
    updated: s.updated,
    recoveryLevel: store.recoveryLevel,
    recoverableDays: store.opts.retentionDays,
  };
}

function item(base: string, store: VaultStore, e: SecretEntry, s: SecretVersion, withVersion: boolean): Record<string, unknown> {
  return {
    id: `${base}/secrets/${e.name}${withVersion ? `/${s.version}` : ''}`,
    attributes: attributes(store, s),
    ...(s.tags ? { tags: s.tags } : {}),
    ...(s.contentType !== undefined ? { contentType: s.contentType } : {}),
  };
}

function bundle(base: string, store: VaultStore, e: SecretEntry, s: SecretVersion, withValue = true): Record<string, unknown> {
  return { ...(withValue ? { value: s.value } : {}), ...item(base, store, e, s, true) };
}

function deletedFields(base: string, d: DeletedEntry): object {
  return { recoveryId: `${base}/deletedsecrets/${d.entry.name}`, deletedDate: d.deletedDate, scheduledPurgeDate: d.scheduledPurgeDate };
}

function page<T>(ex: Exchange, base: string, all: T[]): { value: T[]; nextLink: string | null } {
  const q = ex.url.searchParams;
  const max = q.get('maxresults');
  let size = MAX_PAGE_SIZE;
  if (max !== null) {
    size = Number(max);
    if (!/^\d+$/.test(max) || size < 1 || size > MAX_PAGE_SIZE) {
      throw new VaultError(400, 'BadParameter', `Invalid value for maxresults: ${max}. The value must be between 1 and ${MAX_PAGE_SIZE}.`);
    }
  }
  let offset = 0;
  const skip = q.get('$skiptoken');
  if (skip !== null) {
    const parsed = /^o:(\d+)$/.exec(Buffer.from(skip, 'base64url').toString('utf8'));
    if (!parsed) throw new VaultError(400, 'BadParameter', 'The $skiptoken parameter is invalid.');
    offset = Number(parsed[1]);
  }
  const value = all.slice(offset, offset + size);
  let nextLink: string | null = null;
  if (offset + size < all.length) {
    const next = new URLSearchParams({ 'api-version': q.get('api-version') ?? API_VERSIONS[0]!, $skiptoken: Buffer.from(`o:${offset + size}`).toString('base64url') });
    if (max !== null) next.set('maxresults', String(size));
    nextLink = `${base}${ex.url.pathname.replace(/\/+$/, '')}?${next.toString()}`;
  }
  return { value, nextLink };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parseJson(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new VaultError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
  if (!isRecord(parsed)) throw new VaultError(400, 'BadParameter', 'The request body must be a JSON object.');
  return parsed;
}

function parseCommon(b: Record<string, unknown>): UpdateSecretInput {
  const out: UpdateSecretInput = {};
  if (b['contentType'] !== undefined && b['contentType'] !== null) {
    if (typeof b['contentType'] !== 'string' || b['contentType'].length > MAX_CONTENT_TYPE_LENGTH) {
      throw new VaultError(400, 'BadParameter', `contentType must be a string of at most ${MAX_CONTENT_TYPE_LENGTH} characters.`);
    }
    out.contentType = b['contentType'];
  }
  if (b['tags'] !== undefined && b['tags'] !== null) {
    const tags = b['tags'];
    if (!isRecord(tags) || Object.keys(tags).length > MAX_TAGS
      || Object.entries(tags).some(([k, v]) => typeof v !== 'string' || k.length > 512 || v.length > 256)) {
      throw new VaultError(400, 'BadParameter', `Tags must be at most ${MAX_TAGS} string pairs (name <= 512, value <= 256 characters).`);
    }
    out.tags = tags as Record<string, string>;
  }
  const a = b['attributes'];
  if (a !== undefined && a !== null) {
    if (!isRecord(a)) throw new VaultError(400, 'BadParameter', 'attributes must be an object.');
    if (a['enabled'] !== undefined) {
      if (typeof a['enabled'] !== 'boolean') throw new VaultError(400, 'BadParameter', 'attributes.enabled must be a boolean.');
      out.enabled = a['enabled'];
    }
    for (const k of ['nbf', 'exp'] as const) {
      if (a[k] === undefined || a[k] === null) continue;
      if (typeof a[k] !== 'number' || !Number.isInteger(a[k])) throw new VaultError(400, 'BadParameter', `attributes.${k} must be Unix seconds.`);
      out[k] = a[k];
    }
  }
  return out;
}

function parseSet(body: Buffer): SetSecretInput {
  const b = parseJson(body);
  if (typeof b['value'] !== 'string') throw new VaultError(400, 'BadParameter', 'The secret value must be specified as a string.');
  if (Buffer.byteLength(b['value']) > MAX_SECRET_VALUE_BYTES) {
    throw new VaultError(400, 'BadParameter', `Secret is beyond the maximum permitted length of ${MAX_SECRET_VALUE_BYTES} characters.`);
  }
  return { value: b['value'], ...parseCommon(b) };
}

/** A disabled version's value cannot be read. */
function readable(s: SecretVersion): void {
  if (!s.enabled) throw new VaultError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
}

type Route = (v: Vault, ex: Exchange, c: AccessTokenClaims, base: string) => Reply;

function route(method: string, segs: string[]): Route | undefined {
  const [coll, name, sub, extra] = segs;
  if (extra !== undefined) return undefined;
  if (coll === 'secrets') {
    if (name === undefined) return method === 'GET' ? listSecrets : undefined;
    if (sub === undefined) {
      return ({ GET: getSecret, PUT: setSecret, DELETE: deleteSecret, PATCH: updateSecret } as Record<string, Route>)[method];
    }
    if (sub === 'versions') return method === 'GET' ? listVersions : undefined;
    return ({ GET: getSecret, PATCH: updateSecret } as Record<string, Route>)[method];
  }
  if (coll === 'deletedsecrets') {
    if (name === undefined) return method === 'GET' ? listDeleted : undefined;
    if (sub === undefined) return ({ GET: getDeleted, DELETE: purgeDeleted } as Record<string, Route>)[method];
    if (sub === 'recover') return method === 'POST' ? recoverDeleted : undefined;
  }
  return undefined;
}

/** Path segments, percent-decoded; a malformed escape is a bad request, as on the service. */
function segments(ex: Exchange): string[] {
  try {
    return ex.url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new VaultError(400, 'BadParameter', 'The request URI is malformed.');
  }
}

const listSecrets: Route = (v, ex, c, base) => {
  authorize(v, c, 'list');
  const all = v.store.liveEntries().map((e) => item(base, v.store, e, e.versions.at(-1)!, false));
  return { status: 200, body: page(ex, base, all) };
};

const getSecret: Route = (v, ex, c, base) => {
  const [, name, version] = segments(ex);
  checkName(name!);
  authorize(v, c, 'get');
  const { entry, v: s } = v.store.version(name!, version);
  readable(s);
  return { status: 200, body: bundle(base, v.store, entry, s) };
};

const setSecret: Route = (v, ex, c, base) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'set');
  const { entry, v: s } = v.store.set(name!, parseSet(ex.body));
  return { status: 200, body: bundle(base, v.store, entry, s) };
};

const updateSecret: Route = (v, ex, c, base) => {
  const [, name, version] = segments(ex);
  checkName(name!);
  authorize(v, c, 'set');
  const { entry, v: s } = v.store.update(name!, version, parseCommon(parseJson(ex.body)));
  return { status: 200, body: bundle(base, v.store, entry, s, false) };
};

const listVersions: Route = (v, ex, c, base) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'list');
  const e = v.store.entry(name!);
  return { status: 200, body: page(ex, base, e.versions.map((s) => item(base, v.store, e, s, true))) };
};

const deleteSecret: Route = (v, ex, c, base) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'delete');
  const d = v.store.delete(name!);
  return { status: 200, body: { ...bundle(base, v.store, d.entry, d.entry.versions.at(-1)!, false), ...deletedFields(base, d) } };
};

const listDeleted: Route = (v, ex, c, base) => {
  authorize(v, c, 'list');
  const all = v.store.deletedEntries().map((d) => ({ ...item(base, v.store, d.entry, d.entry.versions.at(-1)!, false), ...deletedFields(base, d) }));
  return { status: 200, body: page(ex, base, all) };
};

const getDeleted: Route = (v, ex, c, base) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'list');
  const d = v.store.deletedEntry(name!);
  return { status: 200, body: { ...bundle(base, v.store, d.entry, d.entry.versions.at(-1)!, false), ...deletedFields(base, d) } };
};

const purgeDeleted: Route = (v, ex, c) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'purge');
  v.store.purge(name!);
  return { status: 204 };
};

const recoverDeleted: Route = (v, ex, c, base) => {
  const [, name] = segments(ex);
  checkName(name!);
  authorize(v, c, 'recover');
  const e = v.store.recover(name!);
  return { status: 200, body: bundle(base, v.store, e, e.versions.at(-1)!, false) };
};

/** Routes one Key Vault request. */
export async function handleVault(dir: Directory, v: Vault, ex: Exchange): Promise<Reply> {
  const auth = await authenticate(dir, v, ex);
  if ('status' in auth) return auth;
  try {
    const apiVersion = ex.url.searchParams.get('api-version');
    if (apiVersion === null) throw new VaultError(400, 'BadParameter', "The 'api-version' query parameter is missing.");
    if (!API_VERSIONS.includes(apiVersion)) {
      throw new VaultError(400, 'BadParameter', `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (${API_VERSIONS[0]}).`);
    }
    const r = route(ex.method, segments(ex));
    if (!r) throw new VaultError(400, 'BadParameter', `The request URI is not valid: ${ex.method} ${ex.url.pathname}`);
    const host = typeof ex.headers.host === 'string' ? ex.headers.host : `${v.name}.vault.azure.net`;
    return r(v, ex, auth, `https://${host}`);
  } catch (error) {
    if (error instanceof VaultError) return vaultErrorReply(error.status, error.code, error.message, error.inner);
    throw error;
  }
}
