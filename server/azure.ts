/**
 * Start-up wiring for Azure: configured credential settings (config/azure.ts) → the credential
 * configs of the Key Vault backend and the aad-token plugin, with secrets and files read now.
 * Errors name the key and the source, never a value.
 */
import { readFile } from 'node:fs/promises';
import type { AzureKeyVaultBackendConfig } from '../backends/index.js';
import { AadTokenBroker } from '../backends/azure-key-vault/aad-tokens.js';
import type { AzureCredentialConfig } from '../backends/azure-key-vault/credential.js';
import { readSecret, type AadTokenPluginConfig, type AzureCredentialSettings, type AzureKeyVaultStorageConfig, type AzureTransportSettings } from '../config/index.js';
import type { Logger } from './log.js';

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new Error(`${what}: cannot read ${path}`);
  }
}

/** Reads the secrets a credential names and builds the SDK-level credential config. */
export async function azureCredentialConfig(c: AzureCredentialSettings, what: string): Promise<AzureCredentialConfig> {
  const ids = { ...(c.tenantId !== null ? { tenantId: c.tenantId } : {}), ...(c.clientId !== null ? { clientId: c.clientId } : {}) };
  switch (c.kind) {
    case 'workload_identity':
      return { kind: 'workload_identity', ...ids, ...(c.tokenFile !== null ? { tokenFilePath: c.tokenFile } : {}) };
    case 'managed_identity':
      return { kind: 'managed_identity', ...(c.clientId !== null ? { clientId: c.clientId } : {}) };
    case 'default':
      return { kind: 'default', ...ids };
    case 'client_secret': {
      if (c.applicationSecret === null || c.tenantId === null || c.clientId === null) throw new Error(`${what}: incomplete client_secret credential`);
      return { kind: 'client_secret', tenantId: c.tenantId, clientId: c.clientId, clientSecret: await readSecret(c.applicationSecret, `${what} application_secret`) };
    }
    case 'client_certificate': {
      if (c.tenantId === null || c.clientId === null) throw new Error(`${what}: incomplete client_certificate credential`);
      const key = c.privateKey === null ? null : await readSecret(c.privateKey, `${what} private_key`);
      if (c.certificatePath !== null) {
        const cert = await readText(c.certificatePath, `${what} certificate_path`);
        return {
          kind: 'client_certificate',
          tenantId: c.tenantId,
          clientId: c.clientId,
          certificatePem: key === null ? cert : `${cert.trimEnd()}\n${key.trim()}\n`,
          sendCertificateChain: c.sendCertificateChain,
        };
      }
      if (key === null || c.certificateThumbprint === null) throw new Error(`${what}: client_certificate needs certificate_path, or private_key and certificate_thumbprint`);
      return { kind: 'client_key_thumbprint', tenantId: c.tenantId, clientId: c.clientId, privateKeyPem: key, certificateThumbprint: c.certificateThumbprint };
    }
  }
}

async function transport(t: AzureTransportSettings, what: string) {
  return {
    ...(t.authorityHost !== null ? { authorityHost: t.authorityHost } : {}),
    ...(t.caCertPath !== null ? { caPem: await readText(t.caCertPath, `${what} ca_cert_path`) } : {}),
    maxRetries: t.maxRetries,
    timeoutMs: t.timeoutMs,
  };
}

export async function azureKeyVaultBackendConfig(storage: AzureKeyVaultStorageConfig, log: Logger): Promise<AzureKeyVaultBackendConfig> {
  const what = 'AzureKeyVault';
  return {
    type: 'AzureKeyVault',
    ...(storage.vaultUrl !== null ? { vaultUrl: storage.vaultUrl } : {}),
    credential: await azureCredentialConfig(storage.credential, what),
    ...(await transport(storage, what)),
    imports: storage.imports.map((i) => ({
      path: i.path,
      vault: i.vault,
      ...(i.secretName !== null ? { secretName: i.secretName } : {}),
      ...(i.version !== null ? { version: i.version } : {}),
    })),
    cacheTtlMs: storage.cacheTtlSeconds * 1000,
    purgeOnDelete: storage.purgeOnDelete,
    disableChallengeResourceVerification: storage.disableChallengeResourceVerification,
    logger: { info: (m) => log.info({ backend: 'AzureKeyVault' }, m), warn: (m) => log.warn({ backend: 'AzureKeyVault' }, m) },
  };
}

export async function buildAadTokenBroker(plugin: AadTokenPluginConfig, log: Logger): Promise<AadTokenBroker> {
  const sources = [];
  for (const t of plugin.tokens) {
    sources.push({ name: t.name, scope: t.scope, credential: await azureCredentialConfig(t.credential, `aad-token ${t.name}`) });
  }
  const broker = new AadTokenBroker({ sources, ...(await transport(plugin, 'aad-token')) });
  for (const name of broker.names) log.info({ plugin: 'aad-token', source: name }, `aad-token source: ${broker.describe(name) ?? ''}`);
  return broker;
}
