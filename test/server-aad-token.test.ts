/**
 * End to end over HTTP: a KBS configured (TOML) with the AzureKeyVault backend (client secret from
 * a file, an import_akv table) and the aad-token plugin, against the Azure stand-in. An attested
 * sample client fetches an imported secret and an aad-token and decrypts the JWEs; the policy sees
 * `data.plugin == "aad-token"`; admin writes and listing go through the vault; a slow vault gives a
 * 503 problem body within the timeout; credentials never reach logs or responses.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { SecretClient } from '@azure/keyvault-secrets';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { toAkvName } from '../backends/azure-key-vault/names.js';
import { resourcePathFromString } from '../backends/index.js';
import { startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';
import { startTestKbs, type TestKbs } from './helpers/kbs-server.js';

const TENANT = '8e8e8e8e-1111-4222-8333-444455556666';
const KBS_APP = 'e1e1e1e1-0000-4000-8000-000000000001';
const KBS_SECRET = 'kbs-app-secret-do-not-leak';
const WORKLOAD_APP = 'e2e2e2e2-0000-4000-8000-000000000002';
const WORKLOAD_SECRET = 'workload-secret-do-not-leak';

const POLICY = `package policy
default allow := false
allow if { data.plugin == "resource" }
allow if {
  data.plugin == "aad-token"
  data["resource-path"][0] == "db-token"
}
`;

let az: AzureStandIn;
let kbs: TestKbs;
let admin: KbsClient;

test.before(async () => {
  az = await startAzureStandIn({
    clients: [
      { tenantId: TENANT, clientId: KBS_APP, secrets: [KBS_SECRET] },
      { tenantId: TENANT, clientId: WORKLOAD_APP, secrets: [WORKLOAD_SECRET] },
    ],
    vaults: ['kbs-vault', 'app-vault'],
  });
  az.vault('app-vault').seed('db-encryption-key', 'imported value');
  const workDir = mkdtempSync(join(tmpdir(), 'kbs-akv-'));
  writeFileSync(join(workDir, 'kbs-app-secret'), `${KBS_SECRET}\n`, { mode: 0o600 });
  writeFileSync(join(workDir, 'azure-ca.pem'), az.caPem);
  process.env['KBS_TEST_WORKLOAD_SECRET'] = WORKLOAD_SECRET;
  const transport = `authority_host = "${az.authorityHost}"\nca_cert_path = "azure-ca.pem"\nmax_retries = 0\ntimeout_ms = 1500\n`;
  kbs = await startTestKbs({
    workDir,
    toml: `
[[plugins]]
name = "resource"
type = "AzureKeyVault"
vault_url = "${az.vaultUrl('kbs-vault')}"
credential = "client_secret"
tenant_id = "${TENANT}"
client_id = "${KBS_APP}"
application_secret_file = "kbs-app-secret"
disable_challenge_resource_verification = true
cache_ttl_secs = 0
${transport}
[[plugins.import_akv]]
path = "default/db/encryption-key"
vault = "${az.vaultUrl('app-vault')}"
secret_name = "db-encryption-key"

[[plugins]]
name = "aad-token"
${transport}
[[plugins.tokens]]
name = "db-token"
credential = "client_secret"
tenant_id = "${TENANT}"
client_id = "${WORKLOAD_APP}"
application_secret_env = "KBS_TEST_WORKLOAD_SECRET"

[[plugins.tokens]]
name = "other-token"
credential = "client_secret"
tenant_id = "${TENANT}"
client_id = "${WORKLOAD_APP}"
application_secret_env = "KBS_TEST_WORKLOAD_SECRET"
scope = "https://management.azure.com/.default"
`,
  });
  admin = new KbsClient({ url: kbs.url, adminToken: kbs.adminToken as string });
  await admin.setResourcePolicy(POLICY);
});

test.after.always(async () => {
  await kbs?.close();
  await az?.close();
});

async function attested(): Promise<{ client: KbsClient; key: TeeKeyPair; token: string }> {
  const client = new KbsClient({ url: kbs.url });
  const key = TeeKeyPair.generate();
  const token = await client.attest(key);
  return { client, key, token };
}

/** GET a plugin path with the attestation token as Bearer. */
function get(path: string, token?: string): Promise<Response> {
  return fetch(`${kbs.url}/kbs/v0/${path}`, token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
}

test.serial('an attested client fetches an imported AKV secret and an aad-token (JWE decrypted)', async (t) => {
  const { client, key, token } = await attested();
  t.is(Buffer.from(await client.getResource('default/db/encryption-key', key)).toString(), 'imported value');
  const res = await get('aad-token/db-token', token);
  t.is(res.status, 200);
  const released = JSON.parse(Buffer.from(key.decrypt(await res.json())).toString('utf8')) as Record<string, unknown>;
  t.deepEqual(Object.keys(released).sort(), ['access_token', 'expires_on', 'scope', 'token_type']);
  t.is(released['token_type'], 'Bearer');
  t.is(released['scope'], 'https://vault.azure.net/.default');
  const claims = decodeJwt(released['access_token'] as string);
  t.is(claims.aud, 'https://vault.azure.net');
  t.is(claims['appid'] ?? claims['azp'], WORKLOAD_APP);
  // The workload uses it directly (no credential of its own) to read the vault.
  const direct = new SecretClient(
    az.vaultUrl('app-vault'),
    { getToken: async () => ({ token: released['access_token'] as string, expiresOnTimestamp: (released['expires_on'] as number) * 1000 }) },
    az.secretClientOptions(),
  );
  t.is((await direct.getSecret('db-encryption-key')).value, 'imported value');
  // Cached: a second release returns the same token.
  const again = await get('aad-token/db-token', token);
  const second = JSON.parse(Buffer.from(key.decrypt(await again.json())).toString('utf8')) as Record<string, unknown>;
  t.is(second['access_token'], released['access_token']);
});

test.serial('aad-token: policy input has data.plugin == "aad-token"; unknown names 404; no token 401', async (t) => {
  const { token } = await attested();
  const denied = await get('aad-token/other-token', token);
  t.is(denied.status, 403);
  t.like(await denied.json(), { type: 'https://github.com/confidential-containers/kbs/errors/PolicyDeny' });
  await admin.setResourcePolicy(`package policy
default allow := false
allow if { data.plugin == "aad-token" }
`);
  try {
    const missing = await get('aad-token/nope', token);
    t.is(missing.status, 404);
    t.like(await missing.json(), { type: 'https://github.com/confidential-containers/kbs/errors/ResourceNotFound' });
    const other = await get('aad-token/other-token', token);
    t.is(other.status, 200);
    // The resource plugin is no longer allowed by this policy.
    const res = await get('resource/default/db/encryption-key', token);
    t.is(res.status, 403);
  } finally {
    await admin.setResourcePolicy(POLICY);
  }
  const anon = await get('aad-token/db-token');
  t.is(anon.status, 401);
  t.like(await anon.json(), { type: 'https://github.com/confidential-containers/kbs/errors/TokenNotFound' });
});

test.serial('admin API over the vault: write, list, read, delete; imports are read-only', async (t) => {
  await admin.setResource('default/key/one', Buffer.from('written by admin'));
  t.truthy(az.vault('kbs-vault').peek(toAkvName(resourcePathFromString('default/key/one'))));
  const listed = (await admin.listResources()).map((r) => [r.path, r.size]);
  t.deepEqual(listed, [
    ['default/db/encryption-key', 'imported value'.length],
    ['default/key/one', 'written by admin'.length],
  ]);
  const { client, key } = await attested();
  t.is(Buffer.from(await client.getResource('default/key/one', key)).toString(), 'written by admin');
  await t.throwsAsync(admin.setResource('default/db/encryption-key', Buffer.from('x')), { message: /HTTP 409.*ResourceReadOnly.*Resource default\/db\/encryption-key is read-only/ });
  await admin.deleteResource('default/key/one');
  await t.throwsAsync(client.getResource('default/key/one', key), { message: /HTTP 404/ });
  t.true(kbs.logs().includes('and read-only'));
});

test.serial('a slow vault gives 503 with a problem body within the timeout; a slow Entra too', async (t) => {
  const { token } = await attested();
  const fault = az.faults.delay(5_000, { service: 'vault', vault: 'kbs-vault', times: Infinity });
  try {
    await admin.setResource('default/key/slow', Buffer.from('x')).catch(() => undefined);
    const started = Date.now();
    const res = await get('resource/default/key/slow', token);
    t.true(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
    t.is(res.status, 503);
    t.deepEqual(await res.json(), { type: 'https://github.com/confidential-containers/kbs/errors/ServiceUnavailable', detail: 'Storage backend unavailable' });
  } finally {
    fault.remove();
  }
  const slowEntra = az.faults.delay(5_000, { service: 'entra', times: Infinity });
  try {
    const started = Date.now();
    const res = await get('aad-token/other-token', token);
    // other-token may be cached from the previous test (then 200 or 403 by policy), never a hang
    t.true(Date.now() - started < 4_000);
    t.true([200, 403, 503].includes(res.status));
  } finally {
    slowEntra.remove();
  }
});

test.serial('credentials never appear in logs', (t) => {
  const logs = kbs.logs();
  t.true(logs.length > 0);
  t.false(logs.includes(KBS_SECRET));
  t.false(logs.includes(WORKLOAD_SECRET));
  t.true(logs.includes('aad-token source'));
});
