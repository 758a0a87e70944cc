/**
 * Expressions and terms. Operator precedence, lowest first, as OPA parses it: `in`,
 * `== != < <= > >=`, `|`, `&`, `+ -`, `* / %`, unary `-`; then refs, calls, literals and
 * comprehensions. Comprehension bodies are parsed by the subclass (`literals`).
 */
import type { BinaryOp, Literal, Term } from './ast.js';
import { PolicyError } from './errors.js';
import type { Token } from './lexer.js';
import { KEYWORDS, TokenCursor } from './token-cursor.js';

const RELATIONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
/** Nesting depth of terms the parser accepts (protects the stack of the parser and evaluator). */
export const MAX_NESTING = 64;

export abstract class ExpressionParser extends TokenCursor {
  /** Literals separated by `;` or newlines, up to (not including) the closing operator. */
  protected abstract literals(close: string): Literal[];


  expr(): Term {
    let left = this.relation();
    while (this.isKw('in') && !this.atBreak()) {
      const pos = this.pos(this.next());
      left = { t: 'member', key: null, value: left, coll: this.relation(), pos };
    }
    return left;
  }

  /** An expression that stops before `in` (for `some x in`, `every x in`). */
  protected exprNoIn(): Term {
    return this.relation();
  }

  protected relation(): Term {
    let left = this.union();
    while (this.tok.kind === 'op' && RELATIONS.has(this.tok.text) && !this.atBreak()) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.union(), pos: this.pos(t) };
    }
    return left;
  }

  protected union(): Term {
    let left = this.intersection();
    while (!this.noUnion && this.isCont('|')) {
      const t = this.next();
      left = { t: 'binop', op: '|', left, right: this.intersection(), pos: this.pos(t) };
    }
    return left;
  }

  protected intersection(): Term {
    let left = this.additive();
    while (this.isCont('&')) {
      const t = this.next();
      left = { t: 'binop', op: '&', left, right: this.additive(), pos: this.pos(t) };
    }
    return left;
  }

  protected additive(): Term {
    let left = this.multiplicative();
    while (this.isCont('+') || this.isCont('-')) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.multiplicative(), pos: this.pos(t) };
    }
    return left;
  }

  protected multiplicative(): Term {
    let left = this.unary();
    while (this.isCont('*') || this.isCont('/') || this.isCont('%')) {
      const t = this.next();
      left = { t: 'binop', op: t.text as BinaryOp, left, right: this.unary(), pos: this.pos(t) };
    }
    return left;
  }

  protected unary(): Term {
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

  protected nested<T>(f: () => T): T {
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

  protected postfix(head: Term): Term {
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

  protected primary(): Term {
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

  protected nameOrCall(): Term {
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
  protected termList(close: string): Term[] {
    const items: Term[] = [];
    while (!this.isOp(close)) {
      items.push(this.expr());
      if (this.isOp(',')) this.next();
      else break;
    }
    return items;
  }

  protected comprehensionBody(close: string): Literal[] {
    return this.withNl(true, () => {
      const lits = this.literals(close);
      if (lits.length === 0) throw new PolicyError('POLICY_SYNTAX', 'empty comprehension body', this.pos());
      return lits;
    });
  }

  protected headExpr(): Term {
    const saved = this.noUnion;
    this.noUnion = true;
    try {
      return this.expr();
    } finally {
      this.noUnion = saved;
    }
  }

  protected arrayLike(): Term {
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

  protected braceLike(): Term {
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
