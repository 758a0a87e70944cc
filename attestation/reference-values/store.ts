/**
 * The built-in RVPS store: reference values registered through `POST /kbs/v0/reference-value`,
 * read by the appraisal policies' `query_reference_value(id)` and by `GET /kbs/v0/reference-value/<id>`.
 *
 * On disk it is upstream's LocalFs key-value layout for the `reference_value` namespace: one file
 * per reference value, named by its id (`/` written as `\x2F`), holding the JSON record
 * `{"version","name","expiration","value"}`; a Trustee RVPS directory can be used as is. The
 * store is loaded into memory at start so that lookups are synchronous.
 *
 * A message is registered all or nothing as far as validation goes: every value is checked and
 * staged (temp file, fsync) before any replaces its predecessor (rename, then fsync of the
 * directory), so no file is ever half-written. Registrations are serialised.
 *
 * Deliberately stricter than upstream (whose RVPS returns values without looking at their
 * expiration): an expired reference value is treated as absent, so attestations fail closed.
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  extractReferenceValues,
  isValidReferenceValueName,
  parseExpiration,
  REFERENCE_VALUE_LIMITS,
  REFERENCE_VALUE_VERSION,
  RvpsMessageError,
  type JsonValue,
  type ReferenceValueRecord,
} from './message.js';
import { stageFile } from '../../policy/store.js';

/** Upstream's storage namespace (the directory name under a LocalFs `dir_path`). */
export const REFERENCE_VALUE_NAMESPACE = 'reference_value';

export const REFERENCE_VALUE_STORE_LIMITS = Object.freeze({
  /** Most reference values the store accepts (registering more new ids is refused). */
  entries: 10_000,
  /** Most bytes of records the store accepts. */
  totalBytes: 64 * 1024 * 1024,
});

const TEMP_FILE = /^\.rv-[0-9a-f]{16}\.tmp$/;

export interface ReferenceValueStoreOptions {
  now?: () => Date;
  maxEntries?: number;
  maxTotalBytes?: number;
  /** Told once per id (until it is registered again) when a lookup finds an expired value. */
  onExpired?: (id: string, expiration: string) => void;
}

interface Entry {
  record: ReferenceValueRecord;
  expiresAtMs: number;
  bytes: number;
}

/** A stored file that is not a valid reference value (the start fails rather than ignore it). */
export class ReferenceValueStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReferenceValueStoreError';
  }
}

export function encodeFileName(id: string): string {
  return id.replace(/\//g, '\\x2F');
}

function decodeFileName(file: string): string {
  return file.replace(/\\x2F/g, '/');
}

/** Upstream's serde order: version, name, expiration, value. */
function serialise(record: ReferenceValueRecord): string {
  return JSON.stringify({ version: record.version, name: record.name, expiration: record.expiration, value: record.value });
}

function parseRecord(text: string, file: string): { record: ReferenceValueRecord; expiresAtMs: number } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReferenceValueStoreError(`reference value file ${file} is not JSON`, { cause: e });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ReferenceValueStoreError(`reference value file ${file} is not a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const version = Object.hasOwn(o, 'version') ? o['version'] : REFERENCE_VALUE_VERSION;
  const { name, expiration } = o;
  const expires = typeof expiration === 'string' ? parseExpiration(expiration) : undefined;
  if (typeof version !== 'string' || typeof name !== 'string' || expires === undefined || !Object.hasOwn(o, 'value')) {
    throw new ReferenceValueStoreError(
      `reference value file ${file} is not a reference value record {version, name, expiration: "YYYY-MM-DDTHH:MM:SSZ", value}`,
    );
  }
  return { record: { version, name, expiration: expiration as string, value: o['value'] as JsonValue }, expiresAtMs: expires.getTime() };
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}


export class ReferenceValueStore {
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  private readonly warned = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;
  private readonly maxEntries: number;
  private readonly maxTotalBytes: number;

  private constructor(
    readonly dir: string,
    private readonly options: ReferenceValueStoreOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    this.maxEntries = options.maxEntries ?? REFERENCE_VALUE_STORE_LIMITS.entries;
    this.maxTotalBytes = options.maxTotalBytes ?? REFERENCE_VALUE_STORE_LIMITS.totalBytes;
  }

  /** Opens (creating when missing) the store directory and loads every reference value in it. */
  static async open(dir: string, options: ReferenceValueStoreOptions = {}): Promise<ReferenceValueStore> {
    const store = new ReferenceValueStore(dir, options);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const file of (await readdir(dir)).sort()) {
      const path = join(dir, file);
      if (TEMP_FILE.test(file)) {
        await unlink(path).catch(() => undefined); // left by a crash before its rename
        continue;
      }
      if (file.startsWith('.')) continue;
      const id = decodeFileName(file);
      if (!isValidReferenceValueName(id)) {
        throw new ReferenceValueStoreError(`reference value file ${path}: the name is not a valid reference value id`);
      }
      const info = await stat(path);
      if (!info.isFile()) throw new ReferenceValueStoreError(`reference value file ${path} is not a regular file`);
      if (info.size > REFERENCE_VALUE_LIMITS.recordBytes) {
        throw new ReferenceValueStoreError(`reference value file ${path} is larger than ${REFERENCE_VALUE_LIMITS.recordBytes} bytes`);
      }
      const text = await readFile(path, 'utf8');
      const { record, expiresAtMs } = parseRecord(text, path);
      store.put(id, { record, expiresAtMs, bytes: Buffer.byteLength(text) });
    }
    return store;
  }

  /** Number of stored reference values (expired ones included). */
  get size(): number {
    return this.entries.size;
  }

  /** Ids of the stored reference values, sorted. */
  ids(): string[] {
    return [...this.entries.keys()].sort();
  }

  /**
   * `query_reference_value(id)`: the stored value, or null when there is none or it has expired.
   * Synchronous: policies call it during evaluation.
   */
  query(id: string): JsonValue | null {
    return this.get(id) ?? null;
  }

  /** The stored value; undefined when there is none or it has expired. */
  get(id: string): JsonValue | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (this.now().getTime() > entry.expiresAtMs) {
      if (!this.warned.has(id)) {
        this.warned.add(id);
        this.options.onExpired?.(id, entry.record.expiration);
      }
      return undefined;
    }
    return entry.record.value;
  }

  /**
   * Registers the reference values of one RVPS message (overwriting values of the same id).
   * Throws RvpsMessageError for a message that is refused (nothing changes); any other error is a
   * storage failure (values already renamed into place stay, each one complete).
   */
  register(message: string): Promise<string[]> {
    const run = this.queue.then(() => this.registerNow(message));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async registerNow(message: string): Promise<string[]> {
    const records = extractReferenceValues(message, this.now());
    const byId = new Map<string, { record: ReferenceValueRecord; text: string }>();
    for (const record of records) byId.set(record.name, { record, text: serialise(record) });

    let entries = this.entries.size;
    let bytes = this.totalBytes;
    for (const [id, { text }] of byId) {
      const old = this.entries.get(id);
      if (old === undefined) entries += 1;
      bytes += Buffer.byteLength(text) - (old?.bytes ?? 0);
    }
    if (entries > this.maxEntries) {
      throw new RvpsMessageError(`the store would hold more than ${this.maxEntries} reference values`);
    }
    if (bytes > this.maxTotalBytes) {
      throw new RvpsMessageError(`the store would hold more than ${this.maxTotalBytes} bytes of reference values`);
    }

    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const staged: Array<{ id: string; tmp: string; record: ReferenceValueRecord; text: string }> = [];
    try {
      for (const [id, { record, text }] of byId) staged.push({ id, tmp: await stageFile(this.dir, text, '.rv-'), record, text });
    } catch (e) {
      await Promise.all(staged.map((s) => unlink(s.tmp).catch(() => undefined)));
      throw e;
    }
    let done = 0;
    try {
      for (const s of staged) {
        await rename(s.tmp, join(this.dir, encodeFileName(s.id)));
        const expiresAtMs = (parseExpiration(s.record.expiration) as Date).getTime();
        this.put(s.id, { record: s.record, expiresAtMs, bytes: Buffer.byteLength(s.text) });
        done += 1;
      }
    } finally {
      await Promise.all(staged.slice(done).map((s) => unlink(s.tmp).catch(() => undefined)));
      await syncDir(this.dir);
    }
    return staged.map((s) => s.id);
  }

  private put(id: string, entry: Entry): void {
    const old = this.entries.get(id);
    this.totalBytes += entry.bytes - (old?.bytes ?? 0);
    this.entries.set(id, entry);
    this.warned.delete(id);
  }
}
