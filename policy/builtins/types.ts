import { PolicyError } from '../errors.js';
import { typeName, type Value } from '../value.js';

/** What a builtin may use from the evaluation that calls it. */
export interface BuiltinContext {
  /** `time.now_ns()` for this evaluation: fixed for the whole evaluation, injectable for tests. */
  readonly nowNs: number;
  /** Charges work against the evaluation's step budget (throws POLICY_BUDGET when exhausted). */
  charge(units: number): void;
}

/**
 * A builtin function. `impl` returns the result, or `undefined` when the result is undefined (for
 * example `object.get` never is, but a failed `to_number` is an error, not undefined). Type errors
 * throw a POLICY_TYPE PolicyError (strict mode, as regorus runs).
 */
export interface Builtin {
  readonly name: string;
  readonly arity: number;
  readonly impl: (args: readonly Value[], ctx: BuiltinContext) => Value | undefined;
}

export function typeError(fn: string, index: number, expected: string, got: Value): PolicyError {
  return new PolicyError('POLICY_TYPE', `${fn}: operand ${index + 1} must be ${expected} but got ${typeName(got)}`);
}

export function evalError(fn: string, detail: string): PolicyError {
  return new PolicyError('POLICY_EVAL', `${fn}: ${detail}`);
}
