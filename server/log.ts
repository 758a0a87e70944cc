/**
 * Structured JSON logs (pino). Secrets never go through here: callers log names, paths, codes and
 * steps, never resource values, keys, tokens or PINs; the redact list is a second line of defence.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'kbs' },
      redact: {
        paths: ['authorization', 'headers.authorization', 'headers.cookie', 'token', 'value', 'secret', 'pin', 'password', 'privateKey'],
        censor: '[redacted]',
      },
    },
    options.destination ?? process.stderr,
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
