/**
 * Opening the Sqlite backend's database file (see sqlite.ts for the rules): creating the file and
 * its directory, the connection (with the `immutable=1` read-only fallback), `PRAGMA quick_check`,
 * the schema version and forward migrations, WAL and the per-connection pragmas, the writability
 * probe, and preparing the statements. Every failure is a BackendError naming the file.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import sqlite3 from 'sqlite3';
import { BackendError } from './types.js';
import { MIGRATIONS, PROBE_WRITE_SQL, SQLITE_SCHEMA_VERSION, SQLITE_STATEMENTS, type StatementName } from './sqlite-schema.js';
import { closeQuietly, dbAll, dbExec, finalize, openDatabase, prepare, retryBusy, SQLITE_MAX_BLOB_BYTES, type Row } from './sqlite-driver.js';
import { fsReason, openError, readOnlyError, sqliteCode } from './sqlite-errors.js';

/** Reads never load more than this much, even with a smaller maxValueBytes (schema text, messages). */
const MIN_LENGTH_LIMIT = 1024 * 1024;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface OpenedDatabase {
  db: sqlite3.Database;
  stmts: Record<StatementName, sqlite3.Statement>;
  readOnly: boolean;
  /** Identity of the file opened, to notice it being deleted or replaced underneath. */
  fileId: { dev: number; ino: number };
}

/** Opens `dbPath` (absolute) with validated options; on failure nothing stays open. */
export async function openDatabaseFile(o: {
  dbPath: string;
  maxValueBytes: number;
  busyTimeoutMs: number;
  requireWritable: boolean;
}): Promise<OpenedDatabase> {
  const { dbPath, maxValueBytes, busyTimeoutMs, requireWritable } = o;
  const where = `Sqlite database ${dbPath}`;

  await prepareFile(dbPath, where);

  const deadline = Date.now() + busyTimeoutMs;
  const state = await connect(dbPath, where, deadline, requireWritable);
  const { db } = state;
  let readOnly = state.readOnly;
  try {
    await quickCheck(db, where, deadline);

    const version = await userVersion(db, where, deadline);
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
        if (sqliteCode(e) !== 'SQLITE_READONLY') throw openError(e, where, 'cannot switch to WAL journal mode');
        readOnly = true;
      }
    }
    if (!readOnly && version < SQLITE_SCHEMA_VERSION) {
      readOnly = await migrate(db, where, deadline);
    }
    if (!readOnly) readOnly = await probeReadOnly(db, where, deadline);
    if (readOnly) {
      if (requireWritable) {
        throw readOnlyError(where, (await writeRefusal(dbPath)) ?? 'SQLITE_READONLY: attempt to write a readonly database');
      }
      const current = await userVersion(db, where, deadline);
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
      await exec(db, 'PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;', where);
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
        throw openError(e, where, `cannot prepare the ${name} statement (unexpected schema?)`);
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
    return { db, stmts, readOnly, fileId };
  } catch (e) {
    await closeQuietly(db);
    if (e instanceof BackendError) throw e;
    throw openError(e, where, 'cannot open');
  }
}

/** Creates missing parent directories (0700) and the file itself (0600, so -wal/-shm get 0600 too). */
async function prepareFile(dbPath: string, where: string): Promise<void> {
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
async function connect(
  dbPath: string,
  where: string,
  deadline: number,
  requireWritable: boolean,
): Promise<{ db: sqlite3.Database; readOnly: boolean }> {
  const mode = sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_FULLMUTEX;
  let db: sqlite3.Database;
  try {
    db = await openDatabase(dbPath, mode);
  } catch (e) {
    throw openError(e, where, 'cannot open');
  }
  db.configure('busyTimeout', 0); // see retryBusy
  try {
    // The first statement to read the file: garbage → SQLITE_NOTADB here.
    await retryBusy(deadline, () => dbAll(db, 'SELECT count(*) FROM sqlite_schema'));
    return { db, readOnly: false };
  } catch (e) {
    await closeQuietly(db);
    if (sqliteCode(e) !== 'SQLITE_CANTOPEN') throw openError(e, where, 'cannot open');
    // The usual cause: a WAL database in a directory where <db>-shm cannot be created.
    const refusal = await writeRefusal(dbPath);
    if (refusal === null) throw openError(e, where, 'cannot open');
    if (requireWritable) throw readOnlyError(where, refusal);
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
    throw openError(e, where, 'cannot open read-only');
  }
  db.configure('busyTimeout', 0);
  return { db, readOnly: true };
}

/** Why the file or its directory cannot be written (access(2) reports EROFS even to root), or null. */
async function writeRefusal(dbPath: string): Promise<string | null> {
  for (const target of [dbPath, path.dirname(dbPath)]) {
    try {
      await fs.access(target, fs.constants.W_OK);
    } catch (e) {
      return `${target}: ${fsReason(e)}`;
    }
  }
  return null;
}

async function quickCheck(db: sqlite3.Database, where: string, deadline: number): Promise<void> {
  let rows: Row[];
  try {
    rows = await retryBusy(deadline, () => dbAll(db, 'PRAGMA quick_check(10)'));
  } catch (e) {
    throw openError(e, where, 'integrity check failed');
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

async function userVersion(db: sqlite3.Database, where: string, deadline: number): Promise<number> {
  try {
    const rows = await retryBusy(deadline, () => dbAll(db, 'PRAGMA user_version'));
    return Number(rows[0]?.['user_version'] ?? 0);
  } catch (e) {
    throw openError(e, where, 'cannot read the schema version');
  }
}

async function exec(db: sqlite3.Database, sql: string, where: string): Promise<void> {
  try {
    await dbExec(db, sql);
  } catch (e) {
    throw openError(e, where, `${sql} failed`);
  }
}

/**
 * Brings the schema to SQLITE_SCHEMA_VERSION in one IMMEDIATE transaction (so two processes
 * opening the same new file migrate once). Resolves true when the database turned out read-only.
 */
async function migrate(db: sqlite3.Database, where: string, deadline: number): Promise<boolean> {
  try {
    await retryBusy(deadline, () => dbExec(db, 'BEGIN IMMEDIATE'));
  } catch (e) {
    if (sqliteCode(e) === 'SQLITE_READONLY') return true;
    throw openError(e, where, 'cannot start the schema migration');
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
    throw openError(e, where, 'schema migration failed (rolled back)');
  }
}

/** A no-op write: SQLITE_READONLY means the file, directory or file system refuses writes. */
async function probeReadOnly(db: sqlite3.Database, where: string, deadline: number): Promise<boolean> {
  try {
    await retryBusy(deadline, () => dbExec(db, PROBE_WRITE_SQL));
    return false;
  } catch (e) {
    if (sqliteCode(e) === 'SQLITE_READONLY') return true;
    throw openError(e, where, 'write probe failed');
  }
}
