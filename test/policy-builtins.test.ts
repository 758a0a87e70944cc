/**
 * The builtin library called directly through BUILTINS / OPERATORS: for each builtin a normal case,
 * an edge or undefined case, and its strict type error (POLICY_TYPE) or evaluation error (POLICY_EVAL).
 */
import test, { type ExecutionContext } from 'ava';

import { BUILTINS, OPERATORS, type BuiltinContext } from '../policy/builtins/index.js';
import { isPolicyError } from '../policy/errors.js';
import { canonicalKey, equal, RegoSet, type Value } from '../policy/value.js';

const ctx: BuiltinContext = { nowNs: 1_700_000_000_000_000_000, charge() {} };
const NOW = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z, a Tuesday

function call(name: string, ...args: Value[]): Value | undefined {
  const b = BUILTINS.get(name);
  if (!b) throw new Error(`no builtin ${name}`);
  return b.impl(args, ctx);
}

function op(name: string, ...args: Value[]): Value | undefined {
  const b = OPERATORS.get(name);
  if (!b) throw new Error(`no operator ${name}`);
  return b.impl(args, ctx);
}

/** The PolicyError code thrown by `f` (or "none"). */
function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isPolicyError(e)) return e.code;
    throw e;
  }
  return 'none';
}

function same(t: ExecutionContext, actual: Value | undefined, expected: Value): void {
  t.true(actual !== undefined && equal(actual, expected), `${actual === undefined ? 'undefined' : canonicalKey(actual)} != ${canonicalKey(expected)}`);
}

const set = (...xs: Value[]): RegoSet => new RegoSet(xs);

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !(v instanceof RegoSet)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Operators

test('equality and ordering operators follow the total order, never failing across types', (t) => {
  t.true(op('equal', 1, 1.0) as boolean);
  t.false(op('equal', 1, '1') as boolean);
  t.true(op('equal', { a: [1, set(2, 3)] }, { a: [1, set(3, 2)] }) as boolean);
  t.true(op('neq', null, false) as boolean);
  t.true(op('gte', 4, null) as boolean);
  t.true(op('lt', 'a', 'b') as boolean);
  t.true(op('lt', 99, 'a') as boolean);
  t.true(op('lte', [1, 2], [1, 2]) as boolean);
  t.true(op('gt', set(), {}) as boolean);
  t.false(op('gt', [1], [1, 0]) as boolean);
});

test('arithmetic operators', (t) => {
  t.is(op('plus', 1, 2.5), 3.5);
  t.is(op('minus', 1, 3), -2);
  t.is(op('mul', 6, 7), 42);
  t.is(op('div', 7, 2), 3.5);
  t.is(op('rem', 7, -3), 1);
  t.is(op('rem', -7, 3), -1);
  t.is(op('neg', 5), -5);
  t.is(op('neg', 0), 0);
  same(t, op('minus', set(1, 2, 3), set(2)), set(1, 3));
  t.is(code(() => op('plus', 1, '2')), 'POLICY_TYPE');
  t.is(code(() => op('mul', null, 2)), 'POLICY_TYPE');
  t.is(code(() => op('neg', 'x')), 'POLICY_TYPE');
  t.is(code(() => op('minus', set(1), 1)), 'POLICY_TYPE');
  t.is(code(() => op('div', 1, 0)), 'POLICY_EVAL');
  t.is(code(() => op('rem', 1, 0)), 'POLICY_EVAL');
  t.is(code(() => op('rem', 1.5, 1)), 'POLICY_EVAL');
  t.is(code(() => op('mul', 1e300, 1e300)), 'POLICY_EVAL');
});

test('set operators & and |', (t) => {
  same(t, op('and', set(1, 2, 3), set(2, 3, 4)), set(2, 3));
  same(t, op('or', set(1), set('a')), set(1, 'a'));
  same(t, op('and', set(), set(1)), set());
  t.is(code(() => op('and', [1], set(1))), 'POLICY_TYPE');
  t.is(code(() => op('or', set(1), {})), 'POLICY_TYPE');
});

test('membership: arrays, object values, sets; anything else is false', (t) => {
  t.true(op('member', 2, [1, 2]) as boolean);
  t.true(op('member', 'v', { k: 'v' }) as boolean);
  t.false(op('member', 'k', { k: 'v' }) as boolean);
  t.true(op('member', [1], set([1])) as boolean);
  t.false(op('member', 1, null) as boolean);
  t.false(op('member', 'a', 'abc') as boolean);
  t.true(op('member_kv', 1, 'b', ['a', 'b']) as boolean);
  t.false(op('member_kv', '1', 'b', ['a', 'b']) as boolean);
  t.true(op('member_kv', 'k', 'v', { k: 'v' }) as boolean);
  t.false(op('member_kv', 'k', 'w', { k: 'v' }) as boolean);
  t.true(op('member_kv', 3, 3, set(3)) as boolean);
  t.false(op('member_kv', 3, 4, set(3)) as boolean);
  t.false(op('member_kv', 0, 1, 5) as boolean);
});

// ---------------------------------------------------------------------------------------------
// Aggregates

test('count', (t) => {
  t.is(call('count', [1, 2, 3]), 3);
  t.is(call('count', { a: 1 }), 1);
  t.is(call('count', set()), 0);
  t.is(call('count', 'h\u00e9\u{1f600}'), 3); // code points, not UTF-16 units
  t.is(code(() => call('count', 5)), 'POLICY_TYPE');
  t.is(code(() => call('count', null)), 'POLICY_TYPE');
});

test('max and min', (t) => {
  t.is(call('max', [3, 9, 1]), 9);
  t.is(call('min', set(3, 9, 1)), 1);
  t.is(call('max', [1, 'a', null]), 'a');
  t.is(call('max', []), undefined);
  t.is(call('min', set()), undefined);
  t.is(code(() => call('max', 'abc')), 'POLICY_TYPE');
  t.is(code(() => call('min', { a: 1 })), 'POLICY_TYPE');
});

test('sum and product', (t) => {
  t.is(call('sum', [1, 2, 3.5]), 6.5);
  t.is(call('product', set(2, 3, 4)), 24);
  t.is(call('sum', []), 0);
  t.is(call('product', []), 1);
  t.is(code(() => call('sum', [1, '2'])), 'POLICY_TYPE');
  t.is(code(() => call('product', 3)), 'POLICY_TYPE');
  t.is(code(() => call('product', [1e200, 1e200])), 'POLICY_EVAL');
});

test('sort', (t) => {
  same(t, call('sort', [3, 'a', null, 1]), [null, 1, 3, 'a']);
  same(t, call('sort', set('b', 'a')), ['a', 'b']);
  same(t, call('sort', []), []);
  t.is(code(() => call('sort', 'cba')), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// Strings

test('startswith, endswith, contains', (t) => {
  t.true(call('startswith', 'foobar', 'foo') as boolean);
  t.false(call('startswith', 'foobar', 'bar') as boolean);
  t.true(call('endswith', 'foobar', 'bar') as boolean);
  t.true(call('endswith', 'x', '') as boolean);
  t.true(call('contains', 'foobar', 'oba') as boolean);
  t.false(call('contains', '', 'a') as boolean);
  t.is(code(() => call('startswith', 5, 'x')), 'POLICY_TYPE');
  t.is(code(() => call('endswith', 'x', null)), 'POLICY_TYPE');
  t.is(code(() => call('contains', ['a'], 'a')), 'POLICY_TYPE');
});

test('lower and upper', (t) => {
  t.is(call('lower', 'AbC\u00c9'), 'abc\u00e9');
  t.is(call('upper', 'abc'), 'ABC');
  t.is(call('upper', ''), '');
  t.is(code(() => call('lower', 1)), 'POLICY_TYPE');
  t.is(code(() => call('upper', null)), 'POLICY_TYPE');
});

test('concat and split', (t) => {
  t.is(call('concat', ', ', ['a', 'b']), 'a, b');
  t.is(call('concat', '-', set('b', 'a')), 'a-b');
  t.is(call('concat', '-', []), '');
  same(t, call('split', 'a,b,,c', ','), ['a', 'b', '', 'c']);
  same(t, call('split', 'a\u{1f600}b', ''), ['a', '\u{1f600}', 'b']);
  same(t, call('split', '', ','), ['']);
  t.is(code(() => call('concat', ',', ['a', 1])), 'POLICY_TYPE');
  t.is(code(() => call('concat', ',', 'ab')), 'POLICY_TYPE');
  t.is(code(() => call('split', 'a', 1)), 'POLICY_TYPE');
});

test('replace', (t) => {
  t.is(call('replace', 'a.b.c', '.', '$&'), 'a$&b$&c');
  t.is(call('replace', 'ab', '', '-'), '-a-b-');
  t.is(call('replace', 'abc', 'x', 'y'), 'abc');
  t.is(code(() => call('replace', 'abc', 'a', 1)), 'POLICY_TYPE');
});

test('substring and indexof count code points', (t) => {
  t.is(call('substring', 'abcdef', 1, 3), 'bcd');
  t.is(call('substring', '\u{1f600}abc', 1, 2), 'ab');
  t.is(call('substring', 'abc', 1, -1), 'bc');
  t.is(call('substring', 'abc', 10, 2), '');
  t.is(code(() => call('substring', 'abc', -1, 2)), 'POLICY_EVAL');
  t.is(code(() => call('substring', 'abc', 1.5, 2)), 'POLICY_EVAL');
  t.is(code(() => call('substring', 'abc', '1', 2)), 'POLICY_TYPE');
  t.is(call('indexof', '\u{1f600}abc', 'b'), 2);
  t.is(call('indexof', 'abc', 'z'), -1);
  t.is(code(() => call('indexof', 'abc', 1)), 'POLICY_TYPE');
});

test('trim family', (t) => {
  t.is(call('trim', '  xx  ', ' '), 'xx');
  t.is(call('trim', '\u{1f600}ab\u{1f600}', '\u{1f600}'), 'ab');
  t.is(call('trim_left', 'aabcaa', 'a'), 'bcaa');
  t.is(call('trim_right', 'aabcaa', 'a'), 'aabc');
  t.is(call('trim_prefix', 'foobar', 'foo'), 'bar');
  t.is(call('trim_prefix', 'foobar', 'bar'), 'foobar');
  t.is(call('trim_suffix', 'foobar', 'bar'), 'foo');
  t.is(call('trim_space', '\u3000\t hi there \n'), 'hi there');
  t.is(call('trim_space', '   '), '');
  t.is(call('trim', 'abc', ''), 'abc');
  for (const fn of ['trim', 'trim_left', 'trim_right', 'trim_prefix', 'trim_suffix']) {
    t.is(code(() => call(fn, 'abc', 1)), 'POLICY_TYPE', fn);
  }
  t.is(code(() => call('trim_space', 1)), 'POLICY_TYPE');
});

test('format_int', (t) => {
  t.is(call('format_int', 255, 16), 'ff');
  t.is(call('format_int', -5.9, 2), '-101');
  t.is(call('format_int', 8, 8), '10');
  t.is(call('format_int', 0.5, 10), '0');
  t.is(code(() => call('format_int', 10, 3)), 'POLICY_EVAL');
  t.is(code(() => call('format_int', '10', 10)), 'POLICY_TYPE');
});

test('strings.any_prefix_match and strings.any_suffix_match', (t) => {
  t.true(call('strings.any_prefix_match', 'foobar', ['x', 'foo']) as boolean);
  t.true(call('strings.any_prefix_match', set('a', 'foobar'), 'foo') as boolean);
  t.false(call('strings.any_prefix_match', [], 'foo') as boolean);
  t.true(call('strings.any_suffix_match', ['x.pem', 'y'], set('.pem')) as boolean);
  t.false(call('strings.any_suffix_match', 'abc', 'b') as boolean);
  t.is(code(() => call('strings.any_prefix_match', 1, 'a')), 'POLICY_TYPE');
  t.is(code(() => call('strings.any_suffix_match', 'a', ['a', 1])), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// sprintf

test('sprintf %v renders as regorus: raw strings, integral numbers, composites', (t) => {
  t.is(call('sprintf', '%v', [256]), '256');
  t.is(call('sprintf', '%v-%s', ['a b', 'c']), 'a b-c');
  t.is(call('sprintf', '%v %v %v', [null, true, 1.5]), 'null true 1.5');
  t.is(call('sprintf', '%v %v', [1e21, 1e-7]), '1000000000000000000000 0.0000001');
  t.is(call('sprintf', '%v', [[1, 'a', { k: set(2, 1) }]]), '[1, "a", {"k": {1, 2}}]');
  t.is(call('sprintf', '%s', [{ b: 1, a: [] }]), '{"a": [], "b": 1}');
  t.is(call('sprintf', 'no verbs', []), 'no verbs');
  t.is(call('sprintf', '100%%', []), '100%');
});

test('sprintf numeric and other verbs', (t) => {
  t.is(call('sprintf', '%d|%5d|%-4d|%05d|%+d', [-42, 7, 7, -7, 3]), '-42|    7|7   |-0007|+3');
  t.is(call('sprintf', '%x %X %x %o %b', [255, 255, 'hi', 8, 5]), 'ff FF 6869 10 101');
  t.is(call('sprintf', '%.2f %f %.0f %.0f %8.3f', [3.14159, 1.5, 0.5, 1.5, -2.5]), '3.14 1.500000 0 2   -2.500');
  t.is(call('sprintf', '%e %g %g %.3g', [123456.789, 1e6, 0.0001, 1234.5678]), '1.234568e+05 1e+06 0.0001 1.23e+03');
  t.is(call('sprintf', '%.3e %.2e %.1g %.2f', [1234.5, 1.125, 0.25, 0.125]), '1.234e+03 1.12e+00 0.2 0.12'); // exact ties to even
  t.is(call('sprintf', '%q %q', ['a"b\n\u0001', 'x']), '"a\\"b\\n\\x01" "x"');
  t.is(call('sprintf', '%t %t', [true, false]), 'true false');
  t.is(call('sprintf', '%.2s|%6s|%-3s|', ['abcdef', 'ab', 'a']), 'ab|    ab|a  |');
});

test('sprintf: bad or missing arguments print Go markers, not errors', (t) => {
  t.is(call('sprintf', '%d', ['abc']), '%!d(string=abc)');
  t.is(call('sprintf', '%d', [1.5]), '%!d(number=1.5)');
  t.is(call('sprintf', '%t', [null]), '%!t(null=null)');
  t.is(call('sprintf', '%v %v', [1]), '1 %!v(MISSING)');
  t.is(call('sprintf', '%v', [1, 'x']), '1%!(EXTRA string=x)');
  t.is(call('sprintf', 'end %', []), 'end %!(NOVERB)');
  t.is(call('sprintf', '%z', [1]), '%!z(number=1)');
  t.is(code(() => call('sprintf', '%v', 'x')), 'POLICY_TYPE');
  t.is(code(() => call('sprintf', 1, [])), 'POLICY_TYPE');
  t.is(code(() => call('sprintf', '%v', set(1))), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// Objects

test('object.get, including paths', (t) => {
  t.is(call('object.get', { a: 1 }, 'a', 0), 1);
  t.is(call('object.get', { a: 1 }, 'b', 0), 0);
  t.is(call('object.get', { a: { b: [10, 20] } }, ['a', 'b', 1], 'd'), 20);
  t.is(call('object.get', { a: { b: [10, 20] } }, ['a', 'x'], 'd'), 'd');
  t.is(call('object.get', { a: set('s') }, ['a', 's'], 'd'), 's');
  same(t, call('object.get', { a: 1 }, [], 'd'), { a: 1 });
  t.is(call('object.get', {}, 'toString', 'd'), 'd');
  t.is(call('object.get', { a: 1 }, 1, 'd'), 'd');
  t.is(code(() => call('object.get', [1], 0, 'd')), 'POLICY_TYPE');
});

test('object.keys, object.remove, object.filter', (t) => {
  same(t, call('object.keys', { a: 1, b: 2 }), set('a', 'b'));
  same(t, call('object.keys', {}), set());
  same(t, call('object.remove', { a: 1, b: 2, c: 3 }, ['a', 'x']), { b: 2, c: 3 });
  same(t, call('object.remove', { a: 1, b: 2 }, set('b')), { a: 1 });
  same(t, call('object.remove', { a: 1, b: 2 }, { a: 'anything' }), { b: 2 });
  same(t, call('object.filter', { a: 1, b: 2, c: 3 }, ['a', 'c', 5]), { a: 1, c: 3 });
  same(t, call('object.filter', { a: 1 }, set()), {});
  t.is(code(() => call('object.keys', [1])), 'POLICY_TYPE');
  t.is(code(() => call('object.remove', { a: 1 }, 'a')), 'POLICY_TYPE');
  t.is(code(() => call('object.filter', 'x', ['a'])), 'POLICY_TYPE');
});

test('object.union and object.union_n merge recursively, right wins', (t) => {
  same(t, call('object.union', { a: 1, n: { x: 1, y: 2 } }, { b: 2, n: { y: 3 } }), { a: 1, b: 2, n: { x: 1, y: 3 } });
  same(t, call('object.union', { a: { x: 1 } }, { a: 5 }), { a: 5 });
  same(t, call('object.union_n', [{ a: { b: 1, c: 2 } }, { a: { b: 3 } }, { d: 4 }]), { a: { b: 3, c: 2 }, d: 4 });
  same(t, call('object.union_n', []), {});
  t.is(code(() => call('object.union', { a: 1 }, [1])), 'POLICY_TYPE');
  t.is(code(() => call('object.union_n', [{ a: 1 }, 2])), 'POLICY_TYPE');
  t.is(code(() => call('object.union_n', { a: 1 })), 'POLICY_TYPE');
});

test('object.subset: objects recursively, sets, contiguous arrays, array vs set', (t) => {
  t.true(call('object.subset', { a: 'b', c: { x: set(10, 15, 20, 25), y: 'z' } }, { c: { x: set(10, 15, 20) } }) as boolean);
  t.false(call('object.subset', { a: 1 }, { a: 2 }) as boolean);
  t.false(call('object.subset', { a: 1 }, { b: 1 }) as boolean);
  t.true(call('object.subset', set(1, 2, 3), set(1, 3)) as boolean);
  t.true(call('object.subset', [1, 2, 3, 4], [2, 3]) as boolean);
  t.false(call('object.subset', [1, 2, 3, 4], [2, 4]) as boolean);
  t.true(call('object.subset', [1, 2, 3], []) as boolean);
  t.true(call('object.subset', [3, 1, 2], set(1, 2)) as boolean);
  t.is(code(() => call('object.subset', 1, 1)), 'POLICY_TYPE');
  t.is(code(() => call('object.subset', { a: 1 }, set())), 'POLICY_TYPE');
});

test('objects: "__proto__" keys are plain data, arguments are not mutated', (t) => {
  const evil = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Value;
  const u = call('object.union', { b: 2 }, evil) as Record<string, Value>;
  t.true(Object.hasOwn(u, '__proto__'));
  t.is(({} as Record<string, unknown>).polluted, undefined);
  same(t, call('object.get', evil as Record<string, Value>, '__proto__', null), { polluted: true });
  same(t, call('object.keys', evil), set('__proto__', 'a'));
  const frozen = deepFreeze({ a: { x: 1 }, b: [3, 1, 2] });
  t.notThrows(() => call('object.union', frozen, { a: { y: 2 } }));
  t.notThrows(() => call('object.remove', frozen, ['a']));
  t.notThrows(() => call('object.union_n', [frozen, frozen]));
  t.notThrows(() => call('array.reverse', frozen.b));
  t.notThrows(() => call('sort', frozen.b));
  same(t, frozen, { a: { x: 1 }, b: [3, 1, 2] });
});

// ---------------------------------------------------------------------------------------------
// Arrays and sets

test('array.concat, array.slice, array.reverse', (t) => {
  same(t, call('array.concat', [1], [2, 3]), [1, 2, 3]);
  same(t, call('array.concat', [], []), []);
  same(t, call('array.slice', [1, 2, 3, 4], 1, 3), [2, 3]);
  same(t, call('array.slice', [1, 2, 3], -5, 10), [1, 2, 3]);
  same(t, call('array.slice', [1, 2, 3], 2, 1), []);
  same(t, call('array.reverse', [1, 2, 3]), [3, 2, 1]);
  same(t, call('array.reverse', []), []);
  t.is(code(() => call('array.concat', [1], set(2))), 'POLICY_TYPE');
  t.is(code(() => call('array.slice', [1], '0', 1)), 'POLICY_TYPE');
  t.is(code(() => call('array.slice', [1], 0.5, 1)), 'POLICY_EVAL');
  t.is(code(() => call('array.reverse', 'abc')), 'POLICY_TYPE');
});

test('intersection and union of a set of sets', (t) => {
  same(t, call('intersection', set(set(1, 2, 3), set(2, 3, 4), set(3, 2))), set(2, 3));
  same(t, call('intersection', set()), set());
  same(t, call('union', set(set(1), set(2, 3), set())), set(1, 2, 3));
  same(t, call('union', set()), set());
  t.is(code(() => call('intersection', [set(1)])), 'POLICY_TYPE');
  t.is(code(() => call('union', set(set(1), 2))), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// Numbers and types

test('abs, round, ceil, floor', (t) => {
  t.is(call('abs', -3.5), 3.5);
  t.is(call('round', 2.5), 3);
  t.is(call('round', -2.5), -3);
  t.is(call('round', -0.4), 0);
  t.is(call('ceil', 1.2), 2);
  t.is(call('ceil', -0.5), 0);
  t.is(call('floor', -1.2), -2);
  for (const fn of ['abs', 'round', 'ceil', 'floor']) t.is(code(() => call(fn, '1')), 'POLICY_TYPE', fn);
});

test('numbers.range', (t) => {
  same(t, call('numbers.range', 1, 4), [1, 2, 3, 4]);
  same(t, call('numbers.range', 2, -1), [2, 1, 0, -1]);
  same(t, call('numbers.range', 5, 5), [5]);
  t.is(code(() => call('numbers.range', 1, 2.5)), 'POLICY_EVAL');
  t.is(code(() => call('numbers.range', 0, 1e15)), 'POLICY_EVAL');
  t.is(code(() => call('numbers.range', '1', 2)), 'POLICY_TYPE');
});

test('to_number', (t) => {
  t.is(call('to_number', '42'), 42);
  t.is(call('to_number', '-1.5e3'), -1500);
  t.is(call('to_number', null), 0);
  t.is(call('to_number', true), 1);
  t.is(call('to_number', 7), 7);
  t.is(code(() => call('to_number', '0x10')), 'POLICY_EVAL');
  t.is(code(() => call('to_number', '')), 'POLICY_EVAL');
  t.is(code(() => call('to_number', '1e400')), 'POLICY_EVAL');
  t.is(code(() => call('to_number', [1])), 'POLICY_TYPE');
});

test('is_* and type_name never fail', (t) => {
  const values: Value[] = [null, true, 1, 's', [], {}, set()];
  const names = ['null', 'boolean', 'number', 'string', 'array', 'object', 'set'];
  const tests = ['is_null', 'is_boolean', 'is_number', 'is_string', 'is_array', 'is_object', 'is_set'];
  values.forEach((v, i) => {
    t.is(call('type_name', v), names[i]);
    tests.forEach((fn, j) => t.is(call(fn, v), i === j, `${fn}(${names[i]})`));
  });
});

// ---------------------------------------------------------------------------------------------
// Encoding

test('base64.encode, base64.decode, base64.is_valid', (t) => {
  t.is(call('base64.encode', 'hello'), 'aGVsbG8=');
  t.is(call('base64.encode', '\u00e9'), 'w6k=');
  t.is(call('base64.encode', ''), '');
  t.is(call('base64.decode', 'aGVsbG8='), 'hello');
  t.is(call('base64.decode', 'w6k='), '\u00e9');
  t.is(call('base64.decode', '/w=='), '\ufffd'); // invalid UTF-8 becomes U+FFFD
  t.true(call('base64.is_valid', 'aGk=') as boolean);
  t.false(call('base64.is_valid', 'aGk') as boolean); // padding is required
  t.false(call('base64.is_valid', 'aGl=') as boolean); // non-zero trailing bits
  t.false(call('base64.is_valid', 'a-_b') as boolean); // URL alphabet
  t.is(code(() => call('base64.decode', 'aGVsbG8')), 'POLICY_EVAL');
  t.is(code(() => call('base64.decode', 'aG Vs')), 'POLICY_EVAL');
  t.is(code(() => call('base64.encode', 1)), 'POLICY_TYPE');
  t.is(code(() => call('base64.decode', null)), 'POLICY_TYPE');
  t.is(code(() => call('base64.is_valid', [])), 'POLICY_TYPE');
});

test('json.marshal, json.unmarshal, json.is_valid', (t) => {
  t.is(call('json.marshal', { b: [1, 2.5, null], a: set('y', 'x'), c: 'q"' }), '{"a":["x","y"],"b":[1,2.5,null],"c":"q\\""}');
  t.is(call('json.marshal', 'x'), '"x"');
  same(t, call('json.unmarshal', '{"a":[1,{"b":null}]}'), { a: [1, { b: null }] });
  same(t, call('json.unmarshal', '3'), 3);
  t.true(call('json.is_valid', '{"a":1}') as boolean);
  t.false(call('json.is_valid', '{a:1}') as boolean);
  t.false(call('json.is_valid', 'x'.repeat(1024 * 1024 + 1)) as boolean);
  t.is(code(() => call('json.unmarshal', '{')), 'POLICY_EVAL');
  t.is(code(() => call('json.unmarshal', '[1e400]')), 'POLICY_EVAL');
  t.is(code(() => call('json.unmarshal', '['.repeat(1000) + ']'.repeat(1000))), 'POLICY_EVAL');
  t.is(code(() => call('json.unmarshal', ' '.repeat(1024 * 1024 + 1))), 'POLICY_EVAL');
  t.is(code(() => call('json.unmarshal', 1)), 'POLICY_TYPE');
  t.is(code(() => call('json.is_valid', null)), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// Regex

test('regex.match and regex.is_valid', (t) => {
  t.true(call('regex.match', '^[a-z]+-\\d+$', 'abc-123') as boolean);
  t.true(call('regex.match', 'b', 'abc') as boolean); // unanchored
  t.false(call('regex.match', '^b', 'abc') as boolean);
  t.true(call('regex.is_valid', '(?i)ab+') as boolean);
  t.false(call('regex.is_valid', '(a') as boolean);
  t.false(call('regex.is_valid', '(a)\\1') as boolean); // no backreferences in RE2
  t.false(call('regex.is_valid', 5) as boolean);
  t.false(call('regex.is_valid', 'a'.repeat(8 * 1024 + 1)) as boolean);
  t.is(code(() => call('regex.match', '(a', 'a')), 'POLICY_EVAL');
  t.is(code(() => call('regex.match', '(?=a)', 'a')), 'POLICY_EVAL'); // no lookaround
  t.is(code(() => call('regex.match', 'a'.repeat(8 * 1024 + 1), 'a')), 'POLICY_EVAL');
  t.is(code(() => call('regex.match', 'a', 1)), 'POLICY_TYPE');
  t.is(code(() => call('regex.match', null, 'a')), 'POLICY_TYPE');
});

test('regex: a catastrophic-backtracking pattern finishes fast', (t) => {
  const start = Date.now();
  t.false(call('regex.match', '(a+)+$', 'a'.repeat(40) + 'b') as boolean);
  t.false(call('regex.match', '^(a|a)*$', 'a'.repeat(5000) + 'b') as boolean);
  same(t, call('regex.find_n', '(x+x+)+y', 'x'.repeat(5000), -1), []);
  t.true(Date.now() - start < 2000);
});

test('regex.find_n', (t) => {
  same(t, call('regex.find_n', '[0-9]+', 'a1b22c333', -1), ['1', '22', '333']);
  same(t, call('regex.find_n', '[0-9]+', 'a1b22c333', 2), ['1', '22']);
  same(t, call('regex.find_n', '[0-9]+', 'a1b22', 0), []);
  same(t, call('regex.find_n', 'a*', 'baaac', -1), ['', 'aaa', '']);
  same(t, call('regex.find_n', '\u00e9+', 'x\u00e9\u00e9y\u{1f600}\u00e9', -1), ['\u00e9\u00e9', '\u00e9']);
  t.is(code(() => call('regex.find_n', '[0-9]+', 'a1', 1.5)), 'POLICY_EVAL');
  t.is(code(() => call('regex.find_n', '[', 'a1', 1)), 'POLICY_EVAL');
  t.is(code(() => call('regex.find_n', '[0-9]+', 'a1', '1')), 'POLICY_TYPE');
  t.is(code(() => call('regex.find_n', '[', 'a1', '1')), 'POLICY_TYPE'); // types are checked before compiling
});

test('regex.split', (t) => {
  same(t, call('regex.split', ',\\s*', 'a, b,c'), ['a', 'b', 'c']);
  same(t, call('regex.split', 'x', 'abc'), ['abc']);
  same(t, call('regex.split', ',', ''), ['']);
  same(t, call('regex.split', 'a*', 'baaac'), ['', 'b', 'c', '']); // Rust's Regex::split, as regorus
  t.is(code(() => call('regex.split', '(', 'a')), 'POLICY_EVAL');
  t.is(code(() => call('regex.split', ',', ['a'])), 'POLICY_TYPE');
});

test('regex.replace expands $1, ${name} and $$', (t) => {
  t.is(call('regex.replace', 'abc-123', '(?P<w>[a-z]+)-(\\d+)', '${2}_$w$$'), '123_abc$');
  t.is(call('regex.replace', 'a.b.c', '\\.', '/'), 'a/b/c');
  t.is(call('regex.replace', 'aaa', 'b', 'x'), 'aaa');
  t.is(call('regex.replace', 'ab', '(a)', '${1}x$9$nope'), 'axb');
  t.is(call('regex.replace', 'ab', '(a)', '$1x'), 'b'); // "$1x" names group "1x", as in Rust and Go
  t.is(call('regex.replace', 'ab', '(a)', '$ {'), '$ {b');
  t.is(code(() => call('regex.replace', 'a', '(', 'x')), 'POLICY_EVAL');
  t.is(code(() => call('regex.replace', 'a', 'a', 1)), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// Time

test('time.now_ns returns the evaluation clock', (t) => {
  t.is(call('time.now_ns'), NOW);
});

test('time.parse_rfc3339_ns', (t) => {
  t.is(call('time.parse_rfc3339_ns', '2023-11-14T22:13:20Z'), NOW);
  t.is(call('time.parse_rfc3339_ns', '2023-11-15T00:13:20+02:00'), NOW);
  t.is(call('time.parse_rfc3339_ns', '1970-01-01T00:00:01.5Z'), 1_500_000_000);
  t.is(call('time.parse_rfc3339_ns', '1970-01-01T00:00:00.000000001Z'), 1);
  t.is(call('time.parse_rfc3339_ns', '1969-12-31T23:59:59Z'), -1_000_000_000);
  t.is(code(() => call('time.parse_rfc3339_ns', '2023-02-29T00:00:00Z')), 'POLICY_EVAL');
  t.is(code(() => call('time.parse_rfc3339_ns', '2023-11-14 22:13')), 'POLICY_EVAL');
  t.is(code(() => call('time.parse_rfc3339_ns', '2023-11-14T22:13:20.1234567890Z')), 'POLICY_EVAL');
  t.is(code(() => call('time.parse_rfc3339_ns', '3000-01-01T00:00:00Z')), 'POLICY_EVAL'); // beyond int64 ns
  t.is(code(() => call('time.parse_rfc3339_ns', 17)), 'POLICY_TYPE');
});

test('time.date, time.clock, time.weekday', (t) => {
  same(t, call('time.date', NOW), [2023, 11, 14]);
  same(t, call('time.clock', NOW), [22, 13, 20]);
  t.is(call('time.weekday', NOW), 'Tuesday');
  same(t, call('time.date', -1), [1969, 12, 31]);
  same(t, call('time.clock', -1), [23, 59, 59]);
  t.is(call('time.weekday', 0), 'Thursday');
  same(t, call('time.date', [NOW, 'UTC']), [2023, 11, 14]);
  same(t, call('time.date', [NOW, 'Asia/Tokyo']), [2023, 11, 15]);
  same(t, call('time.clock', [NOW, 'America/New_York']), [17, 13, 20]);
  t.is(code(() => call('time.date', [NOW, 'Not/AZone'])), 'POLICY_EVAL');
  t.is(code(() => call('time.clock', 1.5)), 'POLICY_EVAL');
  t.is(code(() => call('time.date', '2023')), 'POLICY_TYPE');
  t.is(code(() => call('time.weekday', [NOW, 1])), 'POLICY_TYPE');
});

test('time.add_date', (t) => {
  t.is(call('time.add_date', NOW, 1, 2, 3), 1_737_152_000_000_000_000); // 2025-01-17T22:13:20Z
  t.is(call('time.add_date', NOW, 0, 0, -1), NOW - 86_400_000_000_000);
  // 2024-01-31 + 1 month: chrono clamps to the end of the month (2024-02-29).
  t.is(call('time.add_date', 1_706_659_200_000_000_000, 0, 1, 0), 1_709_164_800_000_000_000);
  // 2024-02-29 + 1 year: no such date, undefined (as regorus's chrono with_year).
  t.is(call('time.add_date', 1_709_164_800_000_000_000, 1, 0, 0), undefined);
  t.is(code(() => call('time.add_date', NOW, 1000, 0, 0)), 'POLICY_EVAL');
  t.is(code(() => call('time.add_date', NOW, 0.5, 0, 0)), 'POLICY_EVAL');
  t.is(code(() => call('time.add_date', NOW, '1', 0, 0)), 'POLICY_TYPE');
});

// ---------------------------------------------------------------------------------------------
// The library as a whole

test('the required builtins exist and the refused ones do not', (t) => {
  const required = [
    'count', 'sprintf', 'startswith', 'endswith', 'contains', 'split', 'concat', 'lower', 'upper', 'trim',
    'trim_left', 'trim_right', 'trim_prefix', 'trim_suffix', 'trim_space', 'replace', 'substring', 'indexof',
    'format_int', 'to_number', 'object.get', 'object.union', 'object.union_n', 'object.subset', 'object.keys',
    'object.remove', 'object.filter', 'array.concat', 'array.slice', 'array.reverse', 'intersection', 'union',
    'max', 'min', 'sum', 'product', 'sort', 'abs', 'round', 'ceil', 'floor', 'is_string', 'is_number',
    'is_boolean', 'is_array', 'is_object', 'is_set', 'is_null', 'type_name', 'regex.match', 'regex.is_valid',
    'regex.find_n', 'regex.split', 'regex.replace', 'time.now_ns', 'time.parse_rfc3339_ns', 'time.date',
    'time.clock', 'time.weekday', 'time.add_date', 'base64.encode', 'base64.decode', 'base64.is_valid',
    'json.marshal', 'json.unmarshal', 'json.is_valid', 'strings.any_prefix_match', 'strings.any_suffix_match',
    'numbers.range',
  ];
  for (const n of required) t.true(BUILTINS.has(n), n);
  for (const [name, b] of BUILTINS) t.is(b.name, name);
  for (const n of ['http.send', 'opa.runtime', 'rand.intn', 'trace', 'print', 'net.cidr_contains', 'uuid.rfc4122',
    'semver.compare', 'glob.match', 'yaml.marshal', 'hex.encode', 'base64url.encode', 'units.parse', 'crypto.sha256',
    'io.jwt.decode']) {
    t.false(BUILTINS.has(n), n);
  }
  for (const n of ['equal', 'neq', 'lt', 'lte', 'gt', 'gte', 'plus', 'minus', 'mul', 'div', 'rem', 'neg', 'and', 'or', 'member', 'member_kv']) {
    t.true(OPERATORS.has(n), n);
  }
  t.is(code(() => (BUILTINS.get('count') as { impl: (a: Value[], c: BuiltinContext) => unknown }).impl([], ctx)), 'POLICY_EVAL');
});

test('work on large inputs is charged against the budget', (t) => {
  let units = 0;
  const counting: BuiltinContext = { nowNs: 0, charge: (n: number) => void (units += n) };
  const run = (name: string, ...args: Value[]): number => {
    units = 0;
    (BUILTINS.get(name) ?? OPERATORS.get(name))?.impl(args, counting);
    return units;
  };
  const big = 'a'.repeat(64 * 1000);
  t.true(run('numbers.range', 1, 10_000) >= 10_000);
  t.true(run('split', big, '') >= 1000);
  t.true(run('replace', big, 'a', 'bb') >= 1000);
  t.true(run('regex.find_n', 'a', big, -1) >= 1000);
  t.true(run('json.marshal', Array.from({ length: 5000 }, (_, i) => i)) >= 5000);
  t.true(run('member', 'x', Array.from({ length: 5000 }, () => 'y')) >= 5000);
  const limited: BuiltinContext = {
    nowNs: 0,
    charge: (n: number) => {
      if (n > 1000) throw new Error('budget');
    },
  };
  t.throws(() => BUILTINS.get('numbers.range')?.impl([0, 1_000_000], limited), { message: 'budget' });
  t.throws(() => BUILTINS.get('concat')?.impl(['', Array.from({ length: 200 }, () => big)], limited), { message: 'budget' });
});
