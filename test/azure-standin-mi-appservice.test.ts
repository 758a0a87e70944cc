/**
 * The Azure stand-in's App Service managed-identity endpoint driven by `ManagedIdentityCredential`
 * (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`). One managed-identity source per test process (MSAL
 * caches it), so this is its own file.
 */
import test from 'ava';
import * as jose from 'jose';
import { ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { rawRequest, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const APP_MI = '6b6b6b6b-0000-4000-8000-00000000006b';
const KV = 'https://vault.azure.net/.default';

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({ managedIdentities: [{ tenantId: TENANT, clientId: APP_MI }], vaults: ['app-vault'] });
  process.env['IDENTITY_ENDPOINT'] = az.appServiceEndpoint;
  process.env['IDENTITY_HEADER'] = az.appServiceHeader;
});

test.after.always(async () => {
  await az?.close();
});

test('App Service MSI: the request carries the identity header; the token reads the vault', async (t) => {
  const cred = new ManagedIdentityCredential({ clientId: APP_MI });
  az.vault('app-vault').seed('s', 'from-app-service');
  const c = new SecretClient(az.vaultUrl('app-vault'), cred, az.secretClientOptions());
  t.is((await c.getSecret('s')).value, 'from-app-service');
  const r = az.requests('imds').at(-1)!;
  t.is(r.path, '/msi/token');
  t.is(r.query['api-version'], '2019-08-01');
  t.is(r.query['resource'], 'https://vault.azure.net');
  t.is(r.query['client_id'], APP_MI);
  t.is(r.headers['x-identity-header'], '<present>', 'the header value is not logged');
  t.is(jose.decodeJwt((await cred.getToken(KV)).token)['appid'], APP_MI);
});

test('a wrong or missing X-IDENTITY-HEADER → 401', async (t) => {
  const url = `${az.appServiceEndpoint}?api-version=2019-08-01&resource=https://vault.azure.net`;
  t.is((await rawRequest(url, { headers: { 'x-identity-header': 'wrong' } })).status, 401);
  t.is((await rawRequest(url)).status, 401);
  const ok = await rawRequest(url, { headers: { 'x-identity-header': az.appServiceHeader } });
  t.is(ok.status, 200);
  t.deepEqual(Object.keys(ok.json as object).sort(), ['access_token', 'client_id', 'expires_on', 'resource', 'token_type']);
});
