/**
 * Resolution of a validated configuration document into the immutable `KbsConfig`, section by
 * section: defaults applied, both resource-plugin forms normalized, paths made absolute, referenced
 * files checked, cross-key rules enforced, the result deeply frozen.
 *
 * Rules the resolution follows:
 *  - Every relative path in the document is relative to `work_dir`; `work_dir` itself is relative
 *    to the process cwd. Path keys may carry a `file://` prefix; other URI schemes are refused.
 *  - A file the configuration names must exist (and be a regular file). A file only named by a
 *    default (token signing key, admin key pair and token) is created by the server when missing,
 *    and the resolved config says so (`generateIfMissing`, `generatedCredentials`).
 *  - Problems are collected and reported together in one `ConfigError`: schema problems first;
 *    file and cross-key checks once the document's shape is valid.
 */
import path from 'node:path';
import {
  ConfigError,
  DEFAULTS,
  parseSocketAddress,
  type AdminConfig,
  type AttestationServiceConfig,
  type AttestationTokenConfig,
  type HttpServerConfig,
  type IdentityProviderConfig,
  type KbsConfig,
  type KbsConfigTomlInput,
  type PluginConfig,
  type SecretSource,
  type SocketAddress,
} from './schema.js';
import { resolveAadTokenPlugin, resolveAzureKeyVault } from './azure.js';
import { Issues } from './issues.js';
import { Resolver, URI_SCHEME } from './paths.js';
import { validateDocument, type AdminInput, type PluginInput } from './validate.js';
import { resolveVerifierConfig } from './verifier-config.js';
import { resolveAudit, resolveMetrics } from './observability.js';
import { resolveRateLimit, resolveServing } from './resolve-serving.js';

function isLoopback(socket: SocketAddress): boolean {
  if (socket.family === 'ipv4') return socket.host.startsWith('127.');
  if (socket.family === 'ipv6') return socket.host === '::1';
  return socket.host === 'localhost';
}

function resolveHttpServer(r: Resolver, toml: KbsConfigTomlInput): HttpServerConfig {
  const hs = toml.http_server ?? {};
  const defaultSocket = parseSocketAddress(DEFAULTS.socket) as SocketAddress;
  const sockets = hs.sockets ?? [defaultSocket];
  const seen = new Set<string>();
  sockets.forEach((socket, index) => {
    if (seen.has(socket.text)) r.issues.add(['http_server', 'sockets', index], `duplicate socket address ${socket.text}`);
    seen.add(socket.text);
  });
  const insecureHttp = hs.insecure_http ?? DEFAULTS.insecureHttp;
  const payloadRequestSizeMiB = hs.payload_request_size ?? DEFAULTS.payloadRequestSizeMiB;

  let tls: HttpServerConfig['tls'] = null;
  if (insecureHttp) {
    if (hs.private_key !== undefined || hs.certificate !== undefined) {
      r.warnings.push('http_server: insecure_http = true, so private_key and certificate are ignored');
    }
    const exposed = sockets.filter((s) => !isLoopback(s)).map((s) => s.text);
    if (exposed.length > 0) {
      r.warnings.push(`http_server: plain HTTP (insecure_http = true) on non-loopback socket(s) ${exposed.join(', ')}`);
    }
  } else {
    const needs = 'required when insecure_http = false (HTTPS): set private_key and certificate, or insecure_http = true';
    if (hs.private_key === undefined) r.issues.add(['http_server', 'private_key'], needs);
    if (hs.certificate === undefined) r.issues.add(['http_server', 'certificate'], needs);
    const privateKeyPath = hs.private_key === undefined ? undefined : r.file(['http_server', 'private_key'], hs.private_key);
    const certificatePath = hs.certificate === undefined ? undefined : r.file(['http_server', 'certificate'], hs.certificate);
    if (privateKeyPath !== undefined && certificatePath !== undefined) tls = { privateKeyPath, certificatePath };
  }

  return {
    sockets,
    insecureHttp,
    tls,
    payloadRequestSizeMiB,
    payloadRequestSizeBytes: payloadRequestSizeMiB * 1024 * 1024,
    ...resolveServing(r, toml),
  };
}

function resolveAttestationToken(r: Resolver, toml: KbsConfigTomlInput): AttestationTokenConfig {
  const at = toml.attestation_token ?? {};
  const config: AttestationTokenConfig = {
    trustedCertsPaths: r.files(['attestation_token', 'trusted_certs_paths'], at.trusted_certs_paths ?? []),
    trustedJwkSetPaths: r.files(['attestation_token', 'trusted_jwk_sets'], at.trusted_jwk_sets ?? []),
    insecureHeaderJwk: at.insecure_header_jwk ?? DEFAULTS.insecureHeaderJwk,
    trustOwnTokens: at.trust_own_tokens ?? DEFAULTS.trustOwnTokens,
    extraTeeKeyPaths: at.extra_teekey_paths ?? [],
  };
  if (config.insecureHeaderJwk) {
    r.warnings.push(
      'attestation_token: insecure_header_jwk = true: any token whose header carries its own jwk is accepted (testing only)',
    );
  }
  const configuredTrust =
    (at.trusted_certs_paths?.length ?? 0) > 0 || (at.trusted_jwk_sets?.length ?? 0) > 0;
  if (!config.insecureHeaderJwk && !config.trustOwnTokens && !configuredTrust) {
    r.issues.add(
      ['attestation_token'],
      'no attestation token can be verified: set trusted_certs_paths or trusted_jwk_sets, or trust_own_tokens = true',
    );
  }
  return config;
}

function resolveAttestationService(r: Resolver, toml: KbsConfigTomlInput): AttestationServiceConfig {
  const as = toml.attestation_service ?? {};
  const broker = as.attestation_token_broker ?? {};
  const base = ['attestation_service', 'attestation_token_broker', 'signer'];
  const signer =
    broker.signer === undefined
      ? { keyPath: r.defaultPath(DEFAULTS.tokenSigningKey), certPath: null, generateIfMissing: true }
      : {
          keyPath: r.file([...base, 'key_path'], broker.signer.key_path) ?? '',
          certPath:
            broker.signer.cert_path === undefined ? null : (r.file([...base, 'cert_path'], broker.signer.cert_path) ?? null),
          generateIfMissing: false,
        };
  // Trustee keeps AS policies and RVPS values in namespaces of the unified storage backend.
  const storageDir = toml.storage_backend?.backends?.local_fs?.dir_path;
  const root = storageDir === undefined ? r.workDir : (r.path(['storage_backend', 'backends', 'local_fs', 'dir_path'], storageDir) ?? '');
  return {
    sessionTimeoutMinutes: as.timeout ?? DEFAULTS.sessionTimeoutMinutes,
    maxSessions: as.max_sessions ?? DEFAULTS.maxSessions,
    tokenBroker: { durationMinutes: broker.duration_min ?? DEFAULTS.tokenDurationMinutes, signer },
    verifiers: resolveVerifierConfig(r, as.verifier_config),
    policyDir: path.join(root, DEFAULTS.attestationPolicyNamespace),
    referenceValueDir: path.join(root, DEFAULTS.referenceValueNamespace),
  };
}

function defaultAdmin(r: Resolver): AdminConfig {
  const publicKeyPath = r.defaultPath(DEFAULTS.adminPublicKey);
  return {
    mode: 'AuthenticatedAuthorization',
    identityProviders: [{ issuer: null, audience: null, key: { kind: 'PublicKeyPem', path: publicKeyPath } }],
    acls: [{ role: DEFAULTS.adminRole, allowedEndpoints: DEFAULTS.adminAllowedEndpoints }],
    generatedCredentials: {
      publicKeyPath,
      privateKeyPath: r.defaultPath(DEFAULTS.adminPrivateKey),
      tokenPath: r.defaultPath(DEFAULTS.adminToken),
      role: DEFAULTS.adminRole,
    },
  };
}

function resolveAdmin(r: Resolver, admin: AdminInput): AdminConfig {
  if (admin.form === 'default') return defaultAdmin(r);

  if (admin.form === 'legacy') {
    const { auth_public_key: key, insecure_api: insecure } = admin.value;
    if (insecure === true) {
      r.warnings.push('admin: legacy insecure_api = true is treated as authorization_mode = "InsecureAllowAll"');
      if (key !== undefined) r.warnings.push('admin: auth_public_key is ignored because insecure_api = true');
      r.warnings.push('admin: authorization_mode = "InsecureAllowAll": every admin request is allowed');
      return { mode: 'InsecureAllowAll' };
    }
    if (key === undefined) {
      r.issues.add(['admin', 'auth_public_key'], 'required when insecure_api = false (legacy admin form)');
      return { mode: 'DenyAll' };
    }
    r.warnings.push('admin: legacy auth_public_key form is treated as authorization_mode = "Ed25519Key"');
    return { mode: 'Ed25519Key', publicKeyPath: r.file(['admin', 'auth_public_key'], key) ?? '' };
  }

  const value = admin.value;
  switch (value.authorization_mode) {
    case 'InsecureAllowAll':
      r.warnings.push('admin: authorization_mode = "InsecureAllowAll": every admin request is allowed');
      return { mode: 'InsecureAllowAll' };
    case 'DenyAll':
      return { mode: 'DenyAll' };
    case 'Ed25519Key':
      return { mode: 'Ed25519Key', publicKeyPath: r.file(['admin', 'auth_public_key'], value.auth_public_key) ?? '' };
    case 'AuthenticatedAuthorization': {
      const base = ['admin', 'authentication', 'bearer_jwt', 'identity_providers'];
      const identityProviders = value.authentication.bearer_jwt.identity_providers.map(
        (idp, index): IdentityProviderConfig => {
          const key =
            idp.public_key_uri !== undefined
              ? { kind: 'PublicKeyPem' as const, path: r.file([...base, index, 'public_key_uri'], idp.public_key_uri) ?? '' }
              : { kind: 'JwkSet' as const, path: r.file([...base, index, 'jwk_set_uri'], idp.jwk_set_uri ?? '') ?? '' };
          return { issuer: idp.issuer ?? null, audience: idp.audience ?? null, key };
        },
      );
      const acls = (value.authorization.regex_acl.acls ?? []).map((acl) => ({
        role: acl.role,
        allowedEndpoints: acl.allowed_endpoints,
      }));
      if (acls.length === 0) {
        r.warnings.push('admin: regex_acl has no acls: every admin request will be denied');
      }
      return { mode: 'AuthenticatedAuthorization', identityProviders, acls, generatedCredentials: null };
    }
  }
}

function resolvePlugins(r: Resolver, toml: KbsConfigTomlInput, plugins: PluginInput[] | undefined): PluginConfig[] {
  if (plugins === undefined) {
    if (toml.storage_backend !== undefined) {
      r.warnings.push('storage_backend: only attestation policies and reference values use it; no [[plugins]] entry does (add name = "resource", storage_backend_type = "kvstorage")');
    }
    return [{ name: 'resource', storage: { type: 'LocalFs', dirPath: r.defaultPath(DEFAULTS.resourceDir) } }];
  }
  const out: PluginConfig[] = [];
  let usesStorageBackend = false;
  for (const plugin of plugins) {
    if (plugin.form === 'aad-token') {
      out.push(resolveAadTokenPlugin(r, plugin.index, plugin.value));
      continue;
    }
    if (plugin.form === 'typed') {
      const entry = plugin.value;
      switch (entry.type) {
        case 'LocalFs': {
          const dirPath =
            entry.dir_path === undefined
              ? r.defaultPath(DEFAULTS.resourceDir)
              : (r.path(['plugins', plugin.index, 'dir_path'], entry.dir_path) ?? '');
          out.push({ name: 'resource', storage: { type: 'LocalFs', dirPath } });
          break;
        }
        case 'Sqlite': {
          const dbPath =
            entry.db_path === undefined
              ? r.defaultPath(DEFAULTS.sqliteDbPath)
              : (r.path(['plugins', plugin.index, 'db_path'], entry.db_path) ?? '');
          out.push({ name: 'resource', storage: { type: 'Sqlite', dbPath } });
          break;
        }
        case 'Pkcs11': {
          const at = ['plugins', plugin.index] as const;
          const module = r.file([...at, 'module'], entry.module) ?? '';
          if (entry.slot_index !== undefined && entry.token_label !== undefined) {
            r.issues.add([...at, 'token_label'], 'give slot_index or token_label, not both');
          }
          const sources = [entry.pin, entry.pin_file, entry.pin_env].filter((x) => x !== undefined).length;
          if (sources > 1) r.issues.add([...at, 'pin'], 'give exactly one of pin, pin_file, pin_env');
          let pin: SecretSource;
          if (entry.pin !== undefined) {
            pin = { kind: 'inline', value: entry.pin };
            r.warnings.push(`plugins[${plugin.index}].pin: the HSM PIN is written in the configuration file; prefer pin_file or pin_env`);
          } else if (entry.pin_file !== undefined) {
            pin = { kind: 'file', path: r.file([...at, 'pin_file'], entry.pin_file) ?? '' };
          } else {
            pin = { kind: 'env', name: entry.pin_env ?? DEFAULTS.pkcs11PinEnv };
          }
          out.push({
            name: 'resource',
            storage: {
              type: 'Pkcs11',
              module,
              slotIndex: entry.slot_index === undefined ? null : Number(entry.slot_index),
              tokenLabel: entry.token_label ?? null,
              pin,
            },
          });
          break;
        }
        case 'AzureKeyVault':
          out.push({ name: 'resource', storage: resolveAzureKeyVault(r, plugin.index, entry) });
          break;
      }
      continue;
    }
    usesStorageBackend = true;
    const backend = toml.storage_backend;
    if (backend === undefined) {
      r.issues.add(
        ['plugins', plugin.index, 'storage_backend_type'],
        '"kvstorage" needs a [storage_backend] section (storage_type = "LocalFs" and [storage_backend.backends.local_fs] dir_path)',
      );
      continue;
    }
    const dir = backend.backends?.local_fs?.dir_path;
    if (dir === undefined) {
      r.issues.add(['storage_backend', 'backends', 'local_fs', 'dir_path'], 'required when storage_type = "LocalFs"');
      continue;
    }
    const root = r.path(['storage_backend', 'backends', 'local_fs', 'dir_path'], dir);
    // Trustee's resource plugin keeps its data in the `repository` namespace of the backend.
    out.push({ name: 'resource', storage: { type: 'LocalFs', dirPath: path.join(root ?? '', 'repository') } });
  }
  if (toml.storage_backend !== undefined && !usesStorageBackend) {
    r.warnings.push('storage_backend: only attestation policies and reference values use it; no [[plugins]] entry does (storage_backend_type = "kvstorage")');
  }
  return out;
}

export function resolveDocument(document: Record<string, unknown>, cwd: string, source: string): KbsConfig {
  const issues = new Issues();
  const validated = validateDocument(document, issues);
  issues.throwIfAny(source);
  if (validated === undefined) throw new ConfigError(source, [{ keyPath: '', problem: 'invalid configuration' }]);
  const { toml } = validated;

  const workDirText = toml.work_dir ?? DEFAULTS.workDir;
  if (URI_SCHEME.test(workDirText)) issues.add(['work_dir'], 'must be a directory path, not a URI');
  const r = new Resolver(path.resolve(cwd, workDirText), issues);

  const httpServer = resolveHttpServer(r, toml);
  const attestationToken = resolveAttestationToken(r, toml);
  const attestationService = resolveAttestationService(r, toml);
  const admin = resolveAdmin(r, validated.admin);
  const plugins = resolvePlugins(r, toml, validated.plugins);
  const policy = {
    resourcePolicyPath:
      toml.policy?.resource_policy_path === undefined
        ? r.defaultPath(DEFAULTS.resourcePolicyPath)
        : (r.path(['policy', 'resource_policy_path'], toml.policy.resource_policy_path) ?? ''),
    stepBudget: toml.policy?.step_budget ?? DEFAULTS.policyStepBudget,
  };
  const logging = { level: toml.logging?.level ?? DEFAULTS.logLevel };
  const rateLimit = resolveRateLimit(r, toml);
  const metrics = resolveMetrics(toml);
  const audit = resolveAudit(r, toml);
  issues.throwIfAny(source);

  return deepFreeze<KbsConfig>({
    source,
    workDir: r.workDir,
    httpServer,
    attestationToken,
    attestationService,
    admin,
    plugins,
    policy,
    logging,
    rateLimit,
    metrics,
    audit,
    warnings: r.warnings,
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
