/**
 * One error type for the protocol, with stable codes named after Trustee's error variants. The
 * central error handler (server/error-handler.ts) turns it into the problem body
 * `{"type": "https://github.com/confidential-containers/kbs/errors/<Variant>", "detail": …}`.
 *
 * `detail` is what the client sees: fixed texts as upstream emits them, never secret bytes, stack
 * traces or file paths. `cause` (logged only, never sent) may carry the internal reason.
 */
export type KbsErrorCode =
  | 'AdminAuthInitialization'
  | 'AdminAuthAccess'
  | 'AttestationError'
  | 'InvalidRequestPath'
  | 'PluginNotFound'
  | 'PluginInternalError'
  | 'PolicyDeny'
  | 'ParsePolicyError'
  | 'PolicyEngineError'
  | 'RvpsError'
  | 'SerdeError'
  | 'TokenNotFound'
  | 'TokenVerifierError'
  | 'JweError'
  | 'ResourceNotFound'
  | 'ResourceReadOnly'
  | 'PayloadTooLarge'
  | 'MethodNotAllowed'
  | 'SessionCapacityExceeded'
  | 'TooManyRequests'
  | 'ServiceUnavailable';

export const ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors/';

/** HTTP status of each code. Upstream: 404 for PluginNotFound/InvalidRequestPath, 401 otherwise. */
export const ERROR_STATUS: Readonly<Record<KbsErrorCode, number>> = {
  AdminAuthInitialization: 401,
  AdminAuthAccess: 401,
  AttestationError: 401,
  InvalidRequestPath: 404,
  PluginNotFound: 404,
  PluginInternalError: 401,
  // Deliberate: Trustee's protocol document (not its code) says 403 and 404; the guest client
  // handles both without re-attesting, and they tell an operator what actually happened.
  PolicyDeny: 403,
  ResourceNotFound: 404,
  /** Ours: an admin write to storage that refuses writes (a read-only mount, an imported secret). */
  ResourceReadOnly: 409,
  ParsePolicyError: 401,
  PolicyEngineError: 401,
  RvpsError: 401,
  SerdeError: 401,
  TokenNotFound: 401,
  TokenVerifierError: 401,
  JweError: 401,
  PayloadTooLarge: 413,
  MethodNotAllowed: 405,
  SessionCapacityExceeded: 503,
  /** Ours: a client over its /auth or /attest rate limit (with Retry-After). */
  TooManyRequests: 429,
  ServiceUnavailable: 503,
};

export class KbsError extends Error {
  readonly code: KbsErrorCode;
  readonly status: number;
  readonly detail: string;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: KbsErrorCode, detail: string, options: { cause?: unknown; headers?: Record<string, string> } = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KbsError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.detail = detail;
    this.headers = options.headers ?? {};
  }
}

export function isKbsError(e: unknown): e is KbsError {
  return e instanceof KbsError;
}
