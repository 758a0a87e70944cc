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
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import sqlite3 from 'sqlite3';
import { BackendError, type ResourceInfo, type ResourcePath, type StorageBackend } from './types.js';
import { assertValidResourcePath, formatResourcePath, isValidSegment } from './resource-path.js';

/** Largest value stored or served when `maxValueBytes` is not configured (the same as LocalFs). */
export const SQLITE_DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const SQLITE_DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const SQLITE_SCHEMA_VERSION = 1;
/** SQLite's own ceiling for a string or BLOB (SQLITE_MAX_LENGTH of the bundled build). */
export const SQLITE_MAX_BLOB_BYTES = 1_000_000_000;

/**
 * Statements of one backend running on the libuv pool at once. The connection executes one
 * statement at a time anyway; a second one in flight overlaps the JavaScript side of the previous
 * (measured: +35–55 % concurrent reads/s over one). More would only park pool threads on the connection mutex,
 * and while a statement waits for another process's lock (busy_timeout) those threads are taken
 * from everything else in the process (file system, crypto).
 */
const MAX_IN_FLIGHT = 2;
/** Reads never load more than this much, even with a smaller maxValueBytes (schema text, messages). */
const MIN_LENGTH_LIMIT = 1024 * 1024;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/**
 * Forward migrations: MIGRATIONS[n - 1] takes the schema from version n - 1 to n. Append only;
 * never edit a released step.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the resources table. Plain CREATE TABLE: an unrelated `resources` table in a file at
  // user_version 0 makes the migration fail loudly instead of being adopted.
  `CREATE TABLE resources (
     repo       TEXT    NOT NULL,
     type       TEXT    NOT NULL,
     tag        TEXT    NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     value      BLOB    NOT NULL,
     PRIMARY KEY (repo, type, tag)
   ) STRICT;`,
];

if (MIGRATIONS.length !== SQLITE_SCHEMA_VERSION) throw new Error('sqlite.ts: MIGRATIONS and SQLITE_SCHEMA_VERSION disagree');

/** The statements prepared at open; exported so tests and reviews can see exactly what runs. */
export const SQLITE_STATEMENTS = Object.freeze({
  get: 'SELECT length(value) AS size, value FROM resources WHERE repo = ?1 AND type = ?2 AND tag = ?3',
  size: 'SELECT length(value) AS size FROM resources WHERE repo = ?1 AND type = ?2 AND tag = ?3',
  upsert:
    'INSERT INTO resources (repo, type, tag, created_at, updated_at, value) VALUES (?1, ?2, ?3, ?4, ?4, ?5) ' +
    'ON CONFLICT (repo, type, tag) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
  delete: 'DELETE FROM resources WHERE repo = ?1 AND type = ?2 AND tag = ?3',
  list: 'SELECT repo, type, tag, length(value) AS size, updated_at FROM resources',
  check: 'SELECT 1 AS ok FROM resources LIMIT 1',
});

/** Run once at open: a write that changes nothing; SQLITE_READONLY tells a read-only database apart. */
const PROBE_WRITE_SQL = 'DELETE FROM resources WHERE 0';

type StatementName = keyof typeof SQLITE_STATEMENTS;

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

// ---------------------------------------------------------------------------------------------------
// Errors.

/** node-sqlite3 errors carry the primary result code name, e.g. "SQLITE_FULL". */
function sqliteCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function fsReason(e: unknown): string {
  const code = sqliteCode(e);
  switch (code) {
    case 'EROFS':
      return 'read-only file system (EROFS)';
    case 'EACCES':
      return 'permission denied (EACCES)';
    case 'EPERM':
      return 'operation not permitted (EPERM)';
    case 'ENOSPC':
      return 'no space left on device (ENOSPC)';
    case 'ENOTDIR':
      return 'a path component is not a directory (ENOTDIR)';
    case 'ENOENT':
      return 'no such file or directory (ENOENT)';
    case undefined:
      return messageOf(e);
    default:
      return `${code}: ${messageOf(e)}`;
  }
}

const CORRUPT_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);
const BUSY_CODES = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED']);

// ---------------------------------------------------------------------------------------------------
// Promise wrappers around the callback API. SQL parameters are positional.

type Param = string | number | Buffer | null;
type Row = Record<string, unknown>;

function openDatabase(filename: string, mode: number): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(filename, mode, (err) => (err ? reject(err) : resolve(db)));
  });
}

function dbAll(db: sqlite3.Database, sql: string): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    db.all<Row>(sql, [], (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}

function dbExec(db: sqlite3.Database, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    db.exec(sql, (err) => (err ? reject(err) : resolve()));
  });
}

function dbClose(db: sqlite3.Database): Promise<void> {
  return new Promise((resolve, reject) => {
    db.close((err) => (err ? reject(err) : resolve()));
  });
}

function prepare(db: sqlite3.Database, sql: string): Promise<sqlite3.Statement> {
  return new Promise((resolve, reject) => {
    const stmt = db.prepare(sql, (err) => (err ? reject(err) : resolve(stmt)));
  });
}

/** Steps to completion, so the statement never stays active holding a read transaction. */
function stmtAll(stmt: sqlite3.Statement, params: readonly Param[]): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    stmt.all<Row>([...params], (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}

/** Runs a write; resolves with the number of rows changed. */
function stmtRun(stmt: sqlite3.Statement, params: readonly Param[]): Promise<number> {
  return new Promise((resolve, reject) => {
    stmt.run([...params], function (this: sqlite3.RunResult, err: Error | null) {
      if (err) reject(err);
      else resolve(this.changes);
    });
  });
}

function finalize(stmt: sqlite3.Statement): Promise<void> {
  return new Promise((resolve) => {
    // node-sqlite3 calls back with no argument on success; a failure only means it is gone already.
    stmt.finalize(() => resolve());
  });
}

async function closeQuietly(db: sqlite3.Database): Promise<void> {
  try {
    await dbClose(db);
  } catch {
    /* already failing; the original error is reported */
  }
}

/**
 * Runs an open-time step with SQLITE_BUSY retried from JavaScript until `deadline`. During open the
 * connection's busy_timeout is 0: a statement waiting in SQLite's busy handler sleeps on a libuv
 * pool thread (4 by default), and several backends opening one file in the same process could then
 * take every thread while the connection holding the lock needs one to finish. Retrying here keeps
 * the waits off the pool. Also covers `journal_mode = WAL`, for which SQLite returns SQLITE_BUSY
 * without calling the busy handler at all.
 */
async function retryBusy<T>(deadline: number, step: () => Promise<T>): Promise<T> {
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      return await step();
    } catch (e) {
      if (sqliteCode(e) !== 'SQLITE_BUSY' || Date.now() >= deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// ---------------------------------------------------------------------------------------------------

interface OpenState {
  db: sqlite3.Database;
  /** True when opened with `immutable=1` (read-only file system, no WAL to replay). */
  readOnly: boolean;
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
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

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
    const where = `Sqlite database ${dbPath}`;

    await SqliteBackend.prepareFile(dbPath, where);

    const deadline = Date.now() + busyTimeoutMs;
    const state = await SqliteBackend.connect(dbPath, where, deadline, requireWritable);
    const { db } = state;
    let readOnly = state.readOnly;
    try {
      await SqliteBackend.quickCheck(db, where, deadline);

      const version = await SqliteBackend.userVersion(db, where, deadline);
      if (version > SQLITE_SCHEMA_VERSION) {
        throw new BackendError(
          'UNAVAILABLE',
          `${where} has schema version ${version}, newer than the ${SQLITE_SCHEMA_VERSION} this KBS knows; ` +
            'it was written by a newer KBS release: run that release or restore a backup made for this one',
        );
      }

      let journalMode = '';
      if (!readOnly) {
        try {
          journalMode = await retryBusy(deadline, async () =>
            String((await dbAll(db, 'PRAGMA journal_mode = WAL'))[0]?.['journal_mode'] ?? ''),
          );
        } catch (e) {
          if (sqliteCode(e) !== 'SQLITE_READONLY') throw SqliteBackend.openError(e, where, 'cannot switch to WAL journal mode');
          readOnly = true;
        }
      }
      if (!readOnly && version < SQLITE_SCHEMA_VERSION) {
        readOnly = await SqliteBackend.migrate(db, where, deadline);
      }
      if (!readOnly) readOnly = await SqliteBackend.probeReadOnly(db, where, deadline);
      if (readOnly) {
        if (requireWritable) {
          throw SqliteBackend.readOnlyError(
            where,
            (await SqliteBackend.writeRefusal(dbPath)) ?? 'SQLITE_READONLY: attempt to write a readonly database',
          );
        }
        const current = await SqliteBackend.userVersion(db, where, deadline);
        if (current !== SQLITE_SCHEMA_VERSION) {
          throw new BackendError(
            'UNAVAILABLE',
            `${where} is read-only and at schema version ${current}; version ${SQLITE_SCHEMA_VERSION} is needed ` +
              '(open it writable once so the KBS can create or migrate its schema)',
          );
        }
      } else {
        if (journalMode !== 'wal') {
          throw new BackendError('UNAVAILABLE', `${where}: cannot switch to WAL journal mode (journal_mode is ${JSON.stringify(journalMode)})`);
        }
        // Per connection, not stored in the file: set on every open.
        await SqliteBackend.exec(db, 'PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;', where);
      }

      // From now on requests wait for other connections' locks in SQLite's busy handler.
      db.configure('busyTimeout', busyTimeoutMs);
      db.configure('limit', sqlite3.LIMIT_LENGTH, Math.min(SQLITE_MAX_BLOB_BYTES, Math.max(maxValueBytes, MIN_LENGTH_LIMIT)));

      const stmts = {} as Record<StatementName, sqlite3.Statement>;
      for (const name of Object.keys(SQLITE_STATEMENTS) as StatementName[]) {
        try {
          stmts[name] = await prepare(db, SQLITE_STATEMENTS[name]);
        } catch (e) {
          await Promise.all(Object.values(stmts).map(finalize));
          throw SqliteBackend.openError(e, where, `cannot prepare the ${name} statement (unexpected schema?)`);
        }
      }

      let fileId: { dev: number; ino: number };
      try {
        const st = await fs.stat(dbPath);
        fileId = { dev: st.dev, ino: st.ino };
      } catch (e) {
        await Promise.all(Object.values(stmts).map(finalize));
        throw new BackendError('UNAVAILABLE', `${where} disappeared while opening: ${fsReason(e)}`, { cause: e });
      }
      return new SqliteBackend({ dbPath, db, stmts, readOnly, maxValueBytes, busyTimeoutMs, fileId });
    } catch (e) {
      await closeQuietly(db);
      if (e instanceof BackendError) throw e;
      throw SqliteBackend.openError(e, where, 'cannot open');
    }
  }

  /** Creates missing parent directories (0700) and the file itself (0600, so -wal/-shm get 0600 too). */
  private static async prepareFile(dbPath: string, where: string): Promise<void> {
    const dir = path.dirname(dbPath);
    try {
      const st = await fs.stat(dbPath);
      if (st.isDirectory()) throw new BackendError('UNAVAILABLE', `${where}: the path is a directory, not a database file`);
      return;
    } catch (e) {
      if (e instanceof BackendError) throw e;
      if (sqliteCode(e) !== 'ENOENT') throw new BackendError('UNAVAILABLE', `${where}: cannot access the file: ${fsReason(e)}`, { cause: e });
    }
    try {
      await fs.stat(dir);
    } catch (e) {
      if (sqliteCode(e) !== 'ENOENT') throw new BackendError('UNAVAILABLE', `${where}: cannot access directory ${dir}: ${fsReason(e)}`, { cause: e });
      try {
        await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
      } catch (e2) {
        throw new BackendError('UNAVAILABLE', `${where}: cannot create directory ${dir}: ${fsReason(e2)}`, { cause: e2 });
      }
    }
    try {
      const handle = await fs.open(dbPath, 'wx', FILE_MODE);
      await handle.close();
    } catch (e) {
      if (sqliteCode(e) === 'EEXIST') return; // created concurrently by another process
      throw new BackendError('UNAVAILABLE', `${where}: cannot create the database file: ${fsReason(e)}`, { cause: e });
    }
  }

  /**
   * Opens the connection. On a read-only file system a WAL database whose -wal/-shm files are absent
   * cannot be read normally (SQLite cannot create the shared-memory file): when a read-only database
   * is acceptable and there is no WAL content to replay, it is reopened with `immutable=1`.
   */
  private static async connect(dbPath: string, where: string, deadline: number, requireWritable: boolean): Promise<OpenState> {
    const mode = sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_FULLMUTEX;
    let db: sqlite3.Database;
    try {
      db = await openDatabase(dbPath, mode);
    } catch (e) {
      throw SqliteBackend.openError(e, where, 'cannot open');
    }
    db.configure('busyTimeout', 0); // see retryBusy
    try {
      // The first statement to read the file: garbage → SQLITE_NOTADB here.
      await retryBusy(deadline, () => dbAll(db, 'SELECT count(*) FROM sqlite_schema'));
      return { db, readOnly: false };
    } catch (e) {
      await closeQuietly(db);
      if (sqliteCode(e) !== 'SQLITE_CANTOPEN') throw SqliteBackend.openError(e, where, 'cannot open');
      // The usual cause: a WAL database in a directory where <db>-shm cannot be created.
      const refusal = await SqliteBackend.writeRefusal(dbPath);
      if (refusal === null) throw SqliteBackend.openError(e, where, 'cannot open');
      if (requireWritable) throw SqliteBackend.readOnlyError(where, refusal);
    }
    // Read-only fallback (requireWritable = false), only when no WAL file holds committed
    // transactions that `immutable` would ignore.
    const walBytes = await fs.stat(`${dbPath}-wal`).then(
      (st) => st.size,
      () => 0,
    );
    if (walBytes > 0) {
      throw new BackendError(
        'UNAVAILABLE',
        `${where}: cannot open read-only (SQLITE_CANTOPEN: unable to open database file): ${dbPath}-wal holds ` +
          `${walBytes} bytes of transactions but ${dbPath}-shm cannot be created or read`,
      );
    }
    const uri = `file:${encodeURI(dbPath).replace(/[?#]/g, encodeURIComponent)}?immutable=1`;
    try {
      db = await openDatabase(uri, sqlite3.OPEN_READONLY | sqlite3.OPEN_URI | sqlite3.OPEN_FULLMUTEX);
    } catch (e) {
      throw SqliteBackend.openError(e, where, 'cannot open read-only');
    }
    db.configure('busyTimeout', 0);
    return { db, readOnly: true };
  }

  /** Why the file or its directory cannot be written (access(2) reports EROFS even to root), or null. */
  private static async writeRefusal(dbPath: string): Promise<string | null> {
    for (const target of [dbPath, path.dirname(dbPath)]) {
      try {
        await fs.access(target, fs.constants.W_OK);
      } catch (e) {
        return `${target}: ${fsReason(e)}`;
      }
    }
    return null;
  }

  private static readOnlyError(where: string, why: string): BackendError {
    return new BackendError(
      'UNAVAILABLE',
      `${where} is read-only (${why}): the KBS must be able to write resources ` +
        '(WAL mode also needs to create <db>-wal and <db>-shm next to the database)',
    );
  }

  private static async quickCheck(db: sqlite3.Database, where: string, deadline: number): Promise<void> {
    let rows: Row[];
    try {
      rows = await retryBusy(deadline, () => dbAll(db, 'PRAGMA quick_check(10)'));
    } catch (e) {
      throw SqliteBackend.openError(e, where, 'integrity check failed');
    }
    const problems = rows.map((r) => String(Object.values(r)[0]));
    if (problems.length !== 1 || problems[0] !== 'ok') {
      throw new BackendError(
        'UNAVAILABLE',
        `${where} is corrupt (PRAGMA quick_check: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? '; …' : ''}); ` +
          'restore it from a backup',
      );
    }
  }

  private static async userVersion(db: sqlite3.Database, where: string, deadline: number): Promise<number> {
    try {
      const rows = await retryBusy(deadline, () => dbAll(db, 'PRAGMA user_version'));
      return Number(rows[0]?.['user_version'] ?? 0);
    } catch (e) {
      throw SqliteBackend.openError(e, where, 'cannot read the schema version');
    }
  }

  private static async exec(db: sqlite3.Database, sql: string, where: string): Promise<void> {
    try {
      await dbExec(db, sql);
    } catch (e) {
      throw SqliteBackend.openError(e, where, `${sql} failed`);
    }
  }

  /**
   * Brings the schema to SQLITE_SCHEMA_VERSION in one IMMEDIATE transaction (so two processes
   * opening the same new file migrate once). Resolves true when the database turned out read-only.
   */
  private static async migrate(db: sqlite3.Database, where: string, deadline: number): Promise<boolean> {
    try {
      await retryBusy(deadline, () => dbExec(db, 'BEGIN IMMEDIATE'));
    } catch (e) {
      if (sqliteCode(e) === 'SQLITE_READONLY') return true;
      throw SqliteBackend.openError(e, where, 'cannot start the schema migration');
    }
    // Holding the write lock of a WAL database, the statements below do not wait for anyone.
    try {
      // Re-read under the write lock: another process may have migrated meanwhile.
      const from = Number((await dbAll(db, 'PRAGMA user_version'))[0]?.['user_version'] ?? 0);
      if (from > SQLITE_SCHEMA_VERSION) {
        throw new BackendError('UNAVAILABLE', `${where} was migrated to schema version ${from} by a newer KBS while opening`);
      }
      for (let v = from + 1; v <= SQLITE_SCHEMA_VERSION; v++) {
        await dbExec(db, MIGRATIONS[v - 1]!);
      }
      if (from < SQLITE_SCHEMA_VERSION) await dbExec(db, `PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
      await dbExec(db, 'COMMIT');
      return false;
    } catch (e) {
      try {
        await dbExec(db, 'ROLLBACK');
      } catch {
        /* SQLite may have rolled back already (e.g. after SQLITE_FULL) */
      }
      if (sqliteCode(e) === 'SQLITE_READONLY') return true;
      if (e instanceof BackendError) throw e;
      throw SqliteBackend.openError(e, where, 'schema migration failed (rolled back)');
    }
  }

  /** A no-op write: SQLITE_READONLY means the file, directory or file system refuses writes. */
  private static async probeReadOnly(db: sqlite3.Database, where: string, deadline: number): Promise<boolean> {
    try {
      await retryBusy(deadline, () => dbExec(db, PROBE_WRITE_SQL));
      return false;
    } catch (e) {
      if (sqliteCode(e) === 'SQLITE_READONLY') return true;
      throw SqliteBackend.openError(e, where, 'write probe failed');
    }
  }

  private static openError(e: unknown, where: string, what: string): BackendError {
    if (e instanceof BackendError) return e;
    const code = sqliteCode(e);
    const detail = messageOf(e);
    if (code !== undefined && CORRUPT_CODES.has(code)) {
      return new BackendError('UNAVAILABLE', `${where} is corrupt or not an SQLite database (${detail}); restore it from a backup`, { cause: e });
    }
    if (code === 'SQLITE_CANTOPEN') {
      return new BackendError(
        'UNAVAILABLE',
        `${where}: ${what} (${detail}): check that the file and its directory exist and are readable, and that the ` +
          'directory is writable (WAL mode creates <db>-wal and <db>-shm next to the database)',
        { cause: e },
      );
    }
    if (code !== undefined && BUSY_CODES.has(code)) {
      return new BackendError('UNAVAILABLE', `${where}: ${what}: the database stayed locked by another connection (${detail})`, { cause: e });
    }
    if (code === 'SQLITE_FULL') {
      return new BackendError('UNAVAILABLE', `${where}: ${what}: disk full (${detail})`, { cause: e });
    }
    return new BackendError('UNAVAILABLE', `${where}: ${what} (${detail})`, { cause: e });
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

  /** Maps a failure of a request's statement. Messages name the resource and file, never values. */
  private requestError(e: unknown, name: string, action: 'read' | 'write' | 'delete' | 'list'): BackendError {
    if (e instanceof BackendError) return e;
    const code = sqliteCode(e);
    const detail = messageOf(e);
    const subject = action === 'list' ? `cannot list resources` : `cannot ${action} resource ${name}`;
    const where = `Sqlite database ${this.dbPath}`;
    switch (code) {
      case 'SQLITE_FULL':
        return new BackendError(
          'IO',
          `${subject}: disk full in ${where} (${detail}); ` +
            (action === 'write' ? 'nothing was written, the previous value (if any) is unchanged' : 'the resource is unchanged'),
          { cause: e },
        );
      case 'SQLITE_READONLY':
      case 'SQLITE_PERM':
        return new BackendError('READ_ONLY', `${subject}: ${where} refuses writes (${detail})`, { cause: e });
      case 'SQLITE_BUSY':
      case 'SQLITE_LOCKED':
        return new BackendError(
          'UNAVAILABLE',
          `${subject}: ${where} stayed locked by another connection for more than busy_timeout = ${this.busyTimeoutMs} ms (${detail})`,
          { cause: e },
        );
      case 'SQLITE_CORRUPT':
      case 'SQLITE_NOTADB':
        return new BackendError('UNAVAILABLE', `${subject}: ${where} is corrupt (${detail}); restore it from a backup`, { cause: e });
      case 'SQLITE_CANTOPEN':
        return new BackendError('UNAVAILABLE', `${subject}: ${where} cannot be opened any more (${detail})`, { cause: e });
      case 'SQLITE_TOOBIG':
        return new BackendError('TOO_LARGE', `${subject}: value above SQLite's size limit (${detail})`, { cause: e });
      default:
        return new BackendError('IO', `${subject} in ${where} (${detail})`, { cause: e });
    }
  }

  /**
   * Runs one request's statement(s) with at most MAX_IN_FLIGHT of them on the pool. When a slot is
   * free, `fn` starts synchronously, in the caller's tick.
   */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      this.ensureOpen(); // closed while waiting
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next(); // hand the slot over
      else this.inFlight--;
    }
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
        throw this.requestError(e, name, 'read');
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
      this.inFlight < MAX_IN_FLIGHT ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.from(value);
    await this.limited(async () => {
      try {
        await stmtRun(this.stmts.upsert, [rp.repo, rp.type, rp.tag, Date.now(), blob]);
      } catch (e) {
        throw this.requestError(e, name, 'write');
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
        throw this.requestError(e, name, 'delete');
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
        throw this.requestError(e, '', 'list');
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
