/**
 * The Azure stand-in (test/helpers/azure), Entra side, driven by the real `@azure/identity`:
 * client secret, certificate (PEM, with and without chain), SCONE-style RS256 + SHA-1 thumbprint
 * assertion, workload identity (federated token file), and the errors each wrong input gives
 * through the SDK. Also the exact request sequence a first `setSecret` produces, and the protocol
 * documents (OpenID configuration, JWKS, instance discovery) at the HTTP level.
 * Key Vault semantics are in azure-standin-vault.test.ts; managed identity in azure-standin-mi-*.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import {
  AuthenticationRequiredError, ClientAssertionCredential, ClientCertificateCredential, ClientSecretCredential,
  CredentialUnavailableError, WorkloadIdentityCredential, type TokenCredential,
} from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { createClientCertificate, rawRequest, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '3f1c2a4e-7b8d-4e0f-9a1b-2c3d4e5f6a7b';
const OTHER_TENANT = '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b';
const APP = '0b1e2d3c-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
const OTHER_APP = 'a0a0a0a0-0000-4000-8000-0000000000aa';
const CERT_APP = 'c3c3c3c3-0000-4000-8000-000000000003';
const FED_APP = 'f3f3f3f3-0000-4000-8000-000000000004';
const SECRET = 'app-secret-value~1';
const SUBJECT = 'system:serviceaccount:kbs:kbs';
const ISSUER = 'https://oidc.prod-aks.azure.com/11111111-aaaa-4bbb-8ccc-222222222222/';
const KV = 'https://vault.azure.net/.default';
const cert = createClientCertificate('kbs-cert-app');
const strangerCert = createClientCertificate('not-registered');

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    tenants: [{ id: TENANT, domains: ['contoso.onmicrosoft.com'] }],
    oidcIssuer: ISSUER,
    clients: [
      { tenantId: TENANT, clientId: APP, secrets: ['old-secret', SECRET] },
      { tenantId: TENANT, clientId: CERT_APP, certificates: [cert.certificatePem] },
      { tenantId: TENANT, clientId: FED_APP, federated: [{ issuer: ISSUER, subject: SUBJECT }] },
      { tenantId: OTHER_TENANT, clientId: OTHER_APP, secrets: ['other'] },
    ],
    vaults: ['main-vault'],
  });
});

test.after.always(async () => {
  await az?.close();
});

const secretCred = (clientId = APP, secret = SECRET, tenant = TENANT): ClientSecretCredential =>
  new ClientSecretCredential(tenant, clientId, secret, az.credentialOptions());
const client = (cred: TokenCredential = secretCred()): SecretClient =>
  new SecretClient(az.vaultUrl('main-vault'), cred, az.secretClientOptions());

/** Asserts an Entra error surfaced by @azure/identity (MSAL ServerError → AuthenticationRequiredError). */
async function entraError(t: import('ava').ExecutionContext, p: Promise<unknown>, error: string, aadsts: number): Promise<void> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof AuthenticationRequiredError, `${err?.name}: ${err?.message}`);
  t.regex(err!.message, new RegExp(`^${error}: Error\\(s\\): ${aadsts} .*Description: AADSTS${aadsts}: `));
}

const scone = (opts: { key?: string; aud?: string; exp?: string; x5t?: string } = {}) => async (): Promise<string> => {
  const key = await jose.importPKCS8(opts.key ?? cert.privateKeyPem, 'RS256');
  const x5t = opts.x5t ?? Buffer.from(cert.thumbprintSha1Hex, 'hex').toString('base64url');
  return new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5t })
    .setIssuer(CERT_APP).setSubject(CERT_APP).setAudience(opts.aud ?? `${az.authorityHost}/${TENANT}/oauth2/v2.0/token`)
    .setJti(randomUUID()).setIssuedAt().setNotBefore('0s').setExpirationTime(opts.exp ?? '10m').sign(key);
};
const assertionCred = (getAssertion: () => Promise<string>, clientId = CERT_APP): ClientAssertionCredential =>
  new ClientAssertionCredential(TENANT, clientId, getAssertion, az.credentialOptions());

test.serial('first setSecret: body-less probe → 401 challenge, discovery, token, replayed PUT', async (t) => {
  const name = `seq-${randomUUID().slice(0, 8)}`;
  az.clearRequests();
  const res = await client().setSecret(name, 'hello', { contentType: 'text/plain', tags: { a: 'b' } });
  t.is(res.value, 'hello');
  const reqs = az.requests();
  t.deepEqual(reqs.map((r) => `${r.service} ${r.method} ${r.path} ${r.status}${r.authorized ? ' auth' : ''}`), [
    `vault PUT /secrets/${name} 401`,
    `entra GET /${TENANT}/v2.0/.well-known/openid-configuration 200`,
    `entra POST /${TENANT}/oauth2/v2.0/token 200`,
    `vault PUT /secrets/${name} 200 auth`,
  ]);
  t.is(reqs[0]!.bodyLength, 0, 'the probe carries no body');
  t.is(reqs[0]!.errorCode, 'Unauthorized');
  t.true(reqs[3]!.bodyLength > 0);
  t.is(reqs[3]!.query['api-version'], '2025-07-01');
  t.is(reqs[3]!.headers['authorization'], 'Bearer', 'only the scheme is logged');
  t.deepEqual(reqs[2]!.form, { grant_type: 'client_credentials', client_id: APP, scope: KV });
  const log = JSON.stringify(reqs);
  t.false(log.includes(SECRET), 'the client secret is never logged');
  t.false(log.includes('hello'), 'the value is never logged');
});

test.serial('a second SecretClient on the same credential re-probes but takes the token from MSAL\'s cache', async (t) => {
  const cred = secretCred();
  await client(cred).setSecret('cache-1', 'a');
  az.clearRequests();
  t.is((await client(cred).getSecret('cache-1')).value, 'a');
  t.deepEqual(az.requests().map((r) => `${r.service} ${r.status}`), ['vault 401', 'vault 200']);
});

test('the challenge names the vault tenant and Key Vault resource; the token is a v1 app token for it', async (t) => {
  const probe = await rawRequest(`${az.vaultUrl('main-vault')}/secrets/x?api-version=2025-07-01`, { ca: az.caPem });
  t.is(probe.status, 401);
  t.is(probe.headers['www-authenticate'], `Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="https://vault.azure.net"`);
  t.deepEqual(probe.json, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } });
  const token = await secretCred().getToken(KV);
  const claims = jose.decodeJwt(token.token);
  t.is(claims.aud, 'https://vault.azure.net');
  t.is(claims.iss, `https://sts.windows.net/${TENANT}/`);
  t.is(claims['appid'], APP);
  t.is(claims['tid'], TENANT);
  t.is(claims['appidacr'], '1');
  const lifetime = token.expiresOnTimestamp - Date.now();
  t.true(lifetime > 3500_000 && lifetime <= 3600_000, String(lifetime));
});

test('OpenID configuration, JWKS and instance discovery documents', async (t) => {
  const base = az.authorityHost;
  const cfg = await rawRequest(`${base}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration`, { ca: az.caPem });
  t.is(cfg.status, 200);
  const doc = cfg.json as Record<string, string>;
  t.is(doc['issuer'], `${base}/${TENANT}/v2.0`, 'issuer names the tenant id even when addressed by domain');
  t.is(doc['token_endpoint'], `${base}/contoso.onmicrosoft.com/oauth2/v2.0/token`);
  const jwks = await rawRequest(doc['jwks_uri']!, { ca: az.caPem });
  const token = await secretCred().getToken(KV);
  const { payload } = await jose.jwtVerify(token.token, jose.createLocalJWKSet(jwks.json as jose.JSONWebKeySet));
  t.is(payload['appid'], APP);
  const disc = await rawRequest(`${base}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(`${base}/${TENANT}/oauth2/v2.0/authorize`)}`, { ca: az.caPem });
  t.is((disc.json as Record<string, unknown>)['tenant_discovery_endpoint'], `${base}/${TENANT}/v2.0/.well-known/openid-configuration`);
  const unknown = await rawRequest(`${base}/no-such-tenant/v2.0/.well-known/openid-configuration`, { ca: az.caPem });
  t.is(unknown.status, 400);
  t.is((unknown.json as Record<string, unknown>)['error'], 'invalid_tenant');
  t.deepEqual((unknown.json as Record<string, unknown>)['error_codes'], [90002]);
});

test('the token endpoint accepts a tenant domain in the authority path', async (t) => {
  const tok = await secretCred(APP, SECRET, 'contoso.onmicrosoft.com').getToken(KV);
  t.is(jose.decodeJwt(tok.token)['tid'], TENANT);
});

test('any registered secret of the app works (rotation)', async (t) => {
  t.truthy(await secretCred(APP, 'old-secret').getToken(KV));
});

test('wrong client secret → invalid_client AADSTS7000215', async (t) => {
  await entraError(t, client(secretCred(APP, 'nope')).getSecret('x'), 'invalid_client', 7000215);
});

test('unknown client id → unauthorized_client AADSTS700016', async (t) => {
  await entraError(t, secretCred('00000000-dead-4bee-8f00-000000000000').getToken(KV), 'unauthorized_client', 700016);
});

test('a client of another tenant asking in this tenant → AADSTS700016', async (t) => {
  await entraError(t, secretCred(OTHER_APP, 'other', TENANT).getToken(KV), 'unauthorized_client', 700016);
});

test('unknown tenant: discovery fails → CredentialUnavailableError', async (t) => {
  const err = await t.throwsAsync(secretCred(APP, SECRET, 'b0b0b0b0-0000-4000-8000-000000000000').getToken(KV));
  t.true(err instanceof CredentialUnavailableError, `${err?.name}: ${err?.message}`);
});

test('unknown resource → invalid_resource AADSTS500011', async (t) => {
  await entraError(t, secretCred().getToken('https://unknown.example.com/.default'), 'invalid_resource', 500011);
});

test('vault challenge for a tenant the credential is not configured for → CredentialUnavailableError; with additionallyAllowedTenants the token request goes to the vault tenant', async (t) => {
  const err = await t.throwsAsync(client(secretCred(OTHER_APP, 'other', OTHER_TENANT)).getSecret('x'));
  t.true(err instanceof CredentialUnavailableError, `${err?.name}: ${err?.message}`);
  t.regex(err!.message, new RegExp(TENANT));
  const multi = new ClientSecretCredential(OTHER_TENANT, OTHER_APP, 'other', { ...az.credentialOptions(), additionallyAllowedTenants: ['*'] });
  await entraError(t, client(multi).getSecret('x'), 'unauthorized_client', 700016);
});

test('a token of another tenant sent to the vault → 401 AKV10032 invalid issuer', async (t) => {
  const tok = await secretCred(OTHER_APP, 'other', OTHER_TENANT).getToken(KV);
  const r = await rawRequest(`${az.vaultUrl('main-vault')}/secrets/x?api-version=2025-07-01`, { ca: az.caPem, headers: { authorization: `Bearer ${tok.token}` } });
  t.is(r.status, 401);
  t.regex((r.json as { error: { message: string } }).error.message, /^AKV10032: Invalid issuer/);
  t.truthy(r.headers['www-authenticate']);
});

test('a token for another resource sent to the vault → 401 AKV10022 invalid audience', async (t) => {
  const tok = await secretCred().getToken('https://management.azure.com/.default');
  const r = await rawRequest(`${az.vaultUrl('main-vault')}/secrets/x?api-version=2025-07-01`, { ca: az.caPem, headers: { authorization: `Bearer ${tok.token}` } });
  t.is(r.status, 401);
  t.regex((r.json as { error: { message: string } }).error.message, /^AKV10022: Invalid audience/);
});

test('a forged token (signed by another key) → 401', async (t) => {
  const { privateKey } = await jose.generateKeyPair('RS256');
  const forged = await new jose.SignJWT({ tid: TENANT, appid: APP, oid: 'x' }).setProtectedHeader({ alg: 'RS256' })
    .setIssuer(`https://sts.windows.net/${TENANT}/`).setAudience('https://vault.azure.net').setIssuedAt().setExpirationTime('1h').sign(privateKey);
  const r = await rawRequest(`${az.vaultUrl('main-vault')}/secrets/x?api-version=2025-07-01`, { ca: az.caPem, headers: { authorization: `Bearer ${forged}` } });
  t.is(r.status, 401);
  t.regex((r.json as { error: { message: string } }).error.message, /^AKV10016/);
});

test('without disableInstanceDiscovery MSAL cannot resolve a local authority → CredentialUnavailableError endpoints_resolution_error', async (t) => {
  const { disableInstanceDiscovery: _, ...opts } = az.credentialOptions();
  const err = await t.throwsAsync(new ClientSecretCredential(TENANT, APP, SECRET, opts).getToken(KV));
  t.true(err instanceof CredentialUnavailableError, `${err?.name}: ${err?.message}`);
  t.regex(err!.message, /endpoints_resolution_error/);
});

test('without the test CA the credential cannot reach Entra', async (t) => {
  const { tlsOptions: _, ...opts } = az.credentialOptions();
  const err = await t.throwsAsync(new ClientSecretCredential(TENANT, APP, SECRET, opts).getToken(KV));
  t.true(err instanceof CredentialUnavailableError, `${err?.name}: ${err?.message}`);
});

test('ClientCertificateCredential (PEM cert + key in one string) reads and writes secrets', async (t) => {
  const cred = new ClientCertificateCredential(TENANT, CERT_APP, { certificate: cert.combinedPem }, az.credentialOptions());
  const c = client(cred);
  await c.setSecret('by-cert', 'v1');
  t.is((await c.getSecret('by-cert')).value, 'v1');
  const tok = await cred.getToken(KV);
  t.is(jose.decodeJwt(tok.token)['appidacr'], '2');
});

test('ClientCertificateCredential with sendCertificateChain (x5c)', async (t) => {
  const cred = new ClientCertificateCredential(TENANT, CERT_APP, { certificate: cert.combinedPem }, { ...az.credentialOptions(), sendCertificateChain: true });
  t.is(jose.decodeJwt((await cred.getToken(KV)).token)['appid'], CERT_APP);
});

test('a certificate not registered on the app → invalid_client AADSTS700027', async (t) => {
  const cred = new ClientCertificateCredential(TENANT, CERT_APP, { certificate: strangerCert.combinedPem }, az.credentialOptions());
  await entraError(t, cred.getToken(KV), 'invalid_client', 700027);
});

test('SCONE-style aad-token assertion (RS256, SHA-1 x5t) works end to end', async (t) => {
  const c = client(assertionCred(scone()));
  await c.setSecret('scone', 'v');
  t.is((await c.getSecret('scone')).value, 'v');
});

test('assertion signed by another key under the registered thumbprint → AADSTS700027', async (t) => {
  await entraError(t, assertionCred(scone({ key: strangerCert.privateKeyPem })).getToken(KV), 'invalid_client', 700027);
});

test('assertion with the wrong audience → AADSTS700021', async (t) => {
  await entraError(t, assertionCred(scone({ aud: 'https://login.microsoftonline.com/other/oauth2/v2.0/token' })).getToken(KV), 'invalid_client', 700021);
});

test('expired assertion → AADSTS700024', async (t) => {
  await entraError(t, assertionCred(scone({ exp: '-5m' })).getToken(KV), 'invalid_client', 700024);
});

test('malformed assertion → AADSTS50027', async (t) => {
  await entraError(t, assertionCred(async () => 'not.a.jwt').getToken(KV), 'invalid_request', 50027);
});

test('WorkloadIdentityCredential with a federated token file reads the vault', async (t) => {
  const tokenFilePath = await az.writeFederatedTokenFile(SUBJECT);
  const cred = new WorkloadIdentityCredential({ tenantId: TENANT, clientId: FED_APP, tokenFilePath, ...az.credentialOptions() });
  az.vault('main-vault').seed('wi-secret', 'from-workload-identity');
  t.is((await client(cred).getSecret('wi-secret')).value, 'from-workload-identity');
  t.is(jose.decodeJwt((await cred.getToken(KV)).token)['appid'], FED_APP);
});

test('federated assertion mismatches → AADSTS700213 subject, 700212 audience, 700211 issuer, 700024 expired', async (t) => {
  const viaToken = (tok: string) => new ClientAssertionCredential(TENANT, FED_APP, async () => tok, az.credentialOptions()).getToken(KV);
  await entraError(t, viaToken(await az.issueFederatedToken('system:serviceaccount:kbs:other')), 'invalid_request', 700213);
  await entraError(t, viaToken(await az.issueFederatedToken(SUBJECT, { audience: 'api://Something' })), 'invalid_request', 700212);
  await entraError(t, viaToken(await az.issueFederatedToken(SUBJECT, { lifetimeSeconds: -120 })), 'invalid_client', 700024);
  const { privateKey } = await jose.generateKeyPair('RS256');
  const foreign = await new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer('https://evil.example/')
    .setSubject(SUBJECT).setAudience('api://AzureADTokenExchange').setIssuedAt().setExpirationTime('1h').sign(privateKey);
  await entraError(t, viaToken(foreign), 'invalid_request', 700211);
  const forged = await new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer(ISSUER)
    .setSubject(SUBJECT).setAudience('api://AzureADTokenExchange').setIssuedAt().setExpirationTime('1h').sign(privateKey);
  await entraError(t, viaToken(forged), 'invalid_client', 700027);
});

test('an empty federated token file fails in the SDK (AuthenticationRequiredError "No content") without a token request', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const file = `${az.dir}/empty.jwt`;
  writeFileSync(file, '');
  const clientId = 'e0e0e0e0-0000-4000-8000-0000000000ee';
  const cred = new WorkloadIdentityCredential({ tenantId: TENANT, clientId, tokenFilePath: file, ...az.credentialOptions() });
  const err = await t.throwsAsync(cred.getToken(KV));
  t.true(err instanceof AuthenticationRequiredError, `${err?.name}: ${err?.message}`);
  t.regex(err!.message, /No content on the file/);
  t.is(az.requests('entra').filter((r) => r.form?.['client_id'] === clientId).length, 0);
});

test('token endpoint protocol errors at the HTTP level', async (t) => {
  const post = (form: Record<string, string>, tenant = TENANT) => rawRequest(`${az.authorityHost}/${tenant}/oauth2/v2.0/token`, {
    method: 'POST', ca: az.caPem, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString(),
  });
  const codes = async (form: Record<string, string>, tenant?: string) => {
    const r = await post(form, tenant);
    const b = r.json as { error: string; error_codes?: number[] };
    return `${r.status} ${b.error} ${b.error_codes?.[0] ?? ''}`;
  };
  const base = { grant_type: 'client_credentials', client_id: APP, scope: KV };
  t.is(await codes({ ...base, client_secret: SECRET }), '200 undefined ');
  t.is(await codes({ client_id: APP, scope: KV, client_secret: SECRET }), '400 invalid_request 900144');
  t.is(await codes({ ...base, grant_type: 'password', client_secret: SECRET }), '400 unsupported_grant_type 70003');
  t.is(await codes({ ...base, scope: 'https://vault.azure.net' , client_secret: SECRET }), '400 invalid_scope 1002012');
  t.is(await codes(base), '401 invalid_client 7000216');
  t.is(await codes({ ...base, client_secret: SECRET, client_assertion: 'x', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' }), '400 invalid_request 700025');
  t.is(await codes({ ...base, client_assertion: 'x' }), '400 invalid_request 90014');
  t.is(await codes({ ...base, client_secret: SECRET }, 'nowhere'), '400 invalid_tenant 90002');
  const get = await rawRequest(`${az.authorityHost}/${TENANT}/oauth2/v2.0/token`, { ca: az.caPem });
  t.is(get.status, 405);
  const ok = await post({ ...base, client_secret: SECRET });
  t.deepEqual(Object.keys(ok.json as object).sort(), ['access_token', 'expires_in', 'ext_expires_in', 'token_type']);
  t.is(ok.headers['cache-control'], 'no-store, no-cache');
});
