/**
 * Compiles one rule or function definition: orders each body's literals so that every variable is
 * bound before it is read (Rego's safety rule, reordering as OPA does), decides every binding site
 * statically, resolves calls against the builtin allow-list and folds constants.
 */
import type { Literal, Pos, RuleDef, Term } from './ast.js';
import { BUILTINS, OPERATORS } from './builtins/index.js';
import type { Builtin } from './builtins/types.js';
import { collectNames, declarePattern, lookup, newScope, type Names, type Scope } from './compile-scope.js';
import { PolicyError } from './errors.js';
import type { Clause, CompiledRule, Def, Expr, Lit, Pattern, Seg } from './ir.js';
import { RegoSet, setKey, type RegoObject, type Value } from './value.js';

/** What a definition's compiler needs from the module being compiled. */
export interface ModuleContext {
  readonly packagePath: readonly string[];
  readonly ruleIndex: ReadonlyMap<string, number>;
  readonly rules: readonly CompiledRule[];
  readonly host: Readonly<Record<string, number>>;
  /** Counts compile work (throws when a policy is too complex). */
  tick(pos: Pos): void;
  /** Records that the rule being compiled depends on another (for the recursion check). */
  dependOn(rule: number): void;
}

export const MAX_BODY_LITERALS = 512;

/** Builtins OPA has that this engine refuses on purpose (not built upstream, or not deterministic). */
const REFUSED_PREFIXES = [
  'http.', 'net.', 'uuid.', 'semver.', 'glob.', 'yaml.', 'hex.', 'base64url.', 'units.', 'crypto.',
  'io.', 'opa.', 'rand.', 'graph.', 'providers.', 'rego.', 'urlquery.',
];
const REFUSED_NAMES = new Set(['print', 'trace', 'walk', 'json.match_schema', 'json.verify_schema']);

const OPERATOR_NAMES: Record<string, string> = {
  '==': 'equal', '!=': 'neq', '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte',
  '+': 'plus', '-': 'minus', '*': 'mul', '/': 'div', '%': 'rem', '&': 'and', '|': 'or',
};

/** A variable read before anything binds it; the body scheduler retries the literal later. */
class Unsafe extends Error {
  constructor(readonly varName: string, readonly pos: Pos) {
    super(`var ${varName} is unsafe`);
  }
}

function operator(name: string): Builtin {
  const b = OPERATORS.get(name);
  if (!b) throw new Error(`internal: operator ${name} missing`);
  return b;
}

export class DefCompiler implements Names {
  private nslots = 0;
  private readonly slotNames: string[] = [];

  constructor(private readonly m: ModuleContext) {}

  isRule(name: string): boolean {
    return this.m.ruleIndex.has(name);
  }

  newSlot(name: string): number {
    this.slotNames.push(name);
    return this.nslots++;
  }

  compile(d: RuleDef): Def {
    const root = newScope(null);
    const paramBound = new Set<number>();
    const params: Pattern[] = [];
    if (d.kind === 'function') {
      for (const p of d.params) declarePattern(this, p, root);
      for (const p of d.params) params.push(this.compilePattern(p, root, paramBound, true));
    }
    const clauses: Clause[] = [];
    let key: Expr | null = null;
    const all = [{ value: d.value, body: d.body, pos: d.pos }, ...d.elses];
    for (const [i, c] of all.entries()) {
      const scope = d.kind === 'function' ? newScope(root) : i === 0 ? root : newScope(null);
      const bound = new Set(paramBound);
      const headTerms = [c.value, ...(i === 0 && d.key ? [d.key] : [])];
      collectNames(this, c.body ?? [], scope, headTerms);
      const body = c.body ? this.compileBody(c.body, scope, bound) : null;
      if (i === 0 && d.key) key = this.headTerm(d.key, scope, bound);
      const value = this.headTerm(c.value, scope, bound);
      clauses.push({ value, body, constHead: value.k === 'const' && (d.kind === 'complete' || d.kind === 'function') });
    }
    return { pos: d.pos, nslots: this.nslots, params, key, clauses };
  }

  private headTerm(t: Term, scope: Scope, bound: Set<number>): Expr {
    try {
      return this.compileTerm(t, scope, bound);
    } catch (e) {
      if (e instanceof Unsafe) throw unsafeError(e);
      throw e;
    }
  }

  // ---- bodies --------------------------------------------------------------------------------

  /** Compiles a body, choosing a safe order; `bound` is updated with what the body binds. */
  compileBody(lits: Literal[], scope: Scope, bound: Set<number>): Lit[] {
    if (lits.length > MAX_BODY_LITERALS) {
      throw new PolicyError('POLICY_UNSUPPORTED', `a body has more than ${MAX_BODY_LITERALS} expressions`, (lits[0] as Literal).pos);
    }
    const remaining = [...lits];
    const out: Lit[] = [];
    while (remaining.length > 0) {
      let progressed = false;
      let firstUnsafe: Unsafe | undefined;
      for (let i = 0; i < remaining.length; i++) {
        const trial = new Set(bound);
        try {
          const ir = this.compileLiteral(remaining[i] as Literal, scope, trial);
          if (ir) out.push(ir);
          for (const s of trial) bound.add(s);
          remaining.splice(i, 1);
          progressed = true;
          break;
        } catch (e) {
          if (!(e instanceof Unsafe)) throw e;
          firstUnsafe ??= e;
        }
      }
      if (!progressed) throw unsafeError(firstUnsafe as Unsafe);
    }
    return out;
  }

  private compileLiteral(lit: Literal, scope: Scope, bound: Set<number>): Lit | null {
    this.m.tick(lit.pos);
    switch (lit.l) {
      case 'expr':
        return { k: 'expr', e: this.compileTerm(lit.expr, scope, bound), pos: lit.pos };
      case 'not': {
        const inner = new Set(bound);
        const e = this.compileTerm(lit.expr, scope, inner);
        for (const s of inner) {
          if (!bound.has(s) && this.slotNames[s] !== '_') throw new Unsafe(this.slotNames[s] as string, lit.pos);
        }
        return { k: 'not', body: [{ k: 'expr', e, pos: lit.pos }], pos: lit.pos };
      }
      case 'assign': {
        const value = this.compileTerm(lit.rhs, scope, bound);
        this.checkAssignable(lit.lhs, scope, bound);
        const pattern = this.compilePattern(lit.lhs, scope, bound, true);
        return { k: 'unify', pattern, value, pos: lit.pos };
      }
      case 'unify': {
        const attempt = (pat: Term, val: Term): Lit => {
          const trial = new Set(bound);
          const value = this.compileTerm(val, scope, trial);
          const pattern = this.compilePattern(pat, scope, trial, false);
          for (const s of trial) bound.add(s);
          return { k: 'unify', pattern, value, pos: lit.pos };
        };
        try {
          return attempt(lit.lhs, lit.rhs);
        } catch (e) {
          if (!(e instanceof Unsafe)) throw e;
          return attempt(lit.rhs, lit.lhs);
        }
      }
      case 'some':
        return null;
      case 'somein': {
        const coll = this.compileTerm(lit.coll, scope, bound);
        const key = lit.key ? this.compilePattern(lit.key, scope, bound, true) : null;
        const value = this.compilePattern(lit.value, scope, bound, true);
        return { k: 'somein', key, value, coll, pos: lit.pos };
      }
      case 'every': {
        const coll = this.compileTerm(lit.coll, scope, bound);
        const child = newScope(scope);
        if (lit.key) declarePattern(this, lit.key, child);
        declarePattern(this, lit.value, child);
        const inner = new Set(bound);
        const key = lit.key ? this.compilePattern(lit.key, child, inner, true) : null;
        const value = this.compilePattern(lit.value, child, inner, true);
        collectNames(this, lit.body, child, []);
        const body = this.compileBody(lit.body, child, inner);
        return { k: 'every', key, value, coll, body, pos: lit.pos };
      }
    }
  }

  private checkAssignable(t: Term, scope: Scope, bound: Set<number>): void {
    if (t.t === 'var') {
      if (t.name === '_') return;
      const slot = lookup(t.name, scope);
      if (slot !== undefined && bound.has(slot)) {
        throw new PolicyError('POLICY_COMPILE', `var ${t.name} assigned above`, t.pos);
      }
      return;
    }
    if (t.t === 'array') return t.items.forEach((x) => this.checkAssignable(x, scope, bound));
    if (t.t === 'object') return t.entries.forEach(([, v]) => this.checkAssignable(v, scope, bound));
    if (t.t === 'scalar') return;
    throw new PolicyError('POLICY_COMPILE', 'the left side of ":=" must be a variable, or an array or object of variables', t.pos);
  }

  /**
   * A pattern: unbound variables (and `_`) bind, anything else is compared. `declaring`: the names
   * are this scope's new locals (`:=`, `some`, parameters).
   */
  compilePattern(t: Term, scope: Scope, bound: Set<number>, declaring: boolean): Pattern {
    if (t.t === 'var') {
      if (t.name === '_') return { k: 'bind', slot: this.newSlot('_') };
      const slot = lookup(t.name, scope);
      if (slot !== undefined && !bound.has(slot)) {
        bound.add(slot);
        return { k: 'bind', slot };
      }
      if (declaring && slot === undefined) throw new Error(`internal: undeclared pattern var ${t.name}`);
    }
    if (t.t === 'array') {
      return { k: 'parray', items: t.items.map((x) => this.compilePattern(x, scope, bound, declaring)) };
    }
    if (t.t === 'object' && t.entries.every(([k]) => k.t === 'scalar' && typeof k.value === 'string')) {
      return {
        k: 'pobject',
        entries: t.entries.map(([k, v]) => [(k as { value: string }).value, this.compilePattern(v, scope, bound, declaring)]),
      };
    }
    return { k: 'pvalue', e: this.compileTerm(t, scope, bound) };
  }

  // ---- terms ---------------------------------------------------------------------------------

  compileTerm(t: Term, scope: Scope, bound: Set<number>): Expr {
    this.m.tick(t.pos);
    switch (t.t) {
      case 'scalar':
        return { k: 'const', v: t.value };
      case 'var':
        return this.compileName(t.name, t.pos, scope, bound);
      case 'ref':
        return this.compileRef(t, scope, bound);
      case 'call':
        return this.compileCall(t.fn, t.args, t.pos, scope, bound);
      case 'binop':
        return this.fold({
          k: 'builtin',
          fn: operator(OPERATOR_NAMES[t.op] as string),
          args: [this.compileTerm(t.left, scope, bound), this.compileTerm(t.right, scope, bound)],
          pos: t.pos,
        });
      case 'neg':
        return this.fold({ k: 'builtin', fn: operator('neg'), args: [this.compileTerm(t.arg, scope, bound)], pos: t.pos });
      case 'member': {
        const args = t.key ? [this.compileTerm(t.key, scope, bound)] : [];
        args.push(this.compileTerm(t.value, scope, bound), this.compileTerm(t.coll, scope, bound));
        return { k: 'builtin', fn: operator(t.key ? 'member_kv' : 'member'), args, pos: t.pos };
      }
      case 'array': {
        const items = t.items.map((x) => this.compileTerm(x, scope, bound));
        if (items.every((x) => x.k === 'const')) return { k: 'const', v: items.map((x) => (x as { v: Value }).v) };
        return { k: 'array', items };
      }
      case 'set': {
        const items = t.items.map((x) => this.compileTerm(x, scope, bound));
        if (items.every((x) => x.k === 'const')) return { k: 'const', v: new RegoSet(items.map((x) => (x as { v: Value }).v)) };
        return { k: 'set', items };
      }
      case 'object': {
        const seen = new Set<string>();
        const entries: Array<[Expr, Expr]> = t.entries.map(([k, v]) => {
          const ke = this.compileTerm(k, scope, bound);
          if (ke.k === 'const') {
            if (typeof ke.v !== 'string') {
              throw new PolicyError('POLICY_UNSUPPORTED', 'object keys other than strings are not supported by this policy engine', k.pos);
            }
            if (seen.has(ke.v)) throw new PolicyError('POLICY_COMPILE', `duplicate object key ${JSON.stringify(ke.v)}`, k.pos);
            seen.add(ke.v);
          }
          return [ke, this.compileTerm(v, scope, bound)];
        });
        if (entries.every(([k, v]) => k.k === 'const' && v.k === 'const')) {
          const obj: RegoObject = {};
          for (const [k, v] of entries) setKey(obj, (k as { v: string }).v, (v as { v: Value }).v);
          return { k: 'const', v: obj };
        }
        return { k: 'object', entries, pos: t.pos };
      }
      case 'arraycomp':
      case 'setcomp': {
        const child = newScope(scope);
        collectNames(this, t.body, child, [t.head]);
        const inner = new Set(bound);
        const body = this.compileBody(t.body, child, inner);
        const head = this.compileTerm(t.head, child, inner);
        return { k: t.t, head, body };
      }
      case 'objcomp': {
        const child = newScope(scope);
        collectNames(this, t.body, child, [t.key, t.value]);
        const inner = new Set(bound);
        const body = this.compileBody(t.body, child, inner);
        const key = this.compileTerm(t.key, child, inner);
        const value = this.compileTerm(t.value, child, inner);
        return { k: 'objcomp', key, value, body, pos: t.pos };
      }
    }
  }

  private compileName(name: string, pos: Pos, scope: Scope, bound: Set<number>): Expr {
    if (name === '_') throw new Unsafe('_', pos);
    const slot = lookup(name, scope);
    if (slot !== undefined) {
      if (!bound.has(slot)) throw new Unsafe(name, pos);
      return { k: 'local', slot };
    }
    const rule = this.m.ruleIndex.get(name);
    if (rule !== undefined) return this.ruleRef(rule, name, pos);
    if (name === 'input') return { k: 'input' };
    if (name === 'data') {
      throw new PolicyError('POLICY_UNSUPPORTED', 'a reference to the whole data document is not supported by this policy engine', pos);
    }
    throw new Unsafe(name, pos);
  }

  private ruleRef(rule: number, name: string, pos: Pos): Expr {
    if ((this.m.rules[rule] as CompiledRule).kind === 'function') {
      throw new PolicyError('POLICY_COMPILE', `function "${name}" is used as a value (call it with arguments)`, pos);
    }
    this.m.dependOn(rule);
    return { k: 'rule', rule };
  }

  private compileRef(t: Extract<Term, { t: 'ref' }>, scope: Scope, bound: Set<number>): Expr {
    let head: Expr;
    let path = t.path;
    const headIsData = t.head.t === 'var' && t.head.name === 'data' && lookup('data', scope) === undefined;
    if (headIsData) {
      const pkg = this.m.packagePath;
      const statics: string[] = [];
      for (const p of path) {
        if (p.t === 'scalar' && typeof p.value === 'string') statics.push(p.value);
        else break;
      }
      if (statics.length === 0) {
        throw new PolicyError('POLICY_UNSUPPORTED', 'a dynamic reference into data (data[x]) is not supported by this policy engine', t.pos);
      }
      const inPackage = pkg.every((seg, i) => statics[i] === seg);
      const overlapsPackage = statics.every((s, i) => i >= pkg.length || pkg[i] === s);
      if (inPackage && statics.length > pkg.length) {
        const name = statics[pkg.length] as string;
        const rule = this.m.ruleIndex.get(name);
        if (rule === undefined) {
          throw new PolicyError('POLICY_COMPILE', `undefined rule data.${pkg.join('.')}.${name}`, t.pos);
        }
        head = this.ruleRef(rule, name, t.pos);
        path = path.slice(pkg.length + 1);
      } else if (overlapsPackage && statics.length <= pkg.length) {
        throw new PolicyError('POLICY_UNSUPPORTED', 'a reference to a whole package is not supported by this policy engine', t.pos);
      } else {
        head = { k: 'data' };
      }
    } else {
      head = this.compileTerm(t.head, scope, bound);
    }
    const segs: Seg[] = path.map((p) => this.compileSeg(p, scope, bound));
    if (segs.length === 0) return head;
    return { k: 'ref', head, path: segs, pos: t.pos };
  }

  private compileSeg(p: Term, scope: Scope, bound: Set<number>): Seg {
    if (p.t === 'var') {
      if (p.name === '_') return { k: 'iter', slot: this.newSlot('_') };
      const slot = lookup(p.name, scope);
      if (slot !== undefined && !bound.has(slot)) {
        bound.add(slot);
        return { k: 'iter', slot };
      }
    }
    return this.compileTerm(p, scope, bound);
  }

  private compileCall(fn: string, argTerms: Term[], pos: Pos, scope: Scope, bound: Set<number>): Expr {
    const arity = (n: number, what: string): void => {
      if (argTerms.length !== n) {
        throw new PolicyError('POLICY_COMPILE', `${what} "${fn}" takes ${n} argument${n === 1 ? '' : 's'}, not ${argTerms.length}`, pos);
      }
    };
    const userRule = this.m.ruleIndex.get(fn);
    if (userRule !== undefined) {
      const r = this.m.rules[userRule] as CompiledRule;
      if (r.kind !== 'function') throw new PolicyError('POLICY_COMPILE', `rule "${fn}" is not a function`, pos);
      arity(r.arity, 'function');
      this.m.dependOn(userRule);
      return { k: 'func', func: userRule, args: argTerms.map((a) => this.compileTerm(a, scope, bound)), pos };
    }
    const builtin = BUILTINS.get(fn);
    if (builtin) {
      arity(builtin.arity, 'builtin');
      const call: Expr = { k: 'builtin', fn: builtin, args: argTerms.map((a) => this.compileTerm(a, scope, bound)), pos };
      if (fn !== 'time.now_ns') this.tryConstant(call);
      return call;
    }
    const hostArity = Object.hasOwn(this.m.host, fn) ? this.m.host[fn] : undefined;
    if (hostArity !== undefined) {
      arity(hostArity, 'function');
      return { k: 'host', name: fn, args: argTerms.map((a) => this.compileTerm(a, scope, bound)), pos };
    }
    if (REFUSED_NAMES.has(fn) || REFUSED_PREFIXES.some((p) => fn.startsWith(p))) {
      throw new PolicyError('POLICY_UNSUPPORTED', `builtin "${fn}" is not supported by this policy engine`, pos);
    }
    throw new PolicyError('POLICY_COMPILE', `unknown function "${fn}"`, pos);
  }

  /** Folds an operator on constants into its value. */
  private fold(e: Extract<Expr, { k: 'builtin' }>): Expr {
    const v = this.tryConstant(e);
    return v === undefined ? e : { k: 'const', v };
  }

  /**
   * Runs a call whose arguments are all constants. A call that would always fail (a type error,
   * division by zero, a bad regex) is refused now rather than at every evaluation. Calls that would
   * do much work are left for evaluation time.
   */
  private tryConstant(e: Extract<Expr, { k: 'builtin' }>): Value | undefined {
    if (!e.args.every((a) => a.k === 'const')) return undefined;
    let work = 0;
    const budget = {
      nowNs: 0,
      charge: (n: number): void => {
        work += n;
        if (work > 10_000) throw TOO_MUCH_WORK;
      },
    };
    try {
      return e.fn.impl(e.args.map((a) => (a as { v: Value }).v), budget);
    } catch (err) {
      if (err === TOO_MUCH_WORK) return undefined;
      if (err instanceof PolicyError) {
        throw new PolicyError('POLICY_COMPILE', `this expression always fails: ${err.detail}`, e.pos);
      }
      throw err;
    }
  }
}

const TOO_MUCH_WORK = new Error('constant evaluation budget');

function unsafeError(e: Unsafe): PolicyError {
  if (e.varName === '_') return new PolicyError('POLICY_COMPILE', 'the wildcard "_" cannot be used as a value here', e.pos);
  return new PolicyError('POLICY_COMPILE', `var ${e.varName} is unsafe: nothing in the body binds it (unknown name or used before it is assigned)`, e.pos);
}
