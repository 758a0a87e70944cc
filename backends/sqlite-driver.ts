/**
 * The Sqlite backend's access to node-sqlite3: promise wrappers around its callback API (SQL
 * parameters are positional), SQLITE_BUSY retries during open, and the statement queue that
 * bounds how many of a backend's statements occupy libuv pool threads at once.
 */
import sqlite3 from 'sqlite3';
import { sqliteCode } from './sqlite-errors.js';

/** SQLite's own ceiling for a string or BLOB (SQLITE_MAX_LENGTH of the bundled build). */
export const SQLITE_MAX_BLOB_BYTES = 1_000_000_000;

export type Param = string | number | Buffer | null;
export type Row = Record<string, unknown>;

export function openDatabase(filename: string, mode: number): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(filename, mode, (err) => (err ? reject(err) : resolve(db)));
  });
}

export function dbAll(db: sqlite3.Database, sql: string): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    db.all<Row>(sql, [], (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}

export function dbExec(db: sqlite3.Database, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    db.exec(sql, (err) => (err ? reject(err) : resolve()));
  });
}

export function dbClose(db: sqlite3.Database): Promise<void> {
  return new Promise((resolve, reject) => {
    db.close((err) => (err ? reject(err) : resolve()));
  });
}

export function prepare(db: sqlite3.Database, sql: string): Promise<sqlite3.Statement> {
  return new Promise((resolve, reject) => {
    const stmt = db.prepare(sql, (err) => (err ? reject(err) : resolve(stmt)));
  });
}

/** Steps to completion, so the statement never stays active holding a read transaction. */
export function stmtAll(stmt: sqlite3.Statement, params: readonly Param[]): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    stmt.all<Row>([...params], (err, rows) => (err ? reject(err) : resolve(rows)));
  });
}

/** Runs a write; resolves with the number of rows changed. */
export function stmtRun(stmt: sqlite3.Statement, params: readonly Param[]): Promise<number> {
  return new Promise((resolve, reject) => {
    stmt.run([...params], function (this: sqlite3.RunResult, err: Error | null) {
      if (err) reject(err);
      else resolve(this.changes);
    });
  });
}

export function finalize(stmt: sqlite3.Statement): Promise<void> {
  return new Promise((resolve) => {
    // node-sqlite3 calls back with no argument on success; a failure only means it is gone already.
    stmt.finalize(() => resolve());
  });
}

export async function closeQuietly(db: sqlite3.Database): Promise<void> {
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
export async function retryBusy<T>(deadline: number, step: () => Promise<T>): Promise<T> {
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      return await step();
    } catch (e) {
      if (sqliteCode(e) !== 'SQLITE_BUSY' || Date.now() >= deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/**
 * Statements of one backend running on the libuv pool at once. The connection executes one
 * statement at a time anyway; a second one in flight overlaps the JavaScript side of the previous
 * (measured: +35–55 % concurrent reads/s over one). More would only park pool threads on the connection mutex,
 * and while a statement waits for another process's lock (busy_timeout) those threads are taken
 * from everything else in the process (file system, crypto).
 */
export const MAX_IN_FLIGHT = 2;

/** Runs a backend's requests with at most MAX_IN_FLIGHT of them on the pool; a JS queue holds the rest. */
export class StatementQueue {
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  /** True when a request run now starts at once, in the caller's tick. */
  get hasFreeSlot(): boolean {
    return this.inFlight < MAX_IN_FLIGHT;
  }

  /** Runs `fn` in a slot. When a slot is free, `fn` starts synchronously, in the caller's tick. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next(); // hand the slot over
      else this.inFlight--;
    }
  }
}
