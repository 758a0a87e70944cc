/** `kbs serve [-c FILE]`: start the KBS (embedded default without a file or KBS_CONFIG_FILE). */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import { startKbs } from '../server/start.js';
import type { Io } from './policy.js';

export async function serveCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  let config;
  try {
    config = await loadConfig({ ...(values.config ? { file: values.config } : {}), env: process.env, cwd: process.cwd() });
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
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      kbs.services.log.info({ signal }, 'stopping');
      void kbs.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
