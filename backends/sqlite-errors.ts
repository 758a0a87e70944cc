/**
 * Error mapping of the Sqlite backend: node-sqlite3 result codes and file system errnos turned into
 * BackendErrors whose messages name the database file (and the resource), never a value.
 */
import { BackendError } from './types.js';
import { errnoOf, errnoReason, messageOf } from './errno.js';

/** node-sqlite3 errors carry the primary result code name, e.g. "SQLITE_FULL". */
export const sqliteCode: (e: unknown) => string | undefined = errnoOf;

/** Descriptions Sqlite gives beyond the common ones (errno.ts). */
const SQLITE_FS_REASONS: ReadonlyMap<string, string> = new Map([['ENOENT', 'no such file or directory (ENOENT)']]);

export function fsReason(e: unknown): string {
  return errnoReason(e, SQLITE_FS_REASONS, (code) => (code === undefined ? messageOf(e) : `${code}: ${messageOf(e)}`));
}

const CORRUPT_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);
const BUSY_CODES = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED']);

/** Maps a failure while opening `where` ("Sqlite database <path>") during `what`. */
export function openError(e: unknown, where: string, what: string): BackendError {
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

export function readOnlyError(where: string, why: string): BackendError {
  return new BackendError(
    'UNAVAILABLE',
    `${where} is read-only (${why}): the KBS must be able to write resources ` +
      '(WAL mode also needs to create <db>-wal and <db>-shm next to the database)',
  );
}

/** Maps a failure of a request's statement. Messages name the resource and file, never values. */
export function requestError(
  e: unknown,
  name: string,
  action: 'read' | 'write' | 'delete' | 'list',
  db: { dbPath: string; busyTimeoutMs: number },
): BackendError {
  if (e instanceof BackendError) return e;
  const code = sqliteCode(e);
  const detail = messageOf(e);
  const subject = action === 'list' ? `cannot list resources` : `cannot ${action} resource ${name}`;
  const where = `Sqlite database ${db.dbPath}`;
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
        `${subject}: ${where} stayed locked by another connection for more than busy_timeout = ${db.busyTimeoutMs} ms (${detail})`,
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
