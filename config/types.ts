/**
 * The resolved configuration types: the immutable `KbsConfig` (and its sections) that
 * `config/resolve.ts` builds from the TOML document and the rest of the program uses.
 */
import type { ADMIN_MODES, LOG_LEVELS } from './defaults.js';
import type { VerifierConfig } from './verifier-config.js';

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
  /** `intermediate`: TLS 1.2 (ECDHE + AEAD only) and 1.3; `modern`: TLS 1.3 only. */
  readonly tlsProfile: 'intermediate' | 'modern';
  /** How long a shutdown lets in-flight requests finish before dropping their connections. */
  readonly shutdownGraceMs: number;
  /** Whole-request deadline (`server.requestTimeout`). */
  readonly requestTimeoutMs: number;
  /** Request-headers deadline (`server.headersTimeout`), at most `requestTimeoutMs`. */
  readonly headersTimeoutMs: number;
  /** Idle keep-alive connection lifetime (`server.keepAliveTimeout`). */
  readonly keepAliveTimeoutMs: number;
  /** Worker threads for the JWE key agreements of resource releases; 0: on the event loop. */
  readonly cryptoThreads: number;
}

/** `[rate_limit]`: token buckets per client address on /auth and /attest. */
export interface RateLimitConfig {
  readonly enabled: boolean;
  readonly auth: { readonly perSecond: number; readonly burst: number };
  readonly attest: { readonly perSecond: number; readonly burst: number };
  /** Most client buckets kept (least recently used evicted). */
  readonly maxClients: number;
  /** IPs / CIDR blocks whose X-Forwarded-For names the client; empty: the socket peer is the client. */
  readonly trustedProxies: readonly string[];
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
  /** `[attestation_service.verifier_config]`: collateral for the hardware verifiers. */
  readonly verifiers: VerifierConfig;
  /**
   * Directory of the attestation (EAR appraisal) policies, one `<id>.rego` each: Trustee's
   * `attestation_service_policy` namespace under `[storage_backend.backends.local_fs] dir_path`,
   * else under `work_dir` (absolute).
   */
  readonly policyDir: string;
  /**
   * Directory of the built-in RVPS's reference values, one file per id: Trustee's `reference_value`
   * namespace under `[storage_backend.backends.local_fs] dir_path`, else under `work_dir` (absolute).
   */
  readonly referenceValueDir: string;
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

/** Resource storage: a discriminated union on `type`. */
export type ResourceStorageConfig = LocalFsStorageConfig | SqliteStorageConfig | Pkcs11StorageConfig | AzureKeyVaultStorageConfig;

/** An Entra ID credential as configured (config/azure.ts); secrets are read at start. */
export interface AzureCredentialSettings {
  readonly kind: 'workload_identity' | 'managed_identity' | 'client_secret' | 'client_certificate' | 'default';
  readonly tenantId: string | null;
  readonly clientId: string | null;
  /** Workload identity: the projected token file (default AZURE_FEDERATED_TOKEN_FILE). */
  readonly tokenFile: string | null;
  readonly applicationSecret: SecretSource | null;
  /** PEM certificate (with its key, or the key from `privateKey`). */
  readonly certificatePath: string | null;
  readonly privateKey: SecretSource | null;
  /** SCONE form: with `privateKey`, no certificate. */
  readonly certificateThumbprint: string | null;
  readonly sendCertificateChain: boolean;
}

/** Settings shared by everything that talks to Entra ID / Key Vault. */
export interface AzureTransportSettings {
  /** Entra authority host; null: AZURE_AUTHORITY_HOST, else login.microsoftonline.com. */
  readonly authorityHost: string | null;
  /** Extra CA certificates (PEM file) for Entra and Key Vault. */
  readonly caCertPath: string | null;
  /** Deadline of each call to Azure, retries included. */
  readonly timeoutMs: number;
  readonly maxRetries: number;
}

export interface AzureKeyVaultStorageConfig extends AzureTransportSettings {
  readonly type: 'AzureKeyVault';
  /** The read-write vault, or null (imports only). */
  readonly vaultUrl: string | null;
  readonly credential: AzureCredentialSettings;
  /** SCONE-style `import_akv` entries: read-only paths served from named secrets. */
  readonly imports: readonly { readonly path: string; readonly vault: string; readonly secretName: string | null; readonly version: string | null }[];
  /** Read cache lifetime; 0 disables it. */
  readonly cacheTtlSeconds: number;
  readonly purgeOnDelete: boolean;
  readonly disableChallengeResourceVerification: boolean;
}

/** `[[plugins]] name = "aad-token"`: Entra access tokens released to attested workloads. */
export interface AadTokenPluginConfig extends AzureTransportSettings {
  readonly name: 'aad-token';
  /** Never set: lets `plugins[i].storage` be read without narrowing on `name` first. */
  readonly storage?: undefined;
  readonly tokens: readonly { readonly name: string; readonly credential: AzureCredentialSettings; readonly scope: string }[];
}

export interface SqliteStorageConfig {
  readonly type: 'Sqlite';
  /** The database file (created when missing). */
  readonly dbPath: string;
}

/** Where a secret such as a PIN comes from; the value itself is read at start, never logged. */
export type SecretSource =
  | { readonly kind: 'inline'; readonly value: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'env'; readonly name: string };

export interface Pkcs11StorageConfig {
  readonly type: 'Pkcs11';
  /** The PKCS#11 module (shared library), checked to exist. */
  readonly module: string;
  /** Slot by index, or token by label; neither: the first slot with a token. */
  readonly slotIndex: number | null;
  readonly tokenLabel: string | null;
  readonly pin: SecretSource;
}

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
export type PluginConfig = ResourcePluginConfig | AadTokenPluginConfig;

export interface PolicyConfig {
  /** The resource policy (Rego) file (absolute). */
  readonly resourcePolicyPath: string;
  /** Evaluation step budget per policy decision. */
  readonly stepBudget: number;
}

export interface LoggingConfig {
  readonly level: LogLevel;
}

export interface MetricsConfig {
  /** Serve `GET /metrics` (Prometheus text format, unauthenticated like Trustee's). */
  readonly enabled: boolean;
}

export interface AuditConfig {
  readonly enabled: boolean;
  /** Where records go: an absolute file path (append-only, fsync per record) or standard output. */
  readonly destination: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'stdout' };
  /** Refuse releases and admin changes whose record cannot be written (fail closed). */
  readonly required: boolean;
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
  readonly rateLimit: RateLimitConfig;
  readonly metrics: MetricsConfig;
  readonly audit: AuditConfig;
  /** Things the server should log at start (insecure modes, legacy forms, ignored keys). */
  readonly warnings: readonly string[];
}
