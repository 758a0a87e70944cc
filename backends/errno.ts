/**
 * Error helpers shared by the file-backed storage backends (LocalFs, Sqlite): the `code` of a
 * Node.js or node-sqlite3 error, an error's message, and readable reasons for errno codes.
 */

/** The string `code` of an error ("ENOENT", or node-sqlite3's primary result code "SQLITE_FULL"). */
export function errnoOf(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Descriptions every backend gives these codes. */
const COMMON_REASONS: ReadonlyMap<string, string> = new Map([
  ['EROFS', 'read-only file system (EROFS)'],
  ['EACCES', 'permission denied (EACCES)'],
  ['EPERM', 'operation not permitted (EPERM)'],
  ['ENOSPC', 'no space left on device (ENOSPC)'],
  ['ENOTDIR', 'a path component is not a directory (ENOTDIR)'],
]);

/**
 * A readable reason for a failed file system call: the description of its errno code in `reasons`
 * (a backend's own) or the common ones; otherwise `fallback(code)`, with `code` undefined when the
 * error carries none.
 */
export function errnoReason(e: unknown, reasons: ReadonlyMap<string, string>, fallback: (code: string | undefined) => string): string {
  const code = errnoOf(e);
  if (code !== undefined) {
    const known = reasons.get(code) ?? COMMON_REASONS.get(code);
    if (known !== undefined) return known;
  }
  return fallback(code);
}
