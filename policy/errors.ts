/**
 * One error type for the policy engine, with stable string codes (as panva/jose does).
 *
 * Codes:
 *  - POLICY_SYNTAX       the text is not valid Rego v1 (lexer or parser)
 *  - POLICY_UNSUPPORTED  valid Rego, but a construct or builtin outside the subset this engine runs
 *  - POLICY_COMPILE      an unsafe variable, an unknown function or rule, a recursive rule, a bad arity…
 *  - POLICY_TYPE         a builtin or operator received an argument of the wrong type (strict mode)
 *  - POLICY_CONFLICT     a complete rule, function or object key produced two different values
 *  - POLICY_BUDGET       the evaluation step budget or the depth limit was exceeded
 *  - POLICY_EVAL         any other evaluation error (division by zero, bad regex, bad base64…)
 *  - POLICY_HOST         a host function failed
 *
 * Messages never contain values taken from `input` beyond their type: policies run on attestation
 * claims, and error text reaches logs and operators.
 */
export type PolicyErrorCode =
  | 'POLICY_SYNTAX'
  | 'POLICY_UNSUPPORTED'
  | 'POLICY_COMPILE'
  | 'POLICY_TYPE'
  | 'POLICY_CONFLICT'
  | 'POLICY_BUDGET'
  | 'POLICY_EVAL'
  | 'POLICY_HOST';

export interface SourcePosition {
  line: number;
  column: number;
}

export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** The message without the position prefix. */
  readonly detail: string;

  constructor(code: PolicyErrorCode, detail: string, pos?: SourcePosition) {
    super(pos ? `${pos.line}:${pos.column}: ${detail}` : detail);
    this.name = 'PolicyError';
    this.code = code;
    this.detail = detail;
    this.line = pos?.line;
    this.column = pos?.column;
  }
}

export function isPolicyError(e: unknown): e is PolicyError {
  return e instanceof PolicyError;
}
