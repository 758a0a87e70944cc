/**
 * Directory walking for the LocalFs backend: listing the resources below the repository root
 * (`<repo>/<type>/<tag>`, symlinks followed only inside the root) and sweeping stale temp files a
 * crashed writer left behind.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { BackendError, type ResourceInfo } from './types.js';
import { isValidSegment } from './resource-path.js';
import { errnoOf, isInside, reason, TEMP_FILE_RE } from './local-fs-io.js';

/** Removes temp files left by a crashed writer in the root and its first two levels. */
export async function removeStaleTempFiles(realRoot: string, graceMs: number): Promise<void> {
  const cutoff = Date.now() - graceMs;
  const sweep = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    await Promise.all(
      entries.map(async (entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isFile() && TEMP_FILE_RE.test(entry.name)) {
          try {
            const st = await fs.lstat(full);
            if (st.isFile() && st.mtimeMs <= cutoff) await fs.unlink(full);
          } catch {
            /* gone already, or not ours to remove (read-only sub-mount): ignored by list/get anyway */
          }
        } else if (depth < 2 && entry.isDirectory() && isValidSegment(entry.name)) {
          // Real directories only: symlinked directories are someone else's layout (e.g. CSI).
          await sweep(full, depth + 1);
        }
      }),
    );
  };
  await sweep(realRoot, 0);
}

/** Every resource below the root, sorted by path (what `LocalFsBackend.list` returns). */
export async function listResources(realRoot: string, dirPath: string): Promise<ResourceInfo[]> {
  const out: ResourceInfo[] = [];
  let repos: string[];
  try {
    repos = await subdirectories(realRoot, realRoot, true);
  } catch (e) {
    const code = errnoOf(e);
    throw new BackendError(
      code === 'ENOENT' || code === 'ENOTDIR' ? 'UNAVAILABLE' : 'IO',
      `LocalFs: cannot list repository ${dirPath}: ${reason(e)}`,
      { cause: e },
    );
  }
  await Promise.all(
    repos.map(async (repo) => {
      const types = await subdirectories(realRoot, path.join(realRoot, repo), false);
      await Promise.all(
        types.map(async (type) => {
          const dir = path.join(realRoot, repo, type);
          let entries;
          try {
            entries = await fs.readdir(dir, { withFileTypes: true });
          } catch {
            return;
          }
          await Promise.all(
            entries.map(async (entry) => {
              if (!isValidSegment(entry.name)) return;
              if (!entry.isFile() && !entry.isSymbolicLink()) return;
              const info = await fileInfo(realRoot, path.join(dir, entry.name));
              if (info !== null) out.push({ path: `${repo}/${type}/${entry.name}`, size: info.size, updatedAt: info.mtime });
            }),
          );
        }),
      );
    }),
  );
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

/**
 * Names of the valid-segment entries of `dir` that are directories inside the root (following
 * symlinks only when they stay inside). Errors on `dir` itself propagate only when `strict`.
 */
async function subdirectories(realRoot: string, dir: string, strict: boolean): Promise<string[]> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (strict) throw e;
    return [];
  }
  const found = await Promise.all(
    entries.map(async (entry) => {
      if (!isValidSegment(entry.name)) return null;
      if (entry.isDirectory()) return entry.name;
      if (!entry.isSymbolicLink()) return null;
      try {
        const real = await fs.realpath(path.join(dir, entry.name));
        if (!isInside(realRoot, real)) return null;
        return (await fs.stat(real)).isDirectory() ? entry.name : null;
      } catch {
        return null;
      }
    }),
  );
  return found.filter((n): n is string => n !== null);
}

/** size and mtime of a regular file (following symlinks inside the root), or null. */
async function fileInfo(realRoot: string, file: string): Promise<{ size: number; mtime: Date } | null> {
  try {
    const real = await fs.realpath(file);
    if (!isInside(realRoot, real)) return null;
    const st = await fs.stat(real);
    return st.isFile() ? { size: st.size, mtime: st.mtime } : null;
  } catch {
    return null;
  }
}
