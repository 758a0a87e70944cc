/**
 * Loading the KBS configuration: locating the file (`options.file`, `KBS_CONFIG_FILE`, or the
 * embedded default), reading it, and parsing the TOML text. The parsed document is validated
 * (`validate.ts`) and resolved (`resolve.ts`) into the immutable `KbsConfig`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ConfigError, DEFAULTS, EMBEDDED_DEFAULT_SOURCE, type KbsConfig } from './schema.js';
import { errorCode } from './issues.js';
import { resolveDocument } from './resolve.js';

/** Environment variable naming the configuration file (as Trustee's `--config-file` / env). */
export const CONFIG_FILE_ENV = 'KBS_CONFIG_FILE';

/**
 * The configuration used when no file is given: plain HTTP on 127.0.0.1:8080 only; everything
 * else at its documented default (LocalFs repository, generated token key, generated admin key
 * pair + token with AuthenticatedAuthorization, own tokens trusted). `config/kbs-config.toml`
 * spells the same configuration out key by key.
 */
export const EMBEDDED_DEFAULT_TOML = `# Embedded default configuration: loopback-only plain HTTP, all else default.
[http_server]
sockets = ["${DEFAULTS.socket}"]
insecure_http = true
`;

export interface LoadConfigOptions {
  /** Configuration file (relative to `cwd`). Takes precedence over `KBS_CONFIG_FILE`. */
  file?: string;
  /** Environment to read `KBS_CONFIG_FILE` from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directory `work_dir` and `file` are relative to; default `process.cwd()`. */
  cwd?: string;
}

/**
 * Loads the configuration: `options.file`, else the file named by `KBS_CONFIG_FILE` (an empty
 * value counts as unset), else the embedded default. Throws `ConfigError`.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<KbsConfig> {
  const env = options.env ?? process.env;
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const envFile = env[CONFIG_FILE_ENV];
  const file = options.file ?? (envFile === undefined || envFile === '' ? undefined : envFile);
  if (file === undefined) return embeddedDefaultConfig(cwd);
  const source = path.resolve(cwd, file);
  if (file === '') {
    throw new ConfigError('<options.file>', [{ keyPath: '', problem: 'the configuration file path is empty' }]);
  }
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (error) {
    throw new ConfigError(source, [
      { keyPath: '', problem: `cannot read the configuration file ${source} (${errorCode(error)})` },
    ]);
  }
  return parseConfigText(text, { cwd, source });
}

/**
 * Parses and resolves configuration text. Synchronous: the only I/O is `stat` of the files the
 * configuration names (done once, at start-up). `cwd` is what `work_dir` is relative to; `source`
 * names the text in error messages and becomes `KbsConfig.source`. Throws `ConfigError`.
 */
export function parseConfigText(text: string, options: { cwd: string; source: string }): KbsConfig {
  const document = parseTomlDocument(text, options.source);
  return resolveDocument(document, path.resolve(options.cwd), options.source);
}

/** The embedded default configuration (see `EMBEDDED_DEFAULT_TOML`), with `work_dir` under `cwd`. */
export function embeddedDefaultConfig(cwd: string): KbsConfig {
  return parseConfigText(EMBEDDED_DEFAULT_TOML, { cwd, source: EMBEDDED_DEFAULT_SOURCE });
}

// ---------------------------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------------------------

function parseTomlDocument(text: string, source: string): Record<string, unknown> {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    // Integers as bigint: `timeout = 5.0` (a float) is then told apart from `timeout = 5`.
    return parseToml(body, { integersAsBigInt: true, unsafeKeyBehaviour: 'throw' });
  } catch (error) {
    if (error instanceof TomlError) {
      // Only the first line: the rest is a code excerpt that could show a secret value.
      const first = (error.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '').slice(0, 160);
      throw new ConfigError(source, [
        { keyPath: '', problem: `TOML syntax error: ${first}`, line: error.line, column: error.column },
      ]);
    }
    throw new ConfigError(source, [{ keyPath: '', problem: 'TOML syntax error' }]);
  }
}
