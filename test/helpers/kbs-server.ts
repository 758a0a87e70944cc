/**
 * Test harness: a real KBS listening on an ephemeral loopback port, configured from TOML text, with
 * its work_dir in a fresh temporary directory. Logs go to a buffer the test can inspect.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../config/index.js';
import { createLogger } from '../../server/log.js';
import { startKbs, type RunningKbs } from '../../server/start.js';

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

export async function startTestKbs(options: TestKbsOptions = {}): Promise<TestKbs> {
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'kbs-test-'));
  const toml = `work_dir = ${JSON.stringify(workDir)}
${options.toml ?? ''}
`;
  const text = /\[http_server\]/.test(toml) ? toml : `${toml}\n[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n`;
  const config = parseConfigText(text, { cwd: workDir, source: join(workDir, 'kbs-config.toml') });
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = createLogger({ level: 'debug', destination });
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
    logs: () => chunks.join(''),
    close: () => running.close(),
  };
}

/** Base64url of a policy text, as the resource-policy endpoint takes it. */
export function policyBody(rego: string): string {
  return JSON.stringify({ policy: Buffer.from(rego, 'utf8').toString('base64url') });
}
