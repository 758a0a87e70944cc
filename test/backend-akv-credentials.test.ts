/**
 * Every Entra credential mode of the AzureKeyVault backend (and the aad-token broker, which uses
 * the same credentials) obtains a token from the stand-in and reads a secret; wrong credentials
 * give clear errors that never contain the secret. Managed identity and `default` are in
 * backend-akv-mi.test.ts (MSAL caches the managed-identity source per process).
 */
import test from 'ava';
import { decodeJwt } from 'jose';
import { AzureKeyVaultBackend, resourcePathFromString, type AzureCredentialConfig } from '../backends/index.js';
import { AadTokenBroker } from '../backends/azure-key-vault/aad-tokens.js';
import { createCredential } from '../backends/azure-key-vault/credential.js';
import { toAkvName } from '../backends/azure-key-vault/names.js';
import { expectBackendError } from './backend-contract.js';
import { createClientCertificate, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '6c6c6c6c-1111-4222-8333-444455556666';
const SECRET_APP = 'c1c1c1c1-0000-4000-8000-000000000001';
const CERT_APP = 'c2c2c2c2-0000-4000-8000-000000000002';
const FED_APP = 'c3c3c3c3-0000-4000-8000-000000000003';
const SECRET = 'the-client-secret~123';
const SUBJECT = 'system:serviceaccount:kbs:kbs';
const cert = createClientCertificate('kbs-akv-cert');
const otherCert = createClientCertificate('not-registered');
const PATH = resourcePathFromString('default/cred/k');

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    clients: [
      { tenantId: TENANT, clientId: SECRET_APP, secrets: [SECRET] },
      { tenantId: TENANT, clientId: CERT_APP, certificates: [cert.certificatePem] },
    ],
    vaults: ['cred-vault'],
  });
  az.addClient({ tenantId: TENANT, clientId: FED_APP, federated: [{ issuer: az.oidcIssuer, subject: SUBJECT }] });
  az.vault('cred-vault').seed(toAkvName(PATH), 'credential ok');
});

test.after.always(async () => {
  await az?.close();
});

async function readWith(credential: AzureCredentialConfig, extra: { env?: NodeJS.ProcessEnv; authorityHost?: string } = {}): Promise<string> {
  const backend = await AzureKeyVaultBackend.open({
    vaultUrl: az.vaultUrl('cred-vault'),
    credential,
    ...(extra.env === undefined || extra.authorityHost !== undefined ? { authorityHost: extra.authorityHost ?? az.authorityHost } : {}),
    ...(extra.env !== undefined ? { env: extra.env } : {}),
    caPem: az.caPem,
    disableChallengeResourceVerification: true,
    maxRetries: 0,
    probeOnOpen: false,
    cacheTtlMs: 0,
  });
  try {
    return Buffer.from(await backend.get(PATH)).toString('utf8');
  } finally {
    await backend.close();
  }
}

const tokenRequests = (clientId: string): number =>
  az.requests('entra').filter((r) => r.method === 'POST' && r.form?.['client_id'] === clientId && r.status === 200).length;

test('client_secret', async (t) => {
  t.is(await readWith({ kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET }), 'credential ok');
});

test('client_certificate: PEM certificate + key, with and without the chain', async (t) => {
  t.is(await readWith({ kind: 'client_certificate', tenantId: TENANT, clientId: CERT_APP, certificatePem: cert.combinedPem }), 'credential ok');
  t.is(
    await readWith({ kind: 'client_certificate', tenantId: TENANT, clientId: CERT_APP, certificatePem: cert.combinedPem, sendCertificateChain: true }),
    'credential ok',
  );
});

test('client_certificate, SCONE form: private_key + SHA-1 thumbprint (and SHA-256, colon-separated)', async (t) => {
  t.is(
    await readWith({ kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: cert.privateKeyPem, certificateThumbprint: cert.thumbprintSha1Hex.toUpperCase() }),
    'credential ok',
  );
  const sha256 = Buffer.from(cert.x5tS256, 'base64url').toString('hex').match(/../g)?.join(':') ?? '';
  t.is(
    await readWith({ kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: cert.privateKeyPem, certificateThumbprint: sha256 }),
    'credential ok',
  );
});

test('workload_identity from the environment the AKS webhook injects', async (t) => {
  const file = await az.writeFederatedTokenFile(SUBJECT);
  const env = { AZURE_TENANT_ID: TENANT, AZURE_CLIENT_ID: FED_APP, AZURE_FEDERATED_TOKEN_FILE: file, AZURE_AUTHORITY_HOST: az.authorityHost };
  t.is(await readWith({ kind: 'workload_identity' }, { env }), 'credential ok');
  // Explicit settings override the environment.
  t.is(await readWith({ kind: 'workload_identity', tenantId: TENANT, clientId: FED_APP, tokenFilePath: file }), 'credential ok');
  const e = await t.throwsAsync(readWith({ kind: 'workload_identity' }, { env: { AZURE_TENANT_ID: TENANT } }));
  t.regex(e?.message ?? '', /workload identity is not set up: AZURE_CLIENT_ID .* AZURE_FEDERATED_TOKEN_FILE/);
  // A token for another service account is refused by Entra.
  const wrong = await az.writeFederatedTokenFile('system:serviceaccount:other:sa');
  const e2 = await t.throwsAsync(readWith({ kind: 'workload_identity', tenantId: TENANT, clientId: FED_APP, tokenFilePath: wrong }));
  t.regex(e2?.message ?? '', /authorization failed: could not obtain an Entra ID token/);
});

test('wrong credentials: clear errors, never the secret', async (t) => {
  const wrongSecret = 'not-the-secret-at-all';
  const cases: Array<[string, AzureCredentialConfig, RegExp]> = [
    ['wrong secret', { kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: wrongSecret }, /invalid_client|AADSTS/],
    ['unknown client', { kind: 'client_secret', tenantId: TENANT, clientId: 'c9c9c9c9-0000-4000-8000-000000000009', clientSecret: wrongSecret }, /unauthorized_client|invalid_client|AADSTS/],
    ['unregistered certificate', { kind: 'client_certificate', tenantId: TENANT, clientId: CERT_APP, certificatePem: otherCert.combinedPem }, /invalid_client|AADSTS/],
    ['wrong thumbprint', { kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: cert.privateKeyPem, certificateThumbprint: otherCert.thumbprintSha1Hex }, /invalid_client|AADSTS/],
  ];
  for (const [label, cred, re] of cases) {
    const e = await t.throwsAsync(readWith(cred), undefined, label);
    t.regex(e?.message ?? '', /authorization failed: could not obtain an Entra ID token/, label);
    t.regex(e?.message ?? '', re, label);
    for (const s of [wrongSecret, cert.privateKeyPem.split('\n')[1] ?? 'x', otherCert.privateKeyPem.split('\n')[1] ?? 'x']) {
      t.false(e?.message.includes(s), label);
      t.false(String(e?.stack).includes(s), label);
    }
  }
  // Unusable settings are refused when the backend opens.
  const bad: Array<[AzureCredentialConfig, RegExp]> = [
    [{ kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: cert.privateKeyPem, certificateThumbprint: 'abc' }, /thumbprint/],
    [{ kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: 'garbage', certificateThumbprint: cert.thumbprintSha1Hex }, /not a PEM private key/],
    [{ kind: 'client_certificate', tenantId: TENANT, clientId: CERT_APP, certificatePem: cert.certificatePem }, /no private key/],
    [{ kind: 'client_secret', tenantId: 'bad tenant!', clientId: SECRET_APP, clientSecret: SECRET }, /tenant_id/],
  ];
  for (const [cred, re] of bad) {
    const e = await expectBackendError(t, readWith(cred), 'UNAVAILABLE');
    t.regex(e.message, re);
    t.false(e.message.includes(SECRET));
  }
  t.throws(() => createCredential({ kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET }, { authorityHost: 'http://127.0.0.1:1' }), {
    message: /must be an https/,
  });
});

test('aad-token broker: every source obtains a token, cached until shortly before expiry, single-flight', async (t) => {
  const file = await az.writeFederatedTokenFile(SUBJECT);
  const broker = new AadTokenBroker({
    sources: [
      { name: 'secret', scope: 'https://vault.azure.net/.default', credential: { kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET } },
      { name: 'scone', scope: 'https://vault.azure.net/.default', credential: { kind: 'client_key_thumbprint', tenantId: TENANT, clientId: CERT_APP, privateKeyPem: cert.privateKeyPem, certificateThumbprint: cert.thumbprintSha1Hex } },
      { name: 'cert', scope: 'https://vault.azure.net/.default', credential: { kind: 'client_certificate', tenantId: TENANT, clientId: CERT_APP, certificatePem: cert.combinedPem } },
      { name: 'wi', scope: 'https://vault.azure.net/.default', credential: { kind: 'workload_identity', tenantId: TENANT, clientId: FED_APP, tokenFilePath: file } },
      { name: 'bad', scope: 'https://vault.azure.net/.default', credential: { kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: 'wrong-wrong' } },
    ],
    authorityHost: az.authorityHost,
    caPem: az.caPem,
    maxRetries: 0,
  });
  try {
    for (const name of ['secret', 'scone', 'cert', 'wi']) {
      const tok = await broker.token(name);
      t.is(tok.token_type, 'Bearer');
      t.is(tok.scope, 'https://vault.azure.net/.default');
      t.true(tok.expires_on > Date.now() / 1000 + 600, name);
      t.is(decodeJwt(tok.access_token).aud, 'https://vault.azure.net', name);
    }
    const before = tokenRequests(SECRET_APP);
    const many = await Promise.all(Array.from({ length: 20 }, () => broker.token('secret')));
    t.is(new Set(many.map((m) => m.access_token)).size, 1);
    t.is(tokenRequests(SECRET_APP), before, 'served from the cache');
    const e = await expectBackendError(t, broker.token('bad'), 'UNAVAILABLE');
    t.regex(e.message, /could not obtain an Entra ID token/);
    t.false(e.message.includes('wrong-wrong'));
    await expectBackendError(t, broker.token('nope'), 'NOT_FOUND');
    await expectBackendError(t, broker.token('__proto__'), 'NOT_FOUND');
  } finally {
    broker.close();
  }
  // Short-lived tokens are refreshed once less than half their lifetime is left.
  az.setTokenLifetime(4);
  const short = new AadTokenBroker({
    sources: [{ name: 's', scope: 'https://vault.azure.net/.default', credential: { kind: 'client_secret', tenantId: TENANT, clientId: SECRET_APP, clientSecret: SECRET } }],
    authorityHost: az.authorityHost,
    caPem: az.caPem,
    maxRetries: 0,
  });
  try {
    const a = await short.token('s');
    t.is((await short.token('s')).access_token, a.access_token);
    await new Promise((r) => setTimeout(r, 2_600));
    const b = await short.token('s');
    t.not(b.access_token, a.access_token);
  } finally {
    short.close();
    az.setTokenLifetime(3599);
  }
});
