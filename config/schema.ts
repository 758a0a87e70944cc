/**
 * KBS configuration: the TOML shape, as strict zod schemas with Trustee's section and key names.
 *
 * `*Toml` schemas validate one section of the parsed TOML document as written: every object is
 * strict (an unknown key is an error naming its full path), TOML integers are parsed as bigint so
 * that `5.0` is told apart from `5`, and field-local checks (socket syntax, ACL anchoring, ranges)
 * live here and in `field-checks.ts`. `config/resolve.ts` resolves the sections into the
 * immutable `KbsConfig` (`types.ts`): defaults applied, both resource-plugin forms normalized,
 * every path absolute, referenced files checked, deeply frozen.
 *
 * This module also re-exports the errors, defaults, resolved types and field helpers that used to
 * live here, so importers keep importing from `./schema.js`.
 */
import { z } from 'zod';
import { LIMITS, LOG_LEVELS } from './defaults.js';
import { aclRegexProblem, nonEmptyString, socketAddress, tomlInteger } from './field-checks.js';
import { VerifierConfigToml } from './verifier-config.js';
import { HttpServingToml, RateLimitToml } from './schema-serving.js';
import { AzureKeyVaultResourcePluginToml } from './azure.js';

export * from './defaults.js';
export * from './errors.js';
export type * from './types.js';
export { aclRegexProblem, parseSocketAddress } from './field-checks.js';
export { AadTokenPluginToml, AzureKeyVaultResourcePluginToml, AZURE_CREDENTIAL_KINDS, AZURE_DEFAULTS } from './azure.js';

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
  ...HttpServingToml,
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
  verifier_config: VerifierConfigToml.optional(),
  /** Trustee's RVPS selector; only the built-in one exists here. */
  rvps_config: z
    .strictObject({
      type: z.literal('BuiltIn', { error: 'only the built-in RVPS is supported ("BuiltIn")' }),
      /** Trustee's per-RVPS storage type; LocalFs (the only one here) is the same as the default. */
      storage_type: z.enum(['LocalFs', 'local_fs'], { error: 'only "LocalFs" is supported' }).optional(),
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

export const SqliteResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  type: z.literal('Sqlite'),
  db_path: nonEmptyString.optional(),
});

export const Pkcs11ResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  type: z.literal('Pkcs11'),
  module: nonEmptyString,
  slot_index: tomlInteger(0, 65535, 'slot index (0-65535)').optional(),
  token_label: nonEmptyString.max(32, { error: 'a PKCS#11 token label has at most 32 characters' }).optional(),
  pin: nonEmptyString.optional(),
  pin_file: nonEmptyString.optional(),
  pin_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' }).optional(),
});

/** Resource storage variants, a discriminated union on `type`. */
export const ResourcePluginToml = z.discriminatedUnion('type', [
  LocalFsResourcePluginToml,
  SqliteResourcePluginToml,
  Pkcs11ResourcePluginToml,
  AzureKeyVaultResourcePluginToml,
]);

/** `[[plugins]]` resource entry, Trustee's current form: storage from `[storage_backend]`. */
export const KvStorageResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  storage_backend_type: z.enum(['kvstorage', 'KvStorage'], {
    error: 'only "kvstorage" (the [storage_backend] storage) is supported',
  }),
});

/** Plugin names this KBS knows. */
export const PLUGIN_NAMES = ['resource', 'aad-token'] as const;

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

/** `[metrics]`: the Prometheus endpoint `GET /metrics`. */
export const MetricsToml = z.strictObject({
  enabled: z.boolean().optional(),
});

/** `[audit]`: the audit log (one JSON line per security decision). */
export const AuditToml = z.strictObject({
  enabled: z.boolean().optional(),
  /** A file (relative to work_dir), or "-" / "stdout". */
  path: nonEmptyString.optional(),
  required: z.boolean().optional(),
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
  rate_limit: RateLimitToml.optional(),
  metrics: MetricsToml.optional(),
  audit: AuditToml.optional(),
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
  ['http_server.tls_min_version', 'a Trustee option this KBS does not implement: use tls_profile'],
  ['http_server.tls_max_version', 'a Trustee option this KBS does not implement: use tls_profile'],
  ['http_server.tls_ciphers', 'a Trustee option this KBS does not implement: use tls_profile'],
  ['http_server.tls_groups', 'a Trustee option this KBS does not implement: use tls_profile'],
  ['attestation_service.as_addr', 'remote attestation services are not supported, only the built-in one'],
  ['attestation_service.pool_size', 'remote attestation services are not supported, only the built-in one'],
  ['attestation_service.attestation_token_broker.issuer_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.developer_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.build_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.profile_name', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.verbose_token', 'a Trustee option this KBS does not implement'],
  ['attestation_service.attestation_token_broker.signer.cert_url', 'remote certificate URLs are not supported; use cert_path'],
  ['attestation_service.rvps_config.extractors', 'a Trustee option this KBS does not implement'],
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
