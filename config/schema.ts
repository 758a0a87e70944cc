/**
 * KBS configuration: the TOML shape (strict zod schemas, Trustee's section and key names) and the
 * resolved, immutable `KbsConfig` the rest of the program uses.
 *
 * Two layers:
 *  - `*Toml` schemas validate one section of the parsed TOML document as written: every object is
 *    strict (an unknown key is an error naming its full path), TOML integers are parsed as bigint
 *    so that `5.0` is told apart from `5`, and field-local checks (socket syntax, ACL anchoring,
 *    ranges) live here.
 *  - `KbsConfig` is what `config/loader.ts` resolves the sections into: defaults applied, both
 *    resource-plugin forms normalized, every path absolute, referenced files checked, deeply
 *    frozen.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { RE2JS } from 're2js';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** One problem in a configuration: the key it concerns and what is wrong with it. */
export interface ConfigIssue {
  /** Full key path as written in TOML, e.g. `http_server.sockets[0]`; `` for the whole document. */
  readonly keyPath: string;
  /** What is wrong. Names keys, expected types and file paths; never echoes secret values. */
  readonly problem: string;
  /** 1-based position in the TOML text, for syntax errors. */
  readonly line?: number;
  readonly column?: number;
}

/**
 * A configuration that cannot be used. `message` lists every issue found as `<key path>: <problem>`
 * (prefixed by the configuration's source); `keyPath` is the first issue's key path.
 */
export class ConfigError extends Error {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];
  readonly keyPath: string;

  constructor(source: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => formatIssue(i));
    const message =
      lines.length === 1
        ? `invalid configuration (${source}): ${lines[0]}`
        : `invalid configuration (${source}): ${lines.length} problems:\n  ${lines.join('\n  ')}`;
    super(message);
    this.name = 'ConfigError';
    this.source = source;
    this.issues = Object.freeze(issues.map((i) => Object.freeze({ ...i })));
    this.keyPath = issues[0]?.keyPath ?? '';
  }
}

function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? '' : `line ${issue.line}, column ${issue.column ?? 0}: `;
  return issue.keyPath === '' ? `${where}${issue.problem}` : `${where}${issue.keyPath}: ${issue.problem}`;
}

// ---------------------------------------------------------------------------------------------
// Defaults and limits
// ---------------------------------------------------------------------------------------------

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
  resourcePolicyPath: 'policy/resource-policy.rego',
  policyStepBudget: 1_000_000,
  logLevel: 'info',
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

// ---------------------------------------------------------------------------------------------
// Resolved configuration (what the program uses)
// ---------------------------------------------------------------------------------------------

export type LogLevel = (typeof LOG_LEVELS)[number];
export type AdminMode = (typeof ADMIN_MODES)[number];

/** One listen address. */
export interface SocketAddress {
  /** IP literal (IPv6 without brackets) or DNS host name, as `net.Server.listen` wants it. */
  readonly host: string;
  /** 0–65535; 0 asks the OS for a free port. */
  readonly port: number;
  readonly family: 'ipv4' | 'ipv6' | 'hostname';
  /** Canonical `host:port` / `[v6]:port` text. */
  readonly text: string;
}

export interface TlsFilesConfig {
  /** PEM private key (absolute path, checked to exist). */
  readonly privateKeyPath: string;
  /** PEM certificate chain, leaf first (absolute path, checked to exist). */
  readonly certificatePath: string;
}

export interface HttpServerConfig {
  /** At least one, no duplicates. */
  readonly sockets: readonly SocketAddress[];
  readonly insecureHttp: boolean;
  /** Present exactly when `insecureHttp` is false. */
  readonly tls: TlsFilesConfig | null;
  readonly payloadRequestSizeMiB: number;
  /** `payloadRequestSizeMiB` × 1 MiB: the request body limit. */
  readonly payloadRequestSizeBytes: number;
}

export interface AttestationTokenConfig {
  /** PEM CA certificates a header `jwk` + `x5c` chain must lead to (absolute, checked). */
  readonly trustedCertsPaths: readonly string[];
  /** Local JWK Set files for `kid` lookup (absolute, checked; `file://` prefix removed). */
  readonly trustedJwkSetPaths: readonly string[];
  /** Accept a header `jwk` without provenance checks. Insecure; testing only. */
  readonly insecureHeaderJwk: boolean;
  /** Trust tokens signed by this server's own token key (`attestationService.tokenBroker.signer`). */
  readonly trustOwnTokens: boolean;
  /** Extra JSON pointers tried first when extracting the TEE public key from token claims. */
  readonly extraTeeKeyPaths: readonly string[];
}

export interface TokenSignerConfig {
  /** P-256 private key PEM for ES256 tokens (absolute). */
  readonly keyPath: string;
  /** Optional certificate chain PEM (leaf first) published as `x5c` (absolute, checked). */
  readonly certPath: string | null;
  /**
   * True when the key path is the default one: the server generates the key there if it is
   * missing. False when the path was configured: the file was checked to exist.
   */
  readonly generateIfMissing: boolean;
}

export interface TokenBrokerConfig {
  /** Lifetime of issued attestation tokens, in minutes. */
  readonly durationMinutes: number;
  readonly signer: TokenSignerConfig;
}

export interface AttestationServiceConfig {
  /** RCAR session lifetime (from /auth), in minutes (`attestation_service.timeout`). */
  readonly sessionTimeoutMinutes: number;
  /** Hard cap on live sessions. */
  readonly maxSessions: number;
  readonly tokenBroker: TokenBrokerConfig;
}

export type IdentityProviderKey =
  /** PEM file with one or more public keys (EC, RSA or Ed25519). */
  | { readonly kind: 'PublicKeyPem'; readonly path: string }
  /** JWK Set file; tokens name their key by `kid`. */
  | { readonly kind: 'JwkSet'; readonly path: string };

export interface IdentityProviderConfig {
  /** Required `iss`, or null to skip the check. */
  readonly issuer: string | null;
  /** Required member of `aud`, or null to skip the check. */
  readonly audience: string | null;
  readonly key: IdentityProviderKey;
}

export interface AdminAclRule {
  readonly role: string;
  /** RE2 regex on the full request URI (with query), anchored `^/kbs…$`; compiles with re2js. */
  readonly allowedEndpoints: string;
}

/** The admin key pair and token the server creates on first start (embedded / default admin). */
export interface GeneratedAdminCredentials {
  /** Ed25519 public key PEM; also the identity provider's key. */
  readonly publicKeyPath: string;
  /** Ed25519 private key PEM. */
  readonly privateKeyPath: string;
  /** A ready-made admin JWT (for kbs-client `--admin-token-file`). */
  readonly tokenPath: string;
  /** `role` claim the minted token carries (matches the default ACL). */
  readonly role: string;
}

export type AdminConfig =
  | { readonly mode: 'InsecureAllowAll' }
  | { readonly mode: 'DenyAll' }
  | {
      readonly mode: 'AuthenticatedAuthorization';
      /** At least one. */
      readonly identityProviders: readonly IdentityProviderConfig[];
      /** First rule whose role equals the token's `role` and whose regex matches allows. */
      readonly acls: readonly AdminAclRule[];
      /** Non-null when this is the default admin set-up: the server creates these files. */
      readonly generatedCredentials: GeneratedAdminCredentials | null;
    }
  | {
      /** Legacy single-key mode: EdDSA token signed by this key; `exp` checked, no role. */
      readonly mode: 'Ed25519Key';
      readonly publicKeyPath: string;
    };

/** Resource storage: a discriminated union on `type` (Sqlite, Pkcs11, AzureKeyVault slot in here). */
export type ResourceStorageConfig = LocalFsStorageConfig;

export interface LocalFsStorageConfig {
  readonly type: 'LocalFs';
  /** Root directory of the repository; resources live at `<dirPath>/<repo>/<type>/<tag>`. */
  readonly dirPath: string;
}

export interface ResourcePluginConfig {
  readonly name: 'resource';
  readonly storage: ResourceStorageConfig;
}

/** Plugins: a discriminated union on `name`. */
export type PluginConfig = ResourcePluginConfig;

export interface PolicyConfig {
  /** The resource policy (Rego) file (absolute). */
  readonly resourcePolicyPath: string;
  /** Evaluation step budget per policy decision. */
  readonly stepBudget: number;
}

export interface LoggingConfig {
  readonly level: LogLevel;
}

/** The fully resolved configuration. Deeply frozen; every path is absolute. */
export interface KbsConfig {
  /** Absolute path of the configuration file, or `EMBEDDED_DEFAULT_SOURCE`. */
  readonly source: string;
  /** Absolute; generated keys, policy store and state live here. */
  readonly workDir: string;
  readonly httpServer: HttpServerConfig;
  readonly attestationToken: AttestationTokenConfig;
  readonly attestationService: AttestationServiceConfig;
  readonly admin: AdminConfig;
  /** At most one entry per plugin name. */
  readonly plugins: readonly PluginConfig[];
  readonly policy: PolicyConfig;
  readonly logging: LoggingConfig;
  /** Things the server should log at start (insecure modes, legacy forms, ignored keys). */
  readonly warnings: readonly string[];
}

export const EMBEDDED_DEFAULT_SOURCE = '<embedded default>';

// ---------------------------------------------------------------------------------------------
// Field checks shared by the TOML schemas
// ---------------------------------------------------------------------------------------------

/** A TOML integer (parsed as bigint) within [min, max], as a number. */
function tomlInteger(min: number, max: number, what = 'integer') {
  const problem =
    max < Number.MAX_SAFE_INTEGER
      ? `must be a ${what} between ${min} and ${max}`
      : min === 1
        ? `must be a ${what}`
        : `must be a ${what} >= ${min}`;
  return z
    .bigint()
    .min(BigInt(min), { error: problem })
    .max(BigInt(max), { error: problem })
    .transform((v) => Number(v));
}

const nonEmptyString = z.string().min(1, { error: 'must not be empty' });

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port` (IPv4, `[IPv6]`, or a DNS name); returns a problem text when invalid. */
export function parseSocketAddress(text: string): SocketAddress | string {
  const expected = 'expected "host:port" (IPv4, [IPv6] in brackets, or a host name; port 0-65535)';
  let host: string;
  let portText: string;
  let family: SocketAddress['family'];
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(text);
    if (m === null || !isIPv6(m[1] as string)) return `invalid socket address, ${expected}`;
    host = m[1] as string;
    portText = m[2] as string;
    family = 'ipv6';
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return `invalid socket address (no port), ${expected}`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return `invalid socket address (IPv6 addresses must be in brackets), ${expected}`;
    if (isIPv4(host)) family = 'ipv4';
    else if (HOSTNAME.test(host) && !/^[0-9.]+$/.test(host)) family = 'hostname';
    else return `invalid socket address, ${expected}`;
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) return `invalid port, ${expected}`;
  const port = Number(portText);
  return { host, port, family, text: family === 'ipv6' ? `[${host}]:${port}` : `${host}:${port}` };
}

const socketAddress = z.string().transform((text, ctx): SocketAddress => {
  const parsed = parseSocketAddress(text);
  if (typeof parsed === 'string') {
    ctx.issues.push({ code: 'custom', message: parsed, input: text });
    return z.NEVER;
  }
  return parsed;
});

/** Problem text when an ACL regex is not anchored `^/kbs…$` or is not valid RE2; else null. */
export function aclRegexProblem(regex: string, role: string): string | null {
  const who = `acl for role ${JSON.stringify(role)}`;
  if (!regex.startsWith('^/kbs') || !regex.endsWith('$')) {
    return `regex must start with "^/kbs" and end with "$" (${who})`;
  }
  try {
    RE2JS.compile(regex);
  } catch {
    return `invalid RE2 regular expression (${who})`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// TOML shape, section by section
// ---------------------------------------------------------------------------------------------

/** Any TOML table; used where the loader dispatches between forms before strict validation. */
export const TomlTable = z.record(z.string(), z.unknown());

export const HttpServerToml = z.strictObject({
  sockets: z.array(socketAddress).min(1, { error: 'must list at least one socket' }).optional(),
  insecure_http: z.boolean().optional(),
  private_key: nonEmptyString.optional(),
  certificate: nonEmptyString.optional(),
  /** MiB. */
  payload_request_size: tomlInteger(1, LIMITS.payloadRequestSizeMiB, 'positive integer (MiB)').optional(),
});

const jsonPointer = z.string().regex(/^\//, { error: 'must be a JSON pointer starting with "/"' });

export const AttestationTokenToml = z.strictObject({
  trusted_certs_paths: z.array(nonEmptyString).optional(),
  trusted_jwk_sets: z.array(nonEmptyString).optional(),
  insecure_header_jwk: z.boolean().optional(),
  extra_teekey_paths: z.array(jsonPointer).optional(),
  /** Ours: trust the server's own token signing key (default true). */
  trust_own_tokens: z.boolean().optional(),
});

export const TokenSignerToml = z.strictObject({
  key_path: nonEmptyString,
  cert_path: nonEmptyString.optional(),
});

export const AttestationTokenBrokerToml = z.strictObject({
  duration_min: tomlInteger(1, LIMITS.durationMinutes, 'positive integer (minutes)').optional(),
  signer: TokenSignerToml.optional(),
});

export const AttestationServiceToml = z.strictObject({
  /** Trustee's attestation-service selector; only the built-in service exists here. */
  type: z
    .enum(['coco_as_builtin', 'CoCoASBuiltIn'], {
      error: 'only the built-in attestation service is supported ("coco_as_builtin"); remove the key or use that value',
    })
    .optional(),
  /** Minutes. */
  timeout: tomlInteger(1, LIMITS.durationMinutes, 'positive integer (minutes)').optional(),
  max_sessions: tomlInteger(1, LIMITS.maxSessions, 'positive integer').optional(),
  attestation_token_broker: AttestationTokenBrokerToml.optional(),
  /** Trustee's RVPS selector; only the built-in one exists here. */
  rvps_config: z
    .strictObject({
      type: z.literal('BuiltIn', { error: 'only the built-in RVPS is supported ("BuiltIn")' }),
    })
    .optional(),
});

export const IdentityProviderToml = z
  .strictObject({
    issuer: nonEmptyString.optional(),
    audience: nonEmptyString.optional(),
    public_key_uri: nonEmptyString.optional(),
    jwk_set_uri: nonEmptyString.optional(),
  })
  .superRefine((idp, ctx) => {
    const sources = (idp.public_key_uri === undefined ? 0 : 1) + (idp.jwk_set_uri === undefined ? 0 : 1);
    if (sources !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          sources === 0
            ? 'needs a key source: set exactly one of public_key_uri or jwk_set_uri'
            : 'set exactly one of public_key_uri or jwk_set_uri, not both',
      });
    }
  });

export const BearerJwtToml = z.strictObject({
  identity_providers: z.array(IdentityProviderToml).min(1, { error: 'at least one identity provider is required' }),
});

export const AdminAclRuleToml = z
  .strictObject({
    role: nonEmptyString,
    allowed_endpoints: z.string(),
  })
  .superRefine((acl, ctx) => {
    const problem = aclRegexProblem(acl.allowed_endpoints, acl.role);
    if (problem !== null) ctx.addIssue({ code: 'custom', path: ['allowed_endpoints'], message: problem });
  });

export const RegexAclToml = z.strictObject({
  acls: z.array(AdminAclRuleToml).optional(),
});

/** `[admin]`, current form: a discriminated union on `authorization_mode`. */
export const AdminToml = z.discriminatedUnion('authorization_mode', [
  z.strictObject({ authorization_mode: z.literal('InsecureAllowAll') }),
  z.strictObject({ authorization_mode: z.literal('DenyAll') }),
  z.strictObject({
    authorization_mode: z.literal('AuthenticatedAuthorization'),
    authentication: z.strictObject({ bearer_jwt: BearerJwtToml }),
    authorization: z.strictObject({ regex_acl: RegexAclToml }),
  }),
  z.strictObject({
    authorization_mode: z.literal('Ed25519Key'),
    auth_public_key: nonEmptyString,
  }),
]);

/** `[admin]`, Trustee's legacy form (before Nov 2025): no `authorization_mode`. */
export const LegacyAdminToml = z.strictObject({
  auth_public_key: nonEmptyString.optional(),
  insecure_api: z.boolean().optional(),
});

/** Keys whose presence (without `authorization_mode`) selects the legacy admin form. */
export const LEGACY_ADMIN_KEYS = ['auth_public_key', 'insecure_api'] as const;

/** `[[plugins]]` resource entry, our (and Trustee's former) form: storage named by `type`. */
export const LocalFsResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  type: z.literal('LocalFs'),
  dir_path: nonEmptyString.optional(),
});

/** Resource storage variants, a discriminated union on `type`. */
export const ResourcePluginToml = z.discriminatedUnion('type', [LocalFsResourcePluginToml]);

/** `[[plugins]]` resource entry, Trustee's current form: storage from `[storage_backend]`. */
export const KvStorageResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  storage_backend_type: z.enum(['kvstorage', 'KvStorage'], {
    error: 'only "kvstorage" (the [storage_backend] storage) is supported',
  }),
});

/** Plugin names this KBS knows. */
export const PLUGIN_NAMES = ['resource'] as const;

/** Trustee's `[storage_backend]`; only LocalFs is supported. */
export const StorageBackendToml = z.strictObject({
  storage_type: z.enum(['LocalFs', 'local_fs'], {
    error: 'only "LocalFs" is supported',
  }),
  backends: z
    .strictObject({
      local_fs: z.strictObject({ dir_path: nonEmptyString }).optional(),
    })
    .optional(),
});

export const PolicyToml = z.strictObject({
  resource_policy_path: nonEmptyString.optional(),
  step_budget: tomlInteger(1, LIMITS.policyStepBudget, 'positive integer').optional(),
});

export const LoggingToml = z.strictObject({
  level: z.enum(LOG_LEVELS).optional(),
});

/** The whole document. `admin` and `plugins` entries are dispatched between forms by the loader. */
export const KbsConfigToml = z.strictObject({
  work_dir: nonEmptyString.optional(),
  http_server: HttpServerToml.optional(),
  attestation_token: AttestationTokenToml.optional(),
  attestation_service: AttestationServiceToml.optional(),
  admin: TomlTable.optional(),
  storage_backend: StorageBackendToml.optional(),
  plugins: z.array(TomlTable).optional(),
  policy: PolicyToml.optional(),
  logging: LoggingToml.optional(),
});

export type KbsConfigTomlInput = z.output<typeof KbsConfigToml>;
export type AdminTomlInput = z.output<typeof AdminToml>;
export type LegacyAdminTomlInput = z.output<typeof LegacyAdminToml>;
export type ResourcePluginTomlInput = z.output<typeof ResourcePluginToml>;
export type KvStorageResourcePluginTomlInput = z.output<typeof KvStorageResourcePluginToml>;
export type StorageBackendTomlInput = z.output<typeof StorageBackendToml>;

/**
 * Trustee keys this KBS deliberately does not implement: still errors (nothing is silently
 * ignored), with a clearer message than "unknown key". Plugin entries are matched by
 * `plugins[].<key>`.
 */
export const TRUSTEE_ONLY_KEYS: ReadonlyMap<string, string> = new Map([
  ['http_server.worker_count', 'a Trustee option this KBS does not implement: Node serves from one event loop'],
  ['http_server.tls_profile', 'a Trustee option this KBS does not implement: Node TLS defaults apply'],
  ['http_server.tls_min_version', 'a Trustee option this KBS does not implement'],
  ['http_server.tls_max_version', 'a Trustee option this KBS does not implement'],
  ['http_server.tls_ciphers', 'a Trustee option this KBS does not implement'],
  ['http_server.tls_groups', 'a Trustee option this KBS does not implement'],
  ['attestation_service.as_addr', 'remote attestation services are not supported, only the built-in one'],
  ['attestation_service.pool_size', 'remote attestation services are not supported, only the built-in one'],
  ['attestation_service.verifier_config', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.issuer_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.developer_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.build_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.profile_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.verbose_token', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.signer.cert_url', 'remote certificate URLs are not supported; use cert_path'],
  ['attestation_service.rvps_config.extractors', 'a Trustee option this KBS does not implement'],
  ['attestation_service.rvps_config.storage_type', 'a Trustee option this KBS does not implement'],
  ['attestation_service.rvps_config.address', 'remote RVPS is not supported, only the built-in one'],
  ['session_storage_type', 'a Trustee option this KBS does not implement: sessions are in memory'],
  ['storage_backend.backends.local_json', 'only the local_fs storage backend is supported'],
  ['storage_backend.backends.postgres', 'only the local_fs storage backend is supported'],
  ['storage_backend.backends.redis', 'only the local_fs storage backend is supported'],
  ['admin.type', "Trustee's former admin `type` key; use authorization_mode"],
  ['admin.personas', "Trustee's former Simple admin mode; use authorization_mode"],
  ['admin.insecure_api', 'legacy key: use either authorization_mode or the legacy auth_public_key/insecure_api form, not both'],
  ['admin.auth_public_key', 'only valid with authorization_mode = "Ed25519Key" or in the legacy form (without authorization_mode)'],
]);
