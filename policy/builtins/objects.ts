/**
 * Object builtins: object.get, object.keys, object.remove, object.filter, object.union,
 * object.union_n, object.subset. Objects are never mutated; new ones are built with setKey.
 */
import { equal, getKey, isObject, RegoSet, setKey, type RegoObject, type Value } from '../value.js';
import { typeError, type Builtin, type BuiltinContext } from './types.js';
import { arr, chargeElems, copyObject, def, obj, table } from './util.js';

/** One step of a path: object key, array index, or set member (as regorus indexes values). */
function step(v: Value, key: Value): Value | undefined {
  if (isObject(v)) return typeof key === 'string' ? getKey(v, key) : undefined;
  if (Array.isArray(v)) {
    return typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < v.length ? v[key] : undefined;
  }
  if (v instanceof RegoSet) return v.has(key) ? key : undefined;
  return undefined;
}

/** The string keys named by an array, set or object argument (other elements match nothing). */
function keySet(fn: string, args: readonly Value[], i: number): Set<string> {
  const v = args[i] as Value;
  let items: Iterable<Value>;
  if (Array.isArray(v) || v instanceof RegoSet) items = v;
  else if (isObject(v)) items = Object.keys(v);
  else throw typeError(fn, i, 'an array, object or set', v);
  const out = new Set<string>();
  for (const k of items) if (typeof k === 'string') out.add(k);
  return out;
}

function keep(fn: string, wanted: boolean): Builtin {
  return def(fn, 2, (args, ctx) => {
    const o = obj(fn, args, 0);
    const keys = keySet(fn, args, 1);
    const names = Object.keys(o);
    chargeElems(ctx, names.length);
    const out: RegoObject = {};
    for (const k of names) if (keys.has(k) === wanted) setKey(out, k, getKey(o, k) as Value);
    return out;
  });
}

/** Recursive merge: where both sides hold objects they are merged, otherwise the right wins. */
function merge(a: RegoObject, b: RegoObject, ctx: BuiltinContext): RegoObject {
  const out = copyObject(a);
  const keys = Object.keys(b);
  chargeElems(ctx, Object.keys(out).length + keys.length);
  for (const k of keys) {
    const vb = getKey(b, k) as Value;
    const va = getKey(a, k);
    setKey(out, k, va !== undefined && isObject(va) && isObject(vb) ? merge(va, vb, ctx) : vb);
  }
  return out;
}

function isSubset(sup: Value, sub: Value, ctx: BuiltinContext): boolean {
  if (isObject(sup) && isObject(sub)) {
    const keys = Object.keys(sub);
    chargeElems(ctx, keys.length);
    return keys.every((k) => {
      const vs = getKey(sup, k);
      return vs !== undefined && isSubset(vs, getKey(sub, k) as Value, ctx);
    });
  }
  if (sup instanceof RegoSet && sub instanceof RegoSet) {
    chargeElems(ctx, sub.size);
    for (const x of sub) if (!sup.has(x)) return false;
    return true;
  }
  if (Array.isArray(sup) && Array.isArray(sub)) {
    // `sub` must appear contiguously, in order, within `sup`.
    if (sub.length === 0) return true;
    chargeElems(ctx, sup.length * Math.max(1, Math.floor(sub.length / 8)));
    for (let i = 0; i + sub.length <= sup.length; i++) {
      let ok = true;
      for (let j = 0; j < sub.length && ok; j++) ok = equal(sup[i + j] as Value, sub[j] as Value);
      if (ok) return true;
    }
    return false;
  }
  if (Array.isArray(sup) && sub instanceof RegoSet) return isSubset(new RegoSet(sup), sub, ctx);
  return equal(sup, sub);
}

function collection(fn: string, args: readonly Value[], i: number): Value {
  const v = args[i] as Value;
  if (!isObject(v) && !Array.isArray(v) && !(v instanceof RegoSet)) throw typeError(fn, i, 'an object, array or set', v);
  return v;
}

export const OBJECT_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('object.get', 3, (args, ctx) => {
    const o = obj('object.get', args, 0);
    const key = args[1] as Value;
    const dflt = args[2] as Value;
    if (!Array.isArray(key)) return typeof key === 'string' ? (getKey(o, key) ?? dflt) : dflt;
    chargeElems(ctx, key.length);
    let v: Value = o;
    for (const k of key) {
      const next = step(v, k);
      if (next === undefined) return dflt;
      v = next;
    }
    return v;
  }),
  def('object.keys', 1, (args, ctx) => {
    const keys = Object.keys(obj('object.keys', args, 0));
    chargeElems(ctx, keys.length);
    return new RegoSet(keys);
  }),
  keep('object.remove', false),
  keep('object.filter', true),
  def('object.union', 2, (args, ctx) => merge(obj('object.union', args, 0), obj('object.union', args, 1), ctx)),
  def('object.union_n', 1, (args, ctx) => {
    const items = arr('object.union_n', args, 0);
    let out: RegoObject = {};
    for (const x of items) {
      if (!isObject(x)) throw typeError('object.union_n', 0, 'an array of objects (an element)', x);
      out = merge(out, x, ctx);
    }
    return out;
  }),
  def('object.subset', 2, (args, ctx) => {
    const sup = collection('object.subset', args, 0);
    const sub = collection('object.subset', args, 1);
    const sameKind =
      (isObject(sup) && isObject(sub)) ||
      (sup instanceof RegoSet && sub instanceof RegoSet) ||
      (Array.isArray(sup) && (Array.isArray(sub) || sub instanceof RegoSet));
    if (!sameKind) throw typeError('object.subset', 1, 'of the same kind as operand 1 (or a set when operand 1 is an array)', sub);
    return isSubset(sup, sub, ctx);
  }),
);
