/**
 * LocalFs resource backend: Trustee's default storage. A resource `<repo>/<type>/<tag>` is the file
 * `<dirPath>/<repo>/<type>/<tag>`, so files placed by hand (kubectl exec … tee, a Kubernetes secret
 * or an Azure Key Vault CSI mount under e.g. `default/akv`) are served as they are.
 *
 * Safety rules:
 * - Paths are validated (resource-path.ts) before any file system call.
 * - Reads resolve the file with realpath and refuse anything outside the realpath of the root, so a
 *   symlink may point anywhere inside the repository (the CSI driver's `..data` links) but never out.
 * - Writes are atomic: a temp file `.kbs-tmp-<hex>` (mode 0600; the leading dot keeps it out of the
 *   resource namespace) in the target directory, fsync, rename over the target, fsync the directory.
 *   A failed write leaves the previous value intact and removes its temp file.
 * - Reads (`get`) use synchronous system calls after yielding to the event loop once: a resource is
 *   small and normally in the page cache (a local disk, tmpfs or a CSI volume), where realpath, open,
 *   fstat, read and close take microseconds, while six thread-pool round trips cost more than the
 *   JWE that follows. Writes, listing and the temp-file sweep use fs/promises.
 *
 * The file system primitives are in `local-fs-io.ts`; listing and the stale temp file sweep are in
 * `local-fs-scan.ts`.
 */
import { constants as fsConstants, fstatSync, openSync, realpathSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { BackendError, type ResourceInfo, type ResourcePath, type StorageBackend } from './types.js';
import { assertValidResourcePath, formatResourcePath } from './resource-path.js';
import {
  ABSENT_ERRNOS,
  NO_SPACE_ERRNOS,
  READ_ONLY_ERRNOS,
  closeQuietly,
  closeSyncQuietly,
  readCappedSync,
  errnoOf,
  isInside,
  reason,
  syncDir,
  tempName,
  unlinkQuietly,
} from './local-fs-io.js';
import { listResources, removeStaleTempFiles } from './local-fs-scan.js';

export { TEMP_FILE_RE } from './local-fs-io.js';

/** Largest value served or stored when `maxValueBytes` is not configured. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;

/** Leftover temp files younger than this are left alone at open (another KBS may be writing them). */
export const DEFAULT_TEMP_FILE_GRACE_MS = 60_000;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface LocalFsOptions {
  /** Repository root; created (mode 0700) if missing. Trustee default: /opt/confidential-containers/kbs/repository */
  dirPath: string;
  /** Largest value accepted by put and served by get (default DEFAULT_MAX_VALUE_BYTES). */
  maxValueBytes?: number;
  /** Minimum age of a leftover temp file before open removes it (default DEFAULT_TEMP_FILE_GRACE_MS). */
  tempFileGraceMs?: number;
}

export class LocalFsBackend implements StorageBackend {
  readonly kind = 'LocalFs';
  readonly readOnly: boolean;
  /** The configured root, absolute. */
  readonly dirPath: string;
  /** realpath of the root: every file served must resolve below it. */
  readonly realRoot: string;
  readonly maxValueBytes: number;
  private closed = false;

  private constructor(dirPath: string, realRoot: string, readOnly: boolean, maxValueBytes: number) {
    this.dirPath = dirPath;
    this.realRoot = realRoot;
    this.readOnly = readOnly;
    this.maxValueBytes = maxValueBytes;
  }

  static async open(options: LocalFsOptions): Promise<LocalFsBackend> {
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes < 0) {
      throw new RangeError(`LocalFs: maxValueBytes must be a non-negative integer, got ${String(options.maxValueBytes)}`);
    }
    const graceMs = options.tempFileGraceMs ?? DEFAULT_TEMP_FILE_GRACE_MS;
    if (!Number.isFinite(graceMs) || graceMs < 0) {
      throw new RangeError(`LocalFs: tempFileGraceMs must be a non-negative number, got ${String(options.tempFileGraceMs)}`);
    }
    if (typeof options.dirPath !== 'string' || options.dirPath === '') {
      throw new BackendError('UNAVAILABLE', 'LocalFs: dir_path is not set');
    }
    const dirPath = path.resolve(options.dirPath);

    let exists = true;
    try {
      const st = await fs.stat(dirPath);
      if (!st.isDirectory()) {
        throw new BackendError('UNAVAILABLE', `LocalFs: repository path ${dirPath} exists and is not a directory`);
      }
    } catch (e) {
      if (e instanceof BackendError) throw e;
      if (errnoOf(e) !== 'ENOENT') {
        throw new BackendError('UNAVAILABLE', `LocalFs: cannot access repository directory ${dirPath}: ${reason(e)}`, { cause: e });
      }
      exists = false;
    }
    if (!exists) {
      try {
        await fs.mkdir(dirPath, { recursive: true, mode: DIR_MODE });
      } catch (e) {
        throw new BackendError('UNAVAILABLE', `LocalFs: cannot create repository directory ${dirPath}: ${reason(e)}`, { cause: e });
      }
    }

    let realRoot: string;
    try {
      realRoot = await fs.realpath(dirPath);
      const dir = await fs.opendir(realRoot);
      await dir.close();
    } catch (e) {
      throw new BackendError('UNAVAILABLE', `LocalFs: cannot read repository directory ${dirPath}: ${reason(e)}`, { cause: e });
    }

    const readOnly = !(await LocalFsBackend.probeWritable(realRoot));
    if (!readOnly) await removeStaleTempFiles(realRoot, graceMs);
    return new LocalFsBackend(dirPath, realRoot, readOnly, maxValueBytes);
  }

  /** Whether a file can be created in the root (the only reliable test: access(2) lies for root). */
  private static async probeWritable(realRoot: string): Promise<boolean> {
    const probe = path.join(realRoot, tempName());
    let handle: FileHandle | undefined;
    try {
      handle = await fs.open(probe, 'wx', FILE_MODE);
    } catch (e) {
      const code = errnoOf(e);
      if (code !== undefined && READ_ONLY_ERRNOS.has(code)) return false;
      if (code !== undefined && NO_SPACE_ERRNOS.has(code)) return true; // writable, just full: puts report IO
      throw new BackendError('UNAVAILABLE', `LocalFs: cannot probe repository directory ${realRoot}: ${reason(e)}`, { cause: e });
    }
    await closeQuietly(handle);
    await unlinkQuietly(probe);
    return true;
  }

  private ensureOpen(): void {
    if (this.closed) throw new BackendError('UNAVAILABLE', `LocalFs backend on ${this.dirPath} is closed`);
  }

  /**
   * Resolves `<root>/<repo>/<type>/<tag>` to a real path inside the root, or null when there is no
   * resource there (missing, dangling, or a symlink leading outside the root).
   */
  private async resolveResource(p: ResourcePath): Promise<string | null> {
    const logical = path.join(this.realRoot, p.repo, p.type, p.tag);
    let real: string;
    try {
      real = await fs.realpath(logical);
    } catch (e) {
      const code = errnoOf(e);
      if (code !== undefined && ABSENT_ERRNOS.has(code)) return null;
      throw new BackendError('IO', `LocalFs: cannot resolve ${logical}: ${reason(e)}`, { cause: e });
    }
    return isInside(this.realRoot, real) ? real : null;
  }

  async get(resourcePath: ResourcePath): Promise<Uint8Array> {
    const p = assertValidResourcePath(resourcePath);
    this.ensureOpen();
    const name = formatResourcePath(p);
    // The read below is synchronous (no thread-pool round trips); yield to the event loop first so a
    // caller looping on get() cannot starve I/O.
    await yieldToEventLoop();
    this.ensureOpen();
    const logical = path.join(this.realRoot, p.repo, p.type, p.tag);
    let real: string | undefined;
    let fd: number | undefined;
    try {
      real = realpathSync.native(logical);
      if (!isInside(this.realRoot, real)) throw new BackendError('NOT_FOUND', `resource ${name} not found`);
      // O_NOFOLLOW: the resolved path must not have become a symlink since realpath.
      // O_NONBLOCK: a FIFO planted in the repository must not hang the request.
      fd = openSync(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile()) throw new BackendError('NOT_FOUND', `resource ${name} not found (${real} is not a regular file)`);
      if (st.size > this.maxValueBytes) {
        throw new BackendError(
          'TOO_LARGE',
          `resource ${name} is ${st.size} bytes, above the limit of ${this.maxValueBytes} bytes (${real})`,
        );
      }
      return readCappedSync(fd, st.size, this.maxValueBytes, name, real);
    } catch (e) {
      if (e instanceof BackendError) throw e;
      const code = errnoOf(e);
      if (code !== undefined && ABSENT_ERRNOS.has(code)) {
        throw new BackendError('NOT_FOUND', `resource ${name} not found`, { cause: e });
      }
      throw new BackendError('IO', `LocalFs: cannot read resource ${name} from ${real ?? logical}: ${reason(e)}`, { cause: e });
    } finally {
      if (fd !== undefined) closeSyncQuietly(fd);
    }
  }

  async put(resourcePath: ResourcePath, value: Uint8Array): Promise<void> {
    const p = assertValidResourcePath(resourcePath);
    this.ensureOpen();
    const name = formatResourcePath(p);
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(`LocalFs: value for ${name} must be a Uint8Array`);
    }
    if (this.readOnly) {
      throw new BackendError('READ_ONLY', `cannot write resource ${name}: repository ${this.dirPath} is read-only`);
    }
    if (value.byteLength > this.maxValueBytes) {
      throw new BackendError(
        'TOO_LARGE',
        `cannot write resource ${name}: value is ${value.byteLength} bytes, above the limit of ${this.maxValueBytes} bytes`,
      );
    }

    const dir = await this.ensureTypeDir(p, name);
    const target = path.join(dir, p.tag);
    const temp = path.join(dir, tempName());
    let handle: FileHandle | undefined;
    let renamed = false;
    try {
      handle = await fs.open(temp, 'wx', FILE_MODE);
      if (value.byteLength > 0) await handle.writeFile(value);
      await handle.sync();
      const h = handle;
      handle = undefined;
      await h.close();
      await fs.rename(temp, target);
      renamed = true;
      await syncDir(dir);
    } catch (e) {
      await closeQuietly(handle);
      if (!renamed) await unlinkQuietly(temp);
      throw this.writeError(e, name, renamed ? dir : target, renamed);
    }
  }

  /**
   * `<root>/<repo>/<type>`, resolved and checked to be inside the root, creating (0700) what is
   * missing one level at a time, each level only after its parent was found inside the root: a
   * directory symlink leading out is refused before anything is created through it.
   */
  private async ensureTypeDir(p: ResourcePath, name: string): Promise<string> {
    let dir = this.realRoot;
    for (const segment of [p.repo, p.type]) {
      const logical = path.join(dir, segment);
      let real: string;
      try {
        real = await fs.realpath(logical);
      } catch (e) {
        if (errnoOf(e) !== 'ENOENT') throw this.writeError(e, name, logical, false);
        try {
          await fs.mkdir(logical, { mode: DIR_MODE });
        } catch (e2) {
          // EEXIST: made by a concurrent put, or a dangling symlink (then realpath below fails).
          if (errnoOf(e2) !== 'EEXIST') throw this.writeError(e2, name, logical, false);
        }
        try {
          real = await fs.realpath(logical);
        } catch (e3) {
          throw this.writeError(e3, name, logical, false);
        }
      }
      if (!isInside(this.realRoot, real)) {
        throw new BackendError(
          'INVALID_PATH',
          `cannot write resource ${name}: ${logical} resolves to ${real}, outside the repository ${this.realRoot}`,
        );
      }
      dir = real;
    }
    return dir;
  }

  private writeError(e: unknown, name: string, where: string, afterRename: boolean): BackendError {
    if (e instanceof BackendError) return e;
    const code = errnoOf(e);
    if (code !== undefined && READ_ONLY_ERRNOS.has(code)) {
      return new BackendError('READ_ONLY', `cannot write resource ${name}: ${where} is not writable: ${reason(e)}`, { cause: e });
    }
    if (afterRename) {
      return new BackendError(
        'IO',
        `resource ${name} was replaced but syncing directory ${where} failed: ${reason(e)}`,
        { cause: e },
      );
    }
    if (code !== undefined && NO_SPACE_ERRNOS.has(code)) {
      return new BackendError(
        'IO',
        `cannot write resource ${name} to ${where}: ${reason(e)}; the previous value, if any, is unchanged`,
        { cause: e },
      );
    }
    return new BackendError('IO', `cannot write resource ${name} to ${where}: ${reason(e)}`, { cause: e });
  }

  async delete(resourcePath: ResourcePath): Promise<void> {
    const p = assertValidResourcePath(resourcePath);
    this.ensureOpen();
    const name = formatResourcePath(p);
    if (this.readOnly) {
      throw new BackendError('READ_ONLY', `cannot delete resource ${name}: repository ${this.dirPath} is read-only`);
    }
    // Only what get would serve can be deleted: a regular file (or a symlink to one) inside the root.
    const real = await this.resolveResource(p);
    if (real === null) throw new BackendError('NOT_FOUND', `resource ${name} not found`);
    try {
      const st = await fs.stat(real);
      if (!st.isFile()) throw new BackendError('NOT_FOUND', `resource ${name} not found (${real} is not a regular file)`);
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError('NOT_FOUND', `resource ${name} not found`, { cause: e });
    }

    // Unlink the name itself (a symlink is removed, not its target), in the real type directory.
    let dir: string;
    try {
      dir = await fs.realpath(path.join(this.realRoot, p.repo, p.type));
    } catch (e) {
      throw new BackendError('NOT_FOUND', `resource ${name} not found`, { cause: e });
    }
    if (!isInside(this.realRoot, dir)) throw new BackendError('NOT_FOUND', `resource ${name} not found`);
    const target = path.join(dir, p.tag);
    try {
      await fs.unlink(target);
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT') throw new BackendError('NOT_FOUND', `resource ${name} not found`, { cause: e });
      if (code !== undefined && READ_ONLY_ERRNOS.has(code)) {
        throw new BackendError('READ_ONLY', `cannot delete resource ${name}: ${target} is not removable: ${reason(e)}`, {
          cause: e,
        });
      }
      throw new BackendError('IO', `cannot delete resource ${name} (${target}): ${reason(e)}`, { cause: e });
    }
    try {
      await syncDir(dir);
    } catch (e) {
      throw new BackendError('IO', `resource ${name} was deleted but syncing directory ${dir} failed: ${reason(e)}`, {
        cause: e,
      });
    }
  }

  async list(): Promise<ResourceInfo[]> {
    this.ensureOpen();
    return listResources(this.realRoot, this.dirPath);
  }

  async check(): Promise<void> {
    this.ensureOpen();
    try {
      const st = await fs.stat(this.realRoot);
      if (!st.isDirectory()) {
        throw new BackendError('UNAVAILABLE', `LocalFs: repository ${this.dirPath} is no longer a directory`);
      }
      const dir = await fs.opendir(this.realRoot);
      await dir.close();
    } catch (e) {
      if (e instanceof BackendError) throw e;
      throw new BackendError('UNAVAILABLE', `LocalFs: repository ${this.dirPath} is not usable: ${reason(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
