/**
 * `compile(source)` → `Policy`, and `policy.evaluate(rulePath, {input, data})`.
 *
 * Compile once, evaluate many: a `Policy` is immutable and safe to share between requests; each
 * evaluation gets its own rule cache, budget and clock.
 */
import { createHash } from 'node:crypto';
import { compileModule, type CompiledModule, type HostFunctionArities } from './compiler.js';
import { PolicyError, type SourcePosition } from './errors.js';
import { DEFAULT_LIMITS, Evaluation, type HostFunction } from './evaluator.js';
import type { CompiledRule } from './ir.js';
import { parseModule } from './parser.js';
import { setKey, toJSON, type JsonValue, type RegoObject, type Value } from './value.js';

export interface CompileOptions {
  /** Host functions policies may call, with their arity. */
  hostFunctions?: HostFunctionArities;
}

export interface EvaluateOptions {
  hostFunctions?: Readonly<Record<string, HostFunction>>;
  /** `time.now_ns()` for this evaluation; defaults to the current time. */
  nowNs?: number;
  /** Evaluation step budget (default 1,000,000). */
  stepBudget?: number;
  /** Maximum nesting of rule, function and comprehension evaluation (default 128). */
  maxDepth?: number;
}

export interface RuleFailure {
  /** Where the definition starts. */
  rulePos: SourcePosition;
  /** The first expression of its body that had no solution; null when the body held. */
  failedAt: SourcePosition | null;
}

export interface EvaluationDocuments {
  input?: JsonValue;
  data?: JsonValue;
}

export class Policy {
  readonly packagePath: readonly string[];
  /** SHA-384 of the policy text, hex, as upstream identifies policies. */
  readonly hash: string;
  readonly source: string;
  private readonly module: CompiledModule;

  /** Use `compile()`. */
  constructor(source: string, module: CompiledModule) {
    this.source = source;
    this.module = module;
    this.packagePath = module.packagePath;
    this.hash = createHash('sha384').update(source, 'utf8').digest('hex');
  }

  /** Names of the rules and functions the policy defines. */
  get ruleNames(): string[] {
    return this.module.rules.map((r) => r.name);
  }

  /**
   * Evaluates a rule such as `data.policy.allow` (or the whole package, `data.policy`). Returns its
   * JSON value (sets as sorted arrays), or undefined when the rule is undefined or not in this
   * policy. Throws a PolicyError on evaluation errors (conflicts, strict builtin errors, budget).
   */
  evaluate(rulePath: string, docs: EvaluationDocuments = {}, options: EvaluateOptions = {}): JsonValue | undefined {
    const parts = parseRulePath(rulePath);
    const pkg = this.module.packagePath;
    if (parts.length < pkg.length || !pkg.every((p, i) => parts[i] === p)) return undefined;
    const evaluation = this.newEvaluation(docs, options);
    try {
      let value: Value | undefined;
      if (parts.length === pkg.length) {
        value = this.wholePackage(evaluation);
      } else {
        const idx = this.module.ruleIndex.get(parts[pkg.length] as string);
        if (idx === undefined) return undefined;
        const rule = this.module.rules[idx] as CompiledRule;
        if (rule.kind === 'function') return undefined;
        value = evaluation.ruleValue(idx);
        for (const key of parts.slice(pkg.length + 1)) {
          if (value === undefined) break;
          value = lookupPath(value, key);
        }
      }
      return value === undefined ? undefined : toJSON(value);
    } catch (e) {
      if (e instanceof RangeError) {
        throw new PolicyError('POLICY_BUDGET', 'evaluation exceeded the stack depth');
      }
      throw e;
    }
  }

  /**
   * Explains why a rule of this policy did not hold: for each of its definitions, the line and
   * column of the first body expression that had no solution. Empty when the rule does not exist.
   */
  explain(ruleName: string, docs: EvaluationDocuments = {}, options: EvaluateOptions = {}): RuleFailure[] {
    const idx = this.module.ruleIndex.get(ruleName);
    if (idx === undefined || (this.module.rules[idx] as CompiledRule).kind === 'function') return [];
    try {
      return this.newEvaluation(docs, options).firstFailures(idx);
    } catch {
      return [];
    }
  }

  private newEvaluation(docs: EvaluationDocuments, options: EvaluateOptions): Evaluation {
    return new Evaluation(
      this.module.rules,
      docs.input,
      docs.data === undefined ? {} : docs.data,
      options.hostFunctions ?? {},
      options.nowNs ?? Date.now() * 1e6,
      {
        stepBudget: options.stepBudget ?? DEFAULT_LIMITS.stepBudget,
        maxDepth: options.maxDepth ?? DEFAULT_LIMITS.maxDepth,
      },
    );
  }

  private wholePackage(evaluation: Evaluation): Value {
    const out: RegoObject = {};
    this.module.rules.forEach((r, i) => {
      if (r.kind === 'function') return;
      const v = evaluation.ruleValue(i);
      if (v !== undefined) setKey(out, r.name, v);
    });
    return out;
  }
}

function lookupPath(v: Value, key: string): Value | undefined {
  if (Array.isArray(v)) {
    const n = Number(key);
    return Number.isInteger(n) && n >= 0 && n < v.length ? v[n] : undefined;
  }
  if (v !== null && typeof v === 'object' && !(Symbol.iterator in v)) {
    return Object.hasOwn(v, key) ? (v as RegoObject)[key] : undefined;
  }
  return undefined;
}

/** `data.policy.allow` → ['policy', 'allow']; bracketed string segments are accepted too. */
/** Rule paths already parsed (a server evaluates the same few paths on every request). */
const rulePaths = new Map<string, readonly string[]>();

export function parseRulePath(path: string): string[] {
  const known = rulePaths.get(path);
  if (known !== undefined) return [...known];
  const m = /^data((?:\.[A-Za-z_][A-Za-z0-9_]*|\["[^"\\]*"\])*)$/.exec(path.trim());
  if (!m) throw new PolicyError('POLICY_EVAL', `invalid rule path "${path}" (expected data.<package>.<rule>)`);
  const out: string[] = [];
  const re = /\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"\\]*)"\]/g;
  for (const seg of (m[1] as string).matchAll(re)) out.push((seg[1] ?? seg[2]) as string);
  if (rulePaths.size < 256) rulePaths.set(path, [...out]);
  return out;
}

/** Parses and compiles a policy. Throws a PolicyError naming the line and column of any problem. */
export function compile(source: string, options: CompileOptions = {}): Policy {
  const module = parseModule(source);
  try {
    return new Policy(source, compileModule(module, options.hostFunctions ?? {}));
  } catch (e) {
    if (e instanceof RangeError) {
      throw new PolicyError('POLICY_UNSUPPORTED', 'policy is nested too deeply to compile');
    }
    throw e;
  }
}
