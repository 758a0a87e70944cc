/**
 * Recursive-descent parser for Rego v1 (the `if` keyword is required before rule bodies; `contains`
 * for multi-value rules). Any construct outside the subset this engine evaluates is refused here
 * with its line and column, so that an accepted policy is one that evaluates.
 *
 * Operator precedence, lowest first, as OPA parses it: `:=`/`=` (literal level), `in`,
 * `== != < <= > >=`, `|`, `&`, `+ -`, `* / %`, unary `-`.
 */
import type { BinaryOp, ElseClause, Literal, Module, Pos, RuleDef, Term } from './ast.js';
import { PolicyError } from './errors.js';
import { tokenize, type Token } from './lexer.js';

const KEYWORDS = new Set([
  'package', 'import', 'default', 'if', 'else', 'not', 'some', 'every', 'in', 'contains', 'with', 'as',
]);
const RELATIONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
/** Nesting depth of terms the parser accepts (protects the stack of the parser and evaluator). */
export const MAX_NESTING = 64;

export function parseModule(src: string): Module {
  return new Parser(tokenize(src)).module();
}

class Parser {
  private i = 0;
  /** Whether a newline ends the current expression (true in bodies and at the top level). */
  private nlStack: boolean[] = [true];
  /** Whether `|` ends the current expression (comprehension heads). */
  private noUnion = false;
  private depth = 0;

  constructor(private readonly toks: Token[]) {}

  // ---- token helpers ------------------------------------------------------------------------

  private get tok(): Token {
    return this.toks[this.i] as Token;
  }

  private next(): Token {
    const t = this.tok;
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private pos(t: Token = this.tok): Pos {
    return { line: t.line, column: t.column };
  }

  /** A newline before the current token ends the expression here. */
  private atBreak(): boolean {
    return this.tok.nl && (this.nlStack[this.nlStack.length - 1] as boolean);
  }

  private isOp(text: string): boolean {
    return this.tok.kind === 'op' && this.tok.text === text;
  }

  /** An infix operator or postfix that continues the current expression. */
  private isCont(text: string): boolean {
    return this.isOp(text) && !this.atBreak();
  }

  private isKw(word: string): boolean {
    return this.tok.kind === 'ident' && this.tok.text === word;
  }

  private expectOp(text: string, what?: string): Token {
    if (!this.isOp(text)) throw this.unexpected(what ?? `"${text}"`);
    return this.next();
  }

  private unexpected(expected: string): PolicyError {
    const t = this.tok;
    const found = t.kind === 'eof' ? 'end of file' : t.kind === 'string' ? 'string' : `"${t.text}"`;
    return new PolicyError('POLICY_SYNTAX', `expected ${expected}, found ${found}`, this.pos());
  }

  private unsupported(what: string, t: Token = this.tok): PolicyError {
    return new PolicyError('POLICY_UNSUPPORTED', `${what} is not supported by this policy engine`, this.pos(t));
  }

  private ident(what: string): Token {
    if (this.tok.kind !== 'ident' || KEYWORDS.has(this.tok.text)) throw this.unexpected(what);
    return this.next();
  }

  private withNl<T>(significant: boolean, f: () => T): T {
    this.nlStack.push(significant);
    const savedNoUnion = this.noUnion;
    this.noUnion = false;
    try {
      return f();
    } finally {
      this.nlStack.pop();
      this.noUnion = savedNoUnion;
    }
  }

  // ---- module -------------------------------------------------------------------------------

  module(): Module {
    if (!this.isKw('package')) throw this.unexpected('"package" declaration');
    this.next();
    const packagePath = [this.ident('package name').text];
    while (this.isCont('.') || this.isCont('[')) {
      if (this.isOp('.')) {
        this.next();
        packagePath.push(this.ident('package name').text);
      } else {
        this.next();
        if (this.tok.kind !== 'string') throw this.unexpected('string in package path');
        packagePath.push(this.next().text);
        this.expectOp(']');
      }
    }
    while (this.isKw('import')) this.importDecl();
    const rules: RuleDef[] = [];
    while (this.tok.kind !== 'eof') {
      if (!this.tok.nl && !this.isOp(';')) throw this.unexpected('a new line before the next rule');
      if (this.isOp(';')) {
        this.next();
        continue;
      }
      if (this.isKw('import')) throw new PolicyError('POLICY_SYNTAX', 'imports must come before rules', this.pos());
      if (this.isKw('package')) throw new PolicyError('POLICY_SYNTAX', 'a policy has exactly one package', this.pos());
      rules.push(...this.rule());
    }
    return { packagePath, rules };
  }

  private importDecl(): void {
    const start = this.next();
    const part = (): string => {
      if (this.tok.kind !== 'ident') throw this.unexpected('import path');
      return this.next().text;
    };
    const parts = [part()];
    while (this.isCont('.')) {
      this.next();
      parts.push(part());
    }
    const path = parts.join('.');
    const ok =
      path === 'rego.v1' ||
      path === 'future.keywords' ||
      ['if', 'in', 'every', 'contains'].some((k) => path === `future.keywords.${k}`);
    if (!ok) throw this.unsupported(`import of "${path}"`, start);
    if (this.isKw('as') && !this.atBreak()) throw this.unsupported('import aliases ("as")');
  }

  // ---- rules --------------------------------------------------------------------------------

  private rule(): RuleDef[] {
    let isDefault = false;
    if (this.isKw('default')) {
      this.next();
      isDefault = true;
    }
    const nameTok = this.tok;
    if (nameTok.kind === 'ident' && KEYWORDS.has(nameTok.text)) {
      if (nameTok.text === 'contains' || nameTok.text === 'if') throw this.unexpected('rule name');
      throw this.unexpected('rule name');
    }
    const name = this.ident('rule name').text;
    if (name === 'input' || name === 'data') {
      throw new PolicyError('POLICY_COMPILE', `rule name "${name}" is reserved`, this.pos(nameTok));
    }
    const pos = this.pos(nameTok);
    const truth: Term = { t: 'scalar', value: true, pos };
    const def: RuleDef = {
      kind: 'complete', name, pos, params: [], key: null, value: truth, body: null, elses: [], isDefault,
    };

    if (this.isCont('.')) throw this.unsupported('rules with reference heads (p.q.r)');
    if (this.isCont('(')) {
      def.kind = 'function';
      this.next();
      def.params = this.withNl(false, () => this.termList(')'));
      this.expectOp(')');
    } else if (this.isCont('[')) {
      this.next();
      def.key = this.withNl(false, () => this.expr());
      this.expectOp(']');
      if (!(this.isCont(':=') || this.isCont('='))) {
        throw new PolicyError(
          'POLICY_SYNTAX',
          `multi-value rule "${name}" needs the "contains" keyword in Rego v1 (${name} contains x if { … })`,
          pos,
        );
      }
      def.kind = 'object';
    } else if (this.isKw('contains') && !this.atBreak()) {
      if (isDefault) throw new PolicyError('POLICY_SYNTAX', 'default cannot be used with a multi-value rule', pos);
      this.next();
      def.kind = 'set';
      def.key = this.expr();
    }

    if (this.isCont(':=') || this.isCont('=')) {
      this.next();
      def.value = this.expr();
    } else if (isDefault) {
      throw this.unexpected('":=" or "=" after default rule name');
    }

    if (isDefault) {
      if (def.kind === 'set' || def.kind === 'object') {
        throw new PolicyError('POLICY_SYNTAX', 'default cannot be used with a multi-value rule', pos);
      }
      if (this.isKw('if') && !this.atBreak()) {
        throw new PolicyError('POLICY_SYNTAX', 'a default rule cannot have a body', this.pos());
      }
      return [def];
    }

    if (this.isKw('if') && !this.atBreak()) {
      this.next();
      def.body = this.ruleBody();
    } else if (this.isCont('{')) {
      throw new PolicyError('POLICY_SYNTAX', '`if` keyword is required before rule body', this.pos());
    } else if (def.kind === 'complete' && def.value === truth) {
      throw new PolicyError('POLICY_SYNTAX', `rule "${name}" has neither a value nor a body`, pos);
    } else if (def.kind === 'function' && def.value === truth) {
      throw new PolicyError('POLICY_SYNTAX', `function "${name}" has neither a value nor a body`, pos);
    }

    while (this.isKw('else')) {
      const elseTok = this.next();
      if (def.kind === 'set' || def.kind === 'object') {
        throw new PolicyError('POLICY_SYNTAX', 'else cannot be used with a multi-value rule', this.pos(elseTok));
      }
      if (def.body === null && def.elses.length === 0) {
        throw new PolicyError('POLICY_SYNTAX', 'else needs a preceding rule body', this.pos(elseTok));
      }
      const clause: ElseClause = { value: { t: 'scalar', value: true, pos: this.pos(elseTok) }, body: null, pos: this.pos(elseTok) };
      if (this.isCont(':=') || this.isCont('=')) {
        this.next();
        clause.value = this.expr();
      }
      if (this.isKw('if') && !this.atBreak()) {
        this.next();
        clause.body = this.ruleBody();
      } else if (this.isCont('{')) {
        throw new PolicyError('POLICY_SYNTAX', '`if` keyword is required before rule body', this.pos());
      }
      def.elses.push(clause);
      if (clause.body === null && this.isKw('else')) {
        throw new PolicyError('POLICY_SYNTAX', 'an else without a body must be the last one', this.pos());
      }
    }
    if (this.isCont('{')) throw this.unsupported('several bodies for one rule head');
    return [def];
  }

  /** After `if`: `{ literals }` or a single literal on the same line. */
  private ruleBody(): Literal[] {
    if (this.isOp('{')) return this.braceBody();
    return [this.literal()];
  }

  private braceBody(): Literal[] {
    const open = this.expectOp('{');
    return this.withNl(true, () => {
      const lits = this.literals('}');
      if (lits.length === 0) throw new PolicyError('POLICY_SYNTAX', 'empty rule body', this.pos(open));
      this.expectOp('}');
      return lits;
    });
  }

  /** Literals separated by `;` or newlines, up to (not including) the closing operator. */
  private literals(close: string): Literal[] {
    const lits: Literal[] = [];
    while (!this.isOp(close)) {
      if (this.tok.kind === 'eof') throw this.unexpected(`"${close}"`);
      if (this.isOp(';')) {
        this.next();
        continue;
      }
      lits.push(this.literal());
      if (!this.isOp(';') && !this.isOp(close) && !this.tok.nl) throw this.unexpected(`";", newline or "${close}"`);
    }
    return lits;
  }

  private literal(): Literal {
    const start = this.tok;
    const pos = this.pos(start);
    if (this.isKw('some')) {
      this.next();
      const terms = [this.exprNoIn()];
      while (this.isCont(',')) {
        this.next();
        terms.push(this.exprNoIn());
      }
      if (this.isKw('in') && !this.atBreak()) {
        this.next();
        if (terms.length > 2) throw this.unexpected('at most two variables before "in"');
        const coll = this.exprNoIn();
        return terms.length === 2
          ? { l: 'somein', key: terms[0] as Term, value: terms[1] as Term, coll, pos }
          : { l: 'somein', key: null, value: terms[0] as Term, coll, pos };
      }
      const vars = terms.map((t) => {
        if (t.t !== 'var') throw new PolicyError('POLICY_SYNTAX', 'expected a variable name after "some"', t.pos);
        return { name: t.name, pos: t.pos };
      });
      return { l: 'some', vars, pos };
    }
    if (this.isKw('every')) {
      this.next();
      const first = this.exprNoIn();
      let key: Term | null = null;
      let value = first;
      if (this.isCont(',')) {
        this.next();
        key = first;
        value = this.exprNoIn();
      }
      if (!this.isKw('in')) throw this.unexpected('"in" after every variables');
      this.next();
      const coll = this.exprNoIn();
      const body = this.braceBody();
      return { l: 'every', key, value, coll, body, pos };
    }
    if (this.isKw('not')) {
      this.next();
      const expr = this.expr();
      this.noWith();
      return { l: 'not', expr, pos };
    }
    let lhs = this.expr();
    if (this.isCont(',')) {
      this.next();
      const value = this.exprNoIn();
      if (!this.isKw('in')) throw this.unexpected('"in"');
      this.next();
      lhs = { t: 'member', key: lhs, value, coll: this.exprNoIn(), pos };
    }
    if (this.isCont(':=') || this.isCont('=')) {
      const op = this.next().text;
      const rhs = this.expr();
      this.noWith();
      return op === ':=' ? { l: 'assign', lhs, rhs, pos } : { l: 'unify', lhs, rhs, pos };
    }
    this.noWith();
    return { l: 'expr', expr: lhs, pos };
  }

  private noWith(): void {
    if (this.isKw('with') && !this.atBreak()) throw this.unsupported('the "with" keyword');
  }

  // ---- expressions --------------------------------------------------------------------------

  expr(): Term {
    let left = this.relation();
    while (this.isKw('in') && !this.atBreak()) {
      const pos = this.pos(this.next());
      left = { t: 'member', key: null, value: left, coll: this.relation(), pos };
    }
    return left;
  }

  /** An expression that stops before `in` (for `some x in`, `every x in`). */
  private exprNoIn(): Term {
    return this.relation();
  }

  private relation(): Term {
    let left = this.union();
    while (this.tok.kind === 'op' && RELATIONS.has(this.tok.text) && !this.atBreak()) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.union(), pos: this.pos(t) };
    }
    return left;
  }

  private union(): Term {
    let left = this.intersection();
    while (!this.noUnion && this.isCont('|')) {
      const t = this.next();
      left = { t: 'binop', op: '|', left, right: this.intersection(), pos: this.pos(t) };
    }
    return left;
  }

  private intersection(): Term {
    let left = this.additive();
    while (this.isCont('&')) {
      const t = this.next();
      left = { t: 'binop', op: '&', left, right: this.additive(), pos: this.pos(t) };
    }
    return left;
  }

  private additive(): Term {
    let left = this.multiplicative();
    while (this.isCont('+') || this.isCont('-')) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.multiplicative(), pos: this.pos(t) };
    }
    return left;
  }

  private multiplicative(): Term {
    let left = this.unary();
    while (this.isCont('*') || this.isCont('/') || this.isCont('%')) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.unary(), pos: this.pos(t) };
    }
    return left;
  }

  private unary(): Term {
    if (this.isOp('-')) {
      const t = this.next();
      if (this.tok.kind === 'number' && !this.tok.nl) {
        const n = this.next();
        return this.postfix({ t: 'scalar', value: -n.num, pos: this.pos(t) });
      }
      return { t: 'neg', arg: this.nested(() => this.unary()), pos: this.pos(t) };
    }
    return this.nested(() => this.postfix(this.primary()));
  }

  private nested<T>(f: () => T): T {
    if (++this.depth > MAX_NESTING) {
      this.depth = 0;
      throw new PolicyError('POLICY_UNSUPPORTED', `expression nested more than ${MAX_NESTING} levels deep`, this.pos());
    }
    try {
      return f();
    } finally {
      this.depth--;
    }
  }

  private postfix(head: Term): Term {
    const path: Term[] = [];
    for (;;) {
      if (this.tok.kind === 'op' && this.tok.text === '.' && !this.atBreak()) {
        this.next();
        const f = this.tok;
        if (f.kind !== 'ident') throw this.unexpected('field name after "."');
        this.next();
        path.push({ t: 'scalar', value: f.text, pos: this.pos(f) });
      } else if (this.isCont('[') && !this.tok.nl) {
        this.next();
        path.push(this.withNl(false, () => this.expr()));
        this.expectOp(']');
      } else {
        break;
      }
    }
    if (path.length === 0) return head;
    if (head.t === 'scalar' || head.t === 'neg' || head.t === 'binop' || head.t === 'member') {
      throw new PolicyError('POLICY_SYNTAX', 'a reference must start with a name, call or collection', head.pos);
    }
    if (head.t === 'ref') return { t: 'ref', head: head.head, path: [...head.path, ...path], pos: head.pos };
    return { t: 'ref', head, path, pos: head.pos };
  }

  private primary(): Term {
    const t = this.tok;
    const pos = this.pos(t);
    switch (t.kind) {
      case 'number':
        this.next();
        return { t: 'scalar', value: t.num, pos };
      case 'string':
        this.next();
        return { t: 'scalar', value: t.text, pos };
      case 'eof':
        throw this.unexpected('an expression');
      case 'ident':
        return this.nameOrCall();
      case 'op':
        break;
    }
    if (t.text === '(') {
      this.next();
      const e = this.withNl(false, () => this.expr());
      this.expectOp(')');
      return e;
    }
    if (t.text === '[') return this.arrayLike();
    if (t.text === '{') return this.braceLike();
    throw this.unexpected('an expression');
  }

  private nameOrCall(): Term {
    const t = this.next();
    const pos = this.pos(t);
    switch (t.text) {
      case 'true':
        return { t: 'scalar', value: true, pos };
      case 'false':
        return { t: 'scalar', value: false, pos };
      case 'null':
        return { t: 'scalar', value: null, pos };
    }
    if (t.text === 'with') throw this.unsupported('the "with" keyword', t);
    if (KEYWORDS.has(t.text)) {
      throw new PolicyError('POLICY_SYNTAX', `unexpected keyword "${t.text}"`, pos);
    }
    // dotted function names: object.get(...), regex.match(...)
    let j = this.i;
    const parts = [t.text];
    while (
      this.toks[j]?.kind === 'op' && this.toks[j]?.text === '.' && this.toks[j + 1]?.kind === 'ident'
    ) {
      parts.push((this.toks[j + 1] as Token).text);
      j += 2;
    }
    const after = this.toks[j];
    if (after && after.kind === 'op' && after.text === '(' && !(after.nl && this.nlStack[this.nlStack.length - 1])) {
      this.i = j + 1;
      const args = this.withNl(false, () => this.termList(')'));
      this.expectOp(')');
      const fn = parts.join('.');
      if (fn === 'set' && args.length === 0) return { t: 'set', items: [], pos };
      return { t: 'call', fn, args, pos };
    }
    return { t: 'var', name: t.text, pos };
  }

  /** Comma-separated expressions up to a closing operator (trailing comma allowed). */
  private termList(close: string): Term[] {
    const items: Term[] = [];
    while (!this.isOp(close)) {
      items.push(this.expr());
      if (this.isOp(',')) this.next();
      else break;
    }
    return items;
  }

  private comprehensionBody(close: string): Literal[] {
    return this.withNl(true, () => {
      const lits = this.literals(close);
      if (lits.length === 0) throw new PolicyError('POLICY_SYNTAX', 'empty comprehension body', this.pos());
      return lits;
    });
  }

  private headExpr(): Term {
    const saved = this.noUnion;
    this.noUnion = true;
    try {
      return this.expr();
    } finally {
      this.noUnion = saved;
    }
  }

  private arrayLike(): Term {
    const open = this.next();
    const pos = this.pos(open);
    return this.withNl(false, () => {
      if (this.isOp(']')) {
        this.next();
        return { t: 'array', items: [], pos } as Term;
      }
      const first = this.headExpr();
      if (this.isOp('|')) {
        this.next();
        const body = this.comprehensionBody(']');
        this.expectOp(']');
        return { t: 'arraycomp', head: first, body, pos } as Term;
      }
      const items = [first];
      while (this.isOp(',')) {
        this.next();
        if (this.isOp(']')) break;
        items.push(this.expr());
      }
      this.expectOp(']', '"," or "]"');
      return { t: 'array', items, pos } as Term;
    });
  }

  private braceLike(): Term {
    const open = this.next();
    const pos = this.pos(open);
    return this.withNl(false, () => {
      if (this.isOp('}')) {
        this.next();
        return { t: 'object', entries: [], pos } as Term;
      }
      const first = this.headExpr();
      if (this.isOp(':')) {
        this.next();
        const firstValue = this.headExpr();
        if (this.isOp('|')) {
          this.next();
          const body = this.comprehensionBody('}');
          this.expectOp('}');
          return { t: 'objcomp', key: first, value: firstValue, body, pos } as Term;
        }
        const entries: Array<[Term, Term]> = [[first, firstValue]];
        while (this.isOp(',')) {
          this.next();
          if (this.isOp('}')) break;
          const k = this.expr();
          this.expectOp(':');
          entries.push([k, this.expr()]);
        }
        this.expectOp('}', '"," or "}"');
        return { t: 'object', entries, pos } as Term;
      }
      if (this.isOp('|')) {
        this.next();
        const body = this.comprehensionBody('}');
        this.expectOp('}');
        return { t: 'setcomp', head: first, body, pos } as Term;
      }
      const items = [first];
      while (this.isOp(',')) {
        this.next();
        if (this.isOp('}')) break;
        items.push(this.expr());
      }
      this.expectOp('}', '"," or "}"');
      return { t: 'set', items, pos } as Term;
    });
  }
}
