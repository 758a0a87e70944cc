/**
 * The compiled form the evaluator runs: names are resolved to frame slots, rules and functions,
 * literals are in a safe evaluation order, and every variable's binding site is decided statically.
 */
import type { Pos } from './ast.js';
import type { Builtin } from './builtins/types.js';
import type { Value } from './value.js';

export type Expr =
  | { k: 'const'; v: Value }
  /** A bound local variable. */
  | { k: 'local'; slot: number }
  | { k: 'input' }
  /** The external data document (not the rules). */
  | { k: 'data' }
  | { k: 'rule'; rule: number }
  | { k: 'ref'; head: Expr; path: Seg[]; pos: Pos }
  | { k: 'builtin'; fn: Builtin; args: Expr[]; pos: Pos }
  | { k: 'func'; func: number; args: Expr[]; pos: Pos }
  | { k: 'host'; name: string; args: Expr[]; pos: Pos }
  | { k: 'array'; items: Expr[] }
  | { k: 'set'; items: Expr[] }
  | { k: 'object'; entries: Array<[Expr, Expr]>; pos: Pos }
  | { k: 'arraycomp'; head: Expr; body: Lit[] }
  | { k: 'setcomp'; head: Expr; body: Lit[] }
  | { k: 'objcomp'; key: Expr; value: Expr; body: Lit[]; pos: Pos };

/** A reference path element: a key to look up, or an unbound variable that iterates and binds. */
export type Seg = Expr | { k: 'iter'; slot: number };

/**
 * A pattern on the left of `:=`/`=`, after `some … in`, or a function parameter: unbound slots get
 * bound, everything else is compared with the value.
 */
export type Pattern =
  | { k: 'bind'; slot: number }
  | { k: 'parray'; items: Pattern[] }
  | { k: 'pobject'; entries: Array<[string, Pattern]> }
  | { k: 'pvalue'; e: Expr };

export type Lit =
  | { k: 'expr'; e: Expr; pos: Pos }
  | { k: 'not'; body: Lit[]; pos: Pos }
  | { k: 'unify'; pattern: Pattern; value: Expr; pos: Pos }
  | { k: 'somein'; key: Pattern | null; value: Pattern; coll: Expr; pos: Pos }
  | { k: 'every'; key: Pattern | null; value: Pattern; coll: Expr; body: Lit[]; pos: Pos };

export interface Clause {
  value: Expr;
  /** null: always holds. */
  body: Lit[] | null;
  /** The head is a constant: the first solution decides the value. */
  constHead: boolean;
}

export interface Def {
  pos: Pos;
  /** Slots in this definition's frame (params, body locals, comprehension locals). */
  nslots: number;
  params: Pattern[];
  /** Set element or object key. */
  key: Expr | null;
  /** The main clause followed by its else clauses. */
  clauses: Clause[];
}

export interface CompiledRule {
  name: string;
  kind: 'complete' | 'set' | 'object' | 'function';
  arity: number;
  defs: Def[];
  defaultValue: Value | undefined;
  pos: Pos;
}
