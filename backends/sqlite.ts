/**
 * Sqlite resource backend (`type = "Sqlite"`, `db_path`): every resource is one row of a single
 * SQLite database file, accessed through the npm `sqlite3` package (asynchronous: statements run on
 * the libuv thread pool, never on the event loop).
 *
 * Layout (schema version 1, `PRAGMA user_version`):
 *
 *   resources(repo TEXT, type TEXT, tag TEXT, created_at INTEGER, updated_at INTEGER, value BLOB,
 *             PRIMARY KEY (repo, type, tag)) STRICT
 *
 * - Three key columns rather than one "repo/type/tag" string: each segment is validated on its own
 *   (resource-path.ts), and a per-repository or per-type query needs no string parsing.
 * - Times are milliseconds since the Unix epoch, taken from the KBS clock. An overwrite keeps
 *   `created_at` and sets `updated_at`.
 * - `value` is the last column: list() reads `length(value)`, which SQLite answers from the record
 *   header without reading the value, and no column after it has to be reached through the value's
 *   overflow pages.
 *
 * Durability and concurrency:
 * - `journal_mode = WAL` (persistent in the file), `synchronous = FULL` (the WAL is fsynced at every
 *   commit, so an acknowledged write survives a crash or power loss), `busy_timeout` set explicitly.
 * - One `sqlite3.Database` is one connection whose statements run one after another, so a
 *   BEGIN…COMMIT spread over separate async calls would capture other requests' statements. Every
 *   request is therefore a single statement: an UPSERT for put (atomic: readers see the old or the
 *   new value), one DELETE, one SELECT. Statements are prepared once at open.
 * - SELECTs are always stepped to completion (`Statement#all`): `Statement#get` in node-sqlite3
 *   leaves the statement active after the first row, which keeps a read transaction open and pins
 *   this connection to an old snapshot (writes by other connections stay invisible to it, and the
 *   WAL cannot be checkpointed past that point).
 * - At most MAX_IN_FLIGHT (2) statements of a backend occupy libuv pool threads at once (a JS
 *   queue holds the rest): a statement waiting for another process's lock sleeps on its thread, and
 *   unbounded, such waits would take the whole pool (4 threads) from the rest of the process.
 * - During open, busy_timeout is 0 and SQLITE_BUSY is retried from JavaScript until busy_timeout
 *   has passed (see retryBusy); the configured busy_timeout applies from the end of open on.
 * - `secure_delete = ON`: deleted or replaced values are overwritten with zeros in the database
 *   file instead of lingering in free pages (old WAL frames are reused, not zeroed).
 * - The connection's SQLITE_LIMIT_LENGTH is max(maxValueBytes, 1 MiB) so a single read never loads
 *   more than that into memory; larger stored values give TOO_LARGE.
 *
 * Start-up refuses, with UNAVAILABLE and a message naming the file: a file that cannot be opened or
 * created, a corrupt file or one that is not a database (`PRAGMA quick_check`), a schema version
 * newer than this code knows, and, unless `requireWritable` is false, a database it cannot write.
 * Migrations run forward only, all pending ones in one `BEGIN IMMEDIATE` transaction.
 *
 * Read-only use (`requireWritable: false`): writability is probed with a no-op DELETE
 * (SQLITE_READONLY). On a read-only file system SQLite cannot create `<db>-shm`, so a cleanly
 * closed WAL database (no -wal/-shm left) cannot be opened normally; it is then opened with
 * `immutable=1`, but only when no non-empty -wal file exists (immutable would ignore its
 * transactions). If a writer elsewhere keeps -wal/-shm present, the normal open works and sees them.
 *
 * Files: sqlite-open.ts (open, pragmas, quick_check, migrations), sqlite-schema.ts (the SQL),
 * sqlite-driver.ts (node-sqlite3 wrappers, the statement queue), sqlite-errors.ts (error mapping).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type sqlite3 from 'sqlite3';
import { BackendError, type ResourceInfo, type ResourcePath, type StorageBackend } from './types.js';
import { assertValidResourcePath, formatResourcePath, isValidSegment } from './resource-path.js';
import { messageOf } from './errno.js';
import type { StatementName } from './sqlite-schema.js';
import { dbClose, finalize, SQLITE_MAX_BLOB_BYTES, StatementQueue, stmtAll, stmtRun, type Param } from './sqlite-driver.js';
import { fsReason, requestError, sqliteCode } from './sqlite-errors.js';
import { openDatabaseFile } from './sqlite-open.js';

export { SQLITE_SCHEMA_VERSION, SQLITE_STATEMENTS } from './sqlite-schema.js';
export { SQLITE_MAX_BLOB_BYTES } from './sqlite-driver.js';

/** Largest value stored or served when `maxValueBytes` is not configured (the same as LocalFs). */
export const SQLITE_DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const SQLITE_DEFAULT_BUSY_TIMEOUT_MS = 5_000;

export interface SqliteOptions {
  /** The database file; created (mode 0600, parent directories 0700) when missing. */
  dbPath: string;
  /** Largest value accepted by put and served by get (default SQLITE_DEFAULT_MAX_VALUE_BYTES). */
  maxValueBytes?: number;
  /** `busy_timeout` in milliseconds (default SQLITE_DEFAULT_BUSY_TIMEOUT_MS). */
  busyTimeoutMs?: number;
  /**
   * When true (default), a database that cannot be written stops open() with UNAVAILABLE. When
   * false it is opened read-only: get/list work, put/delete fail with READ_ONLY.
   */
  requireWritable?: boolean;
}

export class SqliteBackend implements StorageBackend {
  readonly kind = 'Sqlite';
  readonly readOnly: boolean;
  /** The database file, absolute. */
  readonly dbPath: string;
  readonly maxValueBytes: number;
  readonly busyTimeoutMs: number;
  private readonly db: sqlite3.Database;
  private readonly stmts: Readonly<Record<StatementName, sqlite3.Statement>>;
  /** Identity of the file opened, to notice it being deleted or replaced underneath. */
  private readonly fileId: { dev: number; ino: number };
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly queue = new StatementQueue();

  private constructor(init: {
    dbPath: string;
    db: sqlite3.Database;
    stmts: Record<StatementName, sqlite3.Statement>;
    readOnly: boolean;
    maxValueBytes: number;
    busyTimeoutMs: number;
    fileId: { dev: number; ino: number };
  }) {
    this.dbPath = init.dbPath;
    this.db = init.db;
    this.stmts = Object.freeze(init.stmts);
    this.readOnly = init.readOnly;
    this.maxValueBytes = init.maxValueBytes;
    this.busyTimeoutMs = init.busyTimeoutMs;
    this.fileId = init.fileId;
  }

  static async open(options: SqliteOptions): Promise<SqliteBackend> {
    const maxValueBytes = options.maxValueBytes ?? SQLITE_DEFAULT_MAX_VALUE_BYTES;
    if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes < 0) {
      throw new RangeError(`Sqlite: maxValueBytes must be a non-negative integer, got ${String(options.maxValueBytes)}`);
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? SQLITE_DEFAULT_BUSY_TIMEOUT_MS;
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0 || busyTimeoutMs > 2_147_483_647) {
      throw new RangeError(`Sqlite: busyTimeoutMs must be an integer from 0 to 2147483647, got ${String(options.busyTimeoutMs)}`);
    }
    const requireWritable = options.requireWritable ?? true;
    if (typeof options.dbPath !== 'string' || options.dbPath === '') {
      throw new BackendError('UNAVAILABLE', 'Sqlite: db_path is not set');
    }
    const dbPath = path.resolve(options.dbPath);
    const opened = await openDatabaseFile({ dbPath, maxValueBytes, busyTimeoutMs, requireWritable });
    return new SqliteBackend({ dbPath, ...opened, maxValueBytes, busyTimeoutMs });
  }

  // -------------------------------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new BackendError('UNAVAILABLE', `Sqlite backend on ${this.dbPath} is closed`);
  }

  private ensureWritable(name: string, action: string): void {
    if (this.readOnly) {
      throw new BackendError('READ_ONLY', `cannot ${action} resource ${name}: Sqlite database ${this.dbPath} is opened read-only`);
    }
  }

  /**
   * Runs one request's statement(s) through the queue (at most MAX_IN_FLIGHT on the pool). When a
   * slot is free, `fn` starts synchronously, in the caller's tick.
   */
  private limited<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      this.ensureOpen(); // closed while waiting
      return await fn();
    });
  }

  async get(p: ResourcePath): Promise<Uint8Array> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const name = formatResourcePath(rp);
    const key = [rp.repo, rp.type, rp.tag];
    const rows = await this.limited(async () => {
      try {
        return await stmtAll(this.stmts.get, key);
      } catch (e) {
        if (sqliteCode(e) === 'SQLITE_TOOBIG') throw await this.tooLarge(name, key, e);
        throw requestError(e, name, 'read', this);
      }
    });
    const row = rows[0];
    if (row === undefined) throw new BackendError('NOT_FOUND', `resource ${name} not found`);
    const size = Number(row['size']);
    if (size > this.maxValueBytes) {
      throw new BackendError('TOO_LARGE', `resource ${name} is ${size} bytes, above the limit of ${this.maxValueBytes} bytes (${this.dbPath})`);
    }
    const value = row['value'];
    if (!Buffer.isBuffer(value)) {
      throw new BackendError('IO', `resource ${name} in ${this.dbPath} is not stored as a BLOB (${typeof value})`);
    }
    return value;
  }

  /** TOO_LARGE for a value the connection's length limit refused to load, with its size if known. */
  private async tooLarge(name: string, key: readonly Param[], cause: unknown): Promise<BackendError> {
    let size = '';
    try {
      const rows = await stmtAll(this.stmts.size, key);
      if (rows[0] !== undefined) size = ` is ${Number(rows[0]['size'])} bytes,`;
    } catch {
      /* the size is only for the message */
    }
    return new BackendError('TOO_LARGE', `resource ${name}${size} above the limit of ${this.maxValueBytes} bytes (${this.dbPath})`, { cause });
  }

  async put(p: ResourcePath, value: Uint8Array): Promise<void> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const name = formatResourcePath(rp);
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(`cannot write resource ${name}: the value must be a Uint8Array`);
    }
    const limit = Math.min(this.maxValueBytes, SQLITE_MAX_BLOB_BYTES);
    if (value.byteLength > limit) {
      throw new BackendError('TOO_LARGE', `cannot write resource ${name}: value is ${value.byteLength} bytes, above the limit of ${limit} bytes`);
    }
    this.ensureWritable(name, 'write');
    // node-sqlite3 copies the bytes when it binds them, synchronously in Statement#run. That happens
    // in this call when a slot is free; a put that has to wait takes its own copy now, so the caller
    // may reuse its buffer as soon as put() returns its promise.
    const blob =
      this.queue.hasFreeSlot ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.from(value);
    await this.limited(async () => {
      try {
        await stmtRun(this.stmts.upsert, [rp.repo, rp.type, rp.tag, Date.now(), blob]);
      } catch (e) {
        throw requestError(e, name, 'write', this);
      }
    });
  }

  async delete(p: ResourcePath): Promise<void> {
    this.ensureOpen();
    const rp = assertValidResourcePath(p);
    const name = formatResourcePath(rp);
    this.ensureWritable(name, 'delete');
    const changes = await this.limited(async () => {
      try {
        return await stmtRun(this.stmts.delete, [rp.repo, rp.type, rp.tag]);
      } catch (e) {
        throw requestError(e, name, 'delete', this);
      }
    });
    if (changes === 0) throw new BackendError('NOT_FOUND', `resource ${name} not found`);
  }

  async list(): Promise<ResourceInfo[]> {
    this.ensureOpen();
    const rows = await this.limited(async () => {
      try {
        return await stmtAll(this.stmts.list, []);
      } catch (e) {
        throw requestError(e, '', 'list', this);
      }
    });
    const out: ResourceInfo[] = [];
    for (const row of rows) {
      const { repo, type, tag } = row;
      // Rows written by hand with invalid segments are not resources this KBS can address.
      if (!isValidSegment(repo) || !isValidSegment(type) || !isValidSegment(tag)) continue;
      out.push({ path: `${repo}/${type}/${tag}`, size: Number(row['size']), updatedAt: new Date(Number(row['updated_at'])) });
    }
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return out;
  }

  async check(): Promise<void> {
    this.ensureOpen();
    await this.limited(async () => {
      try {
        await stmtAll(this.stmts.check, []);
      } catch (e) {
        throw new BackendError('UNAVAILABLE', `Sqlite database ${this.dbPath} is not usable (${messageOf(e)})`, { cause: e });
      }
    });
    let st;
    try {
      st = await fs.stat(this.dbPath);
    } catch (e) {
      throw new BackendError('UNAVAILABLE', `Sqlite database ${this.dbPath} is gone: ${fsReason(e)}`, { cause: e });
    }
    if (st.dev !== this.fileId.dev || st.ino !== this.fileId.ino) {
      throw new BackendError(
        'UNAVAILABLE',
        `Sqlite database ${this.dbPath} was replaced by another file after it was opened; writes would not reach it (restart the KBS)`,
      );
    }
  }

  async close(): Promise<void> {
    if (this.closing === undefined) {
      this.closed = true;
      // Statements and the close are queued behind requests already running; those complete.
      this.closing = (async () => {
        await Promise.all(Object.values(this.stmts).map(finalize));
        try {
          await dbClose(this.db);
        } catch (e) {
          throw new BackendError('IO', `Sqlite database ${this.dbPath}: close failed (${messageOf(e)})`, { cause: e });
        }
      })();
    }
    return this.closing;
  }
}
