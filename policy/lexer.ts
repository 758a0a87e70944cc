/**
 * Rego lexer: turns policy text into tokens with line/column positions.
 *
 * Newlines are not tokens; each token instead records whether a newline preceded it (`nl`), which
 * the parser uses to separate body literals and rules exactly where Rego does.
 */
import { PolicyError } from './errors.js';

export type TokenKind = 'ident' | 'string' | 'number' | 'op' | 'eof';

export interface Token {
  kind: TokenKind;
  /** Identifier name, operator text, or the decoded string value. */
  text: string;
  /** Numeric value of a number token. */
  num: number;
  line: number;
  column: number;
  /** A newline (or the start of the file) lies between the previous token and this one. */
  nl: boolean;
}

/** Longest first, so that `:=` wins over `:`. */
const OPERATORS = [':=', '==', '!=', '<=', '>=', '=', '<', '>', '+', '-', '*', '/', '%', '&', '|', '.', ',', ';', ':', '(', ')', '[', ']', '{', '}'];

/** Policies are small documents; anything larger is refused before it is lexed. */
export const MAX_POLICY_BYTES = 1024 * 1024;

export function tokenize(src: string): Token[] {
  if (src.length > MAX_POLICY_BYTES) {
    throw new PolicyError('POLICY_SYNTAX', `policy is larger than ${MAX_POLICY_BYTES} bytes`, { line: 1, column: 1 });
  }
  const toks: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  let nl = true;
  const n = src.length;
  const pos = () => ({ line, column: i - lineStart + 1 });

  while (i < n) {
    const c = src.charCodeAt(i);
    // whitespace
    if (c === 10) {
      i++;
      line++;
      lineStart = i;
      nl = true;
      continue;
    }
    if (c === 32 || c === 9 || c === 13) {
      i++;
      continue;
    }
    if (c === 35 /* # */) {
      while (i < n && src.charCodeAt(i) !== 10) i++;
      continue;
    }
    const start = pos();
    // identifiers and keywords
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentPart(src.charCodeAt(j))) j++;
      toks.push({ kind: 'ident', text: src.slice(i, j), num: 0, ...start, nl });
      i = j;
      nl = false;
      continue;
    }
    // numbers (a leading minus is a unary operator handled by the parser)
    if (isDigit(c)) {
      const m = /^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
      m.lastIndex = 0;
      const text = m.exec(src.slice(i, i + 400))?.[0];
      if (!text) throw new PolicyError('POLICY_SYNTAX', 'malformed number', start);
      const after = src.charCodeAt(i + text.length);
      if (isIdentPart(after) || after === 46 /* . */) {
        throw new PolicyError('POLICY_SYNTAX', 'malformed number', start);
      }
      const num = Number(text);
      if (!Number.isFinite(num)) throw new PolicyError('POLICY_SYNTAX', 'number out of range', start);
      toks.push({ kind: 'number', text, num, ...start, nl });
      i += text.length;
      nl = false;
      continue;
    }
    // strings
    if (c === 34 /* " */) {
      let j = i + 1;
      let out = '';
      for (;;) {
        if (j >= n) throw new PolicyError('POLICY_SYNTAX', 'unterminated string', start);
        const d = src.charCodeAt(j);
        if (d === 34) break;
        if (d === 10) throw new PolicyError('POLICY_SYNTAX', 'unterminated string (newline in string)', start);
        if (d === 92 /* \ */) {
          const e = src[j + 1];
          switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
              const hex = src.slice(j + 2, j + 6);
              if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
                throw new PolicyError('POLICY_SYNTAX', 'invalid \\u escape in string', { line, column: j - lineStart + 1 });
              }
              out += String.fromCharCode(parseInt(hex, 16));
              j += 4;
              break;
            }
            default:
              throw new PolicyError('POLICY_SYNTAX', 'invalid escape sequence in string', { line, column: j - lineStart + 1 });
          }
          j += 2;
          continue;
        }
        out += src[j];
        j++;
      }
      toks.push({ kind: 'string', text: out, num: 0, ...start, nl });
      i = j + 1;
      nl = false;
      continue;
    }
    // raw strings
    if (c === 96 /* ` */) {
      const end = src.indexOf('`', i + 1);
      if (end < 0) throw new PolicyError('POLICY_SYNTAX', 'unterminated raw string', start);
      const text = src.slice(i + 1, end);
      toks.push({ kind: 'string', text, num: 0, ...start, nl });
      for (let k = i + 1; k < end; k++) {
        if (src.charCodeAt(k) === 10) {
          line++;
          lineStart = k + 1;
        }
      }
      i = end + 1;
      nl = false;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) {
      throw new PolicyError('POLICY_SYNTAX', `unexpected character ${JSON.stringify(src[i])}`, start);
    }
    toks.push({ kind: 'op', text: op, num: 0, ...start, nl });
    i += op.length;
    nl = false;
  }
  toks.push({ kind: 'eof', text: '', num: 0, line, column: i - lineStart + 1, nl: true });
  return toks;
}

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function isIdentPart(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
