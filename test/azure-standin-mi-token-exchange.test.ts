/**
 * Workload identity through the environment the AKS webhook injects (`AZURE_CLIENT_ID`,
 * `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`), consumed by
 * `ManagedIdentityCredential` (its token-exchange path), `WorkloadIdentityCredential` and
 * `DefaultAzureCredential`, with the federated credential registered on a user-assigned managed
 * identity as in the AKS guide. Environment-driven, so it has a test process of its own.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as jose from 'jose';
import { DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const WI_MI = '8c8c8c8c-0000-4000-8000-00000000008c';
const ISSUER = 'https://westeurope.oic.prod-aks.azure.com/3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b/0d0d0d0d-0000-4000-8000-0000000000d0/';
const SUBJECT = 'system:serviceaccount:confidential-containers:kbs';
const KV = 'https://vault.azure.net/.default';

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    oidcIssuer: ISSUER,
    managedIdentities: [{ tenantId: TENANT, clientId: WI_MI, federated: [{ issuer: ISSUER, subject: SUBJECT }] }],
    vaults: [{ name: 'wi-vault', access: { [WI_MI]: ['get', 'list'] } }],
  });
  az.vault('wi-vault').seed('coco-one', 'workload-identity-secret');
  Object.assign(process.env, {
    AZURE_CLIENT_ID: WI_MI,
    AZURE_TENANT_ID: TENANT,
    AZURE_FEDERATED_TOKEN_FILE: await az.writeFederatedTokenFile(SUBJECT),
    AZURE_AUTHORITY_HOST: az.authorityHost,
  });
});

test.after.always(async () => {
  await az?.close();
});

const tls = () => ({ tlsOptions: { ca: az.caPem }, retryOptions: { maxRetries: 0 } });
const read = (cred: ConstructorParameters<typeof SecretClient>[1]) =>
  new SecretClient(az.vaultUrl('wi-vault'), cred, az.secretClientOptions()).getSecret('coco-one');

test('WorkloadIdentityCredential from the environment', async (t) => {
  const cred = new WorkloadIdentityCredential({ disableInstanceDiscovery: true, ...tls() });
  t.is((await read(cred)).value, 'workload-identity-secret');
  const claims = jose.decodeJwt((await cred.getToken(KV)).token);
  t.is(claims['appid'], WI_MI);
  t.is(claims['appidacr'], '2');
});

test('ManagedIdentityCredential({ clientId }) takes the token-exchange path (no IMDS request); it needs NODE_EXTRA_CA_CERTS', async (t) => {
  // The token-exchange path builds its own WorkloadIdentityCredential without the caller's options,
  // so tlsOptions cannot reach it: in-process it fails TLS (as endpoints_resolution_error)...
  const inProcess = await t.throwsAsync(new ManagedIdentityCredential({ clientId: WI_MI, ...tls() }).getToken(KV));
  t.regex(inProcess!.message, /endpoints_resolution_error/);
  // ...and works in a process started with the stand-in's CA in NODE_EXTRA_CA_CERTS.
  const script = `
    import { ManagedIdentityCredential } from '@azure/identity';
    import { SecretClient } from '@azure/keyvault-secrets';
    const c = new SecretClient(process.env.V, new ManagedIdentityCredential({ clientId: process.env.AZURE_CLIENT_ID }), { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } });
    process.stdout.write((await c.getSecret('coco-one')).value);`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    cwd: process.cwd(),
    env: { PATH: process.env['PATH'] ?? '', ...az.childEnv({
      V: az.vaultUrl('wi-vault'), AZURE_CLIENT_ID: WI_MI, AZURE_TENANT_ID: TENANT, AZURE_FEDERATED_TOKEN_FILE: process.env['AZURE_FEDERATED_TOKEN_FILE']!,
    }) },
    timeout: 30_000,
  });
  t.is(stdout, 'workload-identity-secret');
  t.is(az.requests('imds').length, 0);
  t.true(az.requests('entra').some((r) => r.form?.['client_id'] === WI_MI && r.form['client_assertion_type'] === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'));
});

test('DefaultAzureCredential with disableInstanceDiscovery picks workload identity', async (t) => {
  const cred = new DefaultAzureCredential({ disableInstanceDiscovery: true, ...tls() });
  t.is((await read(cred)).value, 'workload-identity-secret');
});
