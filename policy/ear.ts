/**
 * EAR appraisal (AR4SI trust vectors), as Trustee's attestation service derives them: evaluate the
 * appraisal policy's `trust_claims` and `extensions` rules with the `query_reference_value` host
 * function, validate the result, and compute `ear.status` from the trust tiers.
 *
 * Hardened where upstream is not: an unknown trust-claim name (upstream panics) or a value outside
 * −128..127 (upstream wraps with `as i8`) is an error, so the attestation fails closed.
 */
import { PolicyError } from './errors.js';
import type { Policy } from './policy.js';
import type { JsonValue } from './value.js';

export const TRUST_CLAIMS = [
  'instance-identity',
  'configuration',
  'executables',
  'file-system',
  'hardware',
  'runtime-opaque',
  'storage-opaque',
  'sourced-data',
] as const;

export type TrustClaimName = (typeof TRUST_CLAIMS)[number];
export type TrustVector = Partial<Record<TrustClaimName, number>>;
export type EarStatus = 'none' | 'affirming' | 'warning' | 'contraindicated';

export interface EarExtension {
  name: string;
  key: number;
  value: JsonValue;
}

export interface Appraisal {
  /** The claims the policy set (unset claims count as 0 and are not listed, as in upstream tokens). */
  trustVector: TrustVector;
  status: EarStatus;
  extensions: EarExtension[];
}

export interface AppraiseOptions {
  /** Backs `query_reference_value(id)`: the stored reference value, or null when there is none. */
  referenceValue: (id: string) => JsonValue | null;
  nowNs?: number;
  stepBudget?: number;
}

/** Host functions the appraisal policies may call, for `compile(…, { hostFunctions })`. */
export const APPRAISAL_HOST_FUNCTIONS = { query_reference_value: 1 } as const;

const STATUS_ORDER: readonly EarStatus[] = ['none', 'affirming', 'warning', 'contraindicated'];

/** The AR4SI tier of one trust-claim value. */
export function tierOf(value: number): EarStatus {
  if (value >= -1 && value <= 1) return 'none';
  if (value >= -32 && value <= 31) return 'affirming';
  if (value >= -96 && value <= 95) return 'warning';
  return 'contraindicated';
}

/** `ear.status`: the worst tier over the eight claims (an unset claim counts as 0). */
export function statusOf(vector: Readonly<Record<string, number>>): EarStatus {
  let worst = 0;
  for (const name of TRUST_CLAIMS) {
    const v = Object.hasOwn(vector, name) ? (vector[name] as number) : 0;
    worst = Math.max(worst, STATUS_ORDER.indexOf(tierOf(v)));
  }
  return STATUS_ORDER[worst] as EarStatus;
}

function fail(detail: string): PolicyError {
  return new PolicyError('POLICY_EVAL', detail);
}

function clip(s: string): string {
  return s.length > 64 ? JSON.stringify(s.slice(0, 64)) + '…' : JSON.stringify(s);
}

/** Validates a `trust_claims` value: known claim names, integers in −128..127, at least one. */
export function trustVectorFromClaims(value: JsonValue): TrustVector {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fail('trust_claims must be an object of trust-claim names to integers');
  }
  const out: TrustVector = {};
  for (const [k, v] of Object.entries(value)) {
    if (!(TRUST_CLAIMS as readonly string[]).includes(k)) throw fail(`unknown trust claim ${clip(k)}`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -128 || v > 127) {
      throw fail(`trust claim "${k}" must be an integer in -128..127`);
    }
    out[k as TrustClaimName] = v;
  }
  if (Object.keys(out).length === 0) throw fail('trust_claims sets no trust claim');
  return out;
}

function extensionsFrom(value: JsonValue | undefined): EarExtension[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw fail('extensions must be an array');
  return value.map((x) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw fail('each extension must be an object');
    const { name, key } = x;
    if (typeof name !== 'string' || name.length === 0) throw fail('an extension needs a non-empty string "name"');
    if (typeof key !== 'number' || !Number.isInteger(key) || key < -(2 ** 31) || key >= 2 ** 31) {
      throw fail(`extension ${clip(name)} needs an i32 integer "key"`);
    }
    if (!Object.hasOwn(x, 'value')) throw fail(`extension ${clip(name)} has no "value"`);
    return { name, key, value: x['value'] as JsonValue };
  });
}

/** Runs an appraisal policy on one device's claims. Throws PolicyError when the policy fails. */
export function appraise(policy: Policy, input: JsonValue, options: AppraiseOptions): Appraisal {
  const evalOptions = {
    hostFunctions: { query_reference_value: (id: JsonValue) => (typeof id === 'string' ? options.referenceValue(id) : null) },
    ...(options.nowNs !== undefined ? { nowNs: options.nowNs } : {}),
    ...(options.stepBudget !== undefined ? { stepBudget: options.stepBudget } : {}),
  };
  // Upstream always queries data.policy.*: a policy in another package sets nothing.
  const claims = policy.evaluate('data.policy.trust_claims', { input }, evalOptions);
  let trustVector: TrustVector;
  if (claims !== undefined) trustVector = trustVectorFromClaims(claims);
  else if (policy.packagePath.join('.') === 'policy' && policy.ruleNames.includes('trust_claims')) {
    throw fail('trust_claims is undefined for this input');
  } else trustVector = Object.fromEntries(TRUST_CLAIMS.map((c) => [c, 0]));
  const extensions = extensionsFrom(policy.evaluate('data.policy.extensions', { input }, evalOptions));
  return { trustVector, status: statusOf(trustVector), extensions };
}
