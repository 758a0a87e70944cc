/**
 * Client subcommands, named like trustee's kbs-client:
 *   kbs config set-resource --path P --resource-file F | delete-resource --path P | list-resources
 *              | set-resource-policy (--policy-file F | --allow-all | --deny-all | --affirming | --default)
 *              | get-resource-policy
 *              | set-attestation-policy [--type rego] [--id default_cpu] --policy-file F
 *              | set-sample-reference-value NAME VALUE [--as-integer | --as-bool] [--as-single-value]
 *              | get-reference-value --id ID
 *   kbs attest [--tee-key-file K] [--init-data F]
 *   kbs get-resource --path P [--tee-key-file K] [--attestation-token T] [--init-data F] [--output F]
 * Common options: --url (default http://127.0.0.1:8080), --admin-token-file (default: the embedded
 * default's token file, ./data/admin-token, when it exists).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { samplePolicyText, type SamplePolicyName } from '../policy/index.js';
import { KbsClient, KbsClientError } from './client/kbs-client.js';
import { TeeKeyPair, TeeKeyPairError } from './client/tee-keypair.js';
import type { Io } from './policy.js';

export class UsageError extends Error {}

const COMMON = {
  url: { type: 'string', default: 'http://127.0.0.1:8080' },
  'admin-token-file': { type: 'string' },
} as const;

async function adminToken(file: string | undefined): Promise<string | undefined> {
  if (file !== undefined) {
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch {
      throw new UsageError(`cannot read the admin token file ${file}`);
    }
  }
  // loaded here only: the configuration schema is the slowest import of the client
  const { embeddedDefaultConfig } = await import('../config/index.js');
  const admin = embeddedDefaultConfig(process.cwd()).admin;
  if (admin.mode !== 'AuthenticatedAuthorization' || !admin.generatedCredentials) return undefined;
  try {
    return (await readFile(admin.generatedCredentials.tokenPath, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function teeKey(file: string | undefined): Promise<TeeKeyPair> {
  if (file === undefined) return TeeKeyPair.generate();
  try {
    return TeeKeyPair.fromPem(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot load the TEE key ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function readText(file: string | undefined, what: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read the ${what} file ${file}`);
  }
}

function required(v: string | undefined, name: string): string {
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** kbs-client's VALUE parsing: a string, or with --as-integer an i32, with --as-bool true/false. */
export function sampleValue(text: string, flags: { asInteger?: boolean; asBool?: boolean; asSingleValue?: boolean }): unknown {
  if (flags.asInteger && flags.asBool) throw new UsageError('give at most one of --as-integer, --as-bool');
  let value: unknown = text;
  if (flags.asInteger) {
    const n = /^[+-]?[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new UsageError(`VALUE ${JSON.stringify(text)} is not a 32-bit integer`);
    value = n;
  } else if (flags.asBool) {
    if (text !== 'true' && text !== 'false') throw new UsageError(`VALUE ${JSON.stringify(text)} is not true or false`);
    value = text === 'true';
  }
  return flags.asSingleValue ? value : [value];
}

const TAKES_POSITIONALS = new Set(['set-sample-reference-value']);

export async function configCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      ...COMMON,
      path: { type: 'string' },
      'resource-file': { type: 'string' },
      'policy-file': { type: 'string' },
      'allow-all': { type: 'boolean' },
      'deny-all': { type: 'boolean' },
      affirming: { type: 'boolean' },
      default: { type: 'boolean' },
      type: { type: 'string' },
      id: { type: 'string' },
      'as-integer': { type: 'boolean' },
      'as-bool': { type: 'boolean' },
      'as-single-value': { type: 'boolean' },
    },
  });
  if (sub !== undefined && !TAKES_POSITIONALS.has(sub) && positionals.length > 0) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const client = new KbsClient({ url: values.url, ...(await adminTokenOption(values['admin-token-file'])) });
  switch (sub) {
    case 'set-resource': {
      const file = required(values['resource-file'], 'resource-file');
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        throw new UsageError(`cannot read the resource file ${file}`);
      }
      await client.setResource(required(values.path, 'path'), bytes);
      io.out(`stored ${values.path} (${bytes.length} bytes)`);
      return 0;
    }
    case 'delete-resource':
      await client.deleteResource(required(values.path, 'path'));
      io.out(`deleted ${values.path}`);
      return 0;
    case 'list-resources':
      for (const r of await client.listResources()) io.out(`${r.path}\t${r.size}\t${r.updated}`);
      return 0;
    case 'set-resource-policy': {
      const samples: Array<[boolean | undefined, SamplePolicyName]> = [
        [values['allow-all'], 'allow_all'],
        [values['deny-all'], 'deny_all'],
        [values.affirming, 'affirming'],
        [values.default, 'default'],
      ];
      const chosen = samples.filter(([flag]) => flag === true);
      const choices = chosen.length + (values['policy-file'] !== undefined ? 1 : 0);
      if (choices !== 1) throw new UsageError('give exactly one of --policy-file, --allow-all, --deny-all, --affirming, --default');
      const text = (await readText(values['policy-file'], 'policy')) ?? samplePolicyText((chosen[0] as [boolean, SamplePolicyName])[1]);
      await client.setResourcePolicy(text);
      io.out('resource policy set');
      return 0;
    }
    case 'set-attestation-policy': {
      const file = required(values['policy-file'], 'policy-file');
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        throw new UsageError(`cannot read the policy file ${file}`);
      }
      const id = values.id ?? 'default_cpu';
      await client.setAttestationPolicy(bytes, { ...(values.type !== undefined ? { type: values.type } : {}), id });
      io.out(`attestation policy ${id} set`);
      return 0;
    }
    case 'set-sample-reference-value': {
      if (positionals.length !== 2) throw new UsageError('usage: config set-sample-reference-value NAME VALUE [--as-integer | --as-bool] [--as-single-value]');
      const [name, text] = positionals as [string, string];
      const value = sampleValue(text, {
        asInteger: values['as-integer'] === true,
        asBool: values['as-bool'] === true,
        asSingleValue: values['as-single-value'] === true,
      });
      await client.setSampleReferenceValue(name, value);
      io.out('Reference Values Updated');
      return 0;
    }
    case 'get-reference-value':
      io.out(await client.getReferenceValue(required(values.id, 'id')));
      return 0;
    case 'get-resource-policy':
      io.out((await client.getResourcePolicy()).replace(/\n$/, ''));
      return 0;
    default:
      throw new UsageError(sub ? `unknown config command "${sub}"` : 'missing config command');
  }
}

async function adminTokenOption(file: string | undefined): Promise<{ adminToken?: string }> {
  const token = await adminToken(file);
  return token === undefined ? {} : { adminToken: token };
}

export async function attestCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { url: COMMON.url, 'tee-key-file': { type: 'string' }, 'init-data': { type: 'string' } } });
  const client = new KbsClient({ url: values.url });
  const token = await client.attest(await teeKey(values['tee-key-file']), await readText(values['init-data'], 'init-data'));
  io.out(token);
  return 0;
}

export async function getResourceCommand(args: string[], io: Io & { outBytes?: (b: Uint8Array) => void }): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: COMMON.url,
      path: { type: 'string' },
      'tee-key-file': { type: 'string' },
      'attestation-token': { type: 'string' },
      'init-data': { type: 'string' },
      output: { type: 'string' },
    },
  });
  const path = required(values.path, 'path');
  const client = new KbsClient({ url: values.url });
  let secret: Uint8Array;
  if (values['attestation-token'] !== undefined) {
    if (values['tee-key-file'] === undefined) throw new UsageError('--attestation-token needs --tee-key-file (the key the token was issued for)');
    const token = (await readText(values['attestation-token'], 'attestation token')) as string;
    secret = await client.getResource(path, await teeKey(values['tee-key-file']), token.trim());
  } else {
    const key = await teeKey(values['tee-key-file']);
    await client.attest(key, await readText(values['init-data'], 'init-data'));
    secret = await client.getResource(path, key);
  }
  if (values.output !== undefined) {
    await writeFile(values.output, secret, { mode: 0o600 });
  } else if (io.outBytes) {
    io.outBytes(secret);
  } else {
    process.stdout.write(secret);
  }
  return 0;
}

/** Maps client failures to exit codes: usage 2, server or network refusal 1. */
export async function runClient(f: () => Promise<number>, io: Io): Promise<number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      io.err(`kbs: ${e.message}`);
      return 2;
    }
    if (e instanceof KbsClientError) {
      io.err(`kbs: ${e.message}`);
      return 1;
    }
    if (e instanceof TeeKeyPairError) {
      // the response does not decrypt with this TEE key (e.g. a token issued for another key)
      io.err(`kbs: cannot decrypt the response: ${e.message}`);
      return 1;
    }
    if (e instanceof TypeError && e.message === 'fetch failed') {
      io.err(`kbs: cannot reach the KBS: ${e.cause instanceof Error ? e.cause.message : 'connection failed'}`);
      return 1;
    }
    throw e;
  }
}
