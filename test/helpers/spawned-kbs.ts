/**
 * Test harness: the real executable (`node dist/cli/kbs.js serve -c <file>`) as a child process,
 * configured from TOML text in a fresh temporary directory, for tests about signals and process
 * lifetime (SIGHUP reload, SIGTERM drain, exit codes). Its JSON log lines are collected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KBS_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'kbs.js');

export interface SpawnedKbs {
  child: ChildProcess;
  dir: string;
  /** Base URL of the first listener. */
  url: string;
  logs(): string;
  /** Resolves when a log line matching `re` appears (after `from` characters of the log). */
  waitForLog(re: RegExp, from?: number, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

export function tempDir(prefix = 'kbs-spawn-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts `kbs serve` with `toml` (written to `<dir>/kbs-config.toml`); resolves once it listens. */
export async function spawnKbs(toml: string, dir = tempDir()): Promise<SpawnedKbs> {
  const configFile = join(dir, 'kbs-config.toml');
  writeFileSync(configFile, `work_dir = ${JSON.stringify(dir)}\n${toml}`);
  const env = { ...process.env };
  delete env['KBS_CONFIG_FILE'];
  const child = spawn(process.execPath, [KBS_BIN, 'serve', '--config-file', configFile], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    text += d.toString('utf8');
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      for (const w of [...waiters]) w();
      resolve(code);
    }),
  );
  const waitForLog = (re: RegExp, from = 0, timeoutMs = 15_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const line = text.slice(from).split('\n').find((l) => re.test(l));
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (exitCode !== undefined) {
          done();
          reject(new Error(`kbs exited (${exitCode}) before logging ${re}:\n${text}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line ${re} within ${timeoutMs} ms:\n${text}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const listening = await waitForLog(/"msg":"kbs listening"/);
  const url = (JSON.parse(listening) as { urls: string[] }).urls[0] as string;
  return { child, dir, url, logs: () => text, waitForLog, exited, kill: (s) => child.kill(s) };
}
