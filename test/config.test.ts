import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  ConfigError,
  EMBEDDED_DEFAULT_SOURCE,
  embeddedDefaultConfig,
  loadConfig,
  parseConfigText,
  type KbsConfig,
} from '../config/index.js';

/** Source tree's config/ (the samples are not compiled into dist/). */
const CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'kbs-config-test-'));
}

/** Creates a file (and its directories) with placeholder content; returns its absolute path. */
function touch(file: string, content = 'placeholder\n'): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

function parse(text: string, cwd: string): KbsConfig {
  return parseConfigText(text, { cwd, source: 'test.toml' });
}

/** Parses, expecting a ConfigError; returns it. */
function parseError(t: { fail(message?: string): void }, text: string, cwd = tempDir()): ConfigError {
  try {
    parse(text, cwd);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  t.fail('expected a ConfigError');
  throw new Error('unreachable');
}

const HTTP = '[http_server]\ninsecure_http = true\n';

function withoutSource(config: KbsConfig): Omit<KbsConfig, 'source'> {
  const { source: _source, ...rest } = config;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// Embedded default
// ---------------------------------------------------------------------------------------------

test('embedded default: loopback HTTP, generated keys, authenticated admin, LocalFs under work_dir', (t) => {
  const cwd = tempDir();
  const c = embeddedDefaultConfig(cwd);
  const work = path.join(cwd, 'data');
  t.is(c.source, EMBEDDED_DEFAULT_SOURCE);
  t.is(c.workDir, work);
  t.deepEqual(c.httpServer, {
    sockets: [{ host: '127.0.0.1', port: 8080, family: 'ipv4', text: '127.0.0.1:8080' }],
    insecureHttp: true,
    tls: null,
    payloadRequestSizeMiB: 2,
    payloadRequestSizeBytes: 2 * 1024 * 1024,
    tlsProfile: 'intermediate',
    shutdownGraceMs: 10_000,
    requestTimeoutMs: 60_000,
    headersTimeoutMs: 20_000,
    keepAliveTimeoutMs: 5_000,
    cryptoThreads: availableParallelism() > 1 ? 1 : 0,
  });
  t.deepEqual(c.rateLimit, {
    enabled: true,
    auth: { perSecond: 20, burst: 100 },
    attest: { perSecond: 20, burst: 100 },
    maxClients: 100_000,
    trustedProxies: [],
  });
  t.deepEqual(c.attestationToken, {
    trustedCertsPaths: [],
    trustedJwkSetPaths: [],
    insecureHeaderJwk: false,
    trustOwnTokens: true,
    extraTeeKeyPaths: [],
  });
  t.deepEqual(c.attestationService, {
    sessionTimeoutMinutes: 5,
    maxSessions: 10000,
    tokenBroker: {
      durationMinutes: 5,
      signer: { keyPath: path.join(work, 'token-key.pem'), certPath: null, generateIfMissing: true },
    },
    policyDir: path.join(work, 'attestation_service_policy'),
    referenceValueDir: path.join(work, 'reference_value'),
    verifiers: {
      collateralDir: path.join(work, 'collateral'),
      kds: { baseUrl: 'https://kdsintf.amd.com', timeoutMs: 5000 },
      pcs: { baseUrl: 'https://api.trustedservices.intel.com/sgx/certification/v4/', timeoutMs: 5000, updateType: 'early' },
    },
  });
  t.deepEqual(c.admin, {
    mode: 'AuthenticatedAuthorization',
    identityProviders: [
      { issuer: null, audience: null, key: { kind: 'PublicKeyPem', path: path.join(work, 'admin-key.pub') } },
    ],
    acls: [{ role: 'admin', allowedEndpoints: '^/kbs/.+$' }],
    generatedCredentials: {
      publicKeyPath: path.join(work, 'admin-key.pub'),
      privateKeyPath: path.join(work, 'admin-key.pem'),
      tokenPath: path.join(work, 'admin-token'),
      role: 'admin',
    },
  });
  t.deepEqual(c.plugins, [{ name: 'resource', storage: { type: 'LocalFs', dirPath: path.join(work, 'repository') } }]);
  t.deepEqual(c.policy, { resourcePolicyPath: path.join(work, 'policy', 'resource-policy.rego'), stepBudget: 1_000_000 });
  t.deepEqual(c.logging, { level: 'info' });
  t.deepEqual(c.warnings, []);
});

test('the resolved config is deeply immutable', (t) => {
  const c = embeddedDefaultConfig(tempDir());
  t.true(Object.isFrozen(c));
  t.true(Object.isFrozen(c.httpServer.sockets));
  t.true(Object.isFrozen(c.httpServer.sockets[0]));
  t.true(Object.isFrozen(c.plugins[0]?.storage));
  t.throws(() => {
    (c.httpServer as { insecureHttp: boolean }).insecureHttp = false;
  });
});

test('loadConfig without a file or KBS_CONFIG_FILE gives the embedded default', async (t) => {
  const cwd = tempDir();
  t.deepEqual(await loadConfig({ env: {}, cwd }), embeddedDefaultConfig(cwd));
  t.deepEqual(await loadConfig({ env: { KBS_CONFIG_FILE: '' }, cwd }), embeddedDefaultConfig(cwd));
});

test('loadConfig reads KBS_CONFIG_FILE (relative to cwd); options.file takes precedence', async (t) => {
  const cwd = tempDir();
  writeFileSync(path.join(cwd, 'env.toml'), `${HTTP}[logging]\nlevel = "debug"\n`);
  writeFileSync(path.join(cwd, 'opt.toml'), `${HTTP}[logging]\nlevel = "warn"\n`);
  const fromEnv = await loadConfig({ env: { KBS_CONFIG_FILE: 'env.toml' }, cwd });
  t.is(fromEnv.logging.level, 'debug');
  t.is(fromEnv.source, path.join(cwd, 'env.toml'));
  const fromOption = await loadConfig({ file: 'opt.toml', env: { KBS_CONFIG_FILE: 'env.toml' }, cwd });
  t.is(fromOption.logging.level, 'warn');
  const missing = await t.throwsAsync(loadConfig({ env: { KBS_CONFIG_FILE: 'nope.toml' }, cwd }), {
    instanceOf: ConfigError,
  });
  t.regex(missing.message, /cannot read the configuration file .*nope\.toml \(ENOENT\)/);
});

// ---------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------

test('config/kbs-config.toml spells out exactly the embedded default', (t) => {
  const cwd = tempDir();
  const text = readFileSync(path.join(CONFIG_DIR, 'kbs-config.toml'), 'utf8');
  const c = parseConfigText(text, { cwd, source: 'kbs-config.toml' });
  t.deepEqual(withoutSource(c), withoutSource(embeddedDefaultConfig(cwd)));
});

test('config/kbs-config-https.toml parses once its files exist (paths rewritten into a temp dir)', (t) => {
  const root = tempDir();
  const original = readFileSync(path.join(CONFIG_DIR, 'kbs-config-https.toml'), 'utf8');
  const text = original
    .replace(/^work_dir = .*$/m, `work_dir = ${JSON.stringify(path.join(root, 'var/lib/kbs'))}`)
    .replaceAll('/etc/kbs/', `${root}/etc/kbs/`);
  const etc = path.join(root, 'etc/kbs');

  // Before the files exist: one error per missing file, naming the key and the path.
  const error = parseError(t, text, root);
  for (const key of [
    'http_server.private_key',
    'http_server.certificate',
    'attestation_token.trusted_certs_paths[0]',
    'attestation_service.attestation_token_broker.signer.key_path',
    'attestation_service.attestation_token_broker.signer.cert_path',
    'admin.authentication.bearer_jwt.identity_providers[0].public_key_uri',
    'admin.authentication.bearer_jwt.identity_providers[1].jwk_set_uri',
  ]) {
    t.true(error.issues.some((i) => i.keyPath === key && i.problem.startsWith('file not found: ')), key);
  }
  t.true(error.message.includes(`http_server.private_key: file not found: ${etc}/tls/kbs-key.pem`));

  for (const f of [
    'tls/kbs-key.pem',
    'tls/kbs-cert.pem',
    'trust/as-ca.pem',
    'token/token-key.pem',
    'token/token-cert-chain.pem',
    'admin/operators.pub',
    'admin/idp-jwks.json',
  ]) {
    touch(path.join(etc, f));
  }
  const c = parse(text, root);
  t.is(c.workDir, path.join(root, 'var/lib/kbs'));
  t.false(c.httpServer.insecureHttp);
  t.deepEqual(c.httpServer.tls, {
    privateKeyPath: path.join(etc, 'tls/kbs-key.pem'),
    certificatePath: path.join(etc, 'tls/kbs-cert.pem'),
  });
  t.deepEqual(c.httpServer.sockets.map((s) => s.text), ['0.0.0.0:8443']);
  t.deepEqual(c.attestationToken.trustedCertsPaths, [path.join(etc, 'trust/as-ca.pem')]);
  t.true(c.attestationToken.trustOwnTokens);
  t.deepEqual(c.attestationService.tokenBroker.signer, {
    keyPath: path.join(etc, 'token/token-key.pem'),
    certPath: path.join(etc, 'token/token-cert-chain.pem'),
    generateIfMissing: false,
  });
  t.deepEqual(c.admin, {
    mode: 'AuthenticatedAuthorization',
    identityProviders: [
      {
        issuer: 'kbs-operators',
        audience: 'kbs',
        key: { kind: 'PublicKeyPem', path: path.join(etc, 'admin/operators.pub') },
      },
      {
        issuer: 'https://idp.example.com',
        audience: null,
        key: { kind: 'JwkSet', path: path.join(etc, 'admin/idp-jwks.json') },
      },
    ],
    acls: [
      { role: 'admin', allowedEndpoints: '^/kbs/.+$' },
      { role: 'secrets-writer', allowedEndpoints: '^/kbs/v0/resource/[^?]+$' },
    ],
    generatedCredentials: null,
  });
  t.deepEqual(c.plugins, [
    { name: 'resource', storage: { type: 'LocalFs', dirPath: path.join(root, 'var/lib/kbs/repository') } },
  ]);
  t.deepEqual(c.warnings, []);
});

test("Trustee's own sample kbs/config/kbs-config.toml is accepted (insecure settings warned about)", (t) => {
  const cwd = tempDir();
  const upstream = `
[http_server]
insecure_http = true

[attestation_token]
insecure_header_jwk = true

[attestation_service]
type = "coco_as_builtin"

[attestation_service.attestation_token_broker]
duration_min = 5

[attestation_service.rvps_config]
type = "BuiltIn"

[admin]
authorization_mode = "InsecureAllowAll"

[storage_backend]
storage_type = "LocalFs"

[storage_backend.backends.local_fs]
dir_path = "/opt/confidential-containers/storage"

[[plugins]]
name = "resource"
storage_backend_type = "kvstorage"
`;
  const c = parse(upstream, cwd);
  t.deepEqual(c.admin, { mode: 'InsecureAllowAll' });
  t.true(c.attestationToken.insecureHeaderJwk);
  t.deepEqual(c.plugins, [
    { name: 'resource', storage: { type: 'LocalFs', dirPath: '/opt/confidential-containers/storage/repository' } },
  ]);
  t.true(c.warnings.some((w) => w.includes('insecure_header_jwk')));
  t.true(c.warnings.some((w) => w.includes('InsecureAllowAll')));
});

// ---------------------------------------------------------------------------------------------
// Resource plugin forms
// ---------------------------------------------------------------------------------------------

test('both resource-plugin forms normalize to the same plugin configuration', (t) => {
  const cwd = tempDir();
  const issueForm = parse(`${HTTP}[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndir_path = "store/repository"\n`, cwd);
  const upstreamForm = parse(
    `${HTTP}[storage_backend]\nstorage_type = "LocalFs"\n[storage_backend.backends.local_fs]\ndir_path = "store"\n` +
      `[[plugins]]\nname = "resource"\nstorage_backend_type = "kvstorage"\n`,
    cwd,
  );
  const expected = [{ name: 'resource', storage: { type: 'LocalFs', dirPath: path.join(cwd, 'data/store/repository') } }];
  t.deepEqual(issueForm.plugins, expected);
  t.deepEqual(upstreamForm.plugins, expected);
  // As in Trustee, [storage_backend] also holds the attestation policies and reference values.
  t.is(issueForm.attestationService.referenceValueDir, path.join(cwd, 'data/reference_value'));
  t.is(upstreamForm.attestationService.referenceValueDir, path.join(cwd, 'data/store/reference_value'));
  t.is(upstreamForm.attestationService.policyDir, path.join(cwd, 'data/store/attestation_service_policy'));
  const sameOtherwise = (c: KbsConfig) => ({
    ...withoutSource(c),
    attestationService: { ...c.attestationService, policyDir: '', referenceValueDir: '' },
    warnings: [],
  });
  t.deepEqual(sameOtherwise(issueForm), sameOtherwise(upstreamForm));
  t.deepEqual(issueForm.warnings, upstreamForm.warnings);
});

test('plugins: default, explicit empty list, type default dir, and errors naming names and types', (t) => {
  const cwd = tempDir();
  // Top-level keys go before the first [table] header (TOML).
  t.deepEqual(parse(`plugins = []\n${HTTP}`, cwd).plugins, []);
  t.deepEqual(parse(`${HTTP}[[plugins]]\nname = "resource"\ntype = "LocalFs"\n`, cwd).plugins, [
    { name: 'resource', storage: { type: 'LocalFs', dirPath: path.join(cwd, 'data/repository') } },
  ]);

  const unknownName = parseError(t, `${HTTP}[[plugins]]\nname = "nebula-ca"\n`);
  t.true(unknownName.message.includes('plugins[0].name: unknown plugin "nebula-ca"'));

  const unknownType = parseError(t, `${HTTP}[[plugins]]\nname = "resource"\ntype = "Vault"\n`);
  t.true(unknownType.message.includes('plugins[0].type: unsupported value "Vault" (expected one of "LocalFs", "Sqlite", "Pkcs11", "AzureKeyVault")'), unknownType.message);

  const missingType = parseError(t, `${HTTP}[[plugins]]\nname = "resource"\n`);
  t.true(missingType.message.includes('plugins[0].type: missing required key'));

  const vault = parseError(t, `${HTTP}[[plugins]]\nname = "resource"\nstorage_backend_type = "Vault"\n`);
  t.true(vault.message.includes('plugins[0].storage_backend_type: unsupported value "Vault"'));

  const noBackend = parseError(t, `${HTTP}[[plugins]]\nname = "resource"\nstorage_backend_type = "kvstorage"\n`);
  t.true(noBackend.message.includes('plugins[0].storage_backend_type: "kvstorage" needs a [storage_backend] section'));

  const memory = parseError(t, `${HTTP}[storage_backend]\nstorage_type = "Memory"\n`);
  t.true(memory.message.includes('storage_backend.storage_type: unsupported value "Memory"'));

  const duplicate = parseError(
    t,
    `${HTTP}[[plugins]]\nname = "resource"\ntype = "LocalFs"\n[[plugins]]\nname = "resource"\ntype = "LocalFs"\n`,
  );
  t.true(duplicate.message.includes('plugins[1].name: duplicate plugin "resource"'));

  const extra = parseError(t, `${HTTP}[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndirpath = "x"\n`);
  t.true(extra.message.includes('plugins[0].dirpath: unknown key'));
});

// ---------------------------------------------------------------------------------------------
// Errors naming the key
// ---------------------------------------------------------------------------------------------

test('unknown keys are errors naming the full key path', (t) => {
  t.true(parseError(t, '[http_server]\nsocket = ["127.0.0.1:8080"]\n').message.includes('http_server.socket: unknown key'));
  t.true(parseError(t, `${HTTP}colour = "blue"\n`).message.includes('colour: unknown key'));
  const nested = parseError(
    t,
    `${HTTP}[admin]\nauthorization_mode = "AuthenticatedAuthorization"\n` +
      `[admin.authentication.bearer_jwt]\nidentity_providers = [{ public_key_uri = "k.pub", colour = "x" }]\n` +
      `[admin.authorization.regex_acl]\nacls = []\n`,
  );
  t.true(nested.message.includes('admin.authentication.bearer_jwt.identity_providers[0].colour: unknown key'));
  const trusteeOnly = parseError(t, `${HTTP}worker_count = 4\n`);
  t.true(trusteeOnly.message.includes('http_server.worker_count: unknown key; a Trustee option'));
  const adminType = parseError(t, `${HTTP}[admin]\ntype = "Simple"\n`);
  t.true(adminType.message.includes('admin.type: unknown key'));
  t.true(adminType.message.includes('admin.authorization_mode: missing required key'));
  const modeMismatch = parseError(t, `${HTTP}[admin]\nauthorization_mode = "DenyAll"\ninsecure_api = false\n`);
  t.true(modeMismatch.message.includes('admin.insecure_api: unknown key'));
});

test('wrong types are errors naming the key and the expected type', (t) => {
  const e = parseError(
    t,
    '[http_server]\ninsecure_http = "yes"\npayload_request_size = 2.5\nsockets = "127.0.0.1:8080"\n' +
      '[attestation_service]\ntimeout = 5.0\n[attestation_token]\ntrusted_certs_paths = [1]\n[logging]\nlevel = 3\n',
  );
  t.true(e.message.includes('http_server.insecure_http: expected boolean, got string'));
  t.true(e.message.includes('http_server.payload_request_size: expected integer, got float'));
  t.true(e.message.includes('http_server.sockets: expected array, got string'));
  t.true(e.message.includes('attestation_service.timeout: expected integer, got float'));
  t.true(e.message.includes('attestation_token.trusted_certs_paths[0]: expected string, got integer'));
  t.true(e.message.includes('logging.level: expected one of "off", "error", "warn", "info", "debug", "trace", got integer'));
  t.is(e.issues.length, 6);
  t.true(parseError(t, `admin = 5\n${HTTP}`).message.includes('admin: expected table, got integer'));
  t.true(parseError(t, 'work_dir = 5\n' + HTTP).message.includes('work_dir: expected string, got integer'));
});

test('ranges: durations, sizes and budgets must be positive integers', (t) => {
  const e = parseError(
    t,
    `${HTTP.replace('insecure_http = true\n', 'insecure_http = true\npayload_request_size = 0\n')}` +
      '[attestation_service]\ntimeout = 0\nmax_sessions = -1\n[attestation_service.attestation_token_broker]\nduration_min = 0\n' +
      '[policy]\nstep_budget = 0\n',
  );
  for (const key of [
    'http_server.payload_request_size',
    'attestation_service.timeout',
    'attestation_service.max_sessions',
    'attestation_service.attestation_token_broker.duration_min',
    'policy.step_budget',
  ]) {
    t.true(e.issues.some((i) => i.keyPath === key && i.problem.includes('positive integer')), key);
  }
  t.true(parseError(t, `${HTTP}[attestation_service]\ntimeout = 1000000\n`).message.includes('between 1 and 525600'));
});

test('missing referenced files are errors naming the key and the absolute path', (t) => {
  const cwd = tempDir();
  const e = parseError(
    t,
    `${HTTP}[attestation_token]\ntrusted_certs_paths = ["ca.pem"]\ntrusted_jwk_sets = ["file:///nonexistent/jwks.json"]\n`,
    cwd,
  );
  t.true(e.message.includes(`attestation_token.trusted_certs_paths[0]: file not found: ${path.join(cwd, 'data/ca.pem')}`));
  t.true(e.message.includes('attestation_token.trusted_jwk_sets[0]: file not found: /nonexistent/jwks.json'));

  const signer = parseError(t, `${HTTP}[attestation_service.attestation_token_broker.signer]\nkey_path = "k.pem"\n`, cwd);
  t.true(signer.message.includes('attestation_service.attestation_token_broker.signer.key_path: file not found'));

  mkdirSync(path.join(cwd, 'data/dir.pem'), { recursive: true });
  const dir = parseError(t, `${HTTP}[attestation_token]\ntrusted_certs_paths = ["dir.pem"]\n`, cwd);
  t.true(dir.message.includes('attestation_token.trusted_certs_paths[0]: not a regular file'));

  const remote = parseError(t, `${HTTP}[attestation_token]\ntrusted_jwk_sets = ["https://portal.trustauthority.intel.com"]\n`);
  t.true(remote.message.includes('attestation_token.trusted_jwk_sets[0]: only local files are supported'));
});

test('HTTPS without private key or certificate is an error naming the missing key', (t) => {
  const cwd = tempDir();
  const both = parseError(t, '', cwd);
  t.true(both.message.includes('http_server.private_key: required when insecure_http = false'));
  t.true(both.message.includes('http_server.certificate: required when insecure_http = false'));
  touch(path.join(cwd, 'data/key.pem'));
  const certOnly = parseError(t, '[http_server]\ninsecure_http = false\nprivate_key = "key.pem"\n', cwd);
  t.is(certOnly.issues.length, 1);
  t.is(certOnly.keyPath, 'http_server.certificate');
  // With insecure_http = true, TLS files are not used: not checked, and a warning says so.
  const ignored = parse('[http_server]\ninsecure_http = true\nprivate_key = "absent.pem"\n', cwd);
  t.is(ignored.httpServer.tls, null);
  t.true(ignored.warnings.some((w) => w.includes('private_key and certificate are ignored')));
});

test('bad ACL regexes are errors naming the acl', (t) => {
  const admin = (acls: string) =>
    `${HTTP}[admin]\nauthorization_mode = "AuthenticatedAuthorization"\n` +
    `[admin.authentication.bearer_jwt]\nidentity_providers = [{ public_key_uri = "k.pub" }]\n` +
    `[admin.authorization.regex_acl]\nacls = ${acls}\n`;
  const unanchored = parseError(t, admin('[{ role = "ops", allowed_endpoints = "/kbs/v0/resource/.*" }]'));
  t.true(
    unanchored.message.includes(
      'admin.authorization.regex_acl.acls[0].allowed_endpoints: regex must start with "^/kbs" and end with "$" (acl for role "ops")',
    ),
  );
  const noDollar = parseError(t, admin('[{ role = "admin", allowed_endpoints = "^/kbs/.+$" }, { role = "x", allowed_endpoints = "^/kbs/.+" }]'));
  t.is(noDollar.issues.find((i) => i.keyPath.includes('acls'))?.keyPath, 'admin.authorization.regex_acl.acls[1].allowed_endpoints');
  const syntax = parseError(t, admin('[{ role = "admin", allowed_endpoints = "^/kbs/(v0$" }]'));
  t.true(syntax.message.includes('acls[0].allowed_endpoints: invalid RE2 regular expression (acl for role "admin")'));
});

test('socket addresses must be host:port with IPv6 in brackets', (t) => {
  const cwd = tempDir();
  const ok = parse('[http_server]\ninsecure_http = true\nsockets = ["127.0.0.1:8080", "[::1]:8081", "localhost:0"]\n', cwd);
  t.deepEqual(
    ok.httpServer.sockets.map((s) => [s.host, s.port, s.family]),
    [
      ['127.0.0.1', 8080, 'ipv4'],
      ['::1', 8081, 'ipv6'],
      ['localhost', 0, 'hostname'],
    ],
  );
  const bad = parseError(
    t,
    '[http_server]\ninsecure_http = true\nsockets = ["::1:8080", "127.0.0.1", "127.0.0.1:65536", "300.1.1.1:80", "[::1]8080", "[nothost]:80"]\n',
  );
  t.deepEqual(
    bad.issues.map((i) => i.keyPath),
    [0, 1, 2, 3, 4, 5].map((i) => `http_server.sockets[${i}]`),
  );
  t.true(bad.issues[0]?.problem.includes('IPv6 addresses must be in brackets'));
  t.true(parseError(t, '[http_server]\ninsecure_http = true\nsockets = []\n').message.includes('http_server.sockets: must list at least one socket'));
  t.true(
    parseError(t, '[http_server]\ninsecure_http = true\nsockets = ["127.0.0.1:1", "127.0.0.1:1"]\n').message.includes(
      'http_server.sockets[1]: duplicate socket address',
    ),
  );
  const exposed = parse('[http_server]\ninsecure_http = true\nsockets = ["0.0.0.0:8080"]\n', cwd);
  t.true(exposed.warnings.some((w) => w.includes('non-loopback')));
});

test('TOML syntax errors carry line and column and never echo the offending line', (t) => {
  const e = parseError(t, '[http_server]\ninsecure_http = true\ntoken = "s3cr3t-value" trailing\n');
  t.is(e.issues[0]?.line, 3);
  t.is(typeof e.issues[0]?.column, 'number');
  t.regex(e.message, /line 3, column \d+: TOML syntax error: /);
  t.false(e.message.includes('s3cr3t-value'));
});

test('wrong-type and unknown-key errors do not echo values', (t) => {
  const e = parseError(t, '[http_server]\ninsecure_http = "s3cr3t-value"\n[admin]\nsecret = "s3cr3t-value"\n');
  t.false(e.message.includes('s3cr3t-value'));
});

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

test('relative paths resolve against work_dir; work_dir against cwd; file:// prefixes accepted', (t) => {
  const cwd = tempDir();
  const work = path.join(cwd, 'state/kbs');
  touch(path.join(work, 'tls/key.pem'));
  touch(path.join(work, 'tls/cert.pem'));
  touch(path.join(work, 'admin.pub'));
  const c = parse(
    'work_dir = "state/kbs"\n[http_server]\ninsecure_http = false\nprivate_key = "tls/key.pem"\n' +
      `certificate = ${JSON.stringify(`file://${path.join(work, 'tls/cert.pem')}`)}\n` +
      '[admin]\nauthorization_mode = "AuthenticatedAuthorization"\n' +
      '[admin.authentication.bearer_jwt]\nidentity_providers = [{ issuer = "ops", public_key_uri = "file://admin.pub" }]\n' +
      '[admin.authorization.regex_acl]\nacls = [{ role = "admin", allowed_endpoints = "^/kbs/.+$" }]\n' +
      '[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndir_path = "../repo"\n' +
      '[policy]\nresource_policy_path = "/etc/kbs/policy.rego"\n',
    cwd,
  );
  t.is(c.workDir, work);
  t.deepEqual(c.httpServer.tls, { privateKeyPath: path.join(work, 'tls/key.pem'), certificatePath: path.join(work, 'tls/cert.pem') });
  t.deepEqual(c.admin.mode === 'AuthenticatedAuthorization' ? c.admin.identityProviders[0]?.key : null, {
    kind: 'PublicKeyPem',
    path: path.join(work, 'admin.pub'),
  });
  t.deepEqual(c.plugins[0]?.storage, { type: 'LocalFs', dirPath: path.join(cwd, 'state/repo') });
  t.is(c.policy.resourcePolicyPath, '/etc/kbs/policy.rego');
  t.is(c.attestationService.tokenBroker.signer.keyPath, path.join(work, 'token-key.pem'));

  const absolute = parse(`work_dir = ${JSON.stringify(path.join(cwd, 'abs'))}\n${HTTP}`, '/somewhere/else');
  t.is(absolute.workDir, path.join(cwd, 'abs'));
});

// ---------------------------------------------------------------------------------------------
// Admin modes
// ---------------------------------------------------------------------------------------------

test('admin modes: DenyAll, InsecureAllowAll (warned), Ed25519Key', (t) => {
  const cwd = tempDir();
  t.deepEqual(parse(`${HTTP}[admin]\nauthorization_mode = "DenyAll"\n`, cwd).admin, { mode: 'DenyAll' });
  const allow = parse(`${HTTP}[admin]\nauthorization_mode = "InsecureAllowAll"\n`, cwd);
  t.deepEqual(allow.admin, { mode: 'InsecureAllowAll' });
  t.true(allow.warnings.some((w) => w.includes('every admin request is allowed')));
  const key = touch(path.join(cwd, 'data/admin.pub'));
  t.deepEqual(parse(`${HTTP}[admin]\nauthorization_mode = "Ed25519Key"\nauth_public_key = "admin.pub"\n`, cwd).admin, {
    mode: 'Ed25519Key',
    publicKeyPath: key,
  });
  t.true(parseError(t, `${HTTP}[admin]\nauthorization_mode = "AllowAll"\n`).message.includes('admin.authorization_mode: unsupported value "AllowAll"'));
  t.true(
    parseError(t, `${HTTP}[admin]\nauthorization_mode = "DenyAll"\n[admin.authorization.regex_acl]\nacls = []\n`).message.includes(
      'admin.authorization: unknown key',
    ),
  );
  t.true(
    parseError(t, `${HTTP}[admin]\nauthorization_mode = "Ed25519Key"\n`).message.includes(
      'admin.auth_public_key: missing required key (expected string)',
    ),
  );
});

test("AuthenticatedAuthorization: providers need exactly one key source; remote URIs refused", (t) => {
  const base = (providers: string) =>
    `${HTTP}[admin]\nauthorization_mode = "AuthenticatedAuthorization"\n` +
    `[admin.authentication.bearer_jwt]\nidentity_providers = ${providers}\n` +
    `[admin.authorization.regex_acl]\nacls = [{ role = "admin", allowed_endpoints = "^/kbs/.+$" }]\n`;
  t.true(parseError(t, base('[]')).message.includes('admin.authentication.bearer_jwt.identity_providers: at least one identity provider is required'));
  t.true(parseError(t, base('[{ issuer = "x" }]')).message.includes('identity_providers[0]: needs a key source'));
  t.true(parseError(t, base('[{ public_key_uri = "a.pub", jwk_set_uri = "b.json" }]')).message.includes('identity_providers[0]: set exactly one'));
  t.true(
    parseError(t, base('[{ jwk_set_uri = "https://idp.example.com/jwks" }]')).message.includes(
      'identity_providers[0].jwk_set_uri: only local files are supported',
    ),
  );
  const missingSections = parseError(t, `${HTTP}[admin]\nauthorization_mode = "AuthenticatedAuthorization"\n`);
  t.true(missingSections.message.includes('admin.authentication: missing required key (expected table)'));
  t.true(missingSections.message.includes('admin.authorization: missing required key (expected table)'));
});

test("Trustee's legacy admin form maps to Ed25519Key / InsecureAllowAll", (t) => {
  const cwd = tempDir();
  const key = touch(path.join(cwd, 'data/legacy.pub'));
  const ed = parse(`${HTTP}[admin]\nauth_public_key = "legacy.pub"\ninsecure_api = false\n`, cwd);
  t.deepEqual(ed.admin, { mode: 'Ed25519Key', publicKeyPath: key });
  t.true(ed.warnings.some((w) => w.includes('legacy auth_public_key form')));
  t.deepEqual(parse(`${HTTP}[admin]\nauth_public_key = "legacy.pub"\n`, cwd).admin, { mode: 'Ed25519Key', publicKeyPath: key });

  const insecure = parse(`${HTTP}[admin]\ninsecure_api = true\n`, cwd);
  t.deepEqual(insecure.admin, { mode: 'InsecureAllowAll' });
  t.true(insecure.warnings.some((w) => w.includes('legacy insecure_api = true')));

  t.true(parseError(t, `${HTTP}[admin]\ninsecure_api = false\n`, cwd).message.includes('admin.auth_public_key: required when insecure_api = false'));
  t.true(parseError(t, `${HTTP}[admin]\nauth_public_key = "gone.pub"\n`, cwd).message.includes('admin.auth_public_key: file not found'));
  t.true(parseError(t, `${HTTP}[admin]\ninsecure_api = "no"\n`, cwd).message.includes('admin.insecure_api: expected boolean, got string'));
});

// ---------------------------------------------------------------------------------------------
// Token trust and attestation service compatibility keys
// ---------------------------------------------------------------------------------------------

test('attestation token trust: fail closed without trust material', (t) => {
  const cwd = tempDir();
  const e = parseError(t, `${HTTP}[attestation_token]\ntrust_own_tokens = false\n`, cwd);
  t.is(e.keyPath, 'attestation_token');
  t.true(e.message.includes('no attestation token can be verified'));
  const ca = touch(path.join(cwd, 'data/ca.pem'));
  const passport = parse(`${HTTP}[attestation_token]\ntrust_own_tokens = false\ntrusted_certs_paths = ["ca.pem"]\n`, cwd);
  t.deepEqual(passport.attestationToken.trustedCertsPaths, [ca]);
  t.false(passport.attestationToken.trustOwnTokens);
  t.true(
    parseError(t, `${HTTP}[attestation_token]\nextra_teekey_paths = ["tee-pubkey"]\n`).message.includes(
      'attestation_token.extra_teekey_paths[0]: must be a JSON pointer',
    ),
  );
});

test('attestation_service: only the built-in service and RVPS are accepted', (t) => {
  const cwd = tempDir();
  const c = parse(`${HTTP}[attestation_service]\ntype = "coco_as_builtin"\ntimeout = 10\nmax_sessions = 50\n[attestation_service.rvps_config]\ntype = "BuiltIn"\n`, cwd);
  t.is(c.attestationService.sessionTimeoutMinutes, 10);
  t.is(c.attestationService.maxSessions, 50);
  const grpc = parseError(t, `${HTTP}[attestation_service]\ntype = "coco_as_grpc"\nas_addr = "http://as:50004"\n`);
  t.true(grpc.message.includes('attestation_service.type: unsupported value "coco_as_grpc"'));
  t.true(grpc.message.includes('attestation_service.as_addr: unknown key'));
  t.true(parseError(t, `${HTTP}[attestation_service.rvps_config]\ntype = "GrpcRemote"\n`).message.includes('attestation_service.rvps_config.type'));
});

test("verifier_config: Trustee's vcek_sources and dcap_verifier keys, ours (collateral_dir, offline, timeout)", (t) => {
  const cwd = tempDir();
  const work = path.join(cwd, 'data');
  const c = parse(
    `${HTTP}[attestation_service.verifier_config]\ncollateral_dir = "coll"\nfetch_timeout_seconds = 2.5\n` +
      `[attestation_service.verifier_config.snp_verifier]\nvcek_sources = [{ type = "OfflineStore", path = "/opt/kds-store" }, { type = "KDS", base_url = "https://kds.example" }]\n` +
      `[attestation_service.verifier_config.dcap_verifier]\ncollateral_service = "https://pccs.example/sgx/certification/v4/"\ntcb_update_type = "standard"\n`,
    cwd,
  );
  t.deepEqual(c.attestationService.verifiers, {
    collateralDir: path.join(work, 'coll'),
    snpCollateralDir: '/opt/kds-store',
    kds: { baseUrl: 'https://kds.example', timeoutMs: 2500 },
    pcs: { baseUrl: 'https://pccs.example/sgx/certification/v4/', timeoutMs: 2500, updateType: 'standard' },
  });
  // offline: no network source at all; an OfflineStore without a path is the collateral directory.
  const off = parse(`${HTTP}[attestation_service.verifier_config]\noffline = true\nsnp_verifier = { vcek_sources = [{ type = "OfflineStore" }, { type = "KDS" }] }\n`, cwd);
  t.deepEqual(off.attestationService.verifiers, { collateralDir: path.join(work, 'collateral') });
  // Trustee's file:// PCS Client Tool form gets a pointer to where the file goes.
  const file = parseError(t, `${HTTP}[attestation_service.verifier_config.dcap_verifier]\ncollateral_service = "file:///etc/pcs.json"\n`);
  t.regex(file.message, /attestation_service\.verifier_config\.dcap_verifier\.collateral_service: .*pcs-client-tool\.json/);
  const bad = parseError(t, `${HTTP}[attestation_service.verifier_config.snp_verifier]\nvcek_sources = [{ type = "KDS", base_url = "ftp://x" }]\n`);
  t.regex(bad.message, /vcek_sources\[0\]\.base_url: must be an http\(s\) URL/);
  t.regex(parseError(t, `${HTTP}[attestation_service.verifier_config]\nfetch_timeout_seconds = 0\n`).message, /fetch_timeout_seconds/);
});
