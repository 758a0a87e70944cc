/**
 * File system primitives of the LocalFs backend: errno classification and readable reasons, the
 * inside-the-root check, temp file names, quiet close/unlink for error paths, and directory fsync.
 */
import { closeSync, constants as fsConstants, readSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { errnoOf, errnoReason } from './errno.js';
import { BackendError } from './types.js';

const TEMP_PREFIX = '.kbs-tmp-';
/** Exactly the names this backend creates; never matches the resource segment regex (leading dot). */
export const TEMP_FILE_RE = /^\.kbs-tmp-[0-9a-f]{24}$/;

export { errnoOf };

export const READ_ONLY_ERRNOS = new Set(['EROFS', 'EACCES', 'EPERM']);
export const NO_SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT']);
/** Errors meaning "nothing readable at this name". */
export const ABSENT_ERRNOS = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'ENAMETOOLONG']);

/** Descriptions LocalFs gives beyond the common ones (errno.ts). */
const LOCAL_FS_REASONS: ReadonlyMap<string, string> = new Map([
  ['EDQUOT', 'disk quota exceeded (EDQUOT)'],
  ['EISDIR', 'the target is a directory (EISDIR)'],
  ['EEXIST', 'a path component exists and is not a directory (EEXIST)'],
  ['EIO', 'input/output error (EIO)'],
  ['ENOENT', 'no such file or directory, or a dangling symlink (ENOENT)'],
]);

export function reason(e: unknown): string {
  return errnoReason(e, LOCAL_FS_REASONS, (code) => code ?? (e instanceof Error ? e.message : 'unknown error'));
}

export function isInside(realRoot: string, candidate: string): boolean {
  const prefix = realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep;
  return candidate.startsWith(prefix) && candidate.length > prefix.length;
}

export function tempName(): string {
  return TEMP_PREFIX + randomBytes(12).toString('hex');
}

export async function closeQuietly(handle: FileHandle | undefined): Promise<void> {
  if (handle === undefined) return;
  try {
    await handle.close();
  } catch {
    /* already failing; the original error is reported */
  }
}

export async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch {
    /* best effort: a leftover temp file is ignored by list/get and removed at the next open */
  }
}

/** fsync a directory so a rename/unlink in it is durable. File systems that cannot do it are tolerated. */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    await handle.sync();
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EBADF') return;
    throw e;
  } finally {
    await closeQuietly(handle);
  }
}

export function closeSyncQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already failing or already read; nothing to report */
  }
}

/**
 * Reads an open file to EOF, never more than `max` bytes (a file edited in place may change size while
 * being read). The buffer has one spare byte so that EOF is seen without reallocating; it is zeroed
 * and never pooled, so the returned view exposes no other memory.
 */
export function readCappedSync(fd: number, sizeHint: number, max: number, name: string, real: string): Uint8Array {
  const tooLarge = (): BackendError =>
    new BackendError('TOO_LARGE', `resource ${name} grew above the limit of ${max} bytes (${real})`);
  let buf = Buffer.alloc(Math.min(sizeHint, max) + 1);
  let used = 0;
  for (;;) {
    if (used === buf.length) {
      if (used > max) throw tooLarge();
      const next = Buffer.alloc(Math.min(Math.max(buf.length * 2, 64 * 1024), max + 1));
      buf.copy(next, 0, 0, used);
      buf = next;
    }
    const bytesRead = readSync(fd, buf, used, buf.length - used, used);
    if (bytesRead === 0) break;
    used += bytesRead;
  }
  if (used > max) throw tooLarge();
  return buf.subarray(0, used);
}
