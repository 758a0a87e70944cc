/**
 * A local, faithful stand-in for the Azure services the Azure SDK talks to — Entra ID, managed
 * identity (IMDS / App Service) and Key Vault secrets — over real HTTP(S) on 127.0.0.1 with a test CA
 * made at start. See README.md in this folder for the API and how to point the SDK at it.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type { LookupFunction } from 'node:net';
import { join } from 'node:path';
import { FederatedIssuer } from './assertions.js';
import { Directory } from './directory.js';
import { annotateEntra, entraErrorReply, handleEntra } from './entra.js';
import { Faults } from './faults.js';
import { APP_SERVICE_TOKEN_PATH, handleImds, imdsErrorReply } from './imds.js';
import { createTestCa } from './tls.js';
import { listen, type Listener, type TransportContext } from './transport.js';
import { handleVault, vaultErrorReply, type Vault } from './vault-http.js';
import { VaultStore, type SetSecretInput } from './vault-store.js';
import type { AzureStandInOptions, ClientSpec, ManagedIdentitySpec, RecordedRequest, SecretPermission, ServiceName, VaultSpec } from './types.js';

export * from './types.js';
export { createClientCertificate, certificateThumbprints, type TestClientCertificate } from './tls.js';
export { Faults } from './faults.js';
export { MAX_SECRET_VALUE_BYTES } from './vault-store.js';
export { VAULT_RESOURCE, API_VERSIONS } from './vault-http.js';
export { rawRequest, type RawResponse } from './raw.js';

const VAULT_NAME = /^[a-zA-Z][0-9a-zA-Z-]{2,23}$/;

/** Test-side view of one vault's contents (bypasses HTTP and auth). */
export interface VaultHandle {
  readonly name: string;
  /** Creates a version directly (e.g. to seed data a backend should read). */
  seed(secretName: string, value: string, opts?: Omit<SetSecretInput, 'value'>): { version: string };
  /** Latest version of a live secret, or undefined. */
  peek(secretName: string): { name: string; version: string; value: string; contentType?: string; tags?: Record<string, string>; enabled: boolean; versions: number } | undefined;
  /** Live secret names (case as created), sorted. */
  names(): string[];
  /** Soft-deleted secret names, sorted. */
  deletedNames(): string[];
  /** Sets a principal's permissions (turns on access control for this vault if it was open). */
  grant(clientId: string, permissions: readonly SecretPermission[]): void;
}

export interface AzureStandIn {
  /** Entra authority host, `https://127.0.0.1:PORT` (credential `authorityHost` / `AZURE_AUTHORITY_HOST`). */
  readonly authorityHost: string;
  /** IMDS base, `http://127.0.0.1:PORT` (`AZURE_POD_IDENTITY_AUTHORITY_HOST`). */
  readonly imdsUrl: string;
  /** App Service MSI endpoint (`IDENTITY_ENDPOINT`) and its secret (`IDENTITY_HEADER`). */
  readonly appServiceEndpoint: string;
  readonly appServiceHeader: string;
  /** The built-in Kubernetes-style OIDC issuer URL (trusted for federation). */
  readonly oidcIssuer: string;
  /** Test CA certificate (PEM) and a file holding it (`NODE_EXTRA_CA_CERTS`). */
  readonly caPem: string;
  readonly caFile: string;
  /** Scratch folder (removed on close). */
  readonly dir: string;
  /** `https://127.0.0.1:PORT` of a vault (needs `disableChallengeResourceVerification: true`). */
  vaultUrl(name: string): string;
  /** `https://NAME.vault.azure.net:PORT`: production-shaped, reached through `httpsAgent()` with challenge verification on. */
  vaultHostUrl(name: string): string;
  /** A keep-alive agent trusting the test CA and resolving every host name to 127.0.0.1. */
  httpsAgent(): Agent;
  /** Options for any `@azure/identity` credential: authority host, no instance discovery, CA trust, no retries. */
  credentialOptions(): { authorityHost: string; disableInstanceDiscovery: true; tlsOptions: { ca: string }; retryOptions: { maxRetries: number } };
  /** Options for `SecretClient` against `vaultUrl()`: CA trust, no challenge resource verification, no retries. */
  secretClientOptions(): { disableChallengeResourceVerification: true; tlsOptions: { ca: string }; retryOptions: { maxRetries: number } };
  /** Environment for a child process using the SDK: `NODE_EXTRA_CA_CERTS`, `AZURE_AUTHORITY_HOST`, plus `extra`. */
  childEnv(extra?: Record<string, string>): Record<string, string>;
  /** A projected service-account token from the built-in issuer, for workload identity. */
  issueFederatedToken(subject: string, opts?: { audience?: string; lifetimeSeconds?: number; notBeforeOffsetSeconds?: number }): Promise<string>;
  /** Writes `issueFederatedToken(subject)` to a file (`AZURE_FEDERATED_TOKEN_FILE`) and returns its path. */
  writeFederatedTokenFile(subject: string, opts?: { audience?: string; lifetimeSeconds?: number }): Promise<string>;
  /** Public keys of the built-in issuer (to register it elsewhere). */
  oidcIssuerJwks(): { keys: Record<string, unknown>[] };
  vault(name: string): VaultHandle;
  /** Registers an app or a managed identity after start (e.g. one federated with `oidcIssuer`). */
  addClient(spec: ClientSpec): void;
  addManagedIdentity(spec: ManagedIdentitySpec): void;
  readonly faults: Faults;
  /**
   * Requests seen so far, oldest first: all, one service, or filtered by service / vault / `since`
   * (a `mark()`; only later requests). Prefer `mark()` over `clearRequests()` in concurrent tests.
   */
  requests(filter?: ServiceName | RequestFilter): RecordedRequest[];
  /** The sequence number of the latest request so far (for `requests({ since })`). */
  mark(): number;
  clearRequests(): void;
  /** Lifetime of tokens issued from now on (seconds). */
  setTokenLifetime(seconds: number): void;
  /** Revokes every token issued so far: vaults answer a CAE claims challenge, which the SDK follows with a fresh token. */
  revokeTokens(): void;
  close(): Promise<void>;
}

export interface RequestFilter {
  service?: ServiceName;
  vault?: string;
  /** Only requests after this `mark()`. */
  since?: number;
}

function vaultSpec(v: string | VaultSpec): VaultSpec {
  return typeof v === 'string' ? { name: v } : v;
}

/** Starts the stand-in. Close it with `close()`. */
export async function startAzureStandIn(opts: AzureStandInOptions = {}): Promise<AzureStandIn> {
  const dir = await Directory.create(opts);
  const issuer = await FederatedIssuer.create(opts.oidcIssuer);
  dir.trustIssuer({ issuer: issuer.issuer, jwks: issuer.jwks() as { keys: Record<string, unknown>[] } });
  const specs = (opts.vaults ?? []).map(vaultSpec);
  for (const s of specs) if (s.tenantId) dir.addTenant(s.tenantId, []);
  const defaultTenant = opts.tenants?.[0]?.id ?? [...dir.tenants.values()][0]?.id;
  const vaults = new Map<string, Vault>();
  for (const s of specs) {
    if (!VAULT_NAME.test(s.name)) throw new Error(`invalid vault name ${s.name}`);
    const tenantId = s.tenantId ?? defaultTenant;
    if (!tenantId) throw new Error(`vault ${s.name} needs a tenant: name one in tenants, clients or the vault spec`);
    if (vaults.has(s.name.toLowerCase())) throw new Error(`vault ${s.name} given twice`);
    const retentionDays = s.retentionDays ?? 90;
    if (!Number.isInteger(retentionDays) || retentionDays < 7 || retentionDays > 90) throw new Error('retentionDays must be 7..90');
    vaults.set(s.name.toLowerCase(), {
      name: s.name.toLowerCase(),
      tenantId,
      ...(s.access ? { access: new Map(Object.entries(s.access).map(([k, p]) => [k.toLowerCase(), new Set(p)])) } : {}),
      store: new VaultStore({ purgeProtection: s.purgeProtection === true, retentionDays, transitionMs: s.transitionMs ?? 0, transitionReads: s.transitionReads ?? 0 }),
    });
  }

  const ca = createTestCa();
  const tls = { cert: ca.serverCertPem, key: ca.serverKeyPem };
  let seq = 0;
  const ctx: TransportContext = { faults: new Faults(), log: [], nextSeq: () => ++seq };
  const listeners: Listener[] = [];
  const appServiceHeader = opts.appServiceIdentityHeader ?? randomBytes(16).toString('hex');
  let entraBase = '';
  try {
    const entra = await listen({
      service: 'entra', tls, ctx,
      handler: (ex) => handleEntra({ dir, base: () => entraBase, toleranceSeconds: opts.clockToleranceSeconds ?? 60 }, ex),
      renderError: (s, c, m) => entraErrorReply(s, c, 0, m),
      annotate: annotateEntra,
    });
    listeners.push(entra);
    entraBase = `https://127.0.0.1:${entra.port}`;
    const imds = await listen({
      service: 'imds', ctx,
      handler: (ex) => handleImds({ dir, appServiceHeader }, ex),
      renderError: imdsErrorReply,
    });
    listeners.push(imds);
    const vaultPorts = new Map<string, number>();
    for (const v of vaults.values()) {
      const l = await listen({
        service: 'vault', vault: v.name, tls, ctx,
        handler: (ex) => handleVault(dir, v, ex),
        renderError: (s, c, m) => vaultErrorReply(s, c, m),
      });
      listeners.push(l);
      vaultPorts.set(v.name, l.port);
    }
    const imdsUrl = `http://127.0.0.1:${imds.port}`;
    const portOf = (name: string): number => {
      const p = vaultPorts.get(name.toLowerCase());
      if (p === undefined) throw new Error(`no vault named ${name}`);
      return p;
    };
    const lookup: LookupFunction = (_host, options, cb) => {
      if (options.all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
      else cb(null, '127.0.0.1', 4);
    };
    let agent: Agent | undefined;
    const standIn: AzureStandIn = {
      authorityHost: entraBase,
      imdsUrl,
      appServiceEndpoint: `${imdsUrl}${APP_SERVICE_TOKEN_PATH}`,
      appServiceHeader,
      oidcIssuer: issuer.issuer,
      caPem: ca.caPem,
      caFile: ca.caFile,
      dir: ca.dir,
      vaultUrl: (name) => `https://127.0.0.1:${portOf(name)}`,
      vaultHostUrl: (name) => `https://${name.toLowerCase()}.vault.azure.net:${portOf(name)}`,
      httpsAgent: () => (agent ??= new Agent({ keepAlive: true, maxSockets: 8, ca: ca.caPem, lookup })),
      credentialOptions: () => ({ authorityHost: entraBase, disableInstanceDiscovery: true, tlsOptions: { ca: ca.caPem }, retryOptions: { maxRetries: 0 } }),
      secretClientOptions: () => ({ disableChallengeResourceVerification: true, tlsOptions: { ca: ca.caPem }, retryOptions: { maxRetries: 0 } }),
      childEnv: (extra = {}) => ({ NODE_EXTRA_CA_CERTS: ca.caFile, AZURE_AUTHORITY_HOST: entraBase, ...extra }),
      issueFederatedToken: (subject, o) => issuer.issue(subject, o),
      async writeFederatedTokenFile(subject, o) {
        const file = join(ca.dir, `federated-${randomBytes(6).toString('hex')}.jwt`);
        writeFileSync(file, await issuer.issue(subject, o), { mode: 0o600 });
        return file;
      },
      oidcIssuerJwks: () => issuer.jwks() as { keys: Record<string, unknown>[] },
      vault: (name) => vaultHandle(vaults, name),
      addClient: (spec) => dir.registerClient(spec),
      addManagedIdentity: (spec) => dir.registerManagedIdentity(spec),
      faults: ctx.faults,
      requests: (filter) => {
        const f: RequestFilter = typeof filter === 'string' ? { service: filter } : filter ?? {};
        return ctx.log
          .filter((r) => (!f.service || r.service === f.service) && (!f.vault || r.vault === f.vault.toLowerCase()) && r.seq > (f.since ?? 0))
          .map((r) => ({ ...r })).sort((a, b) => a.seq - b.seq);
      },
      mark: () => seq,
      clearRequests: () => { ctx.log.length = 0; },
      setTokenLifetime: (seconds) => {
        if (!Number.isInteger(seconds) || seconds < 1) throw new Error('token lifetime must be a positive integer');
        dir.tokenLifetimeSeconds = seconds;
      },
      revokeTokens: () => { dir.revokedBefore = Math.floor(Date.now() / 1000) + 1; },
      async close() {
        agent?.destroy();
        await Promise.all(listeners.map((l) => l.close()));
        ca.dispose();
      },
    };
    return standIn;
  } catch (error) {
    await Promise.all(listeners.map((l) => l.close()));
    ca.dispose();
    throw error;
  }
}

function vaultHandle(vaults: Map<string, Vault>, name: string): VaultHandle {
  const v = vaults.get(name.toLowerCase());
  if (!v) throw new Error(`no vault named ${name}`);
  return {
    name: v.name,
    seed: (secretName, value, o = {}) => ({ version: v.store.set(secretName, { ...o, value }).v.version }),
    peek(secretName) {
      const e = v.store.live.get(secretName.toLowerCase());
      const s = e?.versions.at(-1);
      if (!e || !s) return undefined;
      return {
        name: e.name, version: s.version, value: s.value, enabled: s.enabled, versions: e.versions.length,
        ...(s.contentType !== undefined ? { contentType: s.contentType } : {}),
        ...(s.tags ? { tags: { ...s.tags } } : {}),
      };
    },
    names: () => [...v.store.live.values()].map((e) => e.name).sort(),
    deletedNames: () => [...v.store.deleted.values()].map((d) => d.entry.name).sort(),
    grant(clientId, permissions) {
      v.access ??= new Map();
      v.access.set(clientId.toLowerCase(), new Set(permissions));
    },
  };
}
