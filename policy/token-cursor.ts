/**
 * A cursor over the token stream with the newline rules Rego's grammar needs: a newline ends an
 * expression in a body or at the top level, never inside brackets or parentheses.
 */
import type { Pos } from './ast.js';
import { PolicyError } from './errors.js';
import type { Token } from './lexer.js';

export const KEYWORDS = new Set([
  'package', 'import', 'default', 'if', 'else', 'not', 'some', 'every', 'in', 'contains', 'with', 'as',
]);

export class TokenCursor {
  protected i = 0;
  /** Whether a newline ends the current expression (true in bodies and at the top level). */
  protected nlStack: boolean[] = [true];
  /** Whether `|` ends the current expression (comprehension heads). */
  protected noUnion = false;
  protected depth = 0;

  constructor(protected readonly toks: Token[]) {}

  // ---- token helpers ------------------------------------------------------------------------

  protected get tok(): Token {
    return this.toks[this.i] as Token;
  }

  protected next(): Token {
    const t = this.tok;
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  protected pos(t: Token = this.tok): Pos {
    return { line: t.line, column: t.column };
  }

  /** A newline before the current token ends the expression here. */
  protected atBreak(): boolean {
    return this.tok.nl && (this.nlStack[this.nlStack.length - 1] as boolean);
  }

  protected isOp(text: string): boolean {
    return this.tok.kind === 'op' && this.tok.text === text;
  }

  /** An infix operator or postfix that continues the current expression. */
  protected isCont(text: string): boolean {
    return this.isOp(text) && !this.atBreak();
  }

  protected isKw(word: string): boolean {
    return this.tok.kind === 'ident' && this.tok.text === word;
  }

  protected expectOp(text: string, what?: string): Token {
    if (!this.isOp(text)) throw this.unexpected(what ?? `"${text}"`);
    return this.next();
  }

  protected unexpected(expected: string): PolicyError {
    const t = this.tok;
    const found = t.kind === 'eof' ? 'end of file' : t.kind === 'string' ? 'string' : `"${t.text}"`;
    return new PolicyError('POLICY_SYNTAX', `expected ${expected}, found ${found}`, this.pos());
  }

  protected unsupported(what: string, t: Token = this.tok): PolicyError {
    return new PolicyError('POLICY_UNSUPPORTED', `${what} is not supported by this policy engine`, this.pos(t));
  }

  protected ident(what: string): Token {
    if (this.tok.kind !== 'ident' || KEYWORDS.has(this.tok.text)) throw this.unexpected(what);
    return this.next();
  }

  protected withNl<T>(significant: boolean, f: () => T): T {
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
}
