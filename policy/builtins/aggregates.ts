/**
 * Aggregates over collections: count, max, min, sum, product, sort.
 */
import { compare, isObject, RegoSet, type Value } from '../value.js';
import { typeError, type Builtin } from './types.js';
import { chargeChars, chargeElems, codePointLength, def, elements, numResult, table } from './util.js';

function numericFold(fn: string, start: number, f: (acc: number, x: number) => number): Builtin {
  return def(fn, 1, (args, ctx) => {
    const items = elements(fn, args, 0);
    chargeElems(ctx, items.length);
    let acc = start;
    for (const x of items) {
      if (typeof x !== 'number') throw typeError(fn, 0, 'an array or set of numbers (an element)', x);
      acc = f(acc, x);
    }
    return numResult(fn, acc);
  });
}

function extreme(fn: string, better: (c: number) => boolean): Builtin {
  return def(fn, 1, (args, ctx) => {
    const v = args[0] as Value;
    let items: Iterable<Value>;
    let size: number;
    if (Array.isArray(v)) {
      items = v;
      size = v.length;
    } else if (v instanceof RegoSet) {
      items = v;
      size = v.size;
    } else {
      throw typeError(fn, 0, 'an array or set', v);
    }
    if (size === 0) return undefined;
    chargeElems(ctx, size);
    let best: Value | undefined;
    for (const x of items) if (best === undefined || better(compare(x, best))) best = x;
    return best;
  });
}

export const AGGREGATE_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('count', 1, (args, ctx) => {
    const v = args[0] as Value;
    if (typeof v === 'string') {
      chargeChars(ctx, v.length);
      return codePointLength(v);
    }
    if (Array.isArray(v)) return v.length;
    if (v instanceof RegoSet) return v.size;
    if (isObject(v)) return Object.keys(v).length;
    throw typeError('count', 0, 'an array, object, set or string', v);
  }),
  extreme('max', (c) => c > 0),
  extreme('min', (c) => c < 0),
  numericFold('sum', 0, (a, x) => a + x),
  numericFold('product', 1, (a, x) => a * x),
  def('sort', 1, (args, ctx) => {
    const v = args[0] as Value;
    if (v instanceof RegoSet) {
      chargeElems(ctx, v.size);
      return v.sorted();
    }
    if (!Array.isArray(v)) throw typeError('sort', 0, 'an array or set', v);
    chargeElems(ctx, v.length);
    return [...v].sort(compare);
  }),
);
