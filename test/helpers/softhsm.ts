/**
 * A real SoftHSM2 for tests: a temporary directory with its own softhsm2.conf and token directory,
 * tokens initialised with `softhsm2-util --init-token --free`.
 *
 * SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and only sees the tokens that exist then:
 * create every token a process needs before its first backend opens (`tokens`), or call
 * `initToken` only for child processes started later. By default `setupSoftHsm` sets
 * process.env.SOFTHSM2_CONF, which the PKCS#11 worker thread inherits when it starts. Tokens are
 * selected by label: SoftHSM renumbers slots when a token is initialised.
 *
 * softhsm2 is a Debian package (`apt-get install -y softhsm2`); when it is missing, setup throws an
 * error saying so, and the PKCS#11 tests fail with it (they never skip).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNodeChild } from './namespaces.js';

export const INSTALL_HINT = 'install it with `apt-get update && apt-get install -y softhsm2` (Debian package softhsm2; .ci/run does this)';

const MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
];

/** Path of libsofthsm2.so (SOFTHSM2_MODULE overrides); throws with the install hint when absent. */
export function softHsmModule(): string {
  const override = process.env.SOFTHSM2_MODULE;
  if (override !== undefined && override !== '') {
    if (!existsSync(override)) throw new Error(`SOFTHSM2_MODULE=${override} does not exist; ${INSTALL_HINT}`);
    return override;
  }
  const found = MODULE_CANDIDATES.find((p) => existsSync(p));
  if (found !== undefined) return found;
  const dpkg = spawnSync('dpkg', ['-L', 'libsofthsm2', 'softhsm2'], { encoding: 'utf8' });
  const listed = (dpkg.stdout ?? '').split('\n').find((l) => l.endsWith('/libsofthsm2.so') && existsSync(l));
  if (listed !== undefined) return listed;
  throw new Error(`SoftHSM2 module libsofthsm2.so not found; ${INSTALL_HINT}`);
}

/** Throws with the install hint when softhsm2-util cannot run. */
export function requireSoftHsmUtil(): void {
  const r = spawnSync('softhsm2-util', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`softhsm2-util is not available (${r.error?.message ?? `exit ${r.status}`}): SoftHSM2 is required by the PKCS#11 tests; ${INSTALL_HINT}`);
  }
}

export interface SoftHsm {
  /** libsofthsm2.so */
  module: string;
  /** The first token's label. */
  tokenLabel: string;
  /** User PIN of every token created here (random per setup). */
  pin: string;
  /** SO PIN of every token created here. */
  soPin: string;
  /** Every token label initialised so far, in creation order. */
  tokens: string[];
  /** The temp directory (conf + tokens). */
  dir: string;
  tokenDir: string;
  confPath: string;
  /** Environment for child processes: { SOFTHSM2_CONF }. */
  env: { SOFTHSM2_CONF: string };
  /** Initialises one more token. Processes that already initialised Cryptoki do not see it. */
  initToken(label: string): void;
  /** Removes the temp directory (and restores SOFTHSM2_CONF if setup changed it). */
  cleanup(): Promise<void>;
}

export interface SoftHsmOptions {
  /** Tokens to initialise now (default ['kbs']); the first is `tokenLabel`. */
  tokens?: string[];
  /** Set process.env.SOFTHSM2_CONF (default true). */
  setProcessEnv?: boolean;
  /** Write the conf only; tokens are initialised later (e.g. inside a mount namespace). */
  skipInit?: boolean;
}

export function setupSoftHsm(options: SoftHsmOptions = {}): SoftHsm {
  requireSoftHsmUtil();
  const module = softHsmModule();
  const dir = mkdtempSync(join(tmpdir(), 'kbs-softhsm-'));
  const tokenDir = join(dir, 'tokens');
  mkdirSync(tokenDir, { mode: 0o700 });
  const confPath = join(dir, 'softhsm2.conf');
  writeFileSync(confPath, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  const pin = `pin-${randomBytes(12).toString('hex')}`;
  const soPin = `so-${randomBytes(12).toString('hex')}`;
  const env = { SOFTHSM2_CONF: confPath };
  const tokens: string[] = [];
  const initToken = (label: string): void => {
    const r = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.split(pin).join('<PIN>').split(soPin).join('<SO-PIN>');
      throw new Error(`softhsm2-util --init-token --label ${label} failed (exit ${r.status}): ${out.trim()}`);
    }
    tokens.push(label);
  };
  const wanted = options.tokens ?? ['kbs'];
  if (wanted.length === 0) throw new Error('setupSoftHsm: at least one token label is needed');
  if (options.skipInit !== true) for (const label of wanted) initToken(label);
  const previous = process.env.SOFTHSM2_CONF;
  const setEnv = options.setProcessEnv ?? true;
  if (setEnv) process.env.SOFTHSM2_CONF = confPath;
  return {
    module,
    tokenLabel: wanted[0]!,
    pin,
    soPin,
    tokens,
    dir,
    tokenDir,
    confPath,
    env,
    initToken,
    cleanup: async () => {
      if (setEnv && process.env.SOFTHSM2_CONF === confPath) {
        if (previous === undefined) delete process.env.SOFTHSM2_CONF;
        else process.env.SOFTHSM2_CONF = previous;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Child processes: raw PKCS#11 access (to inspect or tamper with a token behind the backend's back)
// and a backend in another process (own SOFTHSM2_CONF, mount namespace).

/** An object as seen by raw PKCS#11 (values base64, id hex). */
export interface RawObject {
  label: string;
  idHex: string;
  valueB64: string | null;
  class: number;
  keyType: number | null;
  token: boolean;
  private: boolean;
  sensitive: boolean | null;
  extractable: boolean | null;
}

export type RawOp =
  | { op: 'slots' }
  | { op: 'create'; label: string; valueB64: string; idHex?: string; cls?: 'secret' | 'data'; sensitive?: boolean; extractable?: boolean }
  | { op: 'list' };

export type RawResult =
  | { ok: true; slots: Array<{ label: string; initialized: boolean; serial: string }> }
  | { ok: true; objects: RawObject[] }
  | { ok: true }
  | { ok: false; message: string };

function runNode(script: string, input: unknown, env: Record<string, string>, wrap?: { unshareMount: string }): Promise<unknown> {
  return runNodeChild([script], input, { env, name: script, ...(wrap === undefined ? {} : { mountSetup: wrap.unshareMount }) });
}

const RAW_CHILD = new URL('./pkcs11-raw-child.js', import.meta.url).pathname;
const BACKEND_CHILD = new URL('./pkcs11-backend-child.js', import.meta.url).pathname;

/** Runs raw PKCS#11 operations on one token (or `slots` on the module) in a separate process. */
export async function rawPkcs11(hsm: SoftHsm, tokenLabel: string, ops: RawOp[]): Promise<RawResult[]> {
  return (await runNode(RAW_CHILD, { module: hsm.module, tokenLabel, pin: hsm.pin, ops }, hsm.env)) as RawResult[];
}

export type BackendChildOp =
  | { op: 'init-token'; label: string }
  | { op: 'open'; slotIndex?: number; tokenLabel?: string; maxValueBytes?: number }
  | { op: 'put'; path: string; valueB64: string }
  | { op: 'get' | 'delete'; path: string }
  | { op: 'list' }
  | { op: 'stats' }
  | { op: 'close' };

export interface BackendChildResult {
  ok: boolean;
  code?: string;
  message?: string;
  tokenLabel?: string;
  valueB64?: string;
  list?: Array<[string, number]>;
  stats?: Record<string, number | string>;
  logs?: string[];
}

/** Runs a Pkcs11Backend in a separate process with this SoftHSM (optionally inside `unshare -m` after `mount`). */
export async function runBackendChild(
  hsm: SoftHsm,
  ops: BackendChildOp[],
  wrap?: { unshareMount: string },
): Promise<BackendChildResult[]> {
  return (await runNode(BACKEND_CHILD, { module: hsm.module, pin: hsm.pin, soPin: hsm.soPin, ops }, hsm.env, wrap)) as BackendChildResult[];
}
