/**
 * Resource storage backends. `openBackend` picks the implementation named by the KBS configuration
 * (`type = "LocalFs"` …); further backends are added as new members of `BackendConfig` and new
 * cases of the switch.
 */
import { BackendError, type StorageBackend } from './types.js';
import { LocalFsBackend, type LocalFsOptions } from './local-fs.js';
import { SqliteBackend, type SqliteOptions } from './sqlite.js';
import { Pkcs11Backend, type Pkcs11Options } from './pkcs11/backend.js';
import { AzureKeyVaultBackend, type AzureKeyVaultOptions } from './azure-key-vault/backend.js';

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
export {
  SQLITE_DEFAULT_BUSY_TIMEOUT_MS,
  SQLITE_DEFAULT_MAX_VALUE_BYTES,
  SQLITE_SCHEMA_VERSION,
  SQLITE_STATEMENTS,
  SqliteBackend,
  type SqliteOptions,
} from './sqlite.js';
export {
  PKCS11_DEFAULT_CALL_TIMEOUT_MS,
  PKCS11_DEFAULT_MAX_VALUE_BYTES,
  Pkcs11Backend,
  type Pkcs11Logger,
  type Pkcs11Options,
  type Pkcs11Stats,
} from './pkcs11/backend.js';

export {
  AKV_DEFAULT_CACHE_TTL_MS,
  AKV_DEFAULT_TIMEOUT_MS,
  AzureKeyVaultBackend,
  type AkvImport,
  type AzureKeyVaultOptions,
} from './azure-key-vault/backend.js';
export type { AzureCredentialConfig } from './azure-key-vault/credential.js';

/** Trustee's default: `[[plugins]] name = "resource", type = "LocalFs", dir_path = …`. */
export type LocalFsBackendConfig = { type: 'LocalFs' } & Pick<LocalFsOptions, 'dirPath' | 'maxValueBytes'>;

/** `[[plugins]] name = "resource", type = "Sqlite", db_path = …`: one SQLite file (WAL). */
export type SqliteBackendConfig = { type: 'Sqlite' } & Pick<SqliteOptions, 'dbPath' | 'maxValueBytes'>;

/**
 * `[[plugins]] name = "resource", type = "Pkcs11", module = …, slot_index | token_label, pin | pin_file`:
 * resources as generic-secret token objects in an HSM. `pin` is already resolved by the config layer.
 */
export type Pkcs11BackendConfig = { type: 'Pkcs11' } & Pkcs11Options;

/**
 * `[[plugins]] name = "resource", type = "AzureKeyVault", vault_url = …, credential = …`: resources
 * as Key Vault secrets, plus read-only `import_akv` entries. Credential secrets are already read.
 */
export type AzureKeyVaultBackendConfig = { type: 'AzureKeyVault' } & AzureKeyVaultOptions;

export type BackendConfig = LocalFsBackendConfig | SqliteBackendConfig | Pkcs11BackendConfig | AzureKeyVaultBackendConfig;

export async function openBackend(config: BackendConfig): Promise<StorageBackend> {
  switch (config.type) {
    case 'LocalFs': {
      const { type: _type, ...options } = config;
      return LocalFsBackend.open(options);
    }
    case 'Sqlite': {
      const { type: _type, ...options } = config;
      return SqliteBackend.open(options);
    }
    case 'Pkcs11': {
      const { type: _type, ...options } = config;
      return Pkcs11Backend.open(options);
    }
    case 'AzureKeyVault': {
      const { type: _type, ...options } = config;
      return AzureKeyVaultBackend.open(options);
    }
    default: {
      // Unreachable for well-typed callers; configuration read at run time may still name anything.
      const unknownType: unknown = (config as { type?: unknown }).type;
      throw new BackendError('UNAVAILABLE', `unsupported storage backend type ${JSON.stringify(unknownType) ?? String(unknownType)}`);
    }
  }
}
