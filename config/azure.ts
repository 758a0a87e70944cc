/**
 * Azure configuration: the `type = "AzureKeyVault"` resource plugin (with SCONE-style
 * `[[plugins.import_akv]]` entries) and the `name = "aad-token"` plugin (`[[plugins.tokens]]`),
 * both using the same credential keys:
 *
 *   credential = "workload_identity" | "managed_identity" | "client_secret" | "client_certificate" | "default"
 *   tenant_id, client_id, token_file                    (ids; workload identity defaults from the env)
 *   application_secret | application_secret_file | application_secret_env         (client_secret)
 *   certificate_path [+ private_key*]  |  private_key* + certificate_thumbprint    (client_certificate)
 *
 * SCONE's key names (`tenant_id`, `client_id`, `application_secret`, `private_key`,
 * `certificate_thumbprint`, `import_akv.vault`, `secret_name`) are kept. Secrets given inline log a
 * warning; `_file` / `_env` variants are read at start (config/secrets.ts), never logged.
 */
import { z } from 'zod';
import { RESOURCE_SEGMENT_RE } from '../backends/resource-path.js';
import type { PathSegment } from './issues.js';
import type { Resolver } from './paths.js';
import { nonEmptyString, tomlInteger } from './field-checks.js';
import type { AadTokenPluginConfig, AzureCredentialSettings, AzureKeyVaultStorageConfig, SecretSource } from './types.js';

export const AZURE_CREDENTIAL_KINDS = ['workload_identity', 'managed_identity', 'client_secret', 'client_certificate', 'default'] as const;
export const AZURE_DEFAULTS = Object.freeze({
  cacheTtlSeconds: 30,
  timeoutMs: 10_000,
  maxRetries: 2,
  aadTokenScope: 'https://vault.azure.net/.default',
});

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' });
const httpsUrl = z.string().regex(/^https:\/\/[^\s/?#]+\/?$/, { error: 'must be an https:// URL (scheme and host only)' });

/** Credential keys, shared by the Key Vault backend and each aad-token source. */
const credentialFields = {
  credential: z.enum(AZURE_CREDENTIAL_KINDS),
  tenant_id: z.string().regex(/^[0-9A-Za-z.-]+$/, { error: 'must be a tenant id (GUID) or domain' }).optional(),
  client_id: nonEmptyString.optional(),
  token_file: nonEmptyString.optional(),
  application_secret: nonEmptyString.optional(),
  application_secret_file: nonEmptyString.optional(),
  application_secret_env: envName.optional(),
  certificate_path: nonEmptyString.optional(),
  private_key: nonEmptyString.optional(),
  private_key_file: nonEmptyString.optional(),
  private_key_env: envName.optional(),
  certificate_thumbprint: z
    .string()
    .regex(/^(?:[0-9A-Fa-f]{2}[:\s]?){19}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{2}[:\s]?){31}[0-9A-Fa-f]{2}$/, {
      error: 'must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) certificate thumbprint',
    })
    .optional(),
  send_certificate_chain: z.boolean().optional(),
};

/** Transport keys, shared too. */
const transportFields = {
  authority_host: httpsUrl.optional(),
  ca_cert_path: nonEmptyString.optional(),
  timeout_ms: tomlInteger(100, 600_000, 'integer between 100 and 600000 (milliseconds)').optional(),
  max_retries: tomlInteger(0, 10, 'integer between 0 and 10').optional(),
};

export const AkvImportToml = z.strictObject({
  path: z.string().regex(/^[^/]+\/[^/]+\/[^/]+$/, { error: 'must be a resource path <repository>/<type>/<tag>' }),
  vault: nonEmptyString,
  secret_name: z.string().regex(/^[0-9A-Za-z-]{1,127}$/, { error: 'must be a Key Vault secret name (^[0-9a-zA-Z-]{1,127}$)' }).optional(),
  version: z.string().regex(/^[0-9A-Za-z]{1,64}$/, { error: 'must be a Key Vault secret version id' }).optional(),
});

export const AzureKeyVaultResourcePluginToml = z.strictObject({
  name: z.literal('resource'),
  type: z.literal('AzureKeyVault'),
  vault_url: nonEmptyString.optional(),
  ...credentialFields,
  ...transportFields,
  cache_ttl_secs: tomlInteger(0, 86_400, 'integer between 0 and 86400 (seconds)').optional(),
  purge_on_delete: z.boolean().optional(),
  disable_challenge_resource_verification: z.boolean().optional(),
  import_akv: z.array(AkvImportToml).optional(),
});

export const AadTokenSourceToml = z.strictObject({
  name: z.string().regex(RESOURCE_SEGMENT_RE, { error: 'must match ^[A-Za-z0-9_-]+[A-Za-z0-9_.-]*$ (it is a URL segment)' }).max(255),
  ...credentialFields,
  scope: nonEmptyString.optional(),
});

export const AadTokenPluginToml = z.strictObject({
  name: z.literal('aad-token'),
  ...transportFields,
  tokens: z.array(AadTokenSourceToml).min(1, { error: 'configure at least one token source ([[plugins.tokens]])' }),
});

export type AzureKeyVaultResourcePluginTomlInput = z.output<typeof AzureKeyVaultResourcePluginToml>;
export type AadTokenPluginTomlInput = z.output<typeof AadTokenPluginToml>;
type CredentialTomlInput = Pick<AzureKeyVaultResourcePluginTomlInput, keyof typeof credentialFields>;

function secretSource(
  r: Resolver,
  at: readonly PathSegment[],
  key: string,
  inline: string | undefined,
  file: string | undefined,
  env: string | undefined,
): SecretSource | null {
  const given = [inline, file, env].filter((x) => x !== undefined).length;
  if (given > 1) r.issues.add([...at, key], `give exactly one of ${key}, ${key}_file, ${key}_env`);
  if (inline !== undefined) {
    r.warnings.push(`${[...at, key].join('.')}: a credential is written in the configuration file; prefer ${key}_file or ${key}_env`);
    return { kind: 'inline', value: inline };
  }
  if (file !== undefined) return { kind: 'file', path: r.file([...at, `${key}_file`], file) ?? '' };
  if (env !== undefined) return { kind: 'env', name: env };
  return null;
}

/** Resolves the credential keys of one table; adds issues for missing or conflicting keys. */
export function resolveAzureCredential(r: Resolver, at: readonly PathSegment[], t: CredentialTomlInput): AzureCredentialSettings {
  const applicationSecret = secretSource(r, at, 'application_secret', t.application_secret, t.application_secret_file, t.application_secret_env);
  const privateKey = secretSource(r, at, 'private_key', t.private_key, t.private_key_file, t.private_key_env);
  const certificatePath = t.certificate_path === undefined ? null : (r.file([...at, 'certificate_path'], t.certificate_path) ?? '');
  const tokenFile = t.token_file === undefined ? null : (r.path([...at, 'token_file'], t.token_file) ?? '');
  const kind = t.credential;
  const needIds = kind === 'client_secret' || kind === 'client_certificate';
  if (needIds) {
    if (t.tenant_id === undefined) r.issues.add([...at, 'tenant_id'], `required with credential = "${kind}"`);
    if (t.client_id === undefined) r.issues.add([...at, 'client_id'], `required with credential = "${kind}"`);
  }
  const unused = (keys: Array<[string, unknown]>): void => {
    for (const [key, v] of keys) if (v !== undefined && v !== null) r.issues.add([...at, key], `not used with credential = "${kind}"`);
  };
  if (kind === 'client_secret') {
    if (applicationSecret === null) r.issues.add([...at, 'application_secret'], 'credential = "client_secret" needs application_secret, application_secret_file or application_secret_env');
  } else {
    unused([['application_secret', applicationSecret]]);
  }
  if (kind === 'client_certificate') {
    if (certificatePath === null && (privateKey === null || t.certificate_thumbprint === undefined)) {
      r.issues.add([...at, 'certificate_path'], 'credential = "client_certificate" needs certificate_path (PEM certificate, with its key or with private_key), or private_key and certificate_thumbprint');
    }
    if (certificatePath !== null && t.certificate_thumbprint !== undefined) {
      r.issues.add([...at, 'certificate_thumbprint'], 'give certificate_path or certificate_thumbprint, not both (the thumbprint is computed from the certificate)');
    }
  } else {
    unused([['certificate_path', certificatePath], ['private_key', privateKey], ['certificate_thumbprint', t.certificate_thumbprint], ['send_certificate_chain', t.send_certificate_chain]]);
  }
  if (kind !== 'workload_identity') unused([['token_file', tokenFile]]);
  if (kind === 'managed_identity') unused([['tenant_id', t.tenant_id]]);
  return {
    kind,
    tenantId: t.tenant_id ?? null,
    clientId: t.client_id ?? null,
    tokenFile,
    applicationSecret,
    certificatePath,
    privateKey,
    certificateThumbprint: t.certificate_thumbprint ?? null,
    sendCertificateChain: t.send_certificate_chain ?? false,
  };
}

function resolveTransport(r: Resolver, at: readonly PathSegment[], t: { authority_host?: string | undefined; ca_cert_path?: string | undefined; timeout_ms?: number | undefined; max_retries?: number | undefined }) {
  return {
    authorityHost: t.authority_host?.replace(/\/$/, '') ?? null,
    caCertPath: t.ca_cert_path === undefined ? null : (r.file([...at, 'ca_cert_path'], t.ca_cert_path) ?? ''),
    timeoutMs: t.timeout_ms ?? AZURE_DEFAULTS.timeoutMs,
    maxRetries: t.max_retries ?? AZURE_DEFAULTS.maxRetries,
  };
}

export function resolveAzureKeyVault(r: Resolver, index: number, t: AzureKeyVaultResourcePluginTomlInput): AzureKeyVaultStorageConfig {
  const at: PathSegment[] = ['plugins', index];
  if (t.vault_url === undefined && (t.import_akv ?? []).length === 0) {
    r.issues.add([...at, 'vault_url'], 'set vault_url (read-write vault), import_akv entries (read-only imports), or both');
  }
  if (t.vault_url !== undefined && !/^https:\/\/[^\s/?#]+\/?$/.test(t.vault_url)) {
    r.issues.add([...at, 'vault_url'], 'must be the vault URL, e.g. "https://myvault.vault.azure.net"');
  }
  const seen = new Set<string>();
  const imports = (t.import_akv ?? []).map((imp, i) => {
    const segs = imp.path.split('/');
    if (!segs.every((s) => RESOURCE_SEGMENT_RE.test(s))) r.issues.add([...at, 'import_akv', i, 'path'], 'each segment must match ^[A-Za-z0-9_-]+[A-Za-z0-9_.-]*$');
    if (seen.has(imp.path)) r.issues.add([...at, 'import_akv', i, 'path'], `${imp.path} is imported twice`);
    seen.add(imp.path);
    if (imp.secret_name === undefined && !/^[0-9A-Za-z-]{1,127}$/.test(segs[2] ?? '')) {
      r.issues.add([...at, 'import_akv', i, 'secret_name'], `required: the tag ${JSON.stringify(segs[2] ?? '')} is not a valid Key Vault secret name`);
    }
    return { path: imp.path, vault: imp.vault, secretName: imp.secret_name ?? null, version: imp.version ?? null };
  });
  if (t.disable_challenge_resource_verification === true) {
    r.warnings.push(`plugins[${index}].disable_challenge_resource_verification = true: the vault's authentication challenge is not checked against the vault's host (local emulators only)`);
  }
  return {
    type: 'AzureKeyVault',
    vaultUrl: t.vault_url?.replace(/\/$/, '') ?? null,
    credential: resolveAzureCredential(r, at, t),
    ...resolveTransport(r, at, t),
    imports,
    cacheTtlSeconds: t.cache_ttl_secs ?? AZURE_DEFAULTS.cacheTtlSeconds,
    purgeOnDelete: t.purge_on_delete ?? false,
    disableChallengeResourceVerification: t.disable_challenge_resource_verification ?? false,
  };
}

export function resolveAadTokenPlugin(r: Resolver, index: number, t: AadTokenPluginTomlInput): AadTokenPluginConfig {
  const at: PathSegment[] = ['plugins', index];
  const seen = new Set<string>();
  const tokens = t.tokens.map((src, i) => {
    if (seen.has(src.name)) r.issues.add([...at, 'tokens', i, 'name'], `duplicate token source ${JSON.stringify(src.name)}`);
    seen.add(src.name);
    return {
      name: src.name,
      credential: resolveAzureCredential(r, [...at, 'tokens', i], src),
      scope: src.scope ?? AZURE_DEFAULTS.aadTokenScope,
    };
  });
  return { name: 'aad-token', ...resolveTransport(r, at, t), tokens };
}
