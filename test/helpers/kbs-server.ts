/**
 * Test harness: a real KBS listening on an ephemeral loopback port, configured from TOML text, with
 * its work_dir in a fresh temporary directory. Logs go to a buffer the test can inspect.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfigText, type KbsConfig } from '../../config/index.js';
import { createLogger, type Logger } from '../../server/log.js';
import { startKbs, type RunningKbs } from '../../server/start.js';
import { setupSoftHsm, type SoftHsm } from './softhsm.js';

export interface TestKbs {
  url: string;
  workDir: string;
  running: RunningKbs;
  /** The generated admin token (AuthenticatedAuthorization default set-up), if any. */
  adminToken: string | undefined;
  /** Everything logged so far. */
  logs(): string;
  close(): Promise<void>;
}

export interface TestKbsOptions {
  /** Extra TOML appended after the base config (work_dir, loopback socket, plain HTTP). */
  toml?: string;
  /** Reuse a work_dir (restart tests). */
  workDir?: string;
  now?: () => Date;
}

let softHsm: SoftHsm | undefined;
let nextToken = 0;
const PKCS11_TOKENS = 24;

/**
 * The storage section for servers whose TOML names none: LocalFs by default, or the backend named by
 * KBS_TEST_STORAGE (Sqlite, Pkcs11), so the protocol suites run unchanged over every backend.
 */
function storageToml(workDir: string): string {
  const kind = process.env['KBS_TEST_STORAGE'] ?? 'LocalFs';
  switch (kind) {
    case 'LocalFs':
      return '';
    case 'Sqlite':
      return '[[plugins]]\nname = "resource"\ntype = "Sqlite"\ndb_path = "resources.db"\n';
    case 'Pkcs11': {
      // Cryptoki reads the token list once per process, so every token this process will use is
      // created up front; each server gets a token of its own (restarts reuse their work_dir's).
      softHsm ??= setupSoftHsm({ tokens: Array.from({ length: PKCS11_TOKENS }, (_, i) => `kbs-test-${i}`) });
      const labelFile = join(workDir, 'hsm-token');
      let label: string;
      try {
        label = readFileSync(labelFile, 'utf8');
      } catch {
        if (nextToken >= PKCS11_TOKENS) throw new Error(`more than ${PKCS11_TOKENS} servers in one test process with KBS_TEST_STORAGE=Pkcs11`);
        label = `kbs-test-${nextToken++}`;
        writeFileSync(labelFile, label);
      }
      writeFileSync(join(workDir, 'hsm-pin'), softHsm.pin, { mode: 0o600 });
      return `[[plugins]]\nname = "resource"\ntype = "Pkcs11"\nmodule = ${JSON.stringify(softHsm.module)}\ntoken_label = ${JSON.stringify(label)}\npin_file = "hsm-pin"\n`;
    }
    default:
      throw new Error(`KBS_TEST_STORAGE=${kind}: expected LocalFs, Sqlite or Pkcs11`);
  }
}

/**
 * What every test server starts from: its configuration parsed from `toml` (plain HTTP on an
 * ephemeral loopback port unless the TOML has an [http_server] section; no rate limits unless it
 * has a [rate_limit] section) and a debug logger that
 * writes to memory, with everything logged so far.
 */
export function testServerSetup(toml: string, workDir: string): { config: KbsConfig; log: Logger; logs(): string } {
  let text = /\[http_server\]/.test(toml) ? toml : `${toml}\n[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n`;
  // every test client is 127.0.0.1: per-client rate limits only where a test asks for them
  if (!/\[rate_limit\]/.test(text)) text += '\n[rate_limit]\nenabled = false\n';
  const config = parseConfigText(text, { cwd: workDir, source: join(workDir, 'kbs-config.toml') });
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  return { config, log, logs: () => chunks.join('') };
}

export async function startTestKbs(options: TestKbsOptions = {}): Promise<TestKbs> {
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'kbs-test-'));
  const extra = options.toml ?? '';
  const toml = `work_dir = ${JSON.stringify(workDir)}
${extra}
${/\[\[plugins\]\]|^plugins\s*=/m.test(extra) ? '' : storageToml(workDir)}
`;
  const { config, log, logs } = testServerSetup(toml, workDir);
  const running = await startKbs(config, { log, ...(options.now ? { now: options.now } : {}) });
  let adminToken: string | undefined;
  if (config.admin.mode === 'AuthenticatedAuthorization' && config.admin.generatedCredentials) {
    adminToken = readFileSync(config.admin.generatedCredentials.tokenPath, 'utf8').trim();
  }
  return {
    url: running.urls[0] as string,
    workDir,
    running,
    adminToken,
    logs,
    close: () => running.close(),
  };
}

/** Base64url of a policy text, as the resource-policy endpoint takes it. */
export function policyBody(rego: string): string {
  return JSON.stringify({ policy: Buffer.from(rego, 'utf8').toString('base64url') });
}
