/**
 * Infix operators, keyed by the internal names the compiler uses.
 *
 * Comparison uses the total order of value.ts (cross-type comparisons are not errors, `4 >= null`
 * is true); equality never fails. Arithmetic takes numbers only (POLICY_TYPE otherwise); division
 * or remainder by zero and overflow are POLICY_EVAL. `-` on two sets is set difference; `&` and `|`
 * take sets only. Membership on anything but an array, object or set is false, not an error.
 */
import { compare, equal, getKey, isObject, RegoSet, type Value } from '../value.js';
import { evalError, typeError, type Builtin } from './types.js';
import { chargeElems, def, numResult, table } from './util.js';

function numbers(op: string, args: readonly Value[]): [number, number] {
  const a = args[0] as Value;
  const b = args[1] as Value;
  if (typeof a !== 'number') throw typeError(op, 0, 'a number', a);
  if (typeof b !== 'number') throw typeError(op, 1, 'a number', b);
  return [a, b];
}

function sets(op: string, args: readonly Value[]): [RegoSet, RegoSet] {
  const a = args[0] as Value;
  const b = args[1] as Value;
  if (!(a instanceof RegoSet)) throw typeError(op, 0, 'a set', a);
  if (!(b instanceof RegoSet)) throw typeError(op, 1, 'a set', b);
  return [a, b];
}

function arith(op: string, f: (a: number, b: number) => number): Builtin['impl'] {
  return (args) => {
    const [a, b] = numbers(op, args);
    return numResult(op, f(a, b));
  };
}

export const OPERATORS: ReadonlyMap<string, Builtin> = table(
  def('equal', 2, (args) => equal(args[0] as Value, args[1] as Value)),
  def('neq', 2, (args) => !equal(args[0] as Value, args[1] as Value)),
  def('lt', 2, (args) => compare(args[0] as Value, args[1] as Value) < 0),
  def('lte', 2, (args) => compare(args[0] as Value, args[1] as Value) <= 0),
  def('gt', 2, (args) => compare(args[0] as Value, args[1] as Value) > 0),
  def('gte', 2, (args) => compare(args[0] as Value, args[1] as Value) >= 0),

  def('plus', 2, arith('+', (a, b) => a + b)),
  def('minus', 2, (args, ctx) => {
    if (args[0] instanceof RegoSet || args[1] instanceof RegoSet) {
      const [a, b] = sets('-', args);
      chargeElems(ctx, a.size);
      const out = new RegoSet();
      for (const x of a) if (!b.has(x)) out.add(x);
      return out;
    }
    const [a, b] = numbers('-', args);
    return numResult('-', a - b);
  }),
  def('mul', 2, arith('*', (a, b) => a * b)),
  def('div', 2, (args) => {
    const [a, b] = numbers('/', args);
    if (b === 0) throw evalError('/', 'divide by zero');
    return numResult('/', a / b);
  }),
  def('rem', 2, (args) => {
    const [a, b] = numbers('%', args);
    if (!Number.isInteger(a) || !Number.isInteger(b)) throw evalError('%', 'modulo on floating-point number');
    if (b === 0) throw evalError('%', 'modulo by zero');
    return numResult('%', a % b);
  }),
  def('neg', 1, (args) => {
    const a = args[0] as Value;
    if (typeof a !== 'number') throw typeError('-', 0, 'a number', a);
    return numResult('-', -a);
  }),

  def('and', 2, (args, ctx) => {
    const [a, b] = sets('&', args);
    const [small, large] = a.size <= b.size ? [a, b] : [b, a];
    chargeElems(ctx, small.size);
    const out = new RegoSet();
    for (const x of small) if (large.has(x)) out.add(x);
    return out;
  }),
  def('or', 2, (args, ctx) => {
    const [a, b] = sets('|', args);
    chargeElems(ctx, a.size + b.size);
    const out = new RegoSet(a);
    for (const x of b) out.add(x);
    return out;
  }),

  def('member', 2, (args, ctx) => {
    const x = args[0] as Value;
    const coll = args[1] as Value;
    if (Array.isArray(coll)) {
      chargeElems(ctx, coll.length);
      return coll.some((e) => equal(e, x));
    }
    if (coll instanceof RegoSet) return coll.has(x);
    if (isObject(coll)) {
      const keys = Object.keys(coll);
      chargeElems(ctx, keys.length);
      return keys.some((k) => equal(getKey(coll, k) as Value, x));
    }
    return false;
  }),
  def('member_kv', 3, (args) => {
    const k = args[0] as Value;
    const v = args[1] as Value;
    const coll = args[2] as Value;
    if (Array.isArray(coll)) {
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= coll.length) return false;
      return equal(coll[k] as Value, v);
    }
    if (coll instanceof RegoSet) return equal(k, v) && coll.has(k);
    if (isObject(coll)) {
      if (typeof k !== 'string') return false;
      const e = getKey(coll, k);
      return e !== undefined && equal(e, v);
    }
    return false;
  }),
);
