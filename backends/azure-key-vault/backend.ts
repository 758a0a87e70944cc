/**
 * Azure Key Vault resource backend (`type = "AzureKeyVault"`): resources are Key Vault secrets,
 * read and written with `@azure/keyvault-secrets` under an `@azure/identity` credential.
 *
 * Two ways to address secrets, usable together:
 * - `vaultUrl`: the vault is a full read-write backend. Each `repo/type/tag` maps reversibly onto a
 *   secret name (names.ts); listing decodes the names back. Secrets of other tools in a shared
 *   vault are ignored.
 * - `imports` (SCONE's `import_akv`): a KBS path served from a named secret (optionally a fixed
 *   version) in any vault. Imported paths are read-only and take precedence over mapped names.
 *
 * Values: see codec.ts (text as itself, binary base64 marked in contentType, 25 KB limit checked
 * before any request). Reads go through a TTL cache with single-flight (cache.ts). Every call to
 * Azure runs under a deadline (`timeoutMs`, retries included): a slow or unreachable vault or
 * identity endpoint gives UNAVAILABLE in time, never a hung request. 401/403 and token failures
 * are UNAVAILABLE with an authorization message (errors.ts).
 *
 * Soft delete: delete() deletes the secret and waits until it is deleted (then purges it when
 * `purgeOnDelete`). A put on a name that is soft-deleted purges it first (`purgeOnDelete`) or
 * recovers it and writes a new version; with purge protection on, recovery is the only way.
 */
import type { TokenCredential } from '@azure/identity';
import type { KeyVaultSecret, SecretClient } from '@azure/keyvault-secrets';
import { BackendError, type ResourceInfo, type ResourcePath, type StorageBackend } from '../types.js';
import { assertValidResourcePath, formatResourcePath, resourcePathFromString } from '../resource-path.js';
import { ReadCache } from './cache.js';
import { decodeValue, encodeValue } from './codec.js';
import { createCredential, credentialSecrets, describeCredential, type AzureCredentialConfig } from './credential.js';
import { DeadlineError, mapAzureError } from './errors.js';
import { fromAkvName, isAkvName, pathTags, toAkvName } from './names.js';
import { normalizeVaultUrl, VaultClients, type VaultClientOptions } from './vaults.js';

export const AKV_DEFAULT_CACHE_TTL_MS = 30_000;
export const AKV_DEFAULT_TIMEOUT_MS = 10_000;
/** How long delete/recover may take to complete on the service side. */
export const AKV_DEFAULT_SOFT_DELETE_WAIT_MS = 60_000;
const SIZE_TAG = 'kbs-size';

/** One `import_akv` entry: a KBS path served from a named secret. */
export interface AkvImport {
  /** "repo/type/tag". */
  path: string;
  /** Vault name, host or https URL. */
  vault: string;
  /** Default: the path's tag (which must then be a valid secret name). */
  secretName?: string;
  /** A fixed version; default the current one. */
  version?: string;
}

export interface AzureKeyVaultOptions extends Omit<VaultClientOptions, 'env'> {
  /** The read-write vault; absent: only imports are served (read-only backend). */
  vaultUrl?: string;
  credential: AzureCredentialConfig;
  imports?: readonly AkvImport[];
  /** Read cache lifetime (default 30 s); 0 disables caching (single-flight stays). */
  cacheTtlMs?: number;
  /** Deadline of every call to Azure, retries included (default 10 s). */
  timeoutMs?: number;
  /** Purge after delete, and purge (rather than recover) soft-deleted names on re-create. */
  purgeOnDelete?: boolean;
  /** Poll interval of delete/recover operations (default 1000 ms). */
  pollIntervalMs?: number;
  softDeleteWaitMs?: number;
  /** Probe the vault at open and log the outcome (default true). Never fails open. */
  probeOnOpen?: boolean;
  logger?: { info(message: string): void; warn(message: string): void };
  env?: NodeJS.ProcessEnv;
}

interface ResolvedImport {
  path: string;
  vaultUrl: string;
  secretName: string;
  version: string | undefined;
}

interface CachedSecret {
  bytes: Uint8Array;
  updatedAt: Date;
}

const VERSION_RE = /^[0-9A-Za-z]{1,64}$/;

function invalid(message: string): BackendError {
  return new BackendError('UNAVAILABLE', `AzureKeyVault: ${message}`);
}

export class AzureKeyVaultBackend implements StorageBackend {
  readonly kind = 'AzureKeyVault';
  readonly readOnly: boolean;
  readonly vaultUrl: string | undefined;
  readonly timeoutMs: number;
  private readonly clients: VaultClients;
  private readonly imports: ReadonlyMap<string, ResolvedImport>;
  private readonly cache: ReadCache<CachedSecret>;
  private readonly secrets: readonly string[];
  private readonly inflight = new Set<AbortController>();
  private closed = false;

  private constructor(
    private readonly options: AzureKeyVaultOptions,
    readonly credential: TokenCredential,
    imports: Map<string, ResolvedImport>,
  ) {
    this.vaultUrl = options.vaultUrl === undefined ? undefined : normalizeVaultUrl(options.vaultUrl);
    this.readOnly = this.vaultUrl === undefined;
    this.timeoutMs = options.timeoutMs ?? AKV_DEFAULT_TIMEOUT_MS;
    this.imports = imports;
    this.secrets = credentialSecrets(options.credential);
    this.clients = new VaultClients(credential, options);
    this.cache = new ReadCache<CachedSecret>(options.cacheTtlMs ?? AKV_DEFAULT_CACHE_TTL_MS, 10_000, Date.now, (e) =>
      e instanceof BackendError && e.code === 'NOT_FOUND',
    );
  }

  static async open(options: AzureKeyVaultOptions): Promise<AzureKeyVaultBackend> {
    const timeoutMs = options.timeoutMs ?? AKV_DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`AzureKeyVault: timeoutMs must be a positive integer`);
    const ttl = options.cacheTtlMs ?? AKV_DEFAULT_CACHE_TTL_MS;
    if (!Number.isSafeInteger(ttl) || ttl < 0) throw new RangeError(`AzureKeyVault: cacheTtlMs must be a non-negative integer`);
    if (options.vaultUrl === undefined && (options.imports ?? []).length === 0) {
      throw invalid('nothing to serve: set vault_url, or import secrets with import_akv entries');
    }
    let credential: TokenCredential;
    let imports: Map<string, ResolvedImport>;
    try {
      if (options.vaultUrl !== undefined) normalizeVaultUrl(options.vaultUrl);
      imports = resolveImports(options.imports ?? []);
      credential = createCredential(options.credential, { ...options, ...(options.env !== undefined ? { env: options.env } : {}) });
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw invalid(e instanceof Error ? e.message : String(e));
    }
    const backend = new AzureKeyVaultBackend(options, credential, imports);
    const log = options.logger;
    log?.info(
      `AzureKeyVault: ${backend.vaultUrl ?? 'no read-write vault'}, ${imports.size} imported secret(s), credential ${describeCredential(options.credential)}`,
    );
    if (options.probeOnOpen ?? true) {
      try {
        await backend.check();
        log?.info('AzureKeyVault: vault reachable and authorized');
      } catch (e) {
        // Start anyway: requests answer 503 until the vault (or the identity set-up) works.
        log?.warn(`AzureKeyVault: start-up probe failed, resource requests will fail until this is fixed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return backend;
  }

  // -------------------------------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new BackendError('UNAVAILABLE', 'AzureKeyVault backend is closed');
  }

  /** Runs one SDK call under the deadline; maps every failure. */
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, ms = this.timeoutMs): Promise<T> {
    this.ensureOpen();
    const ac = new AbortController();
    this.inflight.add(ac);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new DeadlineError(ms);
        ac.abort(err);
        reject(err);
      }, ms);
      ac.signal.addEventListener('abort', () => reject(ac.signal.reason instanceof Error ? ac.signal.reason : new DeadlineError(ms)), { once: true });
    });
    try {
      return await Promise.race([fn(ac.signal), deadline]);
    } catch (e) {
      if (this.closed) throw new BackendError('UNAVAILABLE', `AzureKeyVault backend closed during: ${what}`);
      throw mapAzureError(e, what, this.secrets);
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
  }

  private client(vaultUrl: string): SecretClient {
    return this.clients.client(vaultUrl);
  }

  private mapped(p: ResourcePath, action: 'read' | 'write' | 'delete'): { vaultUrl: string; name: string; path: string } {
    const path = formatResourcePath(p);
    const imported = this.imports.get(path);
    if (imported !== undefined && action !== 'read') {
      throw new BackendError(
        'READ_ONLY',
        `cannot ${action} resource ${path}: it is imported from Azure Key Vault ${imported.vaultUrl} (secret ${imported.secretName}) and read-only`,
      );
    }
    if (this.vaultUrl === undefined) {
      if (action === 'read') throw new BackendError('NOT_FOUND', `resource ${path} not found (not imported, and no vault_url is configured)`);
      throw new BackendError('READ_ONLY', `cannot ${action} resource ${path}: the AzureKeyVault backend has no vault_url (imports only) and is read-only`);
    }
    return { vaultUrl: this.vaultUrl, name: toAkvName(p), path };
  }

  private cacheKey(vaultUrl: string, name: string, version: string | undefined): string {
    return `${vaultUrl}|${name.toLowerCase()}|${version ?? ''}`;
  }

  private read(vaultUrl: string, name: string, version: string | undefined, path: string): Promise<CachedSecret> {
    return this.cache.get(this.cacheKey(vaultUrl, name, version), async () => {
      const what = `read secret ${name}${version !== undefined ? ` version ${version}` : ''} (${path}) from ${vaultUrl}`;
      let secret: KeyVaultSecret;
      try {
        secret = await this.call(what, (abortSignal) => this.client(vaultUrl).getSecret(name, { abortSignal, ...(version !== undefined ? { version } : {}) }));
      } catch (e) {
        if (e instanceof BackendError && e.code === 'UNAVAILABLE' && /disabled secret|SecretDisabled/i.test(e.message)) {
          throw new BackendError('NOT_FOUND', `resource ${path}: secret ${name} in ${vaultUrl} is disabled`);
        }
        if (e instanceof BackendError && e.code === 'NOT_FOUND') throw new BackendError('NOT_FOUND', `resource ${path} not found (secret ${name} in ${vaultUrl})`);
        throw e;
      }
      const bytes = decodeValue(secret.value, secret.properties.contentType, path);
      const updatedAt = secret.properties.updatedOn ?? secret.properties.createdOn ?? new Date(0);
      return { bytes, updatedAt };
    });
  }

  async get(p: ResourcePath): Promise<Uint8Array> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const path = formatResourcePath(rp);
    const imported = this.imports.get(path);
    const got = imported !== undefined
      ? await this.read(imported.vaultUrl, imported.secretName, imported.version, path)
      : await (async () => {
          const m = this.mapped(rp, 'read');
          return this.read(m.vaultUrl, m.name, undefined, path);
        })();
    return got.bytes.slice();
  }

  async put(p: ResourcePath, value: Uint8Array): Promise<void> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const path = formatResourcePath(rp);
    if (!(value instanceof Uint8Array)) throw new TypeError(`cannot write resource ${path}: the value must be a Uint8Array`);
    const m = this.mapped(rp, 'write');
    const encoded = encodeValue(value, path);
    const tags = { ...pathTags(rp), [SIZE_TAG]: String(value.byteLength) };
    const key = this.cacheKey(m.vaultUrl, m.name, undefined);
    const client = this.client(m.vaultUrl);
    const what = `write secret ${m.name} (${path}) in ${m.vaultUrl}`;
    const set = (): Promise<unknown> =>
      this.call(what, (abortSignal) => client.setSecret(m.name, encoded.value, { contentType: encoded.contentType, tags, abortSignal }));
    this.cache.invalidate(key);
    try {
      await set();
    } catch (e) {
      if (!(e instanceof BackendError) || !this.isSoftDeleteConflict(e)) throw e;
      await this.clearSoftDeleted(client, m.name, path, m.vaultUrl);
      await this.retryWhileConflict(set);
    } finally {
      this.cache.invalidate(key);
    }
  }

  /** The 409 Key Vault answers for a name that is soft-deleted (or still being deleted). */
  private isSoftDeleteConflict(e: BackendError): boolean {
    return e.code === 'IO' && /HTTP 409/.test(e.message);
  }

  /** Purges (purgeOnDelete) or recovers a soft-deleted secret so that its name can be written. */
  private async clearSoftDeleted(client: SecretClient, name: string, path: string, vaultUrl: string): Promise<void> {
    const log = this.options.logger;
    const wait = this.options.softDeleteWaitMs ?? AKV_DEFAULT_SOFT_DELETE_WAIT_MS;
    const intervalInMs = this.options.pollIntervalMs ?? 1000;
    if (this.options.purgeOnDelete === true) {
      try {
        await this.call(`purge deleted secret ${name} (${path}) in ${vaultUrl}`, (abortSignal) => client.purgeDeletedSecret(name, { abortSignal }));
        log?.info(`AzureKeyVault: purged soft-deleted secret ${name} (${path}) before writing it again`);
        return;
      } catch (e) {
        // Purge protection or no purge permission: recovery still frees the name.
        log?.warn(`AzureKeyVault: could not purge soft-deleted secret ${name}, recovering it instead: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    try {
      const poller = await this.call(`recover deleted secret ${name} (${path}) in ${vaultUrl}`, (abortSignal) =>
        client.beginRecoverDeletedSecret(name, { abortSignal, intervalInMs }),
      );
      await this.call(`wait for recovery of secret ${name} (${path})`, (abortSignal) => poller.pollUntilDone({ abortSignal }), wait);
      log?.info(`AzureKeyVault: recovered soft-deleted secret ${name} (${path}); writing a new version`);
    } catch (e) {
      // Another writer may have recovered or purged it meanwhile: the retried write decides.
      if (!(e instanceof BackendError) || e.code !== 'NOT_FOUND') throw e;
    }
  }

  /** Retries `op` while the vault still reports the name as being deleted/purged (409), within the wait. */
  private async retryWhileConflict(op: () => Promise<unknown>): Promise<void> {
    const until = Date.now() + (this.options.softDeleteWaitMs ?? AKV_DEFAULT_SOFT_DELETE_WAIT_MS);
    let delay = Math.min(this.options.pollIntervalMs ?? 1000, 250);
    for (;;) {
      try {
        await op();
        return;
      } catch (e) {
        if (!(e instanceof BackendError) || !this.isSoftDeleteConflict(e) || Date.now() + delay > until) throw e;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }

  async delete(p: ResourcePath): Promise<void> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const path = formatResourcePath(rp);
    const m = this.mapped(rp, 'delete');
    const client = this.client(m.vaultUrl);
    const key = this.cacheKey(m.vaultUrl, m.name, undefined);
    const intervalInMs = this.options.pollIntervalMs ?? 1000;
    this.cache.invalidate(key);
    try {
      const poller = await this.call(`delete secret ${m.name} (${path}) in ${m.vaultUrl}`, (abortSignal) =>
        client.beginDeleteSecret(m.name, { abortSignal, intervalInMs }),
      );
      await this.call(
        `wait for deletion of secret ${m.name} (${path})`,
        (abortSignal) => poller.pollUntilDone({ abortSignal }),
        this.options.softDeleteWaitMs ?? AKV_DEFAULT_SOFT_DELETE_WAIT_MS,
      );
    } catch (e) {
      if (e instanceof BackendError && e.code === 'NOT_FOUND') throw new BackendError('NOT_FOUND', `resource ${path} not found`);
      throw e;
    } finally {
      this.cache.invalidate(key);
    }
    if (this.options.purgeOnDelete === true) {
      try {
        await this.call(`purge deleted secret ${m.name} (${path})`, (abortSignal) => client.purgeDeletedSecret(m.name, { abortSignal }));
      } catch (e) {
        // The resource is deleted either way; a name left soft-deleted is handled by the next put.
        this.options.logger?.warn(`AzureKeyVault: deleted ${path} but could not purge it: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  async list(): Promise<ResourceInfo[]> {
    this.ensureOpen();
    const out = new Map<string, ResourceInfo>();
    if (this.vaultUrl !== undefined) {
      for (const info of await this.listMapped(this.vaultUrl)) {
        if (!this.imports.has(info.path)) out.set(info.path, info);
      }
    }
    for (const imp of this.imports.values()) {
      try {
        const got = await this.read(imp.vaultUrl, imp.secretName, imp.version, imp.path);
        out.set(imp.path, { path: imp.path, size: got.bytes.byteLength, updatedAt: got.updatedAt });
      } catch (e) {
        if (!(e instanceof BackendError) || e.code !== 'NOT_FOUND') throw e;
        this.options.logger?.warn(`AzureKeyVault: imported resource ${imp.path} is missing: ${e.message}`);
      }
    }
    return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private async listMapped(vaultUrl: string): Promise<ResourceInfo[]> {
    const client = this.client(vaultUrl);
    const found: Array<{ path: string; size: number | undefined; updatedAt: Date; name: string }> = [];
    await this.call(`list secrets of ${vaultUrl}`, async (abortSignal) => {
      for await (const page of client.listPropertiesOfSecrets({ abortSignal }).byPage({ maxPageSize: 25 })) {
        for (const props of page) {
          if (props.enabled === false || props.managed === true) continue;
          const parts = fromAkvName(props.name, props.tags);
          if (parts === null) continue;
          const sizeTag = props.tags?.[SIZE_TAG];
          const size = sizeTag !== undefined && /^[0-9]{1,9}$/.test(sizeTag) ? Number(sizeTag) : undefined;
          found.push({ path: parts.join('/'), size, updatedAt: props.updatedOn ?? props.createdOn ?? new Date(0), name: props.name });
        }
      }
    }, Math.max(this.timeoutMs, 30_000));
    const infos: ResourceInfo[] = [];
    for (const f of found) {
      let size = f.size;
      if (size === undefined) {
        // Written by another tool without our size tag: the size needs the value.
        try {
          size = (await this.read(vaultUrl, f.name, undefined, f.path)).bytes.byteLength;
        } catch (e) {
          if (e instanceof BackendError && e.code === 'NOT_FOUND') continue;
          if (e instanceof BackendError && e.code === 'IO') {
            // One unreadable entry must not hide the rest of the listing.
            this.options.logger?.warn(`AzureKeyVault: listing skips ${f.path}: ${e.message}`);
            continue;
          }
          throw e;
        }
      }
      infos.push({ path: f.path, size, updatedAt: f.updatedAt });
    }
    return infos;
  }

  async check(): Promise<void> {
    this.ensureOpen();
    if (this.vaultUrl !== undefined) {
      const vaultUrl = this.vaultUrl;
      await this.call(`list secrets of ${vaultUrl} (readiness probe)`, async (abortSignal) => {
        const pages = this.client(vaultUrl).listPropertiesOfSecrets({ abortSignal }).byPage({ maxPageSize: 1 });
        await pages.next();
      });
      return;
    }
    const first = this.imports.values().next();
    if (!first.done) await this.read(first.value.vaultUrl, first.value.secretName, first.value.version, first.value.path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ac of this.inflight) ac.abort(new BackendError('UNAVAILABLE', 'AzureKeyVault backend closed'));
    this.cache.clear();
    this.clients.close();
  }
}

function resolveImports(list: readonly AkvImport[]): Map<string, ResolvedImport> {
  const out = new Map<string, ResolvedImport>();
  list.forEach((imp, i) => {
    const at = `import_akv[${i}]`;
    let rp: ResourcePath;
    try {
      rp = resourcePathFromString(imp.path);
    } catch (e) {
      throw invalid(`${at}.path: ${e instanceof Error ? e.message : String(e)}`);
    }
    const path = formatResourcePath(rp);
    if (out.has(path)) throw invalid(`${at}.path: ${path} is imported twice`);
    const secretName = imp.secretName ?? rp.tag;
    if (!isAkvName(secretName)) {
      throw invalid(
        `${at}: ${imp.secretName === undefined ? `the tag ${JSON.stringify(rp.tag)} is not a valid Key Vault secret name; set secret_name` : 'secret_name'} must match ^[0-9a-zA-Z-]{1,127}$`,
      );
    }
    if (imp.version !== undefined && !VERSION_RE.test(imp.version)) throw invalid(`${at}.version must be a Key Vault secret version id`);
    out.set(path, { path, vaultUrl: normalizeVaultUrl(imp.vault), secretName, version: imp.version });
  });
  return out;
}
