/**
 * The compile pass: resolves every name (local, rule, function, builtin, host function, input, data),
 * orders each body's literals so that every variable is bound before it is read (Rego's safety rule,
 * reordering as OPA does), decides every binding site statically, folds constants and rejects
 * recursion. Anything it cannot prove evaluable is refused with a line and column.
 */
import type { Module, Pos, RuleDef, Term } from './ast.js';
import { DefCompiler, type ModuleContext } from './compile-rule.js';
import { newScope } from './compile-scope.js';
import { PolicyError } from './errors.js';
import type { CompiledRule } from './ir.js';
import type { Value } from './value.js';

export interface CompiledModule {
  packagePath: string[];
  rules: CompiledRule[];
  ruleIndex: Map<string, number>;
}

/** Host functions the policy may call, with their arity (e.g. query_reference_value: 1). */
export type HostFunctionArities = Readonly<Record<string, number>>;

const MAX_COMPILE_WORK = 200_000;

export function compileModule(mod: Module, hostFunctions: HostFunctionArities = {}): CompiledModule {
  return new ModuleCompiler(mod, hostFunctions).run();
}

class ModuleCompiler implements ModuleContext {
  readonly ruleIndex = new Map<string, number>();
  readonly rules: CompiledRule[] = [];
  readonly deps: Array<Set<number>> = [];
  work = 0;
  private current = -1;
  readonly packagePath: readonly string[];

  constructor(readonly mod: Module, readonly host: HostFunctionArities) {
    this.packagePath = mod.packagePath;
  }

  run(): CompiledModule {
    const groups = new Map<string, RuleDef[]>();
    for (const r of this.mod.rules) {
      const g = groups.get(r.name);
      if (g) g.push(r);
      else groups.set(r.name, [r]);
    }
    for (const [name, defs] of groups) {
      const first = defs.find((d) => !d.isDefault) ?? (defs[0] as RuleDef);
      for (const d of defs) {
        if (d.kind !== first.kind && !(d.isDefault && first.kind === 'complete' && d.kind === 'complete')) {
          throw new PolicyError('POLICY_COMPILE', `rule "${name}" is defined with conflicting kinds (${first.kind} and ${d.kind})`, d.pos);
        }
        if (d.kind === 'function' && d.params.length !== first.params.length) {
          throw new PolicyError('POLICY_COMPILE', `function "${name}" is defined with different numbers of arguments`, d.pos);
        }
        if (d.isDefault && d.kind === 'function') throw new PolicyError('POLICY_UNSUPPORTED', 'default functions are not supported by this policy engine', d.pos);
      }
      if (defs.filter((d) => d.isDefault).length > 1) {
        throw new PolicyError('POLICY_COMPILE', `rule "${name}" has more than one default`, (defs.filter((d) => d.isDefault)[1] as RuleDef).pos);
      }
      this.ruleIndex.set(name, this.rules.length);
      this.rules.push({ name, kind: first.kind, arity: first.params.length, defs: [], defaultValue: undefined, pos: first.pos });
      this.deps.push(new Set());
    }
    for (const [name, defs] of groups) {
      const idx = this.ruleIndex.get(name) as number;
      this.current = idx;
      const rule = this.rules[idx] as CompiledRule;
      for (const d of defs) {
        if (d.isDefault) rule.defaultValue = this.constant(d.value, 'a default value');
        else rule.defs.push(new DefCompiler(this).compile(d));
      }
    }
    this.checkCycles();
    return { packagePath: this.mod.packagePath, rules: this.rules, ruleIndex: this.ruleIndex };
  }

  tick(pos: Pos): void {
    if (++this.work > MAX_COMPILE_WORK) throw new PolicyError('POLICY_UNSUPPORTED', 'policy is too complex to compile', pos);
  }

  dependOn(rule: number): void {
    (this.deps[this.current] as Set<number>).add(rule);
  }

  private constant(t: Term, what: string): Value {
    const e = new DefCompiler(this).compileTerm(t, newScope(null), new Set());
    if (e.k !== 'const') throw new PolicyError('POLICY_COMPILE', `${what} must be a constant`, t.pos);
    return e.v;
  }

  private checkCycles(): void {
    const state = new Array<number>(this.rules.length).fill(0);
    const stack: number[] = [];
    const visit = (i: number): void => {
      if (state[i] === 2) return;
      if (state[i] === 1) {
        const cycle = [...stack.slice(stack.indexOf(i)), i].map((j) => (this.rules[j] as CompiledRule).name);
        throw new PolicyError('POLICY_COMPILE', `recursion is not allowed: ${cycle.join(' -> ')}`, (this.rules[i] as CompiledRule).pos);
      }
      state[i] = 1;
      stack.push(i);
      for (const d of this.deps[i] as Set<number>) visit(d);
      stack.pop();
      state[i] = 2;
    };
    for (let i = 0; i < this.rules.length; i++) visit(i);
  }
}
