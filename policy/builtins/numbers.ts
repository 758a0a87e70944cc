/**
 * Number builtins: abs, round, ceil, floor, numbers.range, to_number.
 */
import type { Value } from '../value.js';
import { evalError, typeError, type Builtin } from './types.js';
import { def, int, num, numResult, reserveElems, table } from './util.js';

/** The JSON number grammar (what regorus accepts in to_number), with surrounding JSON whitespace. */
const JSON_NUMBER = /^[ \t\n\r]*-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[ \t\n\r]*$/;

function unary(name: string, f: (n: number) => number): Builtin {
  return def(name, 1, (args) => numResult(name, f(num(name, args, 0))));
}

export const NUMBER_BUILTINS: ReadonlyMap<string, Builtin> = table(
  unary('abs', Math.abs),
  // Half away from zero, as Go's math.Round and Rust's f64::round (JS Math.round rounds -2.5 to -2).
  unary('round', (n) => Math.sign(n) * Math.round(Math.abs(n))),
  unary('ceil', Math.ceil),
  unary('floor', Math.floor),
  def('numbers.range', 2, (args, ctx) => {
    const a = int('numbers.range', args, 0);
    const b = int('numbers.range', args, 1);
    const n = Math.abs(b - a) + 1;
    reserveElems('numbers.range', ctx, n);
    const step = a <= b ? 1 : -1;
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(a + i * step);
    return out;
  }),
  def('to_number', 1, (args) => {
    const v = args[0] as Value;
    if (v === null) return 0;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'number') return v;
    if (typeof v !== 'string') throw typeError('to_number', 0, 'a string, number, boolean or null', v);
    if (v.length > 1024 || !JSON_NUMBER.test(v)) throw evalError('to_number', 'could not parse string as number');
    const n = Number(v.trim());
    if (!Number.isFinite(n)) throw evalError('to_number', 'number out of range');
    return n === 0 ? 0 : n;
  }),
);
