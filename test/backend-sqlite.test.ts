/**
 * Sqlite: the shared backend contract on a temp database file, then what is specific to SQLite:
 * pragmas in effect on the backend's own connection (WAL, synchronous = FULL, busy_timeout),
 * schema version and migrations, corrupt and foreign files refused at open, created/updated times,
 * list never reading values, several connections on one file (mixed values, busy waits, stale
 * snapshots), disk full and read-only storage.
 *
 * The backend's connection is observed through a spy on node-sqlite3's prototypes (installed once
 * below): it records the SQL each connection runs and keeps the connection objects by file name so
 * a test can ask SQLite itself what is in effect (`PRAGMA synchronous` is per connection and
 * cannot be read from another one).
 *
 * Disk full and read-only mounts need real ENOSPC/EROFS. Tests usually run as root, where chmod
 * does not stop writes, so those cases run the backend in a child process inside a private mount
 * namespace (`unshare -m`) with a tiny tmpfs or a read-only bind mount, or as `nobody` on a 0444
 * file. The mounts exist only in the child's namespace. Run as a normal user they are skipped. The
 * child process and the mounts come from helpers/fs-backend-child.ts and helpers/namespaces.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import sqlite3 from 'sqlite3';
import {
  SQLITE_SCHEMA_VERSION,
  SQLITE_STATEMENTS,
  SqliteBackend,
  openBackend,
  resourcePathFromString,
  type ResourcePath,
} from '../backends/index.js';
import { backendContract, expectBackendError } from './backend-contract.js';
import { runChild } from './helpers/fs-backend-child.js';
import { canDropPrivileges, canUnshareMount, NOBODY, readOnlyBindMount, tmpfsMount } from './helpers/namespaces.js';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const rp = (s: string): ResourcePath => resourcePathFromString(s);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function makeBase(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'kbs-sqlite-'));
}

async function withDb(
  t: ExecutionContext,
  fn: (ctx: { base: string; dbPath: string; backend: SqliteBackend }) => Promise<void>,
  options: { maxValueBytes?: number; busyTimeoutMs?: number } = {},
): Promise<void> {
  const base = await makeBase();
  const dbPath = path.join(base, 'kbs.db');
  const backend = await SqliteBackend.open({ dbPath, ...options });
  try {
    await fn({ base, dbPath, backend });
  } finally {
    await backend.close();
    await fs.rm(base, { recursive: true, force: true });
  }
  t.pass();
}

// ---------------------------------------------------------------------------------------------------
// Spy on node-sqlite3 (the backend imports the same CommonJS module, hence the same prototypes).

type Method = (this: unknown, ...args: unknown[]) => unknown;
const connections = new Map<string, sqlite3.Database>();
const statementOwner = new WeakMap<object, sqlite3.Database>();
const sqlLog = new WeakMap<sqlite3.Database, string[]>();

function record(db: sqlite3.Database | undefined, sql: unknown): void {
  if (db === undefined || typeof sql !== 'string') return;
  let log = sqlLog.get(db);
  if (log === undefined) sqlLog.set(db, (log = []));
  log.push(sql);
}

{
  const dbProto = sqlite3.Database.prototype as unknown as Record<string, Method>;
  const stmtProto = sqlite3.Statement.prototype as unknown as Record<string, Method>;
  const prepare = dbProto['prepare']!;
  dbProto['prepare'] = function (this: unknown, ...args: unknown[]): unknown {
    const db = this as sqlite3.Database;
    connections.set((db as unknown as { filename: string }).filename, db);
    record(db, args[0]);
    const stmt = prepare.apply(this, args);
    statementOwner.set(stmt as object, db);
    return stmt;
  };
  for (const name of ['all', 'get', 'run', 'each', 'exec']) {
    const original = dbProto[name]!;
    dbProto[name] = function (this: unknown, ...args: unknown[]): unknown {
      record(this as sqlite3.Database, args[0]);
      return original.apply(this, args);
    };
  }
  for (const name of ['all', 'get', 'run', 'each']) {
    const original = stmtProto[name]!;
    stmtProto[name] = function (this: unknown, ...args: unknown[]): unknown {
      // Statements made internally by Database#all etc. have no owner here: already recorded above.
      record(statementOwner.get(this as object), (this as { sql?: unknown }).sql);
      return original.apply(this, args);
    };
  }
}

/** The backend's own connection (it prepares its statements on it at open). */
function connectionOf(dbPath: string): sqlite3.Database {
  const db = connections.get(dbPath);
  if (db === undefined) throw new Error(`no connection seen for ${dbPath}`);
  return db;
}

/** SQL run on `db` while `fn` runs. */
async function sqlDuring(db: sqlite3.Database, fn: () => Promise<unknown>): Promise<string[]> {
  const before = sqlLog.get(db)?.length ?? 0;
  await fn();
  return (sqlLog.get(db) ?? []).slice(before);
}

// Plain connections for setting up and inspecting files.
function rawOpen(file: string): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (err) => (err ? reject(err) : resolve(db)));
  });
}
function q(db: sqlite3.Database, sql: string, params: unknown[] = []): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    db.all<Record<string, unknown>>(sql, params, (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}
function rawExec(db: sqlite3.Database, sql: string): Promise<void> {
  return new Promise((resolve, reject) => db.exec(sql, (err) => (err ? reject(err) : resolve())));
}
function rawClose(db: sqlite3.Database): Promise<void> {
  return new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())));
}
async function withRaw<T>(file: string, fn: (db: sqlite3.Database) => Promise<T>): Promise<T> {
  const db = await rawOpen(file);
  try {
    return await fn(db);
  } finally {
    await rawClose(db);
  }
}

const b64 = (s: string | Uint8Array): string => Buffer.from(s).toString('base64');

// ---------------------------------------------------------------------------------------------------
// The shared contract.

backendContract('Sqlite', async () => {
  const base = await makeBase();
  const backend = await SqliteBackend.open({ dbPath: path.join(base, 'kbs.db') });
  return { backend, cleanup: () => fs.rm(base, { recursive: true, force: true }) };
});

// ---------------------------------------------------------------------------------------------------
// Open, pragmas, schema.

test('Sqlite: WAL, synchronous=FULL, busy_timeout and secure_delete are in effect on the backend connection', (t) =>
  withDb(
    t,
    async ({ dbPath, backend }) => {
      t.is(backend.kind, 'Sqlite');
      t.false(backend.readOnly);
      t.is(backend.busyTimeoutMs, 1234);
      const db = connectionOf(dbPath);
      t.deepEqual(await q(db, 'PRAGMA journal_mode'), [{ journal_mode: 'wal' }]);
      t.deepEqual(await q(db, 'PRAGMA synchronous'), [{ synchronous: 2 }], 'FULL = 2');
      // FULL is also SQLite's compiled-in default; the backend sets it explicitly in case a build differs.
      t.true((sqlLog.get(db) ?? []).some((sql) => /PRAGMA synchronous = FULL/.test(sql)));
      t.deepEqual(await q(db, 'PRAGMA busy_timeout'), [{ timeout: 1234 }]);
      t.deepEqual(await q(db, 'PRAGMA secure_delete'), [{ secure_delete: 1 }]);
      // After a write the WAL file exists next to the database (the mode is really WAL, not just reported).
      await backend.put(rp('default/key/k'), enc('v'));
      t.true((await fs.stat(`${dbPath}-wal`)).isFile());
      // Persistent in the file: a fresh connection sees WAL too.
      t.deepEqual(await withRaw(dbPath, (raw) => q(raw, 'PRAGMA journal_mode')), [{ journal_mode: 'wal' }]);
    },
    { busyTimeoutMs: 1234 },
  ));

test('Sqlite: default busy_timeout is 5000 ms', (t) =>
  withDb(t, async ({ dbPath, backend }) => {
    t.is(backend.busyTimeoutMs, 5000);
    t.deepEqual(await q(connectionOf(dbPath), 'PRAGMA busy_timeout'), [{ timeout: 5000 }]);
  }));

test('Sqlite: a new database gets user_version and the resources table; files 0600 in a created 0700 directory', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'a', 'b', 'kbs.db');
    const backend = await SqliteBackend.open({ dbPath });
    await backend.put(rp('default/key/k'), enc('v'));
    t.is((await fs.stat(path.join(base, 'a', 'b'))).mode & 0o777, 0o700);
    t.is((await fs.stat(dbPath)).mode & 0o777, 0o600);
    t.is((await fs.stat(`${dbPath}-wal`)).mode & 0o777, 0o600, 'SQLite gives -wal the mode of the database file');
    await backend.close();
    await withRaw(dbPath, async (raw) => {
      t.deepEqual(await q(raw, 'PRAGMA user_version'), [{ user_version: SQLITE_SCHEMA_VERSION }]);
      t.is(SQLITE_SCHEMA_VERSION, 1);
      const columns = await q(raw, 'SELECT name, type, pk FROM pragma_table_info(?)', ['resources']);
      t.deepEqual(columns, [
        { name: 'repo', type: 'TEXT', pk: 1 },
        { name: 'type', type: 'TEXT', pk: 2 },
        { name: 'tag', type: 'TEXT', pk: 3 },
        { name: 'created_at', type: 'INTEGER', pk: 0 },
        { name: 'updated_at', type: 'INTEGER', pk: 0 },
        { name: 'value', type: 'BLOB', pk: 0 },
      ]);
      t.deepEqual(await q(raw, 'SELECT repo, type, tag, value FROM resources'), [
        { repo: 'default', type: 'key', tag: 'k', value: enc('v') },
      ]);
    });
    // Reopening an up-to-date file changes nothing and keeps the data.
    const again = await SqliteBackend.open({ dbPath });
    t.deepEqual(await again.get(rp('default/key/k')), enc('v'));
    await again.close();
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a database with a newer schema version is refused at open and left untouched', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const backend = await SqliteBackend.open({ dbPath });
    await backend.put(rp('default/key/k'), enc('kept'));
    await backend.close();
    await withRaw(dbPath, (raw) => rawExec(raw, `PRAGMA user_version = ${SQLITE_SCHEMA_VERSION + 1}`));
    const err = await expectBackendError(t, SqliteBackend.open({ dbPath }), 'UNAVAILABLE');
    t.regex(err.message, /schema version 2, newer than the 1 this KBS knows/);
    t.true(err.message.includes(dbPath));
    await expectBackendError(t, SqliteBackend.open({ dbPath, requireWritable: false }), 'UNAVAILABLE');
    await withRaw(dbPath, async (raw) => {
      t.deepEqual(await q(raw, 'PRAGMA user_version'), [{ user_version: 2 }]);
      t.deepEqual(await q(raw, 'SELECT value FROM resources'), [{ value: enc('kept') }]);
    });
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a foreign database at user_version 0 with its own resources table: migration fails and rolls back', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'other.db');
    await withRaw(dbPath, (raw) => rawExec(raw, 'CREATE TABLE resources (x TEXT); CREATE TABLE other (y);'));
    const err = await expectBackendError(t, SqliteBackend.open({ dbPath }), 'UNAVAILABLE');
    t.regex(err.message, /schema migration failed \(rolled back\).*table resources already exists/);
    await withRaw(dbPath, async (raw) => {
      t.deepEqual(await q(raw, 'PRAGMA user_version'), [{ user_version: 0 }]);
      t.deepEqual(await q(raw, 'SELECT name FROM pragma_table_info(?)', ['resources']), [{ name: 'x' }]);
    });
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: six backends opening the same new file at once migrate it once, without waiting out busy_timeout', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    // More openers than libuv pool threads (4): waits in SQLite's busy handler would park every
    // thread while the migrating connection needs one to commit, until busy_timeout (5 s) expires.
    // Without retries, `journal_mode = WAL` also fails at once with SQLITE_BUSY now and then.
    const start = Date.now();
    const backends = await Promise.all([1, 2, 3, 4, 5, 6].map(() => SqliteBackend.open({ dbPath })));
    t.true(Date.now() - start < 4_000, `opening took ${Date.now() - start} ms`);
    await backends[0]!.put(rp('a/b/c'), enc('x'));
    for (const b of backends) t.deepEqual(await b.get(rp('a/b/c')), enc('x'));
    await Promise.all(backends.map((b) => b.close()));
    t.deepEqual(await withRaw(dbPath, (raw) => q(raw, 'PRAGMA user_version')), [{ user_version: 1 }]);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a file of garbage bytes is refused at open with a clear message and not modified', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'garbage.db');
    const garbage = randomBytes(16 * 1024);
    await fs.writeFile(dbPath, garbage);
    const err = await expectBackendError(t, SqliteBackend.open({ dbPath }), 'UNAVAILABLE');
    t.regex(err.message, /is corrupt or not an SQLite database \(SQLITE_NOTADB: file is not a database\); restore it from a backup/);
    t.true(err.message.includes(dbPath));
    await expectBackendError(t, SqliteBackend.open({ dbPath, requireWritable: false }), 'UNAVAILABLE');
    t.deepEqual(await fs.readFile(dbPath), garbage);
    const text = path.join(base, 'notes.txt');
    await fs.writeFile(text, 'this is a text file, not a database\n'.repeat(20));
    await expectBackendError(t, SqliteBackend.open({ dbPath: text }), 'UNAVAILABLE');
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a database with garbage in its pages is refused at open (quick_check)', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const backend = await SqliteBackend.open({ dbPath });
    for (let i = 0; i < 200; i++) await backend.put(rp(`default/key/k${i}`), randomBytes(900));
    await backend.close(); // checkpoints: everything is in the main file now
    const pageSize = 4096;
    const { size } = await fs.stat(dbPath);
    t.true(size > 20 * pageSize);
    // Overwrite a few b-tree pages (not page 1, so the header still says "SQLite format 3").
    const handle = await fs.open(dbPath, 'r+');
    for (const page of [3, 10, 20]) await handle.write(randomBytes(pageSize), 0, pageSize, (page - 1) * pageSize);
    await handle.close();
    const err = await expectBackendError(t, SqliteBackend.open({ dbPath }), 'UNAVAILABLE');
    t.regex(err.message, /is corrupt|not an SQLite database/);
    t.regex(err.message, /restore it from a backup/);
    t.true(err.message.includes(dbPath));
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: open refuses a directory, an impossible path and bad options', async (t) => {
  const base = await makeBase();
  try {
    let err = await expectBackendError(t, SqliteBackend.open({ dbPath: base }), 'UNAVAILABLE');
    t.regex(err.message, /is a directory/);
    await fs.writeFile(path.join(base, 'file'), 'x');
    err = await expectBackendError(t, SqliteBackend.open({ dbPath: path.join(base, 'file', 'kbs.db') }), 'UNAVAILABLE');
    t.regex(err.message, /ENOTDIR/);
    await expectBackendError(t, SqliteBackend.open({ dbPath: '' }), 'UNAVAILABLE');
    await t.throwsAsync(SqliteBackend.open({ dbPath: path.join(base, 'x.db'), maxValueBytes: -1 }), { instanceOf: RangeError });
    await t.throwsAsync(SqliteBackend.open({ dbPath: path.join(base, 'x.db'), busyTimeoutMs: 1.5 }), { instanceOf: RangeError });
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: openBackend picks Sqlite from configuration', async (t) => {
  const base = await makeBase();
  try {
    const backend = await openBackend({ type: 'Sqlite', dbPath: path.join(base, 'kbs.db'), maxValueBytes: 10 });
    t.is(backend.kind, 'Sqlite');
    t.true(backend instanceof SqliteBackend);
    await backend.put(rp('a/b/c'), new Uint8Array(10));
    const err = await expectBackendError(t, backend.put(rp('a/b/c'), new Uint8Array(11)), 'TOO_LARGE');
    t.regex(err.message, /11 bytes, above the limit of 10 bytes/);
    await backend.close();
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------
// Rows.

test('Sqlite: overwrite keeps created_at and moves updated_at; list reports updated_at', (t) =>
  withDb(t, async ({ dbPath, backend }) => {
    const p = rp('default/key/times');
    const before = Date.now();
    await backend.put(p, enc('first'));
    await sleep(25);
    await backend.put(p, enc('second'));
    const times = async (): Promise<{ created_at: number; updated_at: number }> => {
      const rows = await withRaw(dbPath, (raw) => q(raw, 'SELECT created_at, updated_at FROM resources WHERE tag = ?', ['times']));
      return rows[0] as { created_at: number; updated_at: number };
    };
    const t1 = await times();
    t.true(t1.created_at >= before && t1.created_at <= Date.now());
    t.true(t1.updated_at >= t1.created_at + 20, `updated_at ${t1.updated_at} should be later than created_at ${t1.created_at}`);
    await sleep(25);
    await backend.put(p, enc('third'));
    const t2 = await times();
    t.is(t2.created_at, t1.created_at);
    t.true(t2.updated_at >= t1.updated_at + 20);
    const [info] = await backend.list();
    t.is(info?.updatedAt.getTime(), t2.updated_at);
    // Delete then write again: a new resource, a new created_at.
    await sleep(5);
    await backend.delete(p);
    await backend.put(p, enc('fourth'));
    t.true((await times()).created_at > t1.created_at);
  }));

test('Sqlite: list runs no SQL that reads values (spy on the statements)', (t) =>
  withDb(t, async ({ dbPath, backend }) => {
    await backend.put(rp('default/key/a'), enc('AAAA'));
    await backend.put(rp('default/key/b'), randomBytes(100_000));
    const db = connectionOf(dbPath);
    const readsValue = (sql: string): boolean => /\bvalue\b/i.test(sql.replace(/length\(value\)/gi, ''));

    const getSql = await sqlDuring(db, () => backend.get(rp('default/key/a')));
    t.true(getSql.length > 0 && getSql.some(readsValue), 'the spy sees get() selecting the value');

    const listSql = await sqlDuring(db, async () => {
      t.deepEqual(
        (await backend.list()).map((i) => [i.path, i.size]),
        [
          ['default/key/a', 4],
          ['default/key/b', 100_000],
        ],
      );
    });
    t.deepEqual(listSql, [SQLITE_STATEMENTS.list]);
    t.false(listSql.some(readsValue), `list ran ${JSON.stringify(listSql)}`);
  }));

test('Sqlite: list works on values too big for the connection to load; get gives TOO_LARGE', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const writer = await SqliteBackend.open({ dbPath });
    const big = Buffer.alloc(3 * 1024 * 1024, 0x5a);
    await writer.put(rp('default/key/big'), big);
    await writer.put(rp('default/key/mid'), Buffer.alloc(2000, 1));
    await writer.put(rp('default/key/small'), enc('small'));
    // This connection refuses to materialise any BLOB above 1 MiB (SQLITE_LIMIT_LENGTH): selecting
    // the 3 MiB value in list() would fail with SQLITE_TOOBIG.
    const reader = await SqliteBackend.open({ dbPath, maxValueBytes: 1000 });
    try {
      t.deepEqual(
        (await reader.list()).map((i) => [i.path, i.size]),
        [
          ['default/key/big', big.byteLength],
          ['default/key/mid', 2000],
          ['default/key/small', 5],
        ],
      );
      let err = await expectBackendError(t, reader.get(rp('default/key/big')), 'TOO_LARGE');
      t.regex(err.message, /default\/key\/big is 3145728 bytes, above the limit of 1000 bytes/);
      err = await expectBackendError(t, reader.get(rp('default/key/mid')), 'TOO_LARGE');
      t.regex(err.message, /2000 bytes, above the limit of 1000 bytes/);
      t.deepEqual(await reader.get(rp('default/key/small')), enc('small'));
      t.true(big.equals(await writer.get(rp('default/key/big'))), 'the writer still reads it (deepEqual on 3 MiB is slow)');
    } finally {
      await reader.close();
      await writer.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: data persists across close and reopen', (t) =>
  withDb(t, async ({ dbPath, backend }) => {
    await backend.put(rp('default/key/k'), enc('kept'));
    await backend.put(rp('default/key/gone'), enc('x'));
    await backend.delete(rp('default/key/gone'));
    const again = await SqliteBackend.open({ dbPath });
    try {
      t.deepEqual(await again.get(rp('default/key/k')), enc('kept'));
      t.deepEqual(
        (await again.list()).map((i) => i.path),
        ['default/key/k'],
      );
    } finally {
      await again.close();
    }
  }));

test('Sqlite: list is sorted by path like LocalFs, not by (repo, type, tag)', (t) =>
  withDb(t, async ({ backend }) => {
    // '-' (0x2d) sorts before '/' (0x2f): "a-b/…" comes before "a/…" as a path string.
    for (const p of ['a/x/1', 'a-b/x/1', 'a/x-y/1', 'a/x/0']) await backend.put(rp(p), enc(p));
    t.deepEqual(
      (await backend.list()).map((i) => i.path),
      ['a-b/x/1', 'a/x-y/1', 'a/x/0', 'a/x/1'],
    );
  }));

test('Sqlite: check() reports UNAVAILABLE when the database file is deleted or replaced', (t) =>
  withDb(t, async ({ base, dbPath, backend }) => {
    await t.notThrowsAsync(backend.check());
    const other = path.join(base, 'other.db');
    await withRaw(other, (raw) => rawExec(raw, 'CREATE TABLE x (y)'));
    await fs.rename(other, dbPath);
    let err = await expectBackendError(t, backend.check(), 'UNAVAILABLE');
    t.regex(err.message, /was replaced by another file/);
    await fs.rm(dbPath);
    err = await expectBackendError(t, backend.check(), 'UNAVAILABLE');
    t.regex(err.message, /is gone/);
  }));

// ---------------------------------------------------------------------------------------------------
// Several connections on one file.

test('Sqlite: two backends on one file: concurrent writers never produce mixed values, both see the result', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const a = await SqliteBackend.open({ dbPath });
    const b = await SqliteBackend.open({ dbPath });
    try {
      const p = rp('default/race/key');
      const size = 64 * 1024;
      const patterns = Array.from({ length: 16 }, (_, i) => {
        const v = Buffer.alloc(size, i + 1);
        v[0] = i;
        v[size - 1] = i;
        return v;
      });
      const matches = (got: Uint8Array): boolean => patterns.some((v) => v.equals(got));
      await a.put(p, patterns[0]!);
      let torn = 0;
      let reads = 0;
      let writing = true;
      const reader = async (backend: SqliteBackend): Promise<void> => {
        while (writing) {
          if (!matches(await backend.get(p))) torn++;
          reads++;
        }
      };
      const readers = [reader(a), reader(b), reader(a), reader(b)];
      for (let round = 0; round < 5; round++) {
        await Promise.all(patterns.map((v, i) => (i % 2 === 0 ? a : b).put(p, v)));
        const [fromA, fromB] = [await a.get(p), await b.get(p)];
        t.true(matches(fromA), `round ${round}`);
        t.deepEqual(fromA, fromB, `round ${round}: the two connections disagree`);
      }
      writing = false;
      await Promise.all(readers);
      t.is(torn, 0, `${torn} of ${reads} reads saw a mixed value`);
      // Distinct keys from both connections all land.
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).put(rp(`r/t/k${i}`), enc(`v${i}`))));
      t.is((await a.list()).length, 41);
      t.is((await b.list()).length, 41);
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a connection sees writes made by another one right after its own reads (no pinned snapshot)', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const a = await SqliteBackend.open({ dbPath });
    const b = await SqliteBackend.open({ dbPath });
    try {
      await a.put(rp('r/t/one'), enc('1'));
      t.deepEqual(await a.get(rp('r/t/one')), enc('1')); // a read on A, then a write on B
      await b.put(rp('r/t/two'), enc('2'));
      t.deepEqual(
        (await a.list()).map((i) => i.path),
        ['r/t/one', 'r/t/two'],
      );
      t.deepEqual(await a.get(rp('r/t/two')), enc('2'));
      await b.put(rp('r/t/one'), enc('1b'));
      t.deepEqual(await a.get(rp('r/t/one')), enc('1b'));
      await b.delete(rp('r/t/two'));
      await expectBackendError(t, a.get(rp('r/t/two')), 'NOT_FOUND');
      t.deepEqual(
        (await a.list()).map((i) => i.path),
        ['r/t/one'],
      );
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: a writer waits for another connection s write lock (busy_timeout); reads are not blocked', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const backend = await SqliteBackend.open({ dbPath });
    const impatient = await SqliteBackend.open({ dbPath, busyTimeoutMs: 50 });
    const locker = await rawOpen(dbPath);
    try {
      await backend.put(rp('r/t/k'), enc('before'));
      await rawExec(locker, "BEGIN IMMEDIATE; UPDATE resources SET value = x'00' WHERE 0;");

      // Reads go on during the other connection's write transaction (WAL).
      const readStart = Date.now();
      t.deepEqual(await backend.get(rp('r/t/k')), enc('before'));
      t.true(Date.now() - readStart < 4000, "the read did not wait for the writer (WAL)");

      // busy_timeout = 50 ms: gives up with UNAVAILABLE, nothing written.
      const err = await expectBackendError(t, impatient.put(rp('r/t/k'), enc('impatient')), 'UNAVAILABLE');
      t.regex(err.message, /locked by another connection for more than busy_timeout = 50 ms \(SQLITE_BUSY: database is locked\)/);

      // busy_timeout = 5000 ms: waits until the lock is released, then succeeds.
      const start = Date.now();
      const pending = backend.put(rp('r/t/k'), enc('after'));
      await sleep(300);
      await rawExec(locker, 'COMMIT');
      await pending;
      t.true(Date.now() - start >= 250, 'the put waited for the lock');
      t.deepEqual(await impatient.get(rp('r/t/k')), enc('after'));
      await impatient.put(rp('r/t/k'), enc('impatient, later'));
      t.deepEqual(await backend.get(rp('r/t/k')), enc('impatient, later'));
    } finally {
      await rawClose(locker);
      await impatient.close();
      await backend.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('Sqlite: requests waiting for another connection s lock do not take the whole libuv pool', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const backend = await SqliteBackend.open({ dbPath });
    const locker = await rawOpen(dbPath);
    try {
      await backend.put(rp('r/t/k'), enc('before'));
      await backend.put(rp('r/t/doomed'), enc('x'));
      await rawExec(locker, "BEGIN IMMEDIATE; UPDATE resources SET value = x'00' WHERE 0;");
      // Each prepared statement runs one call at a time, so use several statements.
      const requests: Array<Promise<unknown>> = [
        backend.put(rp('r/t/k1'), enc('v1')),
        backend.get(rp('r/t/k')),
        backend.list(),
        backend.check(),
        backend.delete(rp('r/t/doomed')),
        backend.put(rp('r/t/k2'), enc('v2')),
        backend.get(rp('r/t/k')),
      ];
      await sleep(50);
      // The pool (4 threads by default) serves file system calls meanwhile: at most two of the
      // backend's statements hold a thread (one waiting in the busy handler, one on the connection).
      const start = Date.now();
      await Promise.all(Array.from({ length: 8 }, () => fs.stat(dbPath)));
      const statMs = Date.now() - start;
      await sleep(Math.max(0, 1_000 - statMs));
      await rawExec(locker, 'COMMIT');
      await Promise.all(requests);
      t.true(statMs < 850, `fs.stat waited ${statMs} ms for a pool thread`);
      t.deepEqual(
        (await backend.list()).map((i) => i.path),
        ['r/t/k', 'r/t/k1', 'r/t/k2'],
      );
    } finally {
      await rawClose(locker);
      await backend.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------
// Disk full, read-only storage (child processes; see the header).

const mountTest = canUnshareMount() ? test : test.skip;

mountTest('Sqlite: disk full (SQLITE_FULL) gives IO to the writer and keeps the old value', async (t) => {
  const base = await makeBase();
  try {
    const dir = path.join(base, 'tiny');
    await fs.mkdir(dir);
    const db = path.join(dir, 'kbs.db');
    const big = Buffer.alloc(1024 * 1024, 0x42);
    const r = await runChild(
      [
        { op: 'open', db },
        { op: 'put', path: 'default/key/k', value: b64('old value') },
        { op: 'put', path: 'default/key/k', value: b64(big) },
        { op: 'get', path: 'default/key/k' },
        { op: 'put', path: 'default/key/other', value: b64(big) },
        { op: 'list' },
        { op: 'put', path: 'default/key/small', value: b64('fits') },
        { op: 'get', path: 'default/key/small' },
        { op: 'close' },
        // A new connection (after the WAL was checkpointed and removed) sees the same state.
        { op: 'open', db },
        { op: 'get', path: 'default/key/k' },
        { op: 'list' },
      ],
      { mountSetup: tmpfsMount(dir, '256k') },
    );
    t.like(r[0], { ok: true, readOnly: false });
    t.like(r[1], { ok: true });
    t.like(r[2], { ok: false, name: 'BackendError', code: 'IO' });
    t.regex(r[2]?.message ?? '', /disk full .*SQLITE_FULL.*previous value \(if any\) is unchanged/);
    t.false((r[2]?.message ?? '').includes('BBBB'));
    t.like(r[3], { ok: true, value: b64('old value') });
    t.like(r[4], { ok: false, code: 'IO' });
    t.deepEqual(r[5]?.list, [['default/key/k', 9]]);
    t.like(r[6], { ok: true });
    t.like(r[7], { ok: true, value: b64('fits') });
    t.like(r[8], { ok: true });
    t.like(r[9], { ok: true, readOnly: false });
    t.like(r[10], { ok: true, value: b64('old value') });
    t.deepEqual(r[11]?.list, [
      ['default/key/k', 9],
      ['default/key/small', 4],
    ]);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

mountTest('Sqlite: read-only mount (EROFS): refused by default; with requireWritable=false served read-only', async (t) => {
  const base = await makeBase();
  try {
    const src = path.join(base, 'src');
    const ro = path.join(base, 'ro');
    await fs.mkdir(ro);
    const dbPath = path.join(src, 'kbs.db');
    const seed = await SqliteBackend.open({ dbPath });
    await seed.put(rp('default/key/k'), enc('served'));
    await seed.close(); // clean close: no -wal/-shm left, so SQLite cannot open it normally read-only
    t.deepEqual(await fs.readdir(src), ['kbs.db']);
    const setup = readOnlyBindMount(src, ro);
    const db = path.join(ro, 'kbs.db');

    const r = await runChild(
      [
        { op: 'open', db },
        { op: 'open', db, requireWritable: false },
        { op: 'get', path: 'default/key/k' },
        { op: 'list' },
        { op: 'put', path: 'default/key/k', value: b64('new') },
        { op: 'put', path: 'other/type/x', value: b64('new') },
        { op: 'delete', path: 'default/key/k' },
        { op: 'get', path: 'default/key/k' },
        { op: 'close' },
        { op: 'open', db: path.join(ro, 'missing.db') },
      ],
      { mountSetup: setup },
    );
    t.like(r[0], { ok: false, name: 'BackendError', code: 'UNAVAILABLE' });
    t.regex(r[0]?.message ?? '', /kbs\.db is read-only \(.*read-only file system \(EROFS\)\): the KBS must be able to write resources/);
    t.like(r[1], { ok: true, readOnly: true });
    t.like(r[2], { ok: true, value: b64('served') });
    t.deepEqual(r[3]?.list, [['default/key/k', 6]]);
    t.like(r[4], { ok: false, name: 'BackendError', code: 'READ_ONLY' });
    t.like(r[5], { ok: false, code: 'READ_ONLY' });
    t.like(r[6], { ok: false, code: 'READ_ONLY' });
    t.like(r[7], { ok: true, value: b64('served') });
    t.like(r[9], { ok: false, code: 'UNAVAILABLE' });
    t.regex(r[9]?.message ?? '', /cannot create the database file: read-only file system \(EROFS\)/);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

mountTest('Sqlite: read-only mount while a writer elsewhere holds the WAL: reads see its committed writes', async (t) => {
  const base = await makeBase();
  try {
    const src = path.join(base, 'src');
    const ro = path.join(base, 'ro');
    await fs.mkdir(ro);
    const writer = await SqliteBackend.open({ dbPath: path.join(src, 'kbs.db') });
    try {
      await writer.put(rp('default/key/k'), enc('committed in the WAL'));
      t.true((await fs.stat(path.join(src, 'kbs.db-wal'))).size > 0);
      const db = path.join(ro, 'kbs.db');
      const r = await runChild(
        [
          { op: 'open', db },
          { op: 'open', db, requireWritable: false },
          { op: 'get', path: 'default/key/k' },
          { op: 'put', path: 'default/key/k', value: b64('x') },
        ],
        { mountSetup: readOnlyBindMount(src, ro) },
      );
      t.like(r[0], { ok: false, code: 'UNAVAILABLE' });
      t.regex(r[0]?.message ?? '', /is read-only .*EROFS/);
      t.like(r[1], { ok: true, readOnly: true });
      t.like(r[2], { ok: true, value: b64('committed in the WAL') });
      t.like(r[3], { ok: false, code: 'READ_ONLY' });
      t.deepEqual(await writer.get(rp('default/key/k')), enc('committed in the WAL'));
    } finally {
      await writer.close();
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

const nobodyTest = canDropPrivileges() ? test : test.skip;

nobodyTest('Sqlite: a 0444 database file (not root): refused by default, read-only with requireWritable=false', async (t) => {
  const base = await makeBase();
  try {
    const dbPath = path.join(base, 'kbs.db');
    const seed = await SqliteBackend.open({ dbPath });
    await seed.put(rp('default/key/k'), enc('served'));
    await seed.close();
    await fs.chmod(base, 0o755);
    await fs.chown(base, NOBODY, NOBODY); // the directory stays writable: -wal/-shm can be created
    await fs.chown(dbPath, NOBODY, NOBODY);
    await fs.chmod(dbPath, 0o444);
    const r = await runChild(
      [
        { op: 'open', db: dbPath },
        { op: 'open', db: dbPath, requireWritable: false },
        { op: 'get', path: 'default/key/k' },
        { op: 'put', path: 'default/key/k', value: b64('x') },
        { op: 'delete', path: 'default/key/k' },
        { op: 'list' },
      ],
      { uid: NOBODY },
    );
    t.like(r[0], { ok: false, code: 'UNAVAILABLE' });
    t.regex(r[0]?.message ?? '', /is read-only \(.*permission denied \(EACCES\)\)/);
    t.like(r[1], { ok: true, readOnly: true });
    t.like(r[2], { ok: true, value: b64('served') });
    t.like(r[3], { ok: false, code: 'READ_ONLY' });
    t.like(r[4], { ok: false, code: 'READ_ONLY' });
    t.deepEqual(r[5]?.list, [['default/key/k', 6]]);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});
