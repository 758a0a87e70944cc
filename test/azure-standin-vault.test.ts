/**
 * The Azure stand-in's Key Vault, driven by the real `@azure/keyvault-secrets` SecretClient:
 * versions, properties, paging, soft delete / recover / purge through the SDK pollers, the service's
 * limits and error codes, access control, challenge verification, token expiry and revocation (CAE),
 * fault injection, and CA trust in a child process through `childEnv()`.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ClientSecretCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { RestError } from '@azure/core-rest-pipeline';
import {
  MAX_SECRET_VALUE_BYTES, SECRETS_USER, rawRequest, startAzureStandIn, type AzureStandIn,
} from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const APP = '0b1e2d3c-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
const READER = '5a5a5a5a-1111-4222-8333-444455556666';
const SECRET = 'app-secret';
const KV = 'https://vault.azure.net/.default';

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    clients: [
      { tenantId: TENANT, clientId: APP, secrets: [SECRET] },
      { tenantId: TENANT, clientId: READER, secrets: ['reader'] },
    ],
    vaults: [
      'main-vault',
      'paging-vault',
      'fault-vault',
      'fault-vault-2',
      { name: 'slow-vault', transitionReads: 2 },
      { name: 'locked-vault', access: { [APP]: ['get', 'list', 'set', 'delete', 'recover', 'purge'], [READER]: SECRETS_USER } },
      { name: 'protected-vault', purgeProtection: true, retentionDays: 7 },
    ],
  });
  appCred = cred();
  for (let i = 0; i < 60; i++) az.vault('paging-vault').seed(`s-${String(i).padStart(2, '0')}`, `v${i}`);
});

test.after.always(async () => {
  await az?.close();
});

const cred = (clientId = APP, secret = SECRET): ClientSecretCredential => new ClientSecretCredential(TENANT, clientId, secret, az.credentialOptions());
let appCred: ClientSecretCredential;
const client = (vault = 'main-vault', c: ClientSecretCredential = appCred): SecretClient => new SecretClient(az.vaultUrl(vault), c, az.secretClientOptions());

async function restError(t: import('ava').ExecutionContext, p: Promise<unknown>, status: number, code: string): Promise<RestError> {
  const err = await t.throwsAsync(p);
  t.is(err?.name, 'RestError', err?.message);
  const r = err as RestError;
  t.is(r.statusCode, status, r.message);
  t.is(r.code, code, r.message);
  return r;
}

test('versions: each set is a new version; latest, by version, list versions; contentType and tags round-trip', async (t) => {
  const c = client();
  const v1 = await c.setSecret('versioned', 'one', { contentType: 'text/plain', tags: { 'kbs-path': 'default/key/1' } });
  const v2 = await c.setSecret('versioned', 'two', { contentType: 'application/octet-stream;base64' });
  t.not(v1.properties.version, v2.properties.version);
  t.regex(v1.properties.version!, /^[0-9a-f]{32}$/);
  const latest = await c.getSecret('versioned');
  t.is(latest.value, 'two');
  t.is(latest.properties.contentType, 'application/octet-stream;base64');
  t.is(latest.properties.vaultUrl, az.vaultUrl('main-vault'));
  const old = await c.getSecret('versioned', { version: v1.properties.version! });
  t.is(old.value, 'one');
  t.deepEqual(old.properties.tags, { 'kbs-path': 'default/key/1' });
  t.is(old.properties.enabled, true);
  t.is(old.properties.recoveryLevel, 'Recoverable+Purgeable');
  t.is(old.properties.recoverableDays, 90);
  t.true(old.properties.createdOn instanceof Date && Math.abs(old.properties.createdOn.getTime() - Date.now()) < 5000);
  const versions: string[] = [];
  for await (const p of c.listPropertiesOfSecretVersions('versioned')) versions.push(p.version!);
  t.deepEqual(versions.sort(), [v1.properties.version!, v2.properties.version!].sort());
  await restError(t, c.getSecret('versioned', { version: '0'.repeat(32) }), 404, 'SecretNotFound');
});

test('missing secret → RestError 404 SecretNotFound with the service message', async (t) => {
  const e = await restError(t, client().getSecret('does-not-exist'), 404, 'SecretNotFound');
  t.regex(e.message, /A secret with \(name\/id\) does-not-exist was not found in this key vault/);
});

test('names are case-insensitive; the case of creation is kept', async (t) => {
  const c = client();
  await c.setSecret('MixedCase-Name', 'x');
  const s = await c.getSecret('mixedcase-name');
  t.is(s.value, 'x');
  t.is(s.name, 'MixedCase-Name');
  await c.setSecret('MIXEDCASE-NAME', 'y');
  t.is(az.vault('main-vault').peek('mixedcase-name')?.versions, 2);
});

test('listing follows nextLink pages (25 by default, maxresults when asked)', async (t) => {
  const c = client('paging-vault');
  const since = az.mark();
  const names: string[] = [];
  for await (const p of c.listPropertiesOfSecrets()) names.push(p.name);
  t.is(names.length, 60);
  t.is(names[0], 's-00');
  t.is(names[59], 's-59');
  const lists = az.requests({ vault: 'paging-vault', since }).filter((r) => r.status === 200);
  t.true(lists.length >= 3);
  t.truthy(lists.at(-1)!.query['$skiptoken'], 'later pages come from the absolute nextLink');
  const sizes: number[] = [];
  for await (const page of c.listPropertiesOfSecrets().byPage({ maxPageSize: 10 })) sizes.push(page.length);
  t.deepEqual(sizes, [10, 10, 10, 10, 10, 10]);
  t.true(az.requests({ vault: 'paging-vault', since }).some((r) => r.query['maxresults'] === '10'));
  const bad = await rawRequest(`${az.vaultUrl('paging-vault')}/secrets?api-version=2025-07-01&maxresults=26`, {
    ca: az.caPem, headers: { authorization: `Bearer ${(await appCred.getToken(KV)).token}` },
  });
  t.is(bad.status, 400);
});

test('soft delete through the poller (with an in-progress window), 409 on re-create, recover, delete + purge', async (t) => {
  const c = client('slow-vault');
  await c.setSecret('lifecycle', 'v1');
  const since = az.mark();
  const deleted = await (await c.beginDeleteSecret('lifecycle', { intervalInMs: 10 })).pollUntilDone();
  t.is(deleted.name, 'lifecycle');
  t.is(deleted.properties.recoveryId, `${az.vaultUrl('slow-vault')}/deletedsecrets/lifecycle`);
  t.truthy(deleted.deletedOn);
  t.true(deleted.scheduledPurgeDate!.getTime() - Date.now() > 89 * 86400_000);
  const polls = az.requests({ vault: 'slow-vault', since }).filter((r) => r.method === 'GET' && r.path === '/deletedsecrets/lifecycle');
  t.deepEqual(polls.map((r) => r.status), [404, 404, 200], 'the poller polled through the in-progress window');
  await restError(t, c.getSecret('lifecycle'), 404, 'SecretNotFound');
  const conflict = await restError(t, c.setSecret('lifecycle', 'v2'), 409, 'Conflict');
  t.regex(conflict.message, /deleted but recoverable state/);
  t.is((conflict.details as { error: { innerError?: { code: string } } }).error.innerError?.code, 'ObjectIsDeletedButRecoverable');
  // The SDK's RestError carries error.code and error.message only; the inner code is on the wire.
  const raw = await rawRequest(`${az.vaultUrl('slow-vault')}/secrets/lifecycle?api-version=2025-07-01`, {
    method: 'PUT', ca: az.caPem, body: '{"value":"v"}',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${(await appCred.getToken(KV)).token}` },
  });
  t.is(raw.status, 409);
  t.deepEqual((raw.json as { error: { innererror: unknown } }).error.innererror, { code: 'ObjectIsDeletedButRecoverable' });
  t.is((await c.getDeletedSecret('lifecycle')).name, 'lifecycle');
  const listed: string[] = [];
  for await (const d of c.listDeletedSecrets()) listed.push(d.name);
  t.deepEqual(listed, ['lifecycle']);
  const recovered = await (await c.beginRecoverDeletedSecret('lifecycle', { intervalInMs: 10 })).pollUntilDone();
  t.is(recovered.name, 'lifecycle');
  t.is((await c.getSecret('lifecycle')).value, 'v1');
  await (await c.beginDeleteSecret('lifecycle', { intervalInMs: 10 })).pollUntilDone();
  await c.purgeDeletedSecret('lifecycle');
  t.deepEqual(az.vault('slow-vault').deletedNames(), []);
  await restError(t, c.getDeletedSecret('lifecycle'), 404, 'SecretNotFound');
  t.is((await c.setSecret('lifecycle', 'fresh')).value, 'fresh');
  t.is(az.vault('slow-vault').peek('lifecycle')?.versions, 1, 'purge removed the old versions');
});

test('purge protection: purge → 403 Forbidden, the deleted secret stays', async (t) => {
  const c = client('protected-vault');
  await c.setSecret('kept', 'x');
  const d = await (await c.beginDeleteSecret('kept', { intervalInMs: 10 })).pollUntilDone();
  t.is(d.properties.recoveryLevel, 'Recoverable');
  t.is(d.properties.recoverableDays, 7);
  await restError(t, c.purgeDeletedSecret('kept'), 403, 'Forbidden');
  t.deepEqual(az.vault('protected-vault').deletedNames(), ['kept']);
});

test('limits: name rule, 25 600-byte value, 255-char contentType, 15 tags', async (t) => {
  const c = client();
  for (const bad of ['bad_name', 'dot.name', 'x'.repeat(128), 'ünïcode']) {
    const e = await restError(t, c.setSecret(bad, 'v'), 400, 'BadParameter');
    t.regex(e.message, /invalid name/);
  }
  t.is((await c.setSecret('n'.repeat(127), 'v')).name, 'n'.repeat(127));
  await c.setSecret('max-value', 'a'.repeat(MAX_SECRET_VALUE_BYTES));
  t.is((await c.getSecret('max-value')).value!.length, MAX_SECRET_VALUE_BYTES);
  await restError(t, c.setSecret('too-big', 'a'.repeat(MAX_SECRET_VALUE_BYTES + 1)), 400, 'BadParameter');
  await restError(t, c.setSecret('too-big', 'é'.repeat(MAX_SECRET_VALUE_BYTES / 2 + 1)), 400, 'BadParameter');
  await restError(t, c.setSecret('ct', 'v', { contentType: 'c'.repeat(256) }), 400, 'BadParameter');
  const tags = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v']));
  await restError(t, c.setSecret('tags', 'v', { tags }), 400, 'BadParameter');
  t.is(az.vault('main-vault').peek('too-big'), undefined, 'a refused write stores nothing');
});

test('updateSecretProperties: disable → get 403 SecretDisabled, still listed; re-enable', async (t) => {
  const c = client();
  const s = await c.setSecret('toggled', 'v');
  const upd = await c.updateSecretProperties('toggled', s.properties.version!, { enabled: false, contentType: 'x/y', tags: { k: 'v' } });
  t.is(upd.enabled, false);
  t.is(upd.contentType, 'x/y');
  const e = await restError(t, c.getSecret('toggled'), 403, 'Forbidden');
  t.regex(e.message, /disabled secret/);
  let listed = false;
  for await (const p of c.listPropertiesOfSecrets()) if (p.name === 'toggled') listed = p.enabled === false;
  t.true(listed);
  await c.updateSecretProperties('toggled', s.properties.version!, { enabled: true });
  t.is((await c.getSecret('toggled')).properties.contentType, 'x/y');
});

test('access control: a reader can get and list but not set → 403 ForbiddenByRbac; grant() opens it', async (t) => {
  az.vault('locked-vault').seed('shared', 'value');
  const reader = client('locked-vault', cred(READER, 'reader'));
  t.is((await reader.getSecret('shared')).value, 'value');
  const e = await restError(t, reader.setSecret('shared', 'nope'), 403, 'Forbidden');
  t.regex(e.message, /setSecret\/action/);
  await restError(t, reader.purgeDeletedSecret('shared'), 403, 'Forbidden');
  az.vault('locked-vault').grant(READER, ['get', 'list', 'set']);
  t.is((await reader.setSecret('shared', 'now-allowed')).value, 'now-allowed');
});

test('challenge resource verification: on with the production-shaped host through httpsAgent(); a loopback URL fails it', async (t) => {
  const prod = new SecretClient(az.vaultHostUrl('main-vault'), appCred, { agent: az.httpsAgent(), retryOptions: { maxRetries: 0 } });
  await prod.setSecret('via-dns-name', 'ok');
  t.is((await prod.getSecret('via-dns-name')).value, 'ok');
  t.regex(az.vaultHostUrl('main-vault'), /^https:\/\/main-vault\.vault\.azure\.net:\d+$/);
  const { disableChallengeResourceVerification: _, ...opts } = az.secretClientOptions();
  const strict = new SecretClient(az.vaultUrl('main-vault'), appCred, opts);
  const err = await t.throwsAsync(strict.getSecret('via-dns-name'));
  t.regex(err!.message, /challenge resource 'vault\.azure\.net' does not match the requested domain/);
});

test('api-version is required and must be known; unknown routes → 400', async (t) => {
  const auth = { authorization: `Bearer ${(await appCred.getToken(KV)).token}` };
  const base = az.vaultUrl('main-vault');
  const missing = await rawRequest(`${base}/secrets/x`, { ca: az.caPem, headers: auth });
  t.is(missing.status, 400);
  t.is((missing.json as { error: { code: string } }).error.code, 'BadParameter');
  t.is((await rawRequest(`${base}/secrets/x?api-version=1999-01-01`, { ca: az.caPem, headers: auth })).status, 400);
  t.is((await rawRequest(`${base}/keys/x?api-version=7.4`, { ca: az.caPem, headers: auth })).status, 400);
  t.is((await rawRequest(`${base}/secrets/x/`, { ca: az.caPem })).status, 401, 'authentication comes first');
  t.is((await rawRequest(`${base}/secrets/%zz?api-version=7.4`, { ca: az.caPem, headers: auth })).status, 400, 'malformed escape');
  const lower = { authorization: auth.authorization.replace('Bearer', 'bearer') };
  t.is((await rawRequest(`${base}/secrets/never-set?api-version=7.4`, { ca: az.caPem, headers: lower })).status, 404, 'the scheme is case-insensitive');
  t.is((await rawRequest(`${az.authorityHost}/%zz/oauth2/v2.0/token`, { ca: az.caPem, method: 'POST', body: '' })).status, 400);
  const bad = await rawRequest(`${base}/secrets/x?api-version=7.4`, { method: 'PUT', ca: az.caPem, headers: { ...auth, 'content-type': 'application/json' }, body: '{"value":' });
  t.is(bad.status, 400);
  const ok = await rawRequest(`${base}/secrets/raw-one?api-version=7.4`, { method: 'PUT', ca: az.caPem, headers: { ...auth, 'content-type': 'application/json' }, body: '{"value":"v","attributes":{"enabled":true}}' });
  t.is(ok.status, 200);
  const b = ok.json as { id: string; value: string; attributes: { created: number } };
  t.is(b.value, 'v');
  t.regex(b.id, /\/secrets\/raw-one\/[0-9a-f]{32}$/);
  t.true(Number.isInteger(b.attributes.created) && b.attributes.created < 1e10, 'dates are Unix seconds');
});

test('expired tokens: MSAL refreshes a short-lived token; the vault refuses a stale one', async (t) => {
  const local = await startAzureStandIn({ clients: [{ tenantId: TENANT, clientId: APP, secrets: [SECRET] }], vaults: ['v1-vault'], tokenLifetimeSeconds: 2 });
  t.teardown(() => local.close());
  const c = new SecretClient(local.vaultUrl('v1-vault'), new ClientSecretCredential(TENANT, APP, SECRET, local.credentialOptions()), local.secretClientOptions());
  await c.setSecret('short', 'x');
  const stale = (await new ClientSecretCredential(TENANT, APP, SECRET, local.credentialOptions()).getToken(KV)).token;
  await new Promise((r) => setTimeout(r, 2100));
  const r = await rawRequest(`${local.vaultUrl('v1-vault')}/secrets/short?api-version=7.4`, { ca: local.caPem, headers: { authorization: `Bearer ${stale}` } });
  t.is(r.status, 401);
  const before = local.requests('entra').filter((q) => q.method === 'POST').length;
  t.is((await c.getSecret('short')).value, 'x');
  t.true(local.requests('entra').filter((q) => q.method === 'POST').length > before, 'a fresh token was fetched');
});

test('revokeTokens(): the vault answers a CAE claims challenge and the SDK retries with a fresh token', async (t) => {
  const local = await startAzureStandIn({ clients: [{ tenantId: TENANT, clientId: APP, secrets: [SECRET] }], vaults: ['cae-vault'] });
  t.teardown(() => local.close());
  const c = new SecretClient(local.vaultUrl('cae-vault'), new ClientSecretCredential(TENANT, APP, SECRET, local.credentialOptions()), local.secretClientOptions());
  await c.setSecret('cae', 'x');
  await new Promise((r) => setTimeout(r, 1000));
  local.revokeTokens();
  await new Promise((r) => setTimeout(r, 1100));
  local.clearRequests();
  t.is((await c.getSecret('cae')).value, 'x');
  t.deepEqual(local.requests().map((r) => `${r.service} ${r.method} ${r.status}`), ['vault GET 401', 'entra POST 200', 'vault GET 200']);
});

test('faults: 429 + Retry-After is retried by the SDK; without retries it surfaces as RestError 429', async (t) => {
  const retrying = new SecretClient(az.vaultUrl('fault-vault'), appCred, { ...az.secretClientOptions(), retryOptions: { maxRetries: 3, retryDelayInMs: 10 } });
  await retrying.setSecret('throttled', 'x');
  const h = az.faults.throttle(2, { vault: 'fault-vault', retryAfterSeconds: 0 });
  t.is((await retrying.getSecret('throttled')).value, 'x');
  t.is(h.hits, 2);
  t.is(h.remaining, 0);
  az.faults.throttle(1, { vault: 'fault-vault', retryAfterSeconds: 30 });
  const e = await restError(t, client('fault-vault').getSecret('throttled'), 429, 'Throttled');
  t.is(e.response?.headers.get('retry-after'), '30');
});

test('faults: delay + abort, dropped connection, injected error, hook', async (t) => {
  const c = client('fault-vault-2');
  await c.setSecret('faulty', 'x');
  const d = az.faults.delay(5000, { vault: 'fault-vault-2' });
  const aborted = await t.throwsAsync(c.getSecret('faulty', { abortSignal: AbortSignal.timeout(300) }));
  t.is(aborted?.name, 'AbortError');
  d.remove();
  az.faults.drop({ vault: 'fault-vault-2', match: (r) => r.authorized });
  const dropped = await t.throwsAsync(c.getSecret('faulty'));
  t.is(dropped?.name, 'RestError');
  t.regex((dropped as RestError).code ?? '', /ECONNRESET|REQUEST_SEND_ERROR/);
  az.faults.error(503, 'ServiceUnavailable', { vault: 'fault-vault-2', message: 'down for a moment' });
  const e = await restError(t, c.getSecret('faulty'), 503, 'ServiceUnavailable');
  t.regex(e.message, /down for a moment/);
  const unhook = az.faults.hook((r) => (r.vault === 'fault-vault-2' && r.path === '/secrets/hooked/' ? { status: 404, code: 'SecretNotFound', message: 'hooked' } : undefined));
  await restError(t, c.getSecret('hooked'), 404, 'SecretNotFound');
  unhook();
  t.is((await c.getSecret('faulty')).value, 'x');
  t.true(az.requests('vault').some((r) => r.vault === 'fault-vault-2' && r.fault === true && r.status === 503));
});

test('faults on Entra: a 500 from the token endpoint fails the credential', async (t) => {
  const local = await startAzureStandIn({ clients: [{ tenantId: TENANT, clientId: APP, secrets: [SECRET] }] });
  t.teardown(() => local.close());
  local.faults.error(500, 'server_error', { service: 'entra', match: (r) => r.form?.['client_id'] === APP, message: 'AADSTS50000: down' });
  const err = await t.throwsAsync(new ClientSecretCredential(TENANT, APP, SECRET, local.credentialOptions()).getToken(KV));
  t.regex(err!.message, /server_error/);
  t.is(local.requests('entra').filter((r) => r.fault).length, 1);
});

test('childEnv(): a child process trusts the stand-in through NODE_EXTRA_CA_CERTS alone', async (t) => {
  az.vault('main-vault').seed('for-child', 'child-read-this');
  const script = `
    import { ClientSecretCredential } from '@azure/identity';
    import { SecretClient } from '@azure/keyvault-secrets';
    const cred = new ClientSecretCredential(process.env.T, process.env.C, process.env.S, { disableInstanceDiscovery: true, retryOptions: { maxRetries: 0 } });
    const c = new SecretClient(process.env.V, cred, { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } });
    process.stdout.write((await c.getSecret('for-child')).value);`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    cwd: process.cwd(),
    env: { PATH: process.env['PATH'] ?? '', ...az.childEnv({ T: TENANT, C: APP, S: SECRET, V: az.vaultUrl('main-vault') }) },
    timeout: 30_000,
  });
  t.is(stdout, 'child-read-this');
});
