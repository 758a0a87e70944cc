/**
 * Array builtins: array.concat, array.slice, array.reverse. Arguments are copied, never mutated.
 */
import type { Value } from '../value.js';
import type { Builtin } from './types.js';
import { arr, def, int, reserveElems, table } from './util.js';

export const ARRAY_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('array.concat', 2, (args, ctx) => {
    const a = arr('array.concat', args, 0);
    const b = arr('array.concat', args, 1);
    reserveElems('array.concat', ctx, a.length + b.length);
    return a.concat(b);
  }),
  def('array.slice', 3, (args, ctx) => {
    const a = arr('array.slice', args, 0);
    // As OPA and regorus: negative bounds clamp to 0, a stop past the end clamps to the length,
    // and start >= stop gives [].
    const start = Math.max(0, int('array.slice', args, 1));
    const stop = Math.min(a.length, Math.max(0, int('array.slice', args, 2)));
    if (start >= stop) return [];
    reserveElems('array.slice', ctx, stop - start);
    return a.slice(start, stop);
  }),
  def('array.reverse', 1, (args, ctx) => {
    const a = arr('array.reverse', args, 0);
    reserveElems('array.reverse', ctx, a.length);
    const out: Value[] = [];
    for (let i = a.length - 1; i >= 0; i--) out.push(a[i] as Value);
    return out;
  }),
);
