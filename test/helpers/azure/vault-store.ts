/**
 * One vault's secret state with Key Vault semantics: versions, case-insensitive names, soft delete
 * (deleted but recoverable names block re-creation with 409), recover, purge, and an optional
 * "in progress" window after delete/recover during which the target reads as not found.
 */
import { randomBytes } from 'node:crypto';

/** Largest secret value, in UTF-8 bytes (Key Vault: 25k octets). */
export const MAX_SECRET_VALUE_BYTES = 25600;
export const MAX_CONTENT_TYPE_LENGTH = 255;
export const MAX_TAGS = 15;
export const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

export class VaultError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly inner?: string) {
    super(message);
  }
}

export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  /** Unix seconds. */
  created: number;
  updated: number;
}

export interface SecretEntry {
  /** The name's case as first created. */
  name: string;
  /** Oldest first; the last one is "latest". */
  versions: SecretVersion[];
}

export interface DeletedEntry {
  entry: SecretEntry;
  deletedDate: number;
  scheduledPurgeDate: number;
}

export interface SetSecretInput {
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  enabled?: boolean;
  nbf?: number;
  exp?: number;
}

export interface UpdateSecretInput {
  contentType?: string;
  tags?: Record<string, string>;
  enabled?: boolean;
  nbf?: number;
  exp?: number;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export function notFound(name: string, version?: string): VaultError {
  return new VaultError(404, 'SecretNotFound', `A secret with (name/id) ${version ? `${name}/${version}` : name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
}

function deletedNotFound(name: string): VaultError {
  return new VaultError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
}

export function checkName(name: string): void {
  if (!SECRET_NAME.test(name)) throw new VaultError(400, 'BadParameter', `The request URI contains an invalid name: ${name}`);
}

export class VaultStore {
  readonly live = new Map<string, SecretEntry>();
  readonly deleted = new Map<string, DeletedEntry>();
  /** Names (lower-case) whose delete/recover is still "in progress": until an epoch ms and/or for some more reads. */
  readonly #pending = new Map<string, { until: number; reads: number }>();

  constructor(readonly opts: { purgeProtection: boolean; retentionDays: number; transitionMs: number; transitionReads: number }) {}

  get recoveryLevel(): string {
    return this.opts.purgeProtection ? 'Recoverable' : 'Recoverable+Purgeable';
  }

  /** Whether `key` is in transition; `consume` counts this call as one of the reads that see it so. */
  #inProgress(key: string, consume = false): boolean {
    const p = this.#pending.get(key);
    if (p === undefined) return false;
    if (p.reads > 0) {
      if (consume) p.reads--;
      return true;
    }
    if (Date.now() < p.until) return true;
    this.#pending.delete(key);
    return false;
  }

  #startTransition(key: string): void {
    const { transitionMs, transitionReads } = this.opts;
    if (transitionMs > 0 || transitionReads > 0) this.#pending.set(key, { until: Date.now() + transitionMs, reads: transitionReads });
  }

  /** A live secret, or 404 (also while a delete/recover is in progress). */
  entry(name: string): SecretEntry {
    const key = name.toLowerCase();
    const e = this.live.get(key);
    if (!e || this.#inProgress(key, true)) throw notFound(name);
    return e;
  }

  version(name: string, version?: string): { entry: SecretEntry; v: SecretVersion } {
    const entry = this.entry(name);
    const v = version === undefined ? entry.versions.at(-1) : entry.versions.find((x) => x.version === version.toLowerCase());
    if (!v) throw notFound(name, version);
    return { entry, v };
  }

  set(name: string, input: SetSecretInput): { entry: SecretEntry; v: SecretVersion } {
    checkName(name);
    const key = name.toLowerCase();
    if (this.deleted.has(key)) {
      throw new VaultError(409, 'Conflict', `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`, 'ObjectIsDeletedButRecoverable');
    }
    if (this.#inProgress(key)) {
      throw new VaultError(409, 'Conflict', `Secret ${name} is currently being deleted.`, 'ObjectIsBeingDeleted');
    }
    const t = nowSeconds();
    const v: SecretVersion = {
      version: randomBytes(16).toString('hex'),
      value: input.value,
      enabled: input.enabled ?? true,
      created: t,
      updated: t,
      ...(input.contentType !== undefined ? { contentType: input.contentType } : {}),
      ...(input.tags !== undefined ? { tags: input.tags } : {}),
      ...(input.nbf !== undefined ? { nbf: input.nbf } : {}),
      ...(input.exp !== undefined ? { exp: input.exp } : {}),
    };
    let entry = this.live.get(key);
    if (!entry) {
      entry = { name, versions: [] };
      this.live.set(key, entry);
    }
    entry.versions.push(v);
    return { entry, v };
  }

  update(name: string, version: string | undefined, patch: UpdateSecretInput): { entry: SecretEntry; v: SecretVersion } {
    const { entry, v } = this.version(name, version);
    if (patch.contentType !== undefined) v.contentType = patch.contentType;
    if (patch.tags !== undefined) v.tags = patch.tags;
    if (patch.enabled !== undefined) v.enabled = patch.enabled;
    if (patch.nbf !== undefined) v.nbf = patch.nbf;
    if (patch.exp !== undefined) v.exp = patch.exp;
    v.updated = nowSeconds();
    return { entry, v };
  }

  delete(name: string): DeletedEntry {
    const key = name.toLowerCase();
    const entry = this.entry(name);
    this.live.delete(key);
    const t = nowSeconds();
    const d: DeletedEntry = { entry, deletedDate: t, scheduledPurgeDate: t + this.opts.retentionDays * 86400 };
    this.deleted.set(key, d);
    this.#startTransition(key);
    return d;
  }

  deletedEntry(name: string): DeletedEntry {
    const key = name.toLowerCase();
    const d = this.deleted.get(key);
    if (!d || this.#inProgress(key, true)) throw deletedNotFound(name);
    return d;
  }

  recover(name: string): SecretEntry {
    const key = name.toLowerCase();
    const d = this.deletedEntry(name);
    this.deleted.delete(key);
    this.live.set(key, d.entry);
    this.#startTransition(key);
    return d.entry;
  }

  purge(name: string): void {
    const key = name.toLowerCase();
    this.deletedEntry(name);
    if (this.opts.purgeProtection) {
      throw new VaultError(403, 'Forbidden', `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault will automatically purge secret ${name} after the retention period.`, 'PurgeProtectionEnabled');
    }
    this.deleted.delete(key);
  }

  /** Live entries in name order (stable paging), hiding in-progress ones. */
  liveEntries(): SecretEntry[] {
    return [...this.live.entries()].filter(([k]) => !this.#inProgress(k)).map(([, e]) => e).sort((a, b) => cmp(a.name, b.name));
  }

  deletedEntries(): DeletedEntry[] {
    return [...this.deleted.entries()].filter(([k]) => !this.#inProgress(k)).map(([, d]) => d).sort((a, b) => cmp(a.entry.name, b.entry.name));
  }
}

function cmp(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}
