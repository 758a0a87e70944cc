/**
 * Resource storage backends. `openBackend` picks the implementation named by the KBS configuration
 * (`type = "LocalFs"` …); further backends are added as new members of `BackendConfig` and new
 * cases of the switch.
 */
import { BackendError, type StorageBackend } from './types.js';
import { LocalFsBackend } from './local-fs.js';

export {
  BackendError,
  BACKEND_ERROR_CODES,
  isBackendError,
  type BackendErrorCode,
  type ResourceInfo,
  type ResourcePath,
  type StorageBackend,
} from './types.js';
export {
  MAX_SEGMENT_BYTES,
  RESOURCE_SEGMENT_RE,
  assertValidResourcePath,
  formatResourcePath,
  isValidSegment,
  parseResourcePath,
  resourcePathFromString,
  segmentProblem,
} from './resource-path.js';
export {
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_TEMP_FILE_GRACE_MS,
  LocalFsBackend,
  TEMP_FILE_RE,
  type LocalFsOptions,
} from './local-fs.js';

/** Trustee's default: `[[plugins]] name = "resource", type = "LocalFs", dir_path = …`. */
export interface LocalFsBackendConfig {
  type: 'LocalFs';
  dirPath: string;
  maxValueBytes?: number;
}

export type BackendConfig = LocalFsBackendConfig;

export async function openBackend(config: BackendConfig): Promise<StorageBackend> {
  switch (config.type) {
    case 'LocalFs': {
      const options: { dirPath: string; maxValueBytes?: number } = { dirPath: config.dirPath };
      if (config.maxValueBytes !== undefined) options.maxValueBytes = config.maxValueBytes;
      return LocalFsBackend.open(options);
    }
    default: {
      // Unreachable for well-typed callers; configuration read at run time may still name anything.
      const unknownType: unknown = (config as { type?: unknown }).type;
      throw new BackendError('UNAVAILABLE', `unsupported storage backend type ${JSON.stringify(unknownType) ?? String(unknownType)}`);
    }
  }
}
