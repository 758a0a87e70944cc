/**
 * Reads a secret (such as an HSM PIN) from where the configuration says it is: inline, a file, or an
 * environment variable. Errors name the source, never the value.
 */
import { readFile } from 'node:fs/promises';
import type { SecretSource } from './types.js';

export async function readSecret(source: SecretSource, what: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  let value: string | undefined;
  switch (source.kind) {
    case 'inline':
      value = source.value;
      break;
    case 'file':
      try {
        value = (await readFile(source.path, 'utf8')).replace(/\r?\n$/, '');
      } catch {
        throw new Error(`${what}: cannot read ${source.path}`);
      }
      break;
    case 'env':
      value = env[source.name];
      if (value === undefined) throw new Error(`${what}: the environment variable ${source.name} is not set`);
      break;
  }
  if (value.length === 0) throw new Error(`${what}: the ${source.kind === 'inline' ? 'configured value' : source.kind === 'file' ? `file ${source.path}` : `variable ${source.name}`} is empty`);
  return value;
}
