/**
 * Recursive-descent parser for Rego v1 (the `if` keyword is required before rule bodies; `contains`
 * for multi-value rules). Any construct outside the subset this engine evaluates is refused here
 * with its line and column, so that an accepted policy is one that evaluates. Modules, rules and
 * body literals live here; expressions in expression-parser.ts.
 */
import type { ElseClause, Literal, Module, RuleDef, Term } from './ast.js';
import { PolicyError } from './errors.js';
import { ExpressionParser } from './expression-parser.js';
import { tokenize } from './lexer.js';
import { KEYWORDS } from './token-cursor.js';

export { MAX_NESTING } from './expression-parser.js';

export function parseModule(src: string): Module {
  return new Parser(tokenize(src)).module();
}

class Parser extends ExpressionParser {
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
  protected literals(close: string): Literal[] {
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

}
