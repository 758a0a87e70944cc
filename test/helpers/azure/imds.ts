/**
 * Managed-identity endpoints over plain HTTP, as on Azure hosts: the Instance Metadata Service token
 * endpoint (`/metadata/identity/oauth2/token`, header `Metadata: true`; what
 * `AZURE_POD_IDENTITY_AUTHORITY_HOST` points MSAL at) and the App Service MSI endpoint
 * (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Directory, Principal } from './directory.js';
import type { Exchange, Reply } from './transport.js';

export const IMDS_TOKEN_PATH = '/metadata/identity/oauth2/token';
export const APP_SERVICE_TOKEN_PATH = '/msi/token';

export interface ImdsConfig {
  dir: Directory;
  appServiceHeader: string;
}

class MiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** Error body shared by IMDS and App Service (`error`/`error_description`, which MSAL reads). */
export function imdsErrorReply(status: number, code: string, message: string): Reply {
  return { status, errorCode: code, body: { error: code, error_description: message } };
}

function selectIdentity(dir: Directory, q: URLSearchParams): Principal {
  const mis = dir.principals.filter((p) => p.kind === 'managedIdentity');
  const clientId = q.get('client_id') ?? q.get('clientid');
  const objectId = q.get('object_id') ?? q.get('principal_id');
  const resourceId = q.get('msi_res_id') ?? q.get('mi_res_id');
  let found: Principal | undefined;
  if (clientId) found = mis.find((p) => !p.systemAssigned && p.clientId.toLowerCase() === clientId.toLowerCase());
  else if (objectId) found = mis.find((p) => !p.systemAssigned && p.objectId.toLowerCase() === objectId.toLowerCase());
  else if (resourceId) found = mis.find((p) => !p.systemAssigned && p.resourceId?.toLowerCase() === resourceId.toLowerCase());
  else {
    found = mis.find((p) => p.systemAssigned);
    if (!found) {
      const user = mis.filter((p) => !p.systemAssigned);
      if (user.length > 1) {
        throw new MiError(400, 'invalid_request', 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request');
      }
      found = user[0];
    }
  }
  if (!found) throw new MiError(400, 'invalid_request', 'Identity not found');
  return found;
}

function resourceOf(dir: Directory, q: URLSearchParams): string {
  const raw = q.get('resource');
  if (!raw) throw new MiError(400, 'invalid_request', "Required query variable 'resource' is missing");
  const resource = raw.replace(/\/\.default$/, '').replace(/\/+$/, '');
  if (!dir.resources.has(resource)) {
    throw new MiError(400, 'invalid_resource', `AADSTS500011: The resource principal named ${raw} was not found in the tenant.`);
  }
  return resource;
}

function headerEquals(actual: string | string[] | undefined, expected: string): boolean {
  if (typeof actual !== 'string') return false;
  const a = Buffer.from(actual);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function issue(dir: Directory, p: Principal, resource: string, imds: boolean): Promise<Reply> {
  const lifetime = dir.tokenLifetimeSeconds;
  const { token, expiresOn } = await dir.issueAccessToken(p, resource, '2', lifetime);
  const now = Math.floor(Date.now() / 1000);
  const body: Record<string, string> = {
    access_token: token,
    client_id: p.clientId,
    expires_on: String(expiresOn),
    resource,
    token_type: 'Bearer',
  };
  if (imds) Object.assign(body, { expires_in: String(lifetime), ext_expires_in: String(lifetime), not_before: String(now - 300) });
  return { status: 200, body };
}

/** Routes one managed-identity request. */
export async function handleImds(cfg: ImdsConfig, ex: Exchange): Promise<Reply> {
  const path = ex.url.pathname.replace(/\/+$/, '');
  const q = ex.url.searchParams;
  try {
    if (ex.method !== 'GET') throw new MiError(405, 'invalid_request', 'Only GET is supported');
    if (path === IMDS_TOKEN_PATH) {
      if (ex.headers['metadata'] !== 'true') throw new MiError(400, 'invalid_request', 'Required metadata header not specified');
      if (!q.get('api-version')) throw new MiError(400, 'invalid_request', "Required query variable 'api-version' is missing");
      return await issue(cfg.dir, selectIdentity(cfg.dir, q), resourceOf(cfg.dir, q), true);
    }
    if (path === APP_SERVICE_TOKEN_PATH) {
      if (!headerEquals(ex.headers['x-identity-header'], cfg.appServiceHeader)) {
        throw new MiError(401, 'unauthorized_client', 'The X-IDENTITY-HEADER header is missing or wrong.');
      }
      if (!q.get('api-version')) throw new MiError(400, 'invalid_request', "Required query variable 'api-version' is missing");
      return await issue(cfg.dir, selectIdentity(cfg.dir, q), resourceOf(cfg.dir, q), false);
    }
    throw new MiError(404, 'not_found', `No such endpoint: ${ex.url.pathname}`);
  } catch (error) {
    if (error instanceof MiError) return imdsErrorReply(error.status, error.code, error.message);
    throw error;
  }
}
