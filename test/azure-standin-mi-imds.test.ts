/**
 * The Azure stand-in's IMDS endpoint driven by `ManagedIdentityCredential` (MSAL's IMDS source,
 * pointed at the stand-in with `AZURE_POD_IDENTITY_AUTHORITY_HOST`). MSAL caches the managed-identity
 * source process-wide, so this file holds the only IMDS scenario of its test process; protocol
 * details a credential cannot reach are checked with raw HTTP against a second stand-in.
 */
import test from 'ava';
import * as jose from 'jose';
import { ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { rawRequest, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const SYSTEM_MI = '5e5e5e5e-0000-4000-8000-00000000005e';
const USER_MI = '7a7a7a7a-0000-4000-8000-00000000007a';
const USER_MI_RES = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/kbs/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kbs-mi';
const KV = 'https://vault.azure.net/.default';

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    managedIdentities: [
      { tenantId: TENANT, clientId: SYSTEM_MI, systemAssigned: true },
      { tenantId: TENANT, clientId: USER_MI, resourceId: USER_MI_RES },
    ],
    vaults: [{ name: 'mi-vault', access: { [USER_MI]: ['get', 'list'] } }],
  });
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = az.imdsUrl;
  az.vault('mi-vault').seed('db-password', 'from-imds');
});

test.after.always(async () => {
  await az?.close();
});

const appid = async (cred: ManagedIdentityCredential): Promise<unknown> => jose.decodeJwt((await cred.getToken(KV)).token)['appid'];

test.serial('system-assigned identity: the exact IMDS request', async (t) => {
  const since = az.mark();
  t.is(await appid(new ManagedIdentityCredential()), SYSTEM_MI);
  const [r, ...rest] = az.requests({ service: 'imds', since });
  t.is(rest.length, 0);
  t.is(r!.method, 'GET');
  t.regex(r!.path, /^\/metadata\/identity\/oauth2\/token\/?$/);
  t.is(r!.query['api-version'], '2018-02-01');
  t.is(r!.query['resource'], 'https://vault.azure.net');
  t.false('client_id' in r!.query);
  t.is(r!.headers['metadata'], 'true');
});

test('user-assigned identity by client id reads the vault', async (t) => {
  const cred = new ManagedIdentityCredential({ clientId: USER_MI });
  t.is(await appid(cred), USER_MI);
  const c = new SecretClient(az.vaultUrl('mi-vault'), cred, az.secretClientOptions());
  t.is((await c.getSecret('db-password')).value, 'from-imds');
  t.true(az.requests('imds').some((r) => r.query['client_id'] === USER_MI));
});

test('user-assigned identity by resource id', async (t) => {
  t.is(await appid(new ManagedIdentityCredential({ resourceId: USER_MI_RES })), USER_MI);
  t.true(az.requests('imds').some((r) => r.query['msi_res_id'] === USER_MI_RES));
});

test('the system identity has no access to the locked vault → 403', async (t) => {
  const c = new SecretClient(az.vaultUrl('mi-vault'), new ManagedIdentityCredential(), az.secretClientOptions());
  const err = await t.throwsAsync(c.getSecret('db-password'));
  t.is((err as { statusCode?: number }).statusCode, 403);
});

test('an unknown client id → the credential fails with IMDS\'s "Identity not found"', async (t) => {
  const err = await t.throwsAsync(new ManagedIdentityCredential({ clientId: '00000000-0000-4000-8000-000000000bad' }).getToken(KV));
  t.regex(err!.message, /Identity not found/);
});

test('IMDS protocol rules at the HTTP level', async (t) => {
  const local = await startAzureStandIn({
    managedIdentities: [{ tenantId: TENANT, clientId: 'u1' }, { tenantId: TENANT, clientId: 'u2' }],
  });
  t.teardown(() => local.close());
  const get = (q: string, headers: Record<string, string> = { metadata: 'true' }) =>
    rawRequest(`${local.imdsUrl}/metadata/identity/oauth2/token?${q}`, { headers });
  const err = async (q: string, headers?: Record<string, string>) => {
    const r = await get(q, headers);
    return `${r.status} ${(r.json as { error_description: string }).error_description}`;
  };
  t.is(await err('api-version=2018-02-01&resource=https://vault.azure.net&client_id=u1', {}), '400 Required metadata header not specified');
  t.is(await err('resource=https://vault.azure.net&client_id=u1'), "400 Required query variable 'api-version' is missing");
  t.is(await err('api-version=2018-02-01&client_id=u1'), "400 Required query variable 'resource' is missing");
  t.regex(await err('api-version=2018-02-01&resource=https://vault.azure.net'), /^400 Multiple user assigned identities exist/);
  const ok = await get('api-version=2018-02-01&resource=https://vault.azure.net&client_id=u2');
  t.is(ok.status, 200);
  const body = ok.json as Record<string, string>;
  t.deepEqual(Object.keys(body).sort(), ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'resource', 'token_type']);
  t.is(body['client_id'], 'u2');
  t.true(Number(body['expires_on']) - Date.now() / 1000 > 3500);
  t.is(jose.decodeJwt(body['access_token']!)['xms_mirid'], undefined);
});
