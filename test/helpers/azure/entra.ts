/**
 * Entra ID (Microsoft identity platform v2.0) stand-in: OpenID discovery, signing keys, instance
 * discovery and the client-credentials token endpoint with secret, certificate-assertion and
 * federated-assertion authentication. Errors carry real-looking AADSTS codes in Entra's body shape.
 */
import { randomUUID } from 'node:crypto';
import { assertionAudiences, EntraError, verifyCertificateAssertion, verifyFederatedAssertion } from './assertions.js';
import type { Directory, Principal, Tenant } from './directory.js';
import { parseForm, type Exchange, type Reply } from './transport.js';
import type { RecordedRequest } from './types.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const NON_RESOURCE_SCOPES = new Set(['openid', 'profile', 'offline_access']);
/** Form fields recorded in the request log (never secrets or assertions). */
const LOGGED_FIELDS = ['grant_type', 'client_id', 'scope', 'client_assertion_type'];

/** Entra's error body. `aadsts` is 0 for injected faults without a number. */
export function entraErrorReply(status: number, error: string, aadsts: number, message: string): Reply {
  const trace = randomUUID();
  const correlation = randomUUID();
  const stamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const text = aadsts ? `AADSTS${aadsts}: ${message}` : message;
  return {
    status,
    errorCode: error,
    headers: { 'cache-control': 'no-store, no-cache' },
    body: {
      error,
      error_description: `${text} Trace ID: ${trace} Correlation ID: ${correlation} Timestamp: ${stamp}`,
      ...(aadsts ? { error_codes: [aadsts], error_uri: `https://login.microsoftonline.com/error?code=${aadsts}` } : {}),
      timestamp: stamp,
      trace_id: trace,
      correlation_id: correlation,
    },
  };
}

export interface EntraConfig {
  dir: Directory;
  /** `https://127.0.0.1:PORT`, known once listening. */
  base: () => string;
  toleranceSeconds: number;
}

function fromError(e: EntraError): Reply {
  return entraErrorReply(e.status, e.error, e.aadsts, e.message.replace(/^AADSTS\d+: /, ''));
}

function tenantOr404(dir: Directory, name: string): Tenant {
  const t = dir.tenant(name);
  if (!t) {
    throw new EntraError(400, 'invalid_tenant', 90002, `Tenant '${name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`);
  }
  return t;
}

function openIdConfiguration(base: string, t: Tenant, name: string, v2: boolean): object {
  const v = v2 ? '/v2.0' : '';
  return {
    token_endpoint: `${base}/${name}/oauth2${v}/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/${name}/discovery${v}/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: v2 ? `${base}/${t.id}/v2.0` : `https://sts.windows.net/${t.id}/`,
    request_uri_parameter_supported: false,
    authorization_endpoint: `${base}/${name}/oauth2${v}/authorize`,
    device_authorization_endpoint: `${base}/${name}/oauth2${v}/devicecode`,
    end_session_endpoint: `${base}/${name}/oauth2${v}/logout`,
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
  };
}

function instanceDiscovery(base: string, url: URL): object {
  const host = new URL(base).host;
  const endpoint = url.searchParams.get('authorization_endpoint') ?? `${base}/common/oauth2/v2.0/authorize`;
  let tenant = 'common';
  try {
    tenant = new URL(endpoint).pathname.split('/')[1] || 'common';
  } catch { /* keep common */ }
  return {
    tenant_discovery_endpoint: `${base}/${tenant}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  };
}

function resourceOf(scope: string, dir: Directory, tenantName: string): string {
  const scopes = scope.split(' ').filter((s) => s && !NON_RESOURCE_SCOPES.has(s));
  if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default')) {
    throw new EntraError(400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
  }
  const resource = scopes[0]!.slice(0, -'/.default'.length).replace(/\/+$/, '');
  if (!dir.resources.has(resource)) {
    throw new EntraError(400, 'invalid_resource', 500011, `The resource principal named ${resource} was not found in the tenant named ${tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`);
  }
  return resource;
}

function required(form: URLSearchParams, name: string): string {
  const v = form.get(name);
  if (!v) throw new EntraError(400, 'invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`);
  return v;
}

async function authenticate(cfg: EntraConfig, p: Principal, form: URLSearchParams, tenantNames: string[]): Promise<'1' | '2'> {
  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  if (secret !== null && assertion !== null) {
    throw new EntraError(400, 'invalid_request', 700025, 'Only one client credential may be presented: client_secret or client_assertion.');
  }
  if (secret !== null) {
    if (!p.secrets.includes(secret)) {
      throw new EntraError(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${p.clientId}'.`);
    }
    return '1';
  }
  if (assertion !== null) {
    if (form.get('client_assertion_type') !== JWT_BEARER) {
      throw new EntraError(400, 'invalid_request', 90014, `The required field 'client_assertion_type' is missing or is not '${JWT_BEARER}'.`);
    }
    const parts = assertion.split('.');
    let iss: unknown;
    let sub: unknown;
    try {
      const claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      iss = claims['iss'];
      sub = claims['sub'];
    } catch {
      throw new EntraError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
    }
    if (iss === p.clientId && sub === p.clientId) {
      await verifyCertificateAssertion(p, assertion, assertionAudiences(cfg.base(), tenantNames), cfg.toleranceSeconds);
    } else {
      await verifyFederatedAssertion(cfg.dir, p, assertion, cfg.toleranceSeconds);
    }
    return '2';
  }
  throw new EntraError(401, 'invalid_client', 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.");
}

async function token(cfg: EntraConfig, ex: Exchange, tenantName: string): Promise<Reply> {
  if (ex.method !== 'POST') throw new EntraError(405, 'invalid_request', 900561, 'The endpoint only accepts POST, OPTIONS requests. Received a GET request.');
  const tenant = tenantOr404(cfg.dir, tenantName);
  const form = parseForm(ex.body);
  const grant = required(form, 'grant_type');
  if (grant !== 'client_credentials') {
    throw new EntraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant}'.`);
  }
  const clientId = required(form, 'client_id');
  const resource = resourceOf(required(form, 'scope'), cfg.dir, tenantName);
  const p = cfg.dir.principal(tenant.id, clientId);
  if (!p) {
    throw new EntraError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`);
  }
  const acr = await authenticate(cfg, p, form, [tenantName, tenant.id, ...tenant.domains]);
  const lifetime = cfg.dir.tokenLifetimeSeconds;
  const { token: accessToken } = await cfg.dir.issueAccessToken(p, resource, acr, lifetime);
  return {
    status: 200,
    headers: { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' },
    body: { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken },
  };
}

/** Records the non-secret fields of a token request's form. */
export function annotateEntra(record: RecordedRequest, body: Buffer): void {
  if (record.method !== 'POST' || !record.path.endsWith('/token')) return;
  const form = parseForm(body);
  record.form = Object.fromEntries(LOGGED_FIELDS.filter((k) => form.has(k)).map((k) => [k, form.get(k)!]));
}

/** Routes one Entra request. */
export async function handleEntra(cfg: EntraConfig, ex: Exchange): Promise<Reply> {
  const base = cfg.base();
  try {
    let segs: string[];
    try {
      segs = ex.url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new EntraError(400, 'invalid_request', 90016, 'The request URI is malformed.');
    }
    const [tenantName, ...rest] = segs;
    const route = rest.join('/');
    if (tenantName === undefined) throw new EntraError(404, 'invalid_request', 90016, 'Not found.');
    if (route === 'discovery/instance' && ex.method === 'GET') return { status: 200, body: instanceDiscovery(base, ex.url) };
    if ((route === 'discovery/v2.0/keys' || route === 'discovery/keys') && ex.method === 'GET') {
      return { status: 200, body: cfg.dir.jwks() };
    }
    if (route === 'oauth2/v2.0/token') return await token(cfg, ex, tenantName);
    if ((route === 'v2.0/.well-known/openid-configuration' || route === '.well-known/openid-configuration') && ex.method === 'GET') {
      const t = tenantOr404(cfg.dir, tenantName);
      return { status: 200, body: openIdConfiguration(base, t, tenantName, route.startsWith('v2.0')) };
    }
    throw new EntraError(404, 'invalid_request', 90016, `No such endpoint: ${ex.method} ${ex.url.pathname}.`);
  } catch (error) {
    if (error instanceof EntraError) return fromError(error);
    throw error;
  }
}
