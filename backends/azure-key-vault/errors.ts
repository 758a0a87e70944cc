/**
 * Azure SDK failures → BackendError, with operator-readable messages that name the vault, the
 * secret and what to fix, and never carry credentials, tokens or values.
 *
 * - 404 → NOT_FOUND.
 * - 401/403 from Key Vault, and every Entra ID / managed identity failure → UNAVAILABLE with an
 *   authorization message (the server answers 503: the KBS, not the client, is misconfigured).
 * - 429, 5xx, network errors, timeouts → UNAVAILABLE.
 * - 400 → IO (a request the vault considers malformed: name or value rule).
 *
 * The SDK error is not attached as `cause`: its request/response objects carry headers.
 */
import { BackendError } from '../types.js';

/** Error our own deadline raises (the SDK's abort may not reach every layer). */
export class DeadlineError extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

/** Removes known secrets and anything token-shaped from a message; bounds its length. */
export function scrub(message: string, secrets: readonly string[]): string {
  let out = message;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  out = out.replace(JWT_LIKE, '[token]').replace(/\s+/g, ' ').trim();
  return out.length > 400 ? `${out.slice(0, 400)}…` : out;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  statusCode?: unknown;
  code?: unknown;
  errorResponse?: { error?: unknown; errorDescription?: unknown };
  errors?: unknown;
}

function fields(e: unknown): ErrorLike {
  return e !== null && typeof e === 'object' ? (e as ErrorLike) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** HTTP status of an SDK RestError, if any. */
export function statusOf(e: unknown): number | undefined {
  const s = fields(e).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Service error code (`SecretNotFound`, `Conflict`, `Forbidden`, …) of a RestError. */
export function serviceCodeOf(e: unknown): string | undefined {
  return str(fields(e).code);
}

function firstLine(s: string): string {
  return s.split(/\r?\n/)[0] ?? s;
}

/** Is `e` a failure to obtain an Entra token (as opposed to a Key Vault answer)? */
export function isIdentityError(e: unknown): boolean {
  const name = str(fields(e).name);
  return name === 'AuthenticationError' || name === 'CredentialUnavailableError' || name === 'AggregateAuthenticationError' || name === 'AuthenticationRequiredError';
}

/** Describes an identity failure (no secrets). */
export function identityProblem(e: unknown, secrets: readonly string[]): string {
  const f = fields(e);
  const name = str(f.name) ?? 'Error';
  const oauth = str(f.errorResponse?.error);
  const desc = str(f.errorResponse?.errorDescription);
  const detail = oauth !== undefined ? `${oauth}${desc !== undefined ? `: ${firstLine(desc)}` : ''}` : firstLine(str(f.message) ?? 'unknown error');
  const status = typeof f.statusCode === 'number' ? ` (HTTP ${f.statusCode})` : '';
  return scrub(`${name}${status}: ${detail}`, secrets);
}

/**
 * The BackendError for a failed Key Vault operation.
 * `what` reads like "read secret kbs-0… (default/key/a) in https://v.vault.azure.net".
 */
export function mapAzureError(e: unknown, what: string, secrets: readonly string[]): BackendError {
  if (e instanceof BackendError) return e;
  const f = fields(e);
  const name = str(f.name);
  if (e instanceof DeadlineError || name === 'AbortError') {
    return new BackendError('UNAVAILABLE', `Azure Key Vault: cannot ${what}: timed out${e instanceof DeadlineError ? ` (${e.message})` : ''}`);
  }
  if (isIdentityError(e)) {
    return new BackendError(
      'UNAVAILABLE',
      `Azure Key Vault: cannot ${what}: authorization failed: could not obtain an Entra ID token: ${identityProblem(e, secrets)}`,
    );
  }
  const status = statusOf(e);
  const service = serviceCodeOf(e);
  const message = scrub(firstLine(str(f.message) ?? 'unknown error'), secrets);
  if (status === undefined) {
    const net = service !== undefined && NETWORK_CODES.has(service);
    return new BackendError('UNAVAILABLE', `Azure Key Vault: cannot ${what}: ${net ? `vault unreachable (${service})` : message}`);
  }
  if (status === 404) return new BackendError('NOT_FOUND', `Azure Key Vault: cannot ${what}: not found`);
  if (status === 401 || status === 403) {
    return new BackendError(
      'UNAVAILABLE',
      `Azure Key Vault: cannot ${what}: authorization failed (HTTP ${status}${service !== undefined ? ` ${service}` : ''}: ${message}); ` +
        'check that the identity has the "Key Vault Secrets User" role (reads) or "Key Vault Secrets Officer" (writes), or an access policy, on this vault',
    );
  }
  if (status === 429) return new BackendError('UNAVAILABLE', `Azure Key Vault: cannot ${what}: throttled by the vault (HTTP 429)`);
  if (status >= 500) return new BackendError('UNAVAILABLE', `Azure Key Vault: cannot ${what}: vault error (HTTP ${status}: ${message})`);
  return new BackendError('IO', `Azure Key Vault: cannot ${what}: HTTP ${status}${service !== undefined ? ` ${service}` : ''}: ${message}`);
}
