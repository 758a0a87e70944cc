/**
 * The evaluator: continuation-passing backtracking over the compiled IR.
 *
 * Each `eval*` function calls its continuation once per solution; a continuation returns true to
 * stop the search (first solution is enough), and that `true` propagates back. Bindings live in a
 * frame (one array of slots per rule definition or function call) and are undone on the way back.
 * Undefined is simply "no solution". Every literal, iteration step and rule or function call is
 * charged against a step budget; depth is bounded too.
 */
import type { BuiltinContext } from './builtins/types.js';
import { PolicyError } from './errors.js';
import type { Pos } from './ast.js';
import type { Clause, CompiledRule, Def, Expr, Lit, Pattern, Seg } from './ir.js';
import {
  RegoSet,
  equal,
  fromUnknown,
  getKey,
  isObject,
  setKey,
  toJSON,
  type JsonValue,
  type RegoObject,
  type Value,
} from './value.js';

type Frame = Array<Value | undefined>;
type Cont = (v: Value) => boolean;
type BodyCont = () => boolean;

export type HostFunction = (...args: JsonValue[]) => unknown;

export interface EvalLimits {
  /** Maximum evaluation steps (literals, iterations, calls). */
  stepBudget: number;
  /** Maximum nesting of rule, function and comprehension evaluation. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: EvalLimits = { stepBudget: 1_000_000, maxDepth: 128 };

const PENDING = Symbol('pending');
const NONE = Symbol('undefined');

export class Evaluation implements BuiltinContext {
  private steps = 0;
  private depth = 0;
  private readonly cache: Array<Value | typeof NONE | typeof PENDING | undefined>;

  constructor(
    private readonly rules: readonly CompiledRule[],
    private readonly input: Value | undefined,
    private readonly data: Value,
    private readonly hosts: Readonly<Record<string, HostFunction>>,
    readonly nowNs: number,
    private readonly limits: EvalLimits,
  ) {
    this.cache = new Array(rules.length);
  }

  charge(units: number): void {
    this.steps += units;
    if (this.steps > this.limits.stepBudget) {
      throw new PolicyError('POLICY_BUDGET', `evaluation exceeded its budget of ${this.limits.stepBudget} steps`);
    }
  }

  private step(): void {
    if (++this.steps > this.limits.stepBudget) {
      throw new PolicyError('POLICY_BUDGET', `evaluation exceeded its budget of ${this.limits.stepBudget} steps`);
    }
  }

  private enter(): void {
    if (++this.depth > this.limits.maxDepth) {
      throw new PolicyError('POLICY_BUDGET', `evaluation nested deeper than ${this.limits.maxDepth} levels`);
    }
  }

  // ---- rules ---------------------------------------------------------------------------------

  ruleValue(index: number): Value | undefined {
    const cached = this.cache[index];
    if (cached === NONE) return undefined;
    if (cached === PENDING) throw new PolicyError('POLICY_EVAL', 'internal: rule evaluated recursively');
    if (cached !== undefined) return cached;
    this.cache[index] = PENDING;
    this.enter();
    try {
      const v = this.computeRule(this.rules[index] as CompiledRule);
      this.cache[index] = v === undefined ? NONE : v;
      return v;
    } catch (e) {
      this.cache[index] = undefined;
      throw e;
    } finally {
      this.depth--;
    }
  }

  private computeRule(rule: CompiledRule): Value | undefined {
    this.step();
    switch (rule.kind) {
      case 'complete': {
        let result: Value | undefined;
        for (const def of rule.defs) {
          const v = this.evalDef(def, new Array(def.nslots), rule.name);
          if (v === undefined) continue;
          if (result !== undefined && !equal(result, v)) throw conflict(rule.name, def);
          result = v;
        }
        return result !== undefined ? result : rule.defaultValue;
      }
      case 'set': {
        const out = new RegoSet();
        for (const def of rule.defs) {
          const frame: Frame = new Array(def.nslots);
          const clause = def.clauses[0] as Clause;
          this.evalClauseBody(clause, frame, () =>
            this.evalExpr(def.key as Expr, frame, (k) => {
              this.step();
              out.add(k);
              return false;
            }),
          );
        }
        return out;
      }
      case 'object': {
        const out: RegoObject = {};
        for (const def of rule.defs) {
          const frame: Frame = new Array(def.nslots);
          const clause = def.clauses[0] as Clause;
          this.evalClauseBody(clause, frame, () =>
            this.evalExpr(def.key as Expr, frame, (k) =>
              this.evalExpr(clause.value, frame, (v) => {
                this.step();
                if (typeof k !== 'string') throw new PolicyError('POLICY_TYPE', `rule "${rule.name}": object keys must be strings`, def.pos);
                const prev = getKey(out, k);
                if (prev !== undefined && !equal(prev, v)) {
                  throw new PolicyError('POLICY_CONFLICT', `rule "${rule.name}" produced two different values for one key`, def.pos);
                }
                setKey(out, k, v);
                return false;
              }),
            ),
          );
        }
        return out;
      }
      case 'function':
        throw new PolicyError('POLICY_EVAL', `function "${rule.name}" cannot be evaluated as a rule`);
    }
  }

  /** The value of one definition: its first clause with a solution (else chain), or undefined. */
  private evalDef(def: Def, frame: Frame, name: string): Value | undefined {
    for (const clause of def.clauses) {
      let result: Value | undefined;
      this.evalClauseBody(clause, frame, () =>
        this.evalExpr(clause.value, frame, (v) => {
          if (result !== undefined && !equal(result, v)) throw conflict(name, def);
          result = v;
          return clause.constHead;
        }),
      );
      if (result !== undefined) return result;
    }
    return undefined;
  }

  /**
   * For a denied decision: where each definition of a rule stopped. Returns, per definition, the
   * position of the first body expression that had no solution (null if the body holds).
   */
  firstFailures(index: number): Array<{ rulePos: Pos; failedAt: Pos | null }> {
    const rule = this.rules[index] as CompiledRule;
    return rule.defs.map((def) => {
      const body = (def.clauses[0] as Clause).body;
      if (!body) return { rulePos: def.pos, failedAt: null };
      const frame: Frame = new Array(def.nslots);
      for (let n = 1; n <= body.length; n++) {
        const holds = this.evalBody(body.slice(0, n), 0, frame, () => true);
        if (!holds) return { rulePos: def.pos, failedAt: (body[n - 1] as Lit).pos };
      }
      return { rulePos: def.pos, failedAt: null };
    });
  }

  private evalClauseBody(clause: Clause, frame: Frame, k: BodyCont): boolean {
    return clause.body ? this.evalBody(clause.body, 0, frame, k) : k();
  }

  private callFunction(index: number, args: Value[]): Value | undefined {
    const rule = this.rules[index] as CompiledRule;
    this.step();
    this.enter();
    try {
      let result: Value | undefined;
      for (const def of rule.defs) {
        const frame: Frame = new Array(def.nslots);
        let v: Value | undefined;
        this.bindParams(def.params, args, 0, frame, () => {
          v = this.evalDef(def, frame, rule.name);
          return true;
        });
        if (v === undefined) continue;
        if (result !== undefined && !equal(result, v)) {
          throw new PolicyError('POLICY_CONFLICT', `function "${rule.name}" produced two different outputs for the same inputs`, def.pos);
        }
        result = v;
      }
      return result;
    } finally {
      this.depth--;
    }
  }

  private bindParams(params: Pattern[], args: Value[], i: number, frame: Frame, k: BodyCont): boolean {
    if (i === params.length) return k();
    return this.unify(params[i] as Pattern, args[i] as Value, frame, () => this.bindParams(params, args, i + 1, frame, k));
  }

  // ---- bodies --------------------------------------------------------------------------------

  evalBody(lits: Lit[], i: number, frame: Frame, k: BodyCont): boolean {
    if (i === lits.length) return k();
    this.step();
    const lit = lits[i] as Lit;
    switch (lit.k) {
      case 'expr':
        return this.evalExpr(lit.e, frame, (v) => (v !== false ? this.evalBody(lits, i + 1, frame, k) : false));
      case 'not': {
        const found = this.evalBody(lit.body, 0, frame, () => true);
        return found ? false : this.evalBody(lits, i + 1, frame, k);
      }
      case 'unify':
        return this.evalExpr(lit.value, frame, (v) => this.unify(lit.pattern, v, frame, () => this.evalBody(lits, i + 1, frame, k)));
      case 'somein':
        return this.evalExpr(lit.coll, frame, (coll) =>
          this.forEach(coll, (key, value) => {
            const next = () => this.unify(lit.value, value, frame, () => this.evalBody(lits, i + 1, frame, k));
            return lit.key ? this.unify(lit.key, key, frame, next) : next();
          }),
        );
      case 'every':
        return this.evalExpr(lit.coll, frame, (coll) => {
          if (!isCollection(coll)) return false;
          let all = true;
          this.forEach(coll, (key, value) => {
            const holds = (lit.key ? this.unify(lit.key, key, frame, () => this.unifyThen(lit, value, frame)) : this.unifyThen(lit, value, frame));
            if (!holds) all = false;
            return !holds;
          });
          return all ? this.evalBody(lits, i + 1, frame, k) : false;
        });
    }
  }

  private unifyThen(lit: Extract<Lit, { k: 'every' }>, value: Value, frame: Frame): boolean {
    return this.unify(lit.value, value, frame, () => this.evalBody(lit.body, 0, frame, () => true));
  }

  /** Calls f(key, value) for each element of a collection until it returns true. */
  private forEach(coll: Value, f: (key: Value, value: Value) => boolean): boolean {
    if (Array.isArray(coll)) {
      for (let i = 0; i < coll.length; i++) {
        this.step();
        if (f(i, coll[i] as Value)) return true;
      }
    } else if (coll instanceof RegoSet) {
      for (const v of coll.sorted()) {
        this.step();
        if (f(v, v)) return true;
      }
    } else if (isObject(coll)) {
      // OPA and regorus iterate objects in key order
      const keys = Object.keys(coll);
      if (keys.length > 1) keys.sort();
      for (const key of keys) {
        this.step();
        if (f(key, coll[key] as Value)) return true;
      }
    }
    return false;
  }

  private unify(p: Pattern, v: Value, frame: Frame, k: BodyCont): boolean {
    switch (p.k) {
      case 'bind': {
        frame[p.slot] = v;
        try {
          return k();
        } finally {
          frame[p.slot] = undefined;
        }
      }
      case 'pvalue':
        return this.evalExpr(p.e, frame, (x) => (equal(x, v) ? k() : false));
      case 'parray': {
        if (!Array.isArray(v) || v.length !== p.items.length) return false;
        const go = (i: number): boolean =>
          i === p.items.length ? k() : this.unify(p.items[i] as Pattern, v[i] as Value, frame, () => go(i + 1));
        return go(0);
      }
      case 'pobject': {
        if (!isObject(v) || Object.keys(v).length !== p.entries.length) return false;
        const go = (i: number): boolean => {
          if (i === p.entries.length) return k();
          const [key, sub] = p.entries[i] as [string, Pattern];
          const x = getKey(v, key);
          return x === undefined ? false : this.unify(sub, x, frame, () => go(i + 1));
        };
        return go(0);
      }
    }
  }

  // ---- expressions ---------------------------------------------------------------------------

  evalExpr(e: Expr, frame: Frame, k: Cont): boolean {
    switch (e.k) {
      case 'const':
        return k(e.v);
      case 'local': {
        const v = frame[e.slot];
        if (v === undefined) throw new PolicyError('POLICY_EVAL', 'internal: unbound variable read');
        return k(v);
      }
      case 'input':
        return this.input === undefined ? false : k(this.input);
      case 'data':
        return k(this.data);
      case 'rule': {
        const v = this.ruleValue(e.rule);
        return v === undefined ? false : k(v);
      }
      case 'ref':
        return this.evalExpr(e.head, frame, (h) => this.walk(h, e.path, 0, frame, k));
      case 'builtin':
        return this.evalArgs(e.args, 0, [], frame, (args) => {
          this.step();
          const v = withPosition(e.pos, () => e.fn.impl(args, this));
          return v === undefined ? false : k(v);
        });
      case 'func':
        return this.evalArgs(e.args, 0, [], frame, (args) => {
          const v = this.callFunction(e.func, args);
          return v === undefined ? false : k(v);
        });
      case 'host':
        return this.evalArgs(e.args, 0, [], frame, (args) => {
          this.step();
          const v = this.callHost(e.name, args, e);
          return v === undefined ? false : k(v);
        });
      case 'array':
        return this.evalArgs(e.items, 0, [], frame, (items) => k(items));
      case 'set':
        return this.evalArgs(e.items, 0, [], frame, (items) => k(new RegoSet(items)));
      case 'object':
        return this.evalEntries(e, 0, {}, frame, k);
      case 'arraycomp': {
        const out: Value[] = [];
        this.collect(e.head, e.body, frame, (v) => void out.push(v));
        return k(out);
      }
      case 'setcomp': {
        const out = new RegoSet();
        this.collect(e.head, e.body, frame, (v) => out.add(v));
        return k(out);
      }
      case 'objcomp': {
        const out: RegoObject = {};
        this.comprehension(e.body, frame, () =>
          this.evalExpr(e.key, frame, (key) =>
            this.evalExpr(e.value, frame, (v) => {
              this.step();
              if (typeof key !== 'string') throw new PolicyError('POLICY_TYPE', 'object comprehension keys must be strings', e.pos);
              const prev = getKey(out, key);
              if (prev !== undefined && !equal(prev, v)) {
                throw new PolicyError('POLICY_CONFLICT', 'object comprehension produced two different values for one key', e.pos);
              }
              setKey(out, key, v);
              return false;
            }),
          ),
        );
        return k(out);
      }
    }
  }

  /** Every value of `head` over every solution of `body`. */
  private collect(head: Expr, body: Lit[], frame: Frame, add: (v: Value) => void): void {
    this.comprehension(body, frame, () =>
      this.evalExpr(head, frame, (v) => {
        this.step();
        add(v);
        return false;
      }),
    );
  }

  private comprehension(body: Lit[], frame: Frame, k: BodyCont): void {
    this.enter();
    try {
      this.evalBody(body, 0, frame, k);
    } finally {
      this.depth--;
    }
  }

  private evalArgs(args: Expr[], i: number, acc: Value[], frame: Frame, k: (vals: Value[]) => boolean): boolean {
    if (i === args.length) return k(acc.slice());
    return this.evalExpr(args[i] as Expr, frame, (v) => {
      acc[i] = v;
      return this.evalArgs(args, i + 1, acc, frame, k);
    });
  }

  private evalEntries(e: Extract<Expr, { k: 'object' }>, i: number, acc: RegoObject, frame: Frame, k: Cont): boolean {
    if (i === e.entries.length) return k({ ...acc });
    const [ke, ve] = e.entries[i] as [Expr, Expr];
    return this.evalExpr(ke, frame, (key) => {
      if (typeof key !== 'string') throw new PolicyError('POLICY_TYPE', 'object keys must be strings', e.pos);
      return this.evalExpr(ve, frame, (v) => {
        const copy: RegoObject = { ...acc };
        setKey(copy, key, v);
        return this.evalEntries(e, i + 1, copy, frame, k);
      });
    });
  }

  private walk(cur: Value, path: Seg[], i: number, frame: Frame, k: Cont): boolean {
    if (i === path.length) return k(cur);
    const seg = path[i] as Seg;
    if (seg.k === 'iter') {
      return this.forEach(cur, (key, value) => {
        frame[seg.slot] = key;
        try {
          return this.walk(value, path, i + 1, frame, k);
        } finally {
          frame[seg.slot] = undefined;
        }
      });
    }
    return this.evalExpr(seg, frame, (key) => {
      const next = lookup(cur, key);
      return next === undefined ? false : this.walk(next, path, i + 1, frame, k);
    });
  }

  private callHost(name: string, args: Value[], e: Extract<Expr, { k: 'host' }>): Value | undefined {
    const f = Object.hasOwn(this.hosts, name) ? this.hosts[name] : undefined;
    if (!f) throw new PolicyError('POLICY_HOST', `host function "${name}" is not available in this evaluation`, e.pos);
    let out: unknown;
    try {
      out = f(...args.map(toJSON));
    } catch {
      throw new PolicyError('POLICY_HOST', `host function "${name}" failed`, e.pos);
    }
    if (out === undefined) return undefined;
    const v = fromUnknown(out);
    if (v === undefined) throw new PolicyError('POLICY_HOST', `host function "${name}" returned a value that is not JSON`, e.pos);
    return v;
  }
}

function isCollection(v: Value): boolean {
  return Array.isArray(v) || v instanceof RegoSet || isObject(v);
}

export function lookup(cur: Value, key: Value): Value | undefined {
  if (Array.isArray(cur)) {
    return typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < cur.length ? cur[key] : undefined;
  }
  if (cur instanceof RegoSet) return cur.has(key) ? key : undefined;
  if (isObject(cur)) return typeof key === 'string' ? getKey(cur, key) : undefined;
  return undefined;
}

function conflict(name: string, def: Def): PolicyError {
  return new PolicyError('POLICY_CONFLICT', `complete rule "${name}" produced more than one value`, def.pos);
}

/** Attaches the call's source position to a builtin error that has none. */
function withPosition<T>(pos: { line: number; column: number }, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PolicyError && e.line === undefined) throw new PolicyError(e.code, e.detail, pos);
    throw e;
  }
}
