/**
 * Collecting configuration problems: `Issues` gathers them (zod schema failures turned into
 * `<key path>: <problem>` texts that never echo secret values) and throws one `ConfigError`.
 */
import { TomlDate } from 'smol-toml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { TRUSTEE_ONLY_KEYS } from './schema.js';

export type PathSegment = string | number;

function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') {
      out += `[${segment}]`;
    } else {
      const key = /^[A-Za-z0-9_-]+$/.test(segment) ? segment : JSON.stringify(segment);
      out += out === '' ? key : `.${key}`;
    }
  }
  return out;
}

export function kindOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return 'float';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (Array.isArray(value)) return 'array';
  if (value instanceof TomlDate || value instanceof Date) return 'datetime';
  if (typeof value === 'object' && value !== null) return 'table';
  return typeof value;
}

function expectedName(expected: string): string {
  if (expected === 'bigint' || expected === 'int' || expected === 'number') return 'integer';
  if (expected === 'object' || expected === 'record' || expected === 'map') return 'table';
  return expected;
}

/** Identifier-like values (modes, plugin names, types) may be shown; nothing else is echoed. */
export function showValue(value: unknown): string {
  if (typeof value === 'string' && value.length <= 64 && /^[\x20-\x7e]*$/.test(value)) return JSON.stringify(value);
  return typeof value === 'string' ? 'string' : kindOf(value);
}

export function showOptions(options: readonly unknown[]): string {
  const shown = options.map((o) => JSON.stringify(typeof o === 'bigint' ? String(o) : o));
  return shown.length === 1 ? (shown[0] as string) : `one of ${shown.join(', ')}`;
}

export function unknownKeyProblem(keyPath: readonly PathSegment[]): string {
  const hint = TRUSTEE_ONLY_KEYS.get(keyPath.filter((s) => typeof s === 'string').join('.'));
  return hint === undefined ? 'unknown key' : `unknown key; ${hint}`;
}

/** Zod's own messages start like this; a schema's custom message does not. */
const DEFAULT_ZOD_MESSAGE = /^(Invalid|Too (big|small)|Unrecognized key)/;

function valueAt(root: unknown, segments: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

export class Issues {
  readonly list: ConfigIssue[] = [];

  add(segments: readonly PathSegment[], problem: string): void {
    const keyPath = formatPath(segments);
    // a key resolved by two sections (storage_backend dir_path) reports its problem once
    if (this.list.some((i) => i.keyPath === keyPath && i.problem === problem)) return;
    this.list.push({ keyPath, problem });
  }

  /** Validates `value` against `schema`; on failure records its issues under `base`. */
  check<S extends z.ZodType>(schema: S, value: unknown, base: readonly PathSegment[]): z.output<S> | undefined {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) this.addZodIssue(issue, value, base);
    return undefined;
  }

  private addZodIssue(issue: z.core.$ZodIssue, root: unknown, base: readonly PathSegment[]): void {
    const relative = issue.path.filter((s): s is PathSegment => typeof s === 'string' || typeof s === 'number');
    const at = [...base, ...relative];
    const received = valueAt(root, issue.path);
    const custom = DEFAULT_ZOD_MESSAGE.test(issue.message) ? null : issue.message;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) this.add([...at, key], unknownKeyProblem([...at, key]));
        return;
      case 'invalid_type':
        this.add(
          at,
          received === undefined
            ? `missing required key (expected ${expectedName(issue.expected)})`
            : `expected ${expectedName(issue.expected)}, got ${kindOf(received)}`,
        );
        return;
      case 'invalid_value':
      case 'invalid_union': {
        const options = issue.code === 'invalid_value' ? issue.values : 'options' in issue ? issue.options : undefined;
        if (options === undefined) {
          this.add(at, custom ?? 'invalid value');
        } else if (received === undefined) {
          this.add(at, `missing required key (expected ${showOptions(options)})`);
        } else if (typeof received !== 'string') {
          this.add(at, `expected ${showOptions(options)}, got ${kindOf(received)}`);
        } else {
          const what = `unsupported value ${showValue(received)}`;
          this.add(at, custom === null ? `${what} (expected ${showOptions(options)})` : `${what}: ${custom}`);
        }
        return;
      }
      default:
        this.add(at, custom ?? issue.message);
    }
  }

  throwIfAny(source: string): void {
    if (this.list.length > 0) throw new ConfigError(source, this.list);
  }
}

export function errorCode(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return 'error';
}
