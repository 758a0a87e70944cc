/**
 * The resource storage contract shared by every backend (LocalFs today; others plug in behind the
 * same interface). Mirrors Trustee's `StorageBackend` trait: resources are opaque byte strings
 * addressed by `<repository>/<type>/<tag>`.
 *
 * Error messages are written for operators (logs): they may name the resource path and the storage
 * location, and never contain resource values. The HTTP layer maps `code` to a response and never
 * forwards `message` to clients.
 */

/** A validated resource path. Build it with `parseResourcePath` / `resourcePathFromString`. */
export interface ResourcePath {
  readonly repo: string;
  readonly type: string;
  readonly tag: string;
}

/** What `list()` reports about one resource; never its value. */
export interface ResourceInfo {
  /** "repo/type/tag" */
  path: string;
  /** Size of the value in bytes. */
  size: number;
  /** Last modification time as known to the backend. */
  updatedAt: Date;
}

export type BackendErrorCode =
  /** The resource does not exist (get/delete). */
  | 'NOT_FOUND'
  /** The resource path is malformed or would resolve outside the storage. Nothing was touched. */
  | 'INVALID_PATH'
  /** The storage (or the part of it holding this resource) cannot be written. */
  | 'READ_ONLY'
  /** The value exceeds the backend's size limit. */
  | 'TOO_LARGE'
  /** The backend is unusable (closed, storage gone, unreachable). */
  | 'UNAVAILABLE'
  /** Any other storage failure (disk full, I/O error, unexpected layout). */
  | 'IO';

export const BACKEND_ERROR_CODES: readonly BackendErrorCode[] = [
  'NOT_FOUND',
  'INVALID_PATH',
  'READ_ONLY',
  'TOO_LARGE',
  'UNAVAILABLE',
  'IO',
];

export class BackendError extends Error {
  readonly code: BackendErrorCode;

  constructor(code: BackendErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackendError';
    this.code = code;
  }
}

export function isBackendError(e: unknown, code?: BackendErrorCode): e is BackendError {
  return e instanceof BackendError && (code === undefined || e.code === code);
}

export interface StorageBackend {
  /** Backend type as named in the KBS configuration, e.g. "LocalFs". */
  readonly kind: string;
  /** True when the backend was opened on storage it cannot write; put/delete then fail with READ_ONLY. */
  readonly readOnly: boolean;
  /** The value; NOT_FOUND if absent. */
  get(path: ResourcePath): Promise<Uint8Array>;
  /** Creates or atomically replaces the value (readers see the old or the new value, never a mix). */
  put(path: ResourcePath, value: Uint8Array): Promise<void>;
  /** Removes the resource; NOT_FOUND if absent. */
  delete(path: ResourcePath): Promise<void>;
  /** Every resource with its size; never reads values. */
  list(): Promise<ResourceInfo[]>;
  /** Readiness probe: resolves when usable, throws UNAVAILABLE otherwise. */
  check(): Promise<void>;
  /** Releases resources; later calls fail with UNAVAILABLE. Idempotent. */
  close(): Promise<void>;
}
