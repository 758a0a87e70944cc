/**
 * Configuration constants: the documented defaults, the upper limits of numeric keys, the allowed
 * log levels and admin modes, and the name the embedded default configuration goes by.
 */

/** Documented defaults. Paths are relative to `work_dir` (which is relative to the process cwd). */
export const DEFAULTS = Object.freeze({
  workDir: './data',
  socket: '127.0.0.1:8080',
  insecureHttp: false,
  payloadRequestSizeMiB: 2,
  insecureHeaderJwk: false,
  trustOwnTokens: true,
  sessionTimeoutMinutes: 5,
  maxSessions: 10_000,
  tokenDurationMinutes: 5,
  tokenSigningKey: 'token-key.pem',
  adminPublicKey: 'admin-key.pub',
  adminPrivateKey: 'admin-key.pem',
  adminToken: 'admin-token',
  adminRole: 'admin',
  adminAllowedEndpoints: '^/kbs/.+$',
  resourceDir: 'repository',
  sqliteDbPath: 'resources.db',
  pkcs11PinEnv: 'KBS_PKCS11_PIN',
  resourcePolicyPath: 'policy/resource-policy.rego',
  /** Trustee's storage namespaces, directories under work_dir (or the storage backend's dir_path). */
  attestationPolicyNamespace: 'attestation_service_policy',
  referenceValueNamespace: 'reference_value',
  policyStepBudget: 1_000_000,
  logLevel: 'info',
  tlsProfile: 'intermediate',
  shutdownGraceSeconds: 10,
  requestTimeoutSeconds: 60,
  headersTimeoutSeconds: 20,
  keepAliveTimeoutSeconds: 5,
  rateLimitEnabled: true,
  authPerSecond: 20,
  authBurst: 100,
  attestPerSecond: 20,
  attestBurst: 100,
  rateLimitMaxClients: 100_000,
});

/** Upper bounds that keep derived values (bytes, milliseconds) exact and sane. */
export const LIMITS = Object.freeze({
  /** 1 GiB. */
  payloadRequestSizeMiB: 1024,
  /** One year, in minutes. */
  durationMinutes: 525_600,
  maxSessions: Number.MAX_SAFE_INTEGER,
  policyStepBudget: Number.MAX_SAFE_INTEGER,
});

export const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export const ADMIN_MODES = ['InsecureAllowAll', 'DenyAll', 'AuthenticatedAuthorization', 'Ed25519Key'] as const;

export const EMBEDDED_DEFAULT_SOURCE = '<embedded default>';
