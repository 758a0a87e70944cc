/** Configuration of the AzureKeyVault backend and the aad-token plugin: resolution and errors naming keys. */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfigText, type KbsConfig } from '../config/index.js';
import { azureCredentialConfig } from '../server/azure.js';

const dir = mkdtempSync(join(tmpdir(), 'kbs-config-akv-'));
writeFileSync(join(dir, 'secret.txt'), 'file-secret\n');
writeFileSync(join(dir, 'app.pem'), '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n');
writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n');
const TENANT = '11111111-2222-4333-8444-555555555555';

function parse(toml: string): KbsConfig {
  return parseConfigText(`work_dir = ${JSON.stringify(dir)}\n[http_server]\ninsecure_http = true\n${toml}\n`, { cwd: dir, source: join(dir, 'kbs.toml') });
}
function problem(toml: string): string {
  try {
    parse(toml);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error('expected a configuration error');
}
const akv = (extra: string): string => `[[plugins]]\nname = "resource"\ntype = "AzureKeyVault"\n${extra}`;

test('AzureKeyVault: workload identity with imports resolves with defaults', (t) => {
  const c = parse(
    akv(`vault_url = "https://myvault.vault.azure.net/"\ncredential = "workload_identity"\n[[plugins.import_akv]]\npath = "default/akv/coco_one"\nvault = "other.vault.azure.net"\nsecret_name = "coco-one"\n`),
  );
  t.like(c.plugins[0]?.storage, {
    type: 'AzureKeyVault',
    vaultUrl: 'https://myvault.vault.azure.net',
    cacheTtlSeconds: 30,
    timeoutMs: 10_000,
    maxRetries: 2,
    purgeOnDelete: false,
    authorityHost: null,
    credential: { kind: 'workload_identity', tenantId: null, clientId: null, tokenFile: null },
  });
  const storage = c.plugins[0]?.storage;
  t.deepEqual(storage?.type === 'AzureKeyVault' ? storage.imports : null, [{ path: 'default/akv/coco_one', vault: 'other.vault.azure.net', secretName: 'coco-one', version: null }]);
});

test('AzureKeyVault: client secret from a file or env; inline warns; certificate + key file', async (t) => {
  const fromFile = parse(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_secret"\ntenant_id = "${TENANT}"\nclient_id = "app"\napplication_secret_file = "secret.txt"\n`));
  const s1 = fromFile.plugins[0]?.storage;
  if (s1?.type !== 'AzureKeyVault') throw new Error('unexpected');
  t.deepEqual(await azureCredentialConfig(s1.credential, 'x'), { kind: 'client_secret', tenantId: TENANT, clientId: 'app', clientSecret: 'file-secret' });
  const inline = parse(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_secret"\ntenant_id = "${TENANT}"\nclient_id = "app"\napplication_secret = "inline-secret"\n`));
  t.true(inline.warnings.some((w) => /application_secret: a credential is written in the configuration file/.test(w)));
  t.false(inline.warnings.join('\n').includes('inline-secret'));
  const cert = parse(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_certificate"\ntenant_id = "${TENANT}"\nclient_id = "app"\ncertificate_path = "app.pem"\nprivate_key_file = "key.pem"\n`));
  const s2 = cert.plugins[0]?.storage;
  if (s2?.type !== 'AzureKeyVault') throw new Error('unexpected');
  const cc = await azureCredentialConfig(s2.credential, 'x');
  t.is(cc.kind, 'client_certificate');
  t.regex(cc.kind === 'client_certificate' ? cc.certificatePem : '', /BEGIN CERTIFICATE[\s\S]*BEGIN PRIVATE KEY/);
  const scone = parse(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_certificate"\ntenant_id = "${TENANT}"\nclient_id = "app"\nprivate_key_file = "key.pem"\ncertificate_thumbprint = "B033DB596639F3CA02D6537055E85B8EFE060756"\n`));
  const s3 = scone.plugins[0]?.storage;
  if (s3?.type !== 'AzureKeyVault') throw new Error('unexpected');
  t.like(await azureCredentialConfig(s3.credential, 'x'), { kind: 'client_key_thumbprint', certificateThumbprint: 'B033DB596639F3CA02D6537055E85B8EFE060756' });
});

test('AzureKeyVault: errors name the key', (t) => {
  t.regex(problem(akv('credential = "default"\n')), /plugins\[0\]\.vault_url: set vault_url/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\n')), /plugins\[0\]\.credential: missing required key/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "password"\n')), /plugins\[0\]\.credential: unsupported value/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "client_secret"\n')), /tenant_id: required with credential = "client_secret"/);
  t.regex(problem(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_secret"\ntenant_id = "${TENANT}"\nclient_id = "a"\n`)), /needs application_secret/);
  t.regex(problem(akv(`vault_url = "https://v.vault.azure.net"\ncredential = "client_secret"\ntenant_id = "${TENANT}"\nclient_id = "a"\napplication_secret = "x"\napplication_secret_env = "X"\n`)), /give exactly one of application_secret/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "managed_identity"\napplication_secret_env = "X"\n')), /application_secret: not used with credential = "managed_identity"/);
  t.regex(problem(akv('vault_url = "http://v.vault.azure.net"\ncredential = "default"\n')), /vault_url: must be the vault URL/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "default"\ncertificate_thumbprint = "abc"\n')), /certificate_thumbprint: must be a SHA-1/);
  t.regex(problem(akv('credential = "default"\n[[plugins.import_akv]]\npath = "default/akv/coco_one"\nvault = "v"\n')), /import_akv\[0\]\.secret_name: required: the tag "coco_one"/);
  t.regex(problem(akv('credential = "default"\n[[plugins.import_akv]]\npath = "a/b"\nvault = "v"\n')), /import_akv\[0\]\.path: must be a resource path/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "default"\ncache_ttl_secs = -1\n')), /cache_ttl_secs/);
  t.regex(problem(akv('vault_url = "https://v.vault.azure.net"\ncredential = "default"\nfoo = 1\n')), /plugins\[0\]\.foo: unknown key/);
});

test('aad-token plugin: token sources resolve; duplicates and missing credentials are errors', (t) => {
  const base = '[[plugins]]\nname = "resource"\ntype = "LocalFs"\n[[plugins]]\nname = "aad-token"\n';
  const c = parse(`${base}[[plugins.tokens]]\nname = "db-token"\ncredential = "managed_identity"\n`);
  t.like(c.plugins[1], { name: 'aad-token', tokens: [{ name: 'db-token', scope: 'https://vault.azure.net/.default', credential: { kind: 'managed_identity' } }] });
  t.regex(problem(base), /plugins\[1\]\.tokens: missing required key/);
  t.regex(problem(`${base}[[plugins.tokens]]\nname = "a"\ncredential = "default"\n[[plugins.tokens]]\nname = "a"\ncredential = "default"\n`), /duplicate token source "a"/);
  t.regex(problem(`${base}[[plugins.tokens]]\nname = "a/b"\ncredential = "default"\n`), /tokens\[0\]\.name: must match/);
  t.regex(problem(`${base}[[plugins.tokens]]\nname = "a"\ncredential = "client_secret"\n`), /tokens\[0\]\.tenant_id: required/);
});
