/**
 * Variable scopes of the compile pass. A body's names are, in order of precedence: its explicit
 * locals (`:=`, `some`, function parameters), the locals of enclosing bodies, the module's rules,
 * `input` and `data`, and finally implicit locals (names that are nothing else, bound by iteration
 * or unification).
 */
import type { Literal, Pos, Term } from './ast.js';
import { PolicyError } from './errors.js';

export interface Scope {
  parent: Scope | null;
  vars: Map<string, number>;
  declared: Set<string>;
}

/** What scopes need from the rule being compiled. */
export interface Names {
  /** Allocates a slot in the definition's frame. */
  newSlot(name: string): number;
  isRule(name: string): boolean;
}

export function newScope(parent: Scope | null): Scope {
  return { parent, vars: new Map(), declared: new Set() };
}

export function lookup(name: string, scope: Scope | null): number | undefined {
  for (let s = scope; s; s = s.parent) {
    const slot = s.vars.get(name);
    if (slot !== undefined) return slot;
  }
  return undefined;
}

export function declare(names: Names, name: string, scope: Scope, pos: Pos): void {
  if (name === '_') return;
  if (name === 'input' || name === 'data') {
    throw new PolicyError('POLICY_COMPILE', `variable name "${name}" is reserved and cannot be declared`, pos);
  }
  if (scope.declared.has(name)) throw new PolicyError('POLICY_COMPILE', `var ${name} declared twice in the same body`, pos);
  scope.declared.add(name);
  scope.vars.set(name, names.newSlot(name));
}

export function declarePattern(names: Names, t: Term, scope: Scope): void {
  if (t.t === 'var') declare(names, t.name, scope, t.pos);
  else if (t.t === 'array') for (const x of t.items) declarePattern(names, x, scope);
  else if (t.t === 'object') for (const [, v] of t.entries) declarePattern(names, v, scope);
}

/** Declares the body's explicit locals, then its implicit ones (names that are nothing else). */
export function collectNames(names: Names, body: Literal[], scope: Scope, headTerms: Term[]): void {
  for (const lit of body) {
    if (lit.l === 'some') for (const v of lit.vars) declare(names, v.name, scope, v.pos);
    else if (lit.l === 'somein') {
      if (lit.key) declarePattern(names, lit.key, scope);
      declarePattern(names, lit.value, scope);
    } else if (lit.l === 'assign') declarePattern(names, lit.lhs, scope);
  }
  const implicit = (t: Term): void => implicitVars(names, t, scope);
  for (const lit of body) {
    switch (lit.l) {
      case 'expr':
      case 'not':
        implicit(lit.expr);
        break;
      case 'assign':
        implicit(lit.rhs);
        break;
      case 'unify':
        implicit(lit.lhs);
        implicit(lit.rhs);
        break;
      case 'somein':
      case 'every':
        implicit(lit.coll);
        break;
      case 'some':
        break;
    }
  }
  for (const t of headTerms) implicit(t);
}

function implicitVars(names: Names, t: Term, scope: Scope): void {
  switch (t.t) {
    case 'var':
      if (t.name === '_' || t.name === 'input' || t.name === 'data') return;
      if (lookup(t.name, scope) !== undefined || names.isRule(t.name)) return;
      scope.vars.set(t.name, names.newSlot(t.name));
      return;
    case 'ref':
      implicitVars(names, t.head, scope);
      for (const p of t.path) implicitVars(names, p, scope);
      return;
    case 'call':
      for (const a of t.args) implicitVars(names, a, scope);
      return;
    case 'array':
    case 'set':
      for (const a of t.items) implicitVars(names, a, scope);
      return;
    case 'object':
      for (const [k, v] of t.entries) {
        implicitVars(names, k, scope);
        implicitVars(names, v, scope);
      }
      return;
    case 'binop':
      implicitVars(names, t.left, scope);
      implicitVars(names, t.right, scope);
      return;
    case 'neg':
      implicitVars(names, t.arg, scope);
      return;
    case 'member':
      if (t.key) implicitVars(names, t.key, scope);
      implicitVars(names, t.value, scope);
      implicitVars(names, t.coll, scope);
      return;
    default:
      return; // scalars; comprehensions have their own scope
  }
}
