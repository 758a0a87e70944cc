/**
 * `kbs serve [-c|--config-file FILE]`: start the KBS (embedded default without a file or
 * KBS_CONFIG_FILE). Signals: SIGHUP reloads the TLS certificate and key; SIGTERM / SIGINT stop
 * accepting, let in-flight requests finish within `shutdown_grace_seconds`, close the storage
 * backend and exit 0 (a second signal during the shutdown exits at once with 1).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import { startKbs } from '../server/start.js';
import type { Io } from './policy.js';

export async function serveCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'config-file': { type: 'string' } } });
  const file = values['config-file'] ?? values.config;
  let config;
  try {
    config = await loadConfig({ ...(file ? { file } : {}), env: process.env, cwd: process.cwd() });
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(`kbs serve: configuration error: ${e.message}`);
      return 1;
    }
    throw e;
  }
  let running;
  try {
    running = await startKbs(config);
  } catch (e) {
    io.err(`kbs serve: cannot start: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const kbs = running;
  const log = kbs.services.log;
  const reload = () => void kbs.reloadTls();
  process.on('SIGHUP', reload);
  const clean = await new Promise<boolean>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal during shutdown: exiting now');
        return resolve(false);
      }
      stopping = true;
      log.info({ signal }, 'stopping'); // no new connections; in-flight requests finish within the grace period
      kbs.close().then(
        () => resolve(true),
        (e: unknown) => {
          log.error({ err: e instanceof Error ? e.message : String(e) }, 'error while stopping');
          resolve(false);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  process.off('SIGHUP', reload);
  log.info({ clean }, 'stopped');
  if (!clean) process.exit(1); // a second signal: do not wait for what is still open
  return 0;
}
