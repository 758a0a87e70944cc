/**
 * Vault addresses and the one SecretClient per vault the backend keeps for its lifetime (the SDK's
 * challenge cache and MSAL's token cache live per client / credential; recreating them per request
 * would redo the 401 probe and token request each time).
 */
import { Agent } from 'node:https';
import type { TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { pipelineOptions, type IdentityTransportOptions } from './credential.js';

export class VaultAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultAddressError';
  }
}

const VAULT_NAME = /^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/;

/**
 * `https://myvault.vault.azure.net[/]`, `myvault.vault.azure.net` (SCONE's `vault`) or a bare
 * vault name `myvault` → `https://myvault.vault.azure.net` (origin only, no trailing slash).
 */
export function normalizeVaultUrl(text: string): string {
  const t = text.trim();
  let candidate: string;
  if (VAULT_NAME.test(t)) candidate = `https://${t}.vault.azure.net`;
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) candidate = t;
  else candidate = `https://${t}`;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    throw new VaultAddressError(`vault ${JSON.stringify(text)} is neither a vault name, a host name nor an https URL`);
  }
  if (url.protocol !== 'https:') throw new VaultAddressError(`vault ${url.origin} must be an https:// URL`);
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new VaultAddressError(`vault ${JSON.stringify(text)} must be the vault's address only (no path, query or credentials)`);
  }
  return url.origin;
}

export interface VaultClientOptions extends IdentityTransportOptions {
  /** Keep the challenge's resource check (default true); off only for local emulators. */
  disableChallengeResourceVerification?: boolean;
  /** An agent to use instead of the backend's own (tests: custom DNS lookup). */
  agent?: Agent;
  /** Sockets per vault (default 16): hundreds of parallel TLS handshakes collapse throughput. */
  maxSockets?: number;
}

export class VaultClients {
  private readonly clients = new Map<string, SecretClient>();
  private readonly agent: Agent;
  private readonly ownAgent: boolean;

  constructor(
    private readonly credential: TokenCredential,
    private readonly options: VaultClientOptions,
  ) {
    this.ownAgent = options.agent === undefined;
    this.agent =
      options.agent ??
      new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 16, ...(options.caPem !== undefined ? { ca: options.caPem } : {}) });
  }

  /** The client of a normalized vault URL. */
  client(vaultUrl: string): SecretClient {
    let c = this.clients.get(vaultUrl);
    if (c === undefined) {
      c = new SecretClient(vaultUrl, this.credential, {
        ...pipelineOptions(this.options),
        agent: this.agent,
        disableChallengeResourceVerification: this.options.disableChallengeResourceVerification ?? false,
      });
      this.clients.set(vaultUrl, c);
    }
    return c;
  }

  close(): void {
    this.clients.clear();
    if (this.ownAgent) this.agent.destroy();
  }
}
