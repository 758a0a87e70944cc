/**
 * Property-based tests: random token claims never make the engine throw past its API, never exceed
 * its budget, and the decision only ever allows with `data.policy.allow` exactly true.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  appraise,
  APPRAISAL_HOST_FUNCTIONS,
  compile,
  evaluateResourcePolicy,
  isPolicyError,
  samplePolicyText,
  SAMPLE_POLICIES,
  type JsonValue,
} from '../policy/index.js';

const statuses = fc.constantFrom('affirming', 'warning', 'contraindicated', 'none', 7, null, true);
const tees = fc.constantFrom('sample', 'tdx', 'snp', 'az-snp-vtpm', 'az-tdx-vtpm', 'tpm', 'se', '__proto__', 'constructor');
const submod = fc.record(
  {
    'ear.status': statuses,
    'ear.trustworthiness-vector': fc.dictionary(fc.string(), fc.integer({ min: -200, max: 200 })),
    'ear.veraison.annotated-evidence': fc.dictionary(tees, fc.jsonValue({ maxDepth: 3 })),
  },
  { requiredKeys: [] },
);
const claims: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.record({ submods: fc.dictionary(fc.constantFrom('cpu0', 'gpu0', 'cpu1', '__proto__'), submod) }, { requiredKeys: [] }) as fc.Arbitrary<JsonValue>,
  fc.jsonValue({ maxDepth: 5 }) as fc.Arbitrary<JsonValue>,
);
const request = fc.record({
  plugin: fc.oneof(fc.constant('resource'), fc.string()),
  resourcePath: fc.array(fc.string(), { maxLength: 4 }),
  query: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
});

const resourcePolicies = ['default', 'allow_all', 'deny_all', 'affirming'] as const;
const compiled = resourcePolicies.map((n) => compile(samplePolicyText(n)));

test('resource policies: random claims and requests never throw and decide within budget', (t) => {
  fc.assert(
    fc.property(claims, request, (c, r) => {
      for (const p of compiled) {
        const d = evaluateResourcePolicy(p, c, r, { stepBudget: 10_000 });
        if (typeof d.allow !== 'boolean' || typeof d.reason !== 'string') return false;
        if (d.reason.includes('POLICY_BUDGET')) return false;
        if (d.allow && p.evaluate('data.policy.allow', { input: c, data: { plugin: r.plugin, 'resource-path': r.resourcePath, query: r.query } }) !== true) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('affirming.rego allows exactly when every submod is affirming (or lacks a status) and there is one', (t) => {
  const affirming = compiled[3];
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('cpu0', 'gpu0', 'gpu1'), fc.record({ 'ear.status': statuses }, { requiredKeys: [] })), (submods) => {
      const d = evaluateResourcePolicy(affirming!, { submods }, { plugin: 'resource', resourcePath: ['a', 'b', 'c'], query: {} });
      const entries = Object.values(submods);
      const expected = entries.length > 0 && entries.every((s) => !('ear.status' in s) || s['ear.status'] === 'affirming');
      return d.allow === expected;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('appraisal policy: random claims either appraise or fail with a PolicyError', (t) => {
  const cpu = compile(samplePolicyText('ear_default_policy_cpu'), { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
  const rv = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }));
  fc.assert(
    fc.property(fc.dictionary(tees, fc.jsonValue({ maxDepth: 4 })), rv, (input, rvs) => {
      try {
        const a = appraise(cpu, input as JsonValue, {
          referenceValue: (id) => (Object.hasOwn(rvs, id) ? (rvs[id] as JsonValue) : null),
          stepBudget: 100_000,
        });
        return ['none', 'affirming', 'warning', 'contraindicated'].includes(a.status);
      } catch (e) {
        return isPolicyError(e) && e.code !== 'POLICY_BUDGET';
      }
    }),
    { numRuns: 300 },
  );
  t.is(SAMPLE_POLICIES.length, 5);
});

test('random policy text never escapes the API with anything but a PolicyError', (t) => {
  const fragments = fc.constantFrom(
    'package policy\n', 'allow', ' if ', '{', '}', '[', ']', '(', ')', ' := ', ' = ', 'input.a', 'data.plugin',
    '"s"', '1', ' == ', '\n', 'some x in ', 'every x in ', 'not ', 'count(', ',', 'x', '_', ' contains ', 'else',
    'default ', '|', '&', '`', '#c\n', ';', '.', 'f(x)', ' in ', '-', '*',
  );
  fc.assert(
    fc.property(fc.array(fragments, { maxLength: 40 }), (parts) => {
      const src = parts.join('');
      try {
        const p = compile(src, { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
        try {
          p.evaluate('data.policy.allow', { input: { a: 1 }, data: { plugin: 'resource' } }, { stepBudget: 10_000, hostFunctions: { query_reference_value: () => null } });
        } catch (e) {
          return isPolicyError(e);
        }
        return true;
      } catch (e) {
        return isPolicyError(e) && typeof e.line === 'number';
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
