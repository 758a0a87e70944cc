/**
 * `kbs policy check <file.rego>` and `kbs policy eval --policy … --input … [--data …] [--query …]`:
 * the operator's tools for debugging denied requests, like `opa check` / `opa eval`.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  APPRAISAL_HOST_FUNCTIONS,
  compile,
  isPolicyError,
  resourcePolicyData,
  type JsonValue,
  type Policy,
  type ResourceRequest,
} from '../policy/index.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const MAX_FILE_BYTES = 16 * 1024 * 1024;

class UsageError extends Error {}

const USAGE = `usage:
  kbs policy check <file.rego>
  kbs policy eval --policy <file.rego> --input <claims.json>
                  [--data <data.json> | --request resource/<repo>/<type>/<tag>[?k=v]]
                  [--query data.policy.allow] [--reference-values <rvs.json>] [--explain]`;

function readText(path: string, what: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new UsageError(`cannot read ${what} file ${path}`);
  }
  if (size > MAX_FILE_BYTES) throw new UsageError(`${what} file ${path} is larger than ${MAX_FILE_BYTES} bytes`);
  return readFileSync(path, 'utf8');
}

function readJson(path: string, what: string): JsonValue {
  const text = readText(path, what);
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new UsageError(`${what} file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * `resource/default/key/1?version=2` → the request the KBS would build the policy's `data` from:
 * the first segment is the plugin, the rest the resource path, the query string the query map.
 */
export function parseRequest(text: string): ResourceRequest {
  const [path = '', queryText] = text.replace(/^\/?(kbs\/v0\/)?/, '').split('?', 2);
  const [plugin = '', ...resourcePath] = path.split('/');
  if (!plugin) throw new UsageError(`--request needs a path such as resource/<repo>/<type>/<tag>, got "${text}"`);
  const query: Record<string, string> = Object.fromEntries(new URLSearchParams(queryText ?? ''));
  return { plugin, resourcePath, query };
}

function compileFile(path: string, io: Io): Policy | undefined {
  const text = readText(path, 'policy');
  try {
    return compile(text, { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
  } catch (e) {
    if (!isPolicyError(e)) throw e;
    const where = e.line !== undefined ? `${path}:${e.line}:${e.column}` : path;
    io.err(`${where}: ${e.code}: ${e.detail}`);
    return undefined;
  }
}

function check(args: string[], io: Io): number {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError('kbs policy check takes exactly one file');
  const path = positionals[0] as string;
  const policy = compileFile(path, io);
  if (!policy) return 1;
  io.out(`${path}: ok (package ${policy.packagePath.join('.')}, rules: ${policy.ruleNames.join(', ') || 'none'}, sha384 ${policy.hash})`);
  return 0;
}

function evaluate(args: string[], io: Io): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      policy: { type: 'string' },
      input: { type: 'string' },
      data: { type: 'string' },
      request: { type: 'string' },
      query: { type: 'string', default: 'data.policy.allow' },
      'reference-values': { type: 'string' },
      explain: { type: 'boolean', default: false },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values.policy) throw new UsageError('--policy is required');
  if (!values.input) throw new UsageError('--input is required');
  const input = readJson(values.input, 'input');
  if (values.data && values.request) throw new UsageError('--data and --request are mutually exclusive');
  const data = values.data
    ? readJson(values.data, 'data')
    : values.request
      ? resourcePolicyData(parseRequest(values.request))
      : undefined;
  const rvs = values['reference-values'] ? readJson(values['reference-values'], 'reference values') : {};
  if (rvs === null || typeof rvs !== 'object' || Array.isArray(rvs)) throw new UsageError('reference values must be a JSON object');
  const policy = compileFile(values.policy, io);
  if (!policy) return 1;
  const query = values.query as string;
  const options = {
    hostFunctions: {
      query_reference_value: (id: JsonValue) => (typeof id === 'string' && Object.hasOwn(rvs, id) ? (rvs[id] as JsonValue) : null),
    },
  };
  const docs = data === undefined ? { input } : { input, data };
  try {
    const result = policy.evaluate(query, docs, options);
    io.out(result === undefined ? 'undefined' : JSON.stringify(result, null, 2));
    if (values.explain && result !== true) {
      const rule = query.split('.').pop() as string;
      for (const f of policy.explain(rule, docs, options)) {
        io.err(
          f.failedAt
            ? `${rule} (line ${f.rulePos.line}): failed at ${values.policy}:${f.failedAt.line}:${f.failedAt.column}`
            : `${rule} (line ${f.rulePos.line}): body holds`,
        );
      }
    }
    return 0;
  } catch (e) {
    if (!isPolicyError(e)) throw e;
    const where = e.line !== undefined ? `${values.policy}:${e.line}:${e.column}: ` : '';
    io.err(`evaluation error: ${where}${e.code}: ${e.detail}`);
    return 1;
  }
}

/** Runs `kbs policy …`; returns the exit code (0 ok, 1 policy error, 2 usage error). */
export function policyCommand(args: string[], io: Io): number {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'check':
        return check(rest, io);
      case 'eval':
        return evaluate(rest, io);
      default:
        throw new UsageError(sub ? `unknown policy command "${sub}"` : 'missing policy command');
    }
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      io.err(`kbs policy: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
