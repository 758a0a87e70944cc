/** Public option and record types of the Azure stand-in (see README.md in this folder). */

/** Key Vault data-plane secret permissions (access-policy names; RBAC roles map onto them). */
export type SecretPermission = 'get' | 'list' | 'set' | 'delete' | 'recover' | 'purge';

export const ALL_SECRET_PERMISSIONS: readonly SecretPermission[] = ['get', 'list', 'set', 'delete', 'recover', 'purge'];
/** "Key Vault Secrets User": read only. */
export const SECRETS_USER: readonly SecretPermission[] = ['get', 'list'];
/** "Key Vault Secrets Officer": everything on secrets. */
export const SECRETS_OFFICER: readonly SecretPermission[] = ALL_SECRET_PERMISSIONS;

export interface TenantSpec {
  /** Tenant id (normally a GUID). */
  id: string;
  /** Domain names that also address the tenant in authority URLs (e.g. `contoso.onmicrosoft.com`). */
  domains?: string[];
}

/** A trust relationship Entra checks a federated (workload identity) assertion against. */
export interface FederatedCredentialSpec {
  issuer: string;
  subject: string;
  /** Default `["api://AzureADTokenExchange"]`. */
  audiences?: string[];
}

/** An app registration (service principal) that can use the client-credentials grant. */
export interface ClientSpec {
  tenantId: string;
  clientId: string;
  /** Service principal object id; default derived from the client id. */
  objectId?: string;
  /** Registered client secrets (any of them is accepted). */
  secrets?: string[];
  /** Registered certificates (PEM); assertions are checked against their key and thumbprint. */
  certificates?: string[];
  federated?: FederatedCredentialSpec[];
}

/** A managed identity, served by IMDS / App Service MSI, and usable for workload identity federation. */
export interface ManagedIdentitySpec {
  tenantId: string;
  clientId: string;
  objectId?: string;
  /** ARM resource id (`/subscriptions/…/userAssignedIdentities/name`), selectable with `msi_res_id`/`mi_res_id`. */
  resourceId?: string;
  /** The host's system-assigned identity: answered when a request names no identity. */
  systemAssigned?: boolean;
  federated?: FederatedCredentialSpec[];
}

/** An external OIDC issuer (e.g. an AKS cluster's) whose tokens federated credentials may name. */
export interface TrustedIssuerSpec {
  issuer: string;
  /** Its public signing keys. */
  jwks: { keys: Record<string, unknown>[] };
}

export interface VaultSpec {
  /** Vault name: 3-24 of `[0-9a-zA-Z-]`, starting with a letter. */
  name: string;
  /** Tenant the vault trusts; default the first tenant. */
  tenantId?: string;
  /**
   * Data-plane access by client id (app or managed identity). Absent: every principal of the vault's
   * tenant has every permission. Present: only the listed principals, with the listed permissions.
   */
  access?: Record<string, readonly SecretPermission[]>;
  /** Purge protection: purge is refused (403). */
  purgeProtection?: boolean;
  /** Soft-delete retention in days (7-90, default 90). */
  retentionDays?: number;
  /**
   * How long a delete or recover stays "in progress" (the deleted / live entity reads as 404 meanwhile),
   * so SDK pollers actually poll. Default 0.
   */
  transitionMs?: number;
  /** Like `transitionMs`, counted in reads: the next N reads of the target answer 404 (deterministic). */
  transitionReads?: number;
}

export interface AzureStandInOptions {
  /** Tenants; any tenant named by a client, identity or vault is added automatically. */
  tenants?: TenantSpec[];
  clients?: ClientSpec[];
  managedIdentities?: ManagedIdentitySpec[];
  trustedIssuers?: TrustedIssuerSpec[];
  /** Vault names or specs. */
  vaults?: (string | VaultSpec)[];
  /** Access-token lifetime in seconds (Entra `expires_in`, IMDS `expires_on`); default 3599. */
  tokenLifetimeSeconds?: number;
  /** The App Service MSI secret (`IDENTITY_HEADER`); default a random value. */
  appServiceIdentityHeader?: string;
  /** Accepted clock skew for assertion `nbf`/`exp`, in seconds; default 60. */
  clockToleranceSeconds?: number;
  /** URL of the built-in Kubernetes-style OIDC issuer (default `https://oidc.prod-aks.azure.com/<uuid>/`). */
  oidcIssuer?: string;
  /** Resources Entra issues tokens for; default Key Vault, ARM, Graph, Storage. */
  resources?: string[];
}

export type ServiceName = 'entra' | 'vault' | 'imds';

/** One request as the stand-in saw it. Secrets (client secrets, assertions, tokens, values) are never recorded. */
export interface RecordedRequest {
  seq: number;
  service: ServiceName;
  /** Vault name for `vault` requests. */
  vault?: string;
  method: string;
  /** Path without the query string, as received (percent-encoding kept). */
  path: string;
  /** Decoded query parameters. */
  query: Record<string, string>;
  /** Lower-cased request headers; `authorization` is reduced to its scheme (`Bearer`), `x-identity-header` to `<present>`. */
  headers: Record<string, string>;
  /** Whether an Authorization header was present. */
  authorized: boolean;
  /** Request body length in bytes. */
  bodyLength: number;
  /** Entra token requests: the form's non-secret fields (grant_type, client_id, scope, client_assertion_type). */
  form?: Record<string, string>;
  /** Response status (0 if the connection was dropped). */
  status: number;
  /** Error code answered, if any (Key Vault `error.code`, Entra `error`). */
  errorCode?: string;
  /** Set when a fault rule produced the answer. */
  fault?: boolean;
  durationMs: number;
}

/** A canned answer; `code`/`message` are rendered in the target service's own error shape. */
export interface FaultResponse {
  status: number;
  code?: string;
  message?: string;
  headers?: Record<string, string>;
  /** Raw body; overrides code/message. */
  body?: string;
}

export interface FaultRule {
  service?: ServiceName | 'any';
  /** Only this vault (for `vault`). */
  vault?: string;
  method?: string;
  /** Exact path or pattern, matched against the received path. */
  path?: string | RegExp;
  /** Extra predicate. */
  match?: (request: Readonly<RecordedRequest>) => boolean;
  /** How many matching requests this rule applies to; default 1, `Infinity` for all. */
  times?: number;
  /** Delay before answering (normally, or with `respond`). */
  delayMs?: number;
  respond?: FaultResponse;
  /** Destroy the connection without answering. */
  drop?: boolean;
}

export interface FaultHandle {
  /** How many requests the rule has applied to so far. */
  readonly hits: number;
  readonly remaining: number;
  remove(): void;
}
