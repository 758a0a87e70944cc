/**
 * The SQL of the Sqlite backend (sqlite.ts): the schema version, the forward migrations that build
 * the schema, and every statement prepared at open. Nothing here touches a database.
 */

/** The schema version this code writes and reads (`PRAGMA user_version`). */
export const SQLITE_SCHEMA_VERSION = 1;

/**
 * Forward migrations: MIGRATIONS[n - 1] takes the schema from version n - 1 to n. Append only;
 * never edit a released step.
 */
export const MIGRATIONS: readonly string[] = [
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

if (MIGRATIONS.length !== SQLITE_SCHEMA_VERSION) throw new Error('sqlite-schema.ts: MIGRATIONS and SQLITE_SCHEMA_VERSION disagree');

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

export type StatementName = keyof typeof SQLITE_STATEMENTS;

/** Run once at open: a write that changes nothing; SQLITE_READONLY tells a read-only database apart. */
export const PROBE_WRITE_SQL = 'DELETE FROM resources WHERE 0';
