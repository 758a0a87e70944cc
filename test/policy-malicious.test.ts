/**
 * Hostile policies and inputs: each is rejected at compile time or denied within the budget, fast,
 * and never hangs or crashes the process.
 */
import test from 'ava';
import { compile, evaluateResourcePolicy, isPolicyError, PolicyError, type JsonValue } from '../policy/index.js';

const REQ = { plugin: 'resource', resourcePath: ['a', 'b', 'c'], query: {} };

/**
 * A hang guard, not a speed target: the step budget is what bounds these evaluations (about 0.1 s
 * for the default budget on this machine, see the closing figures); a loaded CI machine must not
 * turn the guard into a flaky test.
 */
const HANG_MS = 5000;

function timed<T>(f: () => T): { value: T; ms: number } {
  const t0 = process.hrtime.bigint();
  const value = f();
  return { value, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

function compileCode(src: string): string | undefined {
  try {
    compile(src);
    return undefined;
  } catch (e) {
    if (isPolicyError(e)) return e.code;
    throw e;
  }
}

test('deeply nested expressions are rejected at compile time', (t) => {
  const parens = `package policy\nallow if ${'('.repeat(5000)}1${')'.repeat(5000)}`;
  const arrays = `package policy\nx := ${'['.repeat(5000)}${']'.repeat(5000)}`;
  const negs = `package policy\nx := ${'-'.repeat(5000)}1`;
  for (const src of [parens, arrays, negs]) {
    const { value, ms } = timed(() => compileCode(src));
    t.is(value, 'POLICY_UNSUPPORTED');
    t.true(ms < HANG_MS, `${ms} ms`);
  }
});

test('a long chain of binary operators does not overflow the stack', (t) => {
  const src = `package policy\nx := ${Array.from({ length: 20000 }, () => '1').join(' + ')}`;
  const { value, ms } = timed(() => compileCode(src));
  t.true(value === undefined || value === 'POLICY_UNSUPPORTED', String(value));
  t.true(ms < HANG_MS, `${ms} ms`);
  if (value === undefined) {
    const r = timed(() => compile(src).evaluate('data.policy.x', {}));
    t.true(r.ms < HANG_MS, `${r.ms} ms`);
  }
});

test('bodies with too many expressions are rejected', (t) => {
  const body = Array.from({ length: 600 }, (_, i) => `input.a${i}`).join('\n  ');
  t.is(compileCode(`package policy\nallow if {\n  ${body}\n}`), 'POLICY_UNSUPPORTED');
});

test('huge comprehensions hit the step budget and deny', (t) => {
  const src = `package policy
default allow := false
allow if {
  big := [x | some a in numbers.range(1, 1000); some b in numbers.range(1, 1000); x := a * b]
  count(big) > 0
}`;
  const policy = compile(src);
  const { value, ms } = timed(() => evaluateResourcePolicy(policy, {}, REQ));
  t.false(value.allow);
  t.regex(value.reason, /POLICY_BUDGET/);
  t.true(ms < HANG_MS, `${ms} ms`);
});

test('cartesian products over a large input hit the budget', (t) => {
  const policy = compile(`package policy
allow if {
  some a in input.xs
  some b in input.xs
  some c in input.xs
  a + b + c == -1
}`);
  const xs = Array.from({ length: 1000 }, (_, i) => i);
  const { value, ms } = timed(() => evaluateResourcePolicy(policy, { xs }, REQ));
  t.false(value.allow);
  t.regex(value.reason, /POLICY_BUDGET/);
  t.true(ms < HANG_MS, `${ms} ms`);
});

test('catastrophic regular expressions run in linear time', (t) => {
  const policy = compile(`package policy
allow if regex.match("^(a+)+$", input.s)`);
  const { value, ms } = timed(() => evaluateResourcePolicy(policy, { s: 'a'.repeat(50000) + 'b' }, REQ));
  t.false(value.allow);
  t.true(ms < HANG_MS, `${ms} ms`);
});

test('regex patterns from input are bounded too', (t) => {
  const policy = compile(`package policy
allow if regex.match(input.p, input.s)`);
  const { value, ms } = timed(() => evaluateResourcePolicy(policy, { p: '(x+x+)+y', s: 'x'.repeat(20000) }, REQ));
  t.false(value.allow);
  t.true(ms < HANG_MS, `${ms} ms`);
  const bad = evaluateResourcePolicy(policy, { p: '(?<=a)b', s: 'ab' }, REQ);
  t.false(bad.allow);
  t.regex(bad.reason, /POLICY_EVAL/);
});

test('recursion attempts are rejected at compile time', (t) => {
  for (const src of [
    'package policy\nallow if allow',
    'package policy\nallow if data.policy.allow',
    'package policy\nf(x) := g(x)\ng(x) := f(x)\nallow if f(1)',
    'package policy\nallow if { count([x | x := data.policy.allow]) > 0 }',
    'package policy\nallow if a\na if { every x in [1] { b } }\nb if not allow',
  ]) {
    t.is(compileCode(src), 'POLICY_COMPILE', src);
  }
});

test('string blow-up through builtins is bounded by the budget', (t) => {
  const policy = compile(`package policy
allow if {
  s := concat("", [x | some _ in numbers.range(1, 100000); x := "aaaaaaaaaaaaaaaa"])
  count(s) > 10
}`);
  const { value, ms } = timed(() => evaluateResourcePolicy(policy, {}, REQ, { stepBudget: 50_000 }));
  t.false(value.allow);
  t.true(ms < HANG_MS, `${ms} ms`);
});

test('a policy of 1 MiB and more is refused before parsing', (t) => {
  const src = 'package policy\n' + '#'.repeat(1024 * 1024);
  t.is(compileCode(src), 'POLICY_SYNTAX');
});

test('deeply nested input does not crash evaluation', (t) => {
  let deep: JsonValue = 1;
  for (let i = 0; i < 5000; i++) deep = [deep];
  const policy = compile('package policy\nallow if { count([x | x := input.d]) == 1; input.d != input.e }');
  const r = evaluateResourcePolicy(policy, { d: deep, e: deep }, REQ);
  t.false(r.allow);
  const p2 = compile('package policy\nallow if { s := {input.d}; count(s) == 1 }');
  const r2 = evaluateResourcePolicy(p2, { d: deep }, REQ);
  t.is(typeof r2.allow, 'boolean');
});

test('budget and depth errors are PolicyErrors with stable codes', (t) => {
  const p = compile('package p\nx := count([1 | some _ in numbers.range(1, 100)])');
  const e = t.throws(() => p.evaluate('data.p.x', {}, { stepBudget: 50 }), { instanceOf: PolicyError });
  t.is(e?.code, 'POLICY_BUDGET');
  t.is(p.evaluate('data.p.x', {}), 100);
});
