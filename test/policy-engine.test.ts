/**
 * Language features of the Rego engine: what evaluates and how, and what is refused at compile time
 * with its line and column.
 */
import test from 'ava';
import { compile, isPolicyError, PolicyError, type JsonValue, type PolicyErrorCode } from '../policy/index.js';

const HOST = { hostFunctions: { query_reference_value: 1 } };

function run(src: string, rule = 'x', input?: JsonValue, data?: JsonValue): JsonValue | undefined {
  const docs: { input?: JsonValue; data?: JsonValue } = {};
  if (input !== undefined) docs.input = input;
  if (data !== undefined) docs.data = data;
  return compile(`package p\n${src}`).evaluate(`data.p.${rule}`, docs, { nowNs: 1_700_000_000_000_000_000 });
}

function compileError(src: string): PolicyError {
  try {
    compile(src, HOST);
  } catch (e) {
    if (isPolicyError(e)) return e;
    throw e;
  }
  throw new Error('expected a compile error');
}

function evalError(src: string, input?: JsonValue): PolicyError {
  try {
    run(src, 'x', input);
  } catch (e) {
    if (isPolicyError(e)) return e;
    throw e;
  }
  throw new Error('expected an evaluation error');
}

// ---- rules -------------------------------------------------------------------------------------

test('constant rules, := and =', (t) => {
  t.is(run('x := 1'), 1);
  t.is(run('x = "a"'), 'a');
  t.deepEqual(run('x := {"a": [1, 2, {"b": null}]}'), { a: [1, 2, { b: null }] });
});

test('boolean rule with if body, and undefined when the body fails', (t) => {
  t.is(run('x if { input.a == 1 }', 'x', { a: 1 }), true);
  t.is(run('x if { input.a == 1 }', 'x', { a: 2 }), undefined);
  t.is(run('x if input.a == 1', 'x', { a: 1 }), true);
});

test('default applies only when no definition holds', (t) => {
  const src = 'default x := 0\nx := 5 if input.a';
  t.is(run(src, 'x', { a: true }), 5);
  t.is(run(src, 'x', { a: false }), 0);
  t.is(run(src, 'x', {}), 0);
});

test('several definitions of one complete rule must agree', (t) => {
  const src = 'x := 3 if input.a\nx := 3 if input.b\nx := 4 if input.c';
  t.is(run(src, 'x', { a: true, b: true }), 3);
  t.is(run(src, 'x', { c: true }), 4);
  const e = evalError(src, { a: true, c: true });
  t.is(e.code, 'POLICY_CONFLICT');
});

test('a body with several solutions of different values is a conflict', (t) => {
  t.is(evalError('x := v if { v := input.xs[_] }', { xs: [1, 2] }).code, 'POLICY_CONFLICT');
  t.is(run('x := v if { v := input.xs[_] }', 'x', { xs: [1, 1] }), 1);
});

test('else chains pick the first clause that holds', (t) => {
  const src = `
x := 1 if {
  input.n > 10
} else := 2 if {
  input.n > 5
} else := 3`;
  t.is(run(src, 'x', { n: 11 }), 1);
  t.is(run(src, 'x', { n: 6 }), 2);
  t.is(run(src, 'x', { n: 1 }), 3);
});

test('partial set rules with contains', (t) => {
  t.deepEqual(run('x contains v if { some v in input.xs; v > 1 }', 'x', { xs: [3, 1, 2, 3] }), [2, 3]);
  t.deepEqual(run('x contains "a" if input.f\nx contains "b"', 'x', { f: false }), ['b']);
});

test('partial object rules', (t) => {
  t.deepEqual(run('x[k] := v if { some k, v in input.o; v > 1 }', 'x', { o: { a: 1, b: 2 } }), { b: 2 });
  t.is(evalError('x[k] := v if { some v in input.xs; k := "same" }', { xs: [1, 2] }).code, 'POLICY_CONFLICT');
});

test('user functions, several definitions and else', (t) => {
  const src = `
f(a) := a + 1 if a > 0
f(a) := 0 if a <= 0
g(s) if startswith(s, "x")
h(n) := "big" if { n > 100 } else := "small"
x := [f(2), f(-3), g("xy"), h(1000), h(1)]`;
  t.deepEqual(run(src), [3, 0, true, 'big', 'small']);
  t.is(run('g(s) if startswith(s, "x")\nx if g("y")'), undefined);
});

test('function parameters can be constants (pattern matching)', (t) => {
  const src = 'f("a") := 1\nf("b") := 2\nx := [f("a"), f("b")]\ny if f("c")';
  t.deepEqual(run(src), [1, 2]);
  t.is(run(src, 'y'), undefined);
});

test('rule references: bare names and data.<package>.<rule>', (t) => {
  t.is(run('y := 2\nx := y + data.p.y'), 4);
});

test('data document: external data beside the rules', (t) => {
  t.is(run('x if data.plugin == "resource"', 'x', {}, { plugin: 'resource' }), true);
  t.is(run('x := data["resource-path"][1]', 'x', {}, { 'resource-path': ['a', 'b'] }), 'b');
});

test('whole-package evaluation returns every defined rule', (t) => {
  const p = compile('package p\nx := 1\ny if false\nz contains 1');
  t.deepEqual(p.evaluate('data.p', {}), { x: 1, z: [1] });
});

test('a rule path outside the package is undefined (upstream: not a valid rule path)', (t) => {
  const p = compile('package my_policy\nallow := true');
  t.is(p.evaluate('data.policy.allow', {}), undefined);
  t.is(p.evaluate('data.my_policy.allow', {}), true);
  t.is(p.evaluate('data.my_policy.nope', {}), undefined);
});

// ---- bodies ------------------------------------------------------------------------------------

test('expression truthiness: anything but false and undefined holds', (t) => {
  for (const [v, expected] of [[0, true], ['', true], [null, true], [{}, true], [false, undefined]] as const) {
    t.is(run('x if input.v', 'x', { v: v as JsonValue }), expected, JSON.stringify(v));
  }
  t.is(run('x if input.missing', 'x', {}), undefined);
});

test('not: succeeds when the expression has no solution', (t) => {
  t.is(run('x if not input.a', 'x', {}), true);
  t.is(run('x if not input.a', 'x', { a: true }), undefined);
  t.is(run('x if not input.a', 'x', { a: false }), true);
  t.is(run('x if not input.xs[_] == 2', 'x', { xs: [1, 3] }), true);
  t.is(run('x if not input.xs[_] == 2', 'x', { xs: [1, 2] }), undefined);
});

test('some x in / some k, v in over arrays, objects and sets', (t) => {
  t.is(run('x if { some v in input.xs; v == 2 }', 'x', { xs: [1, 2] }), true);
  t.deepEqual(run('x := [i | some i, v in input.xs; v == "b"]', 'x', { xs: ['a', 'b', 'b'] }), [1, 2]);
  t.deepEqual(run('x := {k | some k, v in input.o; v}', 'x', { o: { a: true, b: false } }), ['a']);
  t.deepEqual(run('x := [v | some v in {3, 1, 2}]'), [1, 2, 3]);
  t.deepEqual(run('x := [v | some v in "str"]'), []);
});

test('every', (t) => {
  t.is(run('x if every v in input.xs { v > 0 }', 'x', { xs: [1, 2] }), true);
  t.is(run('x if every v in input.xs { v > 0 }', 'x', { xs: [1, -2] }), undefined);
  t.is(run('x if every v in input.xs { v > 0 }', 'x', { xs: [] }), true);
  t.is(run('x if every k, v in input.o { startswith(k, "a"); v }', 'x', { o: { ab: 1, ac: 2 } }), true);
  t.is(run('x if every v in input.missing { v }', 'x', {}), undefined);
});

test('[_] iteration, variables in refs bind and join', (t) => {
  t.deepEqual(run('x := [v | v := input.xs[_].a]', 'x', { xs: [{ a: 1 }, { b: 2 }, { a: 3 }] }), [1, 3]);
  t.deepEqual(run('x := {i | input.a[i] == input.b[i]}', 'x', { a: [1, 2, 3], b: [1, 0, 3] }), [0, 2]);
  t.deepEqual(run('x := {k | input.o[k]}', 'x', { o: { a: true, b: false, c: 0 } }), ['a', 'c']);
});

test('unification of a ref with a literal, and of array patterns', (t) => {
  t.is(run('x if input.a[1] = "z"', 'x', { a: ['y', 'z'] }), true);
  t.is(run('x if input.a[1] = "z"', 'x', { a: ['y', 'q'] }), undefined);
  t.deepEqual(run('x := [a, b] if { [a, b] = input.pair }', 'x', { pair: [1, 2] }), [1, 2]);
  t.deepEqual(run('x := b if { [1, b] := input.pair }', 'x', { pair: [1, 2] }), 2);
  t.deepEqual(run('x := v if { {"k": v} = input.o }', 'x', { o: { k: 7 } }), 7);
  t.is(run('x := v if { v = 3 }'), 3);
  t.is(run('x := v if { 3 = v }'), 3);
});

test('literal order is rearranged for safety, as OPA does', (t) => {
  t.is(run('x if { v == 2; v := input.a }', 'x', { a: 2 }), true);
  t.deepEqual(run('x := [y | y > 1; some y in input.xs]', 'x', { xs: [1, 2, 3] }), [2, 3]);
});

test('comprehensions: array, set, object, nested and capturing outer variables', (t) => {
  t.deepEqual(run('x := [v * 2 | some v in [1, 2, 3]]'), [2, 4, 6]);
  t.deepEqual(run('x := {v % 2 | some v in [1, 2, 3]}'), [0, 1]);
  t.deepEqual(run('x := {k: v | some k, v in {"a": 1, "b": 2}}'), { a: 1, b: 2 });
  t.deepEqual(run('x := [[y | some y in [1, 2]; y > m] | some m in [0, 1]]'), [[1, 2], [2]]);
  t.deepEqual(run('x := [n | some n in [1, 2]; n > lim] if { lim := input.lim }', 'x', { lim: 1 }), [2]);
  t.is(evalError('x := {k: v | some v in [1, 2]; k := "a"}').code, 'POLICY_CONFLICT');
});

test('operators: comparison with the total order across types', (t) => {
  t.deepEqual(run('x := [4 >= null, null < false, 1 < "a", "a" < [], [] < {}, {} < set(), 1 == 1.0, 1 == "1", 2 != 3]'), [
    true, true, true, true, true, true, true, false, true,
  ]);
});

test('operators: arithmetic, set operations, in', (t) => {
  t.deepEqual(run('x := [1 + 2 * 3, (1 + 2) * 3, 7 % 3, 7 / 2, -input.n, 2 - -1]', 'x', { n: 4 }), [7, 9, 1, 3.5, -4, 3]);
  t.deepEqual(run('x := [{1, 2} & {2, 3}, {1} | {2}, {1, 2} - {1}]'), [[2], [1, 2], [2]]);
  t.deepEqual(run('x := [1 in [1], 2 in {"a": 2}, 3 in {3}, 1 in null, "a" in "abc", 0, "v" in {"k": "v"}]'), [
    true, true, true, false, false, 0, true,
  ]);
  t.is(run('x if 0, "a" in ["a"]'), true);
  t.is(evalError('x := 1 / input.z', { z: 0 }).code, 'POLICY_EVAL');
  t.is(evalError('x := "a" + input.n', { n: 1 }).code, 'POLICY_TYPE');
});

test('strict builtin errors abort even under not (regorus strict mode)', (t) => {
  t.is(evalError('default x := false\nx if not startswith(input.n, "x")', { n: 5 }).code, 'POLICY_TYPE');
});

test('undefined propagates through calls, refs and comparisons', (t) => {
  t.is(run('x := count(input.missing)', 'x', {}), undefined);
  t.is(run('x if input.a.b.c != 1', 'x', { a: {} }), undefined);
  t.is(run('x := object.get(input, "missing", "d")', 'x', {}), 'd');
  t.is(run('x := input.a[5]', 'x', { a: [1] }), undefined);
  t.is(run('x := input.a["0"]', 'x', { a: [1] }), undefined);
  t.is(run('x := input.o[0]', 'x', { o: { '0': 1 } }), undefined);
});

test('input absent: refs to input are undefined', (t) => {
  t.is(compile('package p\nx if input.a').evaluate('data.p.x', {}), undefined);
});

test('strings: escapes and raw strings', (t) => {
  t.is(run('x := "a\\tb\\u0041\\"\\\\"'), 'a\tbA"\\');
  t.is(run('x := `raw\\n`'), 'raw\\n');
});

test('sprintf %v renders like regorus', (t) => {
  t.is(run('x := sprintf("%v-%v-%s-%d", [256, "s", "t", 7])'), '256-s-t-7');
});

test('prototype keys are plain data, never the JS prototype', (t) => {
  t.is(run('x := input.toString', 'x', {}), undefined);
  t.is(run('x := input["__proto__"]', 'x', JSON.parse('{"__proto__": 5}') as JsonValue), 5);
  t.deepEqual(run('x := {"__proto__": 1}'), JSON.parse('{"__proto__": 1}'));
  t.is(run('x := count({k | input.o[k]})', 'x', { o: {} }), 0);
});

test('imports rego.v1 and future.keywords are accepted', (t) => {
  for (const imp of ['import rego.v1', 'import future.keywords', 'import future.keywords.if\nimport future.keywords.in']) {
    t.is(compile(`package policy\n${imp}\nallow if 1 in [1]`).evaluate('data.policy.allow', {}), true, imp);
  }
});

test('multi-line expressions inside brackets, newlines separate literals in bodies', (t) => {
  const src = `x := object.union_n([
    {"a": 1},
    {"b": 2},
  ])
y := [v |
  some v in [1, 2, 3]
  v > 1
]`;
  t.deepEqual(run(src), { a: 1, b: 2 });
  t.deepEqual(run(src, 'y'), [2, 3]);
});

test('host functions: query_reference_value', (t) => {
  const p = compile('package policy\nx if input.v in query_reference_value("svn")\ny := query_reference_value("none")', HOST);
  const opts = { hostFunctions: { query_reference_value: (id: JsonValue) => (id === 'svn' ? ['1', '2'] : null) } };
  t.is(p.evaluate('data.policy.x', { input: { v: '2' } }, opts), true);
  t.is(p.evaluate('data.policy.x', { input: { v: '3' } }, opts), undefined);
  t.is(p.evaluate('data.policy.y', {}, opts), null);
  const e = t.throws(() => p.evaluate('data.policy.x', { input: { v: '1' } }), { instanceOf: PolicyError });
  t.is(e?.code, 'POLICY_HOST');
  const bad = { hostFunctions: { query_reference_value: () => { throw new Error('secret detail'); } } };
  const e2 = t.throws(() => p.evaluate('data.policy.x', { input: { v: '1' } }, bad), { instanceOf: PolicyError });
  t.false(e2?.message.includes('secret detail'));
});

test('time.now_ns is fixed per evaluation and injectable', (t) => {
  const p = compile('package p\nx := [time.now_ns(), time.now_ns()]');
  t.deepEqual(p.evaluate('data.p.x', {}, { nowNs: 42 }), [42, 42]);
});

test('explain names the expression where an allow rule stopped', (t) => {
  const p = compile('package policy\nallow if {\n  input.a == 1\n  input.b == 2\n}');
  const f = p.explain('allow', { input: { a: 1, b: 3 } });
  t.deepEqual(f, [{ rulePos: { line: 2, column: 1 }, failedAt: { line: 4, column: 3 } }]);
});

// ---- compile-time rejection --------------------------------------------------------------------

const REJECTED: Array<[string, string, PolicyErrorCode, number, RegExp]> = [
  ['v0 body without if', 'package policy\nallow { true }', 'POLICY_SYNTAX', 2, /`if` keyword is required/],
  ['v0 partial set', 'package policy\nx[v] { v := 1 }', 'POLICY_SYNTAX', 2, /contains/],
  ['unknown function', 'package policy\nallow if frobnicate(1)', 'POLICY_COMPILE', 2, /unknown function "frobnicate"/],
  ['refused builtin http.send', 'package policy\nallow if http.send({})', 'POLICY_UNSUPPORTED', 2, /http\.send/],
  ['refused builtin print', 'package policy\nallow if { print(1) }', 'POLICY_UNSUPPORTED', 2, /print/],
  ['wrong arity', 'package policy\nallow if count(1, 2)', 'POLICY_COMPILE', 2, /takes 1 argument/],
  ['unsafe variable', 'package policy\nallow if { x == 1 }', 'POLICY_COMPILE', 2, /var x is unsafe/],
  ['unsafe variable under not', 'package policy\nallow if { not input.a[i] }', 'POLICY_COMPILE', 2, /var i is unsafe/],
  ['unsafe variable in head', 'package policy\nallow := y if { input.a }', 'POLICY_COMPILE', 2, /var y is unsafe/],
  ['recursion', 'package policy\na if b\nb if a', 'POLICY_COMPILE', 2, /recursion.*a -> b -> a/],
  ['self recursion through a function', 'package policy\nf(x) := f(x)\nallow if f(1)', 'POLICY_COMPILE', 2, /recursion/],
  ['with keyword', 'package policy\nallow if { input.a with input as {} }', 'POLICY_UNSUPPORTED', 2, /with/],
  ['import data', 'package policy\nimport data.foo\nallow := true', 'POLICY_UNSUPPORTED', 2, /import/],
  ['import input alias', 'package policy\nimport input.x as y\nallow := true', 'POLICY_UNSUPPORTED', 2, /import/],
  ['syntax error', 'package policy\nallow if {\n  input.a ==\n}', 'POLICY_SYNTAX', 4, /expected an expression/],
  ['missing package', 'allow := true', 'POLICY_SYNTAX', 1, /package/],
  ['redeclared var', 'package policy\nallow if { x := 1; x := 2 }', 'POLICY_COMPILE', 2, /declared twice/],
  ['assign to input', 'package policy\nallow if { input := 1 }', 'POLICY_COMPILE', 2, /reserved/],
  ['conflicting rule kinds', 'package policy\na := 1\na contains 2', 'POLICY_COMPILE', 3, /conflicting kinds/],
  ['two defaults', 'package policy\ndefault a := 1\ndefault a := 2', 'POLICY_COMPILE', 3, /more than one default/],
  ['non-constant default', 'package policy\ndefault a := input.x', 'POLICY_COMPILE', 2, /constant/],
  ['undefined data.policy rule', 'package policy\nallow if data.policy.alow', 'POLICY_COMPILE', 2, /undefined rule data\.policy\.alow/],
  ['whole data document', 'package policy\nallow if data', 'POLICY_UNSUPPORTED', 2, /whole data/],
  ['dynamic data ref', 'package policy\nallow if data[input.x]', 'POLICY_UNSUPPORTED', 2, /dynamic reference/],
  ['function used as value', 'package policy\nf(x) := x\nallow if f', 'POLICY_COMPILE', 3, /function "f" is used as a value/],
  ['rule called as function', 'package policy\nr := 1\nallow if r(1)', 'POLICY_COMPILE', 3, /not a function/],
  ['ref head rule', 'package policy\na.b := 1', 'POLICY_UNSUPPORTED', 2, /reference heads/],
  ['bad escape', 'package policy\nx := "\\q"', 'POLICY_SYNTAX', 2, /escape/],
  ['unterminated string', 'package policy\nx := "abc', 'POLICY_SYNTAX', 2, /unterminated/],
  ['stray character', 'package policy\nx := 1 @ 2', 'POLICY_SYNTAX', 2, /unexpected character/],
  ['rule without value or body', 'package policy\nallow', 'POLICY_SYNTAX', 2, /neither a value nor a body/],
  ['non-string object key', 'package policy\nx := {1: 2}', 'POLICY_UNSUPPORTED', 2, /object keys/],
  ['duplicate object key', 'package policy\nx := {"a": 1, "a": 2}', 'POLICY_COMPILE', 2, /duplicate object key/],
  ['wildcard as value', 'package policy\nx := _', 'POLICY_COMPILE', 2, /wildcard/],
  ['constant type error', 'package policy\nallow if startswith(1, "x")', 'POLICY_COMPILE', 2, /always fails: startswith: operand 1 must be a string/],
  ['constant division by zero', 'package policy\nx := 1 / 0', 'POLICY_COMPILE', 2, /always fails/],
  ['constant bad regex', 'package policy\nallow if regex.match("(", "x")', 'POLICY_COMPILE', 2, /always fails/],
];

for (const [name, src, code, line, re] of REJECTED) {
  test(`rejected at compile time: ${name}`, (t) => {
    const e = compileError(src);
    t.is(e.code, code, e.message);
    t.is(e.line, line, e.message);
    t.true(typeof e.column === 'number' && e.column > 0);
    t.regex(e.message, re);
  });
}

test('objects and sets iterate in key order, as OPA does', (t) => {
  t.deepEqual(run('x := [k | some k, _ in input.o]', 'x', { o: { b: 1, a: 2, c: 3 } }), ['a', 'b', 'c']);
  t.deepEqual(run('x := [v | v := input.o[_]]', 'x', { o: { b: 1, a: 2, c: 3 } }), [2, 1, 3]);
  t.deepEqual(run('x := [v | some v in {"b", "a"}]'), ['a', 'b']);
});
