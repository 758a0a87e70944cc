/**
 * AzureKeyVault with `managed_identity` (IMDS, system- and user-assigned) and `default`
 * (DefaultAzureCredential falling through to IMDS), in a process of their own: MSAL caches the
 * managed-identity source process-wide, so AZURE_POD_IDENTITY_AUTHORITY_HOST is set before the
 * first managed-identity credential is built.
 */
import test from 'ava';
import { AzureKeyVaultBackend, resourcePathFromString, type AzureCredentialConfig } from '../backends/index.js';
import { toAkvName } from '../backends/azure-key-vault/names.js';
import { startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '7d7d7d7d-1111-4222-8333-444455556666';
const SYSTEM_MI = 'd1d1d1d1-0000-4000-8000-000000000001';
const USER_MI = 'd2d2d2d2-0000-4000-8000-000000000002';
const PATH = resourcePathFromString('default/mi/k');

let az: AzureStandIn;

test.before(async () => {
  az = await startAzureStandIn({
    managedIdentities: [
      { tenantId: TENANT, clientId: SYSTEM_MI, systemAssigned: true },
      { tenantId: TENANT, clientId: USER_MI },
    ],
    vaults: [{ name: 'mi-vault', tenantId: TENANT, access: { [USER_MI]: ['get', 'list'], [SYSTEM_MI]: ['get', 'list'] } }],
  });
  for (const k of ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_CLIENT_SECRET', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT']) delete process.env[k];
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = az.imdsUrl;
  az.vault('mi-vault').seed(toAkvName(PATH), 'from managed identity');
});

test.after.always(async () => {
  await az?.close();
});

async function readWith(credential: AzureCredentialConfig): Promise<string> {
  const backend = await AzureKeyVaultBackend.open({
    vaultUrl: az.vaultUrl('mi-vault'),
    credential,
    authorityHost: az.authorityHost,
    caPem: az.caPem,
    disableChallengeResourceVerification: true,
    maxRetries: 0,
    probeOnOpen: false,
    timeoutMs: 5_000,
  });
  try {
    return Buffer.from(await backend.get(PATH)).toString('utf8');
  } finally {
    await backend.close();
  }
}

const imdsClients = (): Array<string | undefined> => az.requests('imds').filter((r) => r.status === 200).map((r) => r.query['client_id']);

test.serial('managed_identity: system-assigned, then user-assigned by client id, through IMDS', async (t) => {
  t.is(await readWith({ kind: 'managed_identity' }), 'from managed identity');
  t.true(imdsClients().includes(undefined));
  t.is(await readWith({ kind: 'managed_identity', clientId: USER_MI }), 'from managed identity');
  t.true(imdsClients().includes(USER_MI));
});

test.serial('managed_identity: an unknown identity is a clear authorization error', async (t) => {
  const e = await t.throwsAsync(readWith({ kind: 'managed_identity', clientId: 'd9d9d9d9-0000-4000-8000-000000000009' }));
  t.regex(e?.message ?? '', /authorization failed: could not obtain an Entra ID token/);
});

test.serial('default: DefaultAzureCredential reaches the managed identity', async (t) => {
  t.is(await readWith({ kind: 'default', clientId: USER_MI }), 'from managed identity');
});
