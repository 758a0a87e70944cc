/**
 * The KBS resource-release decision: `data.policy.allow` with `input` = the verified token claims
 * and `data` = `{plugin, resource-path, query}`, as Trustee's KBS builds them.
 *
 * Allow only when the rule is exactly `true`. Undefined, a missing rule, a non-boolean value and any
 * evaluation error are a deny, with a reason an operator can act on. Never throws.
 */
import { isPolicyError } from './errors.js';
import type { EvaluateOptions, Policy } from './policy.js';
import type { JsonValue } from './value.js';

export interface ResourceRequest {
  plugin: string;
  resourcePath: string[];
  query: Record<string, string>;
}

export interface ResourceDecision {
  allow: boolean;
  reason: string;
}

export const RESOURCE_RULE = 'data.policy.allow';

export function resourcePolicyData(request: ResourceRequest): JsonValue {
  const query: { [key: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(request.query)) {
    Object.defineProperty(query, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return { plugin: request.plugin, 'resource-path': [...request.resourcePath], query };
}

export function evaluateResourcePolicy(
  policy: Policy,
  claims: JsonValue,
  request: ResourceRequest,
  options: EvaluateOptions = {},
): ResourceDecision {
  const docs = { input: claims, data: resourcePolicyData(request) };
  let value: JsonValue | undefined;
  try {
    value = policy.evaluate(RESOURCE_RULE, docs, options);
  } catch (e) {
    if (isPolicyError(e)) return { allow: false, reason: `policy evaluation error (${e.code}): ${e.message}` };
    return { allow: false, reason: 'policy evaluation error: internal error' };
  }
  if (value === true) return { allow: true, reason: 'data.policy.allow is true' };
  if (policy.packagePath.join('.') !== 'policy') {
    return { allow: false, reason: `the policy's package is "${policy.packagePath.join('.')}", not "policy": data.policy.allow is undefined` };
  }
  if (value === undefined || value === false) {
    const failures = policy.explain('allow', docs, options);
    const where = failures
      .filter((f) => f.failedAt !== null)
      .map((f) => `the allow rule at line ${f.rulePos.line} failed at ${f.failedAt?.line}:${f.failedAt?.column}`);
    const why =
      failures.length === 0
        ? value === undefined
          ? 'the policy defines no allow rule'
          : 'only the default value applies'
        : where.length > 0
          ? where.join('; ')
          : 'no allow rule held';
    return { allow: false, reason: `data.policy.allow is ${value === undefined ? 'undefined' : 'false'}: ${why}` };
  }
  return { allow: false, reason: `data.policy.allow is not a boolean (it is ${describe(value)})` };
}

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
