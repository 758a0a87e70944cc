/**
 * Set builtins over a set of sets: intersection and union.
 */
import { RegoSet, type Value } from '../value.js';
import { typeError, type Builtin } from './types.js';
import { chargeElems, def, set, table } from './util.js';

function setOfSets(fn: string, args: readonly Value[]): RegoSet[] {
  const outer = set(fn, args, 0);
  const out: RegoSet[] = [];
  for (const s of outer) {
    if (!(s instanceof RegoSet)) throw typeError(fn, 0, 'a set of sets (an element)', s);
    out.push(s);
  }
  return out;
}

export const SET_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('intersection', 1, (args, ctx) => {
    const sets = setOfSets('intersection', args);
    if (sets.length === 0) return new RegoSet();
    sets.sort((a, b) => a.size - b.size);
    const [first, ...rest] = sets as [RegoSet, ...RegoSet[]];
    chargeElems(ctx, first.size * sets.length);
    const out = new RegoSet();
    for (const x of first) if (rest.every((s) => s.has(x))) out.add(x);
    return out;
  }),
  def('union', 1, (args, ctx) => {
    const sets = setOfSets('union', args);
    const out = new RegoSet();
    for (const s of sets) {
      chargeElems(ctx, s.size);
      for (const x of s) out.add(x);
    }
    return out;
  }),
);
