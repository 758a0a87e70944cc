/**
 * Loading the KBS configuration: TOML text → strict schema validation → resolution into the
 * immutable `KbsConfig` (defaults, normalized resource-plugin forms, absolute paths, referenced
 * files checked).
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
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml, TomlDate, TomlError } from 'smol-toml';
import type { z } from 'zod';
import {
  ADMIN_MODES,
  AdminToml,
  ConfigError,
  DEFAULTS,
  EMBEDDED_DEFAULT_SOURCE,
  KbsConfigToml,
  KvStorageResourcePluginToml,
  LEGACY_ADMIN_KEYS,
  LegacyAdminToml,
  PLUGIN_NAMES,
  ResourcePluginToml,
  TRUSTEE_ONLY_KEYS,
  parseSocketAddress,
  type AdminConfig,
  type AdminTomlInput,
  type AttestationServiceConfig,
  type AttestationTokenConfig,
  type ConfigIssue,
  type HttpServerConfig,
  type IdentityProviderConfig,
  type KbsConfig,
  type KbsConfigTomlInput,
  type KvStorageResourcePluginTomlInput,
  type LegacyAdminTomlInput,
  type PluginConfig,
  type ResourcePluginTomlInput,
  type SocketAddress,
} from './schema.js';

/** Environment variable naming the configuration file (as Trustee's `--config-file` / env). */
export const CONFIG_FILE_ENV = 'KBS_CONFIG_FILE';

/**
 * The configuration used when no file is given: plain HTTP on 127.0.0.1:8080 only; everything
 * else at its documented default (LocalFs repository, generated token key, generated admin key
 * pair + token with AuthenticatedAuthorization, own tokens trusted). `config/kbs-config.toml`
 * spells the same configuration out key by key.
 */
export const EMBEDDED_DEFAULT_TOML = `# Embedded default configuration: loopback-only plain HTTP, all else default.
[http_server]
sockets = ["${DEFAULTS.socket}"]
insecure_http = true
`;

export interface LoadConfigOptions {
  /** Configuration file (relative to `cwd`). Takes precedence over `KBS_CONFIG_FILE`. */
  file?: string;
  /** Environment to read `KBS_CONFIG_FILE` from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directory `work_dir` and `file` are relative to; default `process.cwd()`. */
  cwd?: string;
}

/**
 * Loads the configuration: `options.file`, else the file named by `KBS_CONFIG_FILE` (an empty
 * value counts as unset), else the embedded default. Throws `ConfigError`.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<KbsConfig> {
  const env = options.env ?? process.env;
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const envFile = env[CONFIG_FILE_ENV];
  const file = options.file ?? (envFile === undefined || envFile === '' ? undefined : envFile);
  if (file === undefined) return embeddedDefaultConfig(cwd);
  const source = path.resolve(cwd, file);
  if (file === '') {
    throw new ConfigError('<options.file>', [{ keyPath: '', problem: 'the configuration file path is empty' }]);
  }
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (error) {
    throw new ConfigError(source, [
      { keyPath: '', problem: `cannot read the configuration file ${source} (${errorCode(error)})` },
    ]);
  }
  return parseConfigText(text, { cwd, source });
}

/**
 * Parses and resolves configuration text. Synchronous: the only I/O is `stat` of the files the
 * configuration names (done once, at start-up). `cwd` is what `work_dir` is relative to; `source`
 * names the text in error messages and becomes `KbsConfig.source`. Throws `ConfigError`.
 */
export function parseConfigText(text: string, options: { cwd: string; source: string }): KbsConfig {
  const document = parseTomlDocument(text, options.source);
  return resolveDocument(document, path.resolve(options.cwd), options.source);
}

/** The embedded default configuration (see `EMBEDDED_DEFAULT_TOML`), with `work_dir` under `cwd`. */
export function embeddedDefaultConfig(cwd: string): KbsConfig {
  return parseConfigText(EMBEDDED_DEFAULT_TOML, { cwd, source: EMBEDDED_DEFAULT_SOURCE });
}

// ---------------------------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------------------------

function parseTomlDocument(text: string, source: string): Record<string, unknown> {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    // Integers as bigint: `timeout = 5.0` (a float) is then told apart from `timeout = 5`.
    return parseToml(body, { integersAsBigInt: true, unsafeKeyBehaviour: 'throw' });
  } catch (error) {
    if (error instanceof TomlError) {
      // Only the first line: the rest is a code excerpt that could show a secret value.
      const first = (error.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '').slice(0, 160);
      throw new ConfigError(source, [
        { keyPath: '', problem: `TOML syntax error: ${first}`, line: error.line, column: error.column },
      ]);
    }
    throw new ConfigError(source, [{ keyPath: '', problem: 'TOML syntax error' }]);
  }
}

// ---------------------------------------------------------------------------------------------
// Issues
// ---------------------------------------------------------------------------------------------

type PathSegment = string | number;

function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') {
      out += `[${segment}]`;
    } else {
      const key = /^[A-Za-z0-9_-]+$/.test(segment) ? segment : JSON.stringify(segment);
      out += out === '' ? key : `.${key}`;
    }
  }
  return out;
}

function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return 'float';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (Array.isArray(value)) return 'array';
  if (value instanceof TomlDate || value instanceof Date) return 'datetime';
  if (typeof value === 'object' && value !== null) return 'table';
  return typeof value;
}

function expectedName(expected: string): string {
  if (expected === 'bigint' || expected === 'int' || expected === 'number') return 'integer';
  if (expected === 'object' || expected === 'record' || expected === 'map') return 'table';
  return expected;
}

/** Identifier-like values (modes, plugin names, types) may be shown; nothing else is echoed. */
function showValue(value: unknown): string {
  if (typeof value === 'string' && value.length <= 64 && /^[\x20-\x7e]*$/.test(value)) return JSON.stringify(value);
  return typeof value === 'string' ? 'string' : kindOf(value);
}

function showOptions(options: readonly unknown[]): string {
  const shown = options.map((o) => JSON.stringify(typeof o === 'bigint' ? String(o) : o));
  return shown.length === 1 ? (shown[0] as string) : `one of ${shown.join(', ')}`;
}

/** Every key some `[admin]` form allows. */
const ADMIN_KEYS: ReadonlySet<string> = new Set([
  'authorization_mode',
  'authentication',
  'authorization',
  ...LEGACY_ADMIN_KEYS,
]);

function unknownKeyProblem(keyPath: readonly PathSegment[]): string {
  const hint = TRUSTEE_ONLY_KEYS.get(keyPath.filter((s) => typeof s === 'string').join('.'));
  return hint === undefined ? 'unknown key' : `unknown key; ${hint}`;
}

/** Zod's own messages start like this; a schema's custom message does not. */
const DEFAULT_ZOD_MESSAGE = /^(Invalid|Too (big|small)|Unrecognized key)/;

function valueAt(root: unknown, segments: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

class Issues {
  readonly list: ConfigIssue[] = [];

  add(segments: readonly PathSegment[], problem: string): void {
    this.list.push({ keyPath: formatPath(segments), problem });
  }

  /** Validates `value` against `schema`; on failure records its issues under `base`. */
  check<S extends z.ZodType>(schema: S, value: unknown, base: readonly PathSegment[]): z.output<S> | undefined {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) this.addZodIssue(issue, value, base);
    return undefined;
  }

  private addZodIssue(issue: z.core.$ZodIssue, root: unknown, base: readonly PathSegment[]): void {
    const relative = issue.path.filter((s): s is PathSegment => typeof s === 'string' || typeof s === 'number');
    const at = [...base, ...relative];
    const received = valueAt(root, issue.path);
    const custom = DEFAULT_ZOD_MESSAGE.test(issue.message) ? null : issue.message;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) this.add([...at, key], unknownKeyProblem([...at, key]));
        return;
      case 'invalid_type':
        this.add(
          at,
          received === undefined
            ? `missing required key (expected ${expectedName(issue.expected)})`
            : `expected ${expectedName(issue.expected)}, got ${kindOf(received)}`,
        );
        return;
      case 'invalid_value':
      case 'invalid_union': {
        const options = issue.code === 'invalid_value' ? issue.values : 'options' in issue ? issue.options : undefined;
        if (options === undefined) {
          this.add(at, custom ?? 'invalid value');
        } else if (received === undefined) {
          this.add(at, `missing required key (expected ${showOptions(options)})`);
        } else if (typeof received !== 'string') {
          this.add(at, `expected ${showOptions(options)}, got ${kindOf(received)}`);
        } else {
          const what = `unsupported value ${showValue(received)}`;
          this.add(at, custom === null ? `${what} (expected ${showOptions(options)})` : `${what}: ${custom}`);
        }
        return;
      }
      default:
        this.add(at, custom ?? issue.message);
    }
  }

  throwIfAny(source: string): void {
    if (this.list.length > 0) throw new ConfigError(source, this.list);
  }
}

// ---------------------------------------------------------------------------------------------
// Document validation (shape)
// ---------------------------------------------------------------------------------------------

type AdminInput =
  | { form: 'default' }
  | { form: 'current'; value: AdminTomlInput }
  | { form: 'legacy'; value: LegacyAdminTomlInput };

type PluginInput =
  | { form: 'typed'; index: number; value: ResourcePluginTomlInput }
  | { form: 'kvstorage'; index: number; value: KvStorageResourcePluginTomlInput };

interface ValidatedDocument {
  toml: KbsConfigTomlInput;
  admin: AdminInput;
  /** Undefined when `plugins` is absent (the default plugin set applies). */
  plugins: PluginInput[] | undefined;
}

function validateDocument(document: Record<string, unknown>, issues: Issues): ValidatedDocument | undefined {
  const toml = issues.check(KbsConfigToml, document, []);
  if (toml === undefined) return undefined;

  let admin: AdminInput = { form: 'default' };
  if (toml.admin !== undefined) {
    const raw = toml.admin;
    const legacy = !('authorization_mode' in raw) && LEGACY_ADMIN_KEYS.some((k) => k in raw);
    if (legacy) {
      const value = issues.check(LegacyAdminToml, raw, ['admin']);
      if (value !== undefined) admin = { form: 'legacy', value };
    } else {
      const mode = raw['authorization_mode'];
      if (typeof mode !== 'string' || !(ADMIN_MODES as readonly string[]).includes(mode)) {
        // The mode is what selects the allowed keys; still name keys no mode allows.
        for (const key of Object.keys(raw)) {
          if (!ADMIN_KEYS.has(key)) issues.add(['admin', key], unknownKeyProblem(['admin', key]));
        }
      }
      const value = issues.check(AdminToml, raw, ['admin']);
      if (value !== undefined) admin = { form: 'current', value };
    }
  }

  let plugins: PluginInput[] | undefined;
  if (toml.plugins !== undefined) {
    plugins = [];
    const seen = new Set<string>();
    toml.plugins.forEach((raw, index) => {
      const at: PathSegment[] = ['plugins', index];
      const name = raw['name'];
      if (typeof name !== 'string') {
        issues.add(
          [...at, 'name'],
          name === undefined
            ? `missing required key (expected ${showOptions(PLUGIN_NAMES)})`
            : `expected string, got ${kindOf(name)}`,
        );
        return;
      }
      if (!(PLUGIN_NAMES as readonly string[]).includes(name)) {
        issues.add([...at, 'name'], `unknown plugin ${showValue(name)} (supported: ${PLUGIN_NAMES.join(', ')})`);
        return;
      }
      if (seen.has(name)) {
        issues.add([...at, 'name'], `duplicate plugin ${showValue(name)}: configure each plugin once`);
        return;
      }
      seen.add(name);
      if ('storage_backend_type' in raw) {
        const value = issues.check(KvStorageResourcePluginToml, raw, at);
        if (value !== undefined) plugins?.push({ form: 'kvstorage', index, value });
      } else {
        const value = issues.check(ResourcePluginToml, raw, at);
        if (value !== undefined) plugins?.push({ form: 'typed', index, value });
      }
    });
  }

  return { toml, admin, plugins };
}

// ---------------------------------------------------------------------------------------------
// Resolution (defaults, paths, files, cross-key rules)
// ---------------------------------------------------------------------------------------------

const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

class Resolver {
  readonly warnings: string[] = [];

  constructor(
    readonly workDir: string,
    readonly issues: Issues,
  ) {}

  /** A default path (relative to work_dir), never checked: the server creates what is missing. */
  defaultPath(relative: string): string {
    return path.resolve(this.workDir, relative);
  }

  /** A configured path: `file://` prefix allowed, other schemes refused; relative to work_dir. */
  path(at: readonly PathSegment[], value: string): string | undefined {
    let local = value;
    if (value.startsWith('file://')) {
      const rest = value.slice('file://'.length);
      if (rest.startsWith('/')) {
        try {
          local = fileURLToPath(value);
        } catch {
          this.issues.add(at, 'invalid file:// URI');
          return undefined;
        }
      } else {
        local = rest;
      }
      if (local === '') {
        this.issues.add(at, 'must not be empty');
        return undefined;
      }
    } else if (URI_SCHEME.test(value)) {
      this.issues.add(at, 'only local files are supported (a path, optionally with a file:// prefix), not a remote URI');
      return undefined;
    }
    return path.resolve(this.workDir, local);
  }

  /** A configured path that must name an existing regular file. */
  file(at: readonly PathSegment[], value: string): string | undefined {
    const resolved = this.path(at, value);
    if (resolved === undefined) return undefined;
    try {
      const stat = statSync(resolved, { throwIfNoEntry: false });
      if (stat === undefined) {
        this.issues.add(at, `file not found: ${resolved}`);
        return undefined;
      }
      if (!stat.isFile()) {
        this.issues.add(at, `not a regular file: ${resolved}`);
        return undefined;
      }
    } catch (error) {
      this.issues.add(at, `cannot access ${resolved} (${errorCode(error)})`);
      return undefined;
    }
    return resolved;
  }

  files(at: readonly PathSegment[], values: readonly string[]): string[] {
    const out: string[] = [];
    values.forEach((value, index) => {
      const resolved = this.file([...at, index], value);
      if (resolved !== undefined) out.push(resolved);
    });
    return out;
  }
}

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
  return {
    sessionTimeoutMinutes: as.timeout ?? DEFAULTS.sessionTimeoutMinutes,
    maxSessions: as.max_sessions ?? DEFAULTS.maxSessions,
    tokenBroker: { durationMinutes: broker.duration_min ?? DEFAULTS.tokenDurationMinutes, signer },
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
      r.warnings.push('storage_backend: no [[plugins]] entry uses it (add name = "resource", storage_backend_type = "kvstorage")');
    }
    return [{ name: 'resource', storage: { type: 'LocalFs', dirPath: r.defaultPath(DEFAULTS.resourceDir) } }];
  }
  const out: PluginConfig[] = [];
  let usesStorageBackend = false;
  for (const plugin of plugins) {
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
    r.warnings.push('storage_backend: no [[plugins]] entry uses it (storage_backend_type = "kvstorage")');
  }
  return out;
}

function resolveDocument(document: Record<string, unknown>, cwd: string, source: string): KbsConfig {
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
    warnings: r.warnings,
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function errorCode(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return 'error';
}
