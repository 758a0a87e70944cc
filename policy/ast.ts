/** The syntax tree the parser produces and the compiler consumes. */
import type { SourcePosition } from './errors.js';

export type Pos = SourcePosition;

export type Scalar = null | boolean | number | string;

export type BinaryOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%' | '&' | '|';

export type Term =
  | { t: 'scalar'; value: Scalar; pos: Pos }
  | { t: 'var'; name: string; pos: Pos }
  /** `head.a["b"][x]`: each path element is a term (`.a` becomes the string "a"). */
  | { t: 'ref'; head: Term; path: Term[]; pos: Pos }
  | { t: 'call'; fn: string; args: Term[]; pos: Pos }
  | { t: 'array'; items: Term[]; pos: Pos }
  | { t: 'object'; entries: Array<[Term, Term]>; pos: Pos }
  | { t: 'set'; items: Term[]; pos: Pos }
  | { t: 'arraycomp'; head: Term; body: Literal[]; pos: Pos }
  | { t: 'setcomp'; head: Term; body: Literal[]; pos: Pos }
  | { t: 'objcomp'; key: Term; value: Term; body: Literal[]; pos: Pos }
  | { t: 'binop'; op: BinaryOp; left: Term; right: Term; pos: Pos }
  | { t: 'neg'; arg: Term; pos: Pos }
  /** `value in coll`, or `key, value in coll` when key is set. */
  | { t: 'member'; key: Term | null; value: Term; coll: Term; pos: Pos };

export type Literal =
  | { l: 'expr'; expr: Term; pos: Pos }
  | { l: 'not'; expr: Term; pos: Pos }
  | { l: 'assign'; lhs: Term; rhs: Term; pos: Pos }
  | { l: 'unify'; lhs: Term; rhs: Term; pos: Pos }
  | { l: 'some'; vars: Array<{ name: string; pos: Pos }>; pos: Pos }
  | { l: 'somein'; key: Term | null; value: Term; coll: Term; pos: Pos }
  | { l: 'every'; key: Term | null; value: Term; coll: Term; body: Literal[]; pos: Pos };

export type RuleKind = 'complete' | 'set' | 'object' | 'function';

export interface ElseClause {
  value: Term;
  body: Literal[] | null;
  pos: Pos;
}

export interface RuleDef {
  kind: RuleKind;
  name: string;
  pos: Pos;
  /** Function parameters. */
  params: Term[];
  /** Element of a partial set rule, key of a partial object rule. */
  key: Term | null;
  /** Value of the head (`true` when the head has none). */
  value: Term;
  /** null: the rule has no body and always holds. */
  body: Literal[] | null;
  elses: ElseClause[];
  isDefault: boolean;
}

export interface Module {
  packagePath: string[];
  rules: RuleDef[];
}
