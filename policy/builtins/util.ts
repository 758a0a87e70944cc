/**
 * Helpers shared by the builtin families: argument checks (strict: a wrong type is POLICY_TYPE),
 * work charging, output bounds and number rendering.
 */
import { getKey, isObject, RegoSet, setKey, type RegoObject, type Value } from '../value.js';
import { evalError, typeError, type Builtin, type BuiltinContext } from './types.js';

/** Longest string a builtin may build (UTF-16 code units). */
export const MAX_STRING_OUTPUT = 32 * 1024 * 1024;
/** Most elements a builtin may put in one array, set or object. */
export const MAX_COLLECTION_OUTPUT = 4 * 1024 * 1024;

/** Defines a builtin; the wrapper refuses a call with the wrong number of arguments. */
export function def(name: string, arity: number, impl: Builtin['impl']): Builtin {
  return {
    name,
    arity,
    impl: (args, ctx) => {
      if (args.length !== arity) throw evalError(name, `expects ${arity} argument${arity === 1 ? '' : 's'}, got ${args.length}`);
      return impl(args, ctx);
    },
  };
}

/** Builds a name-keyed map, refusing duplicates (a programming error). */
export function table(...defs: Builtin[]): Map<string, Builtin> {
  const m = new Map<string, Builtin>();
  for (const b of defs) {
    if (m.has(b.name)) throw new Error(`internal: builtin ${b.name} defined twice`);
    m.set(b.name, b);
  }
  return m;
}

export function str(fn: string, args: readonly Value[], i: number): string {
  const v = args[i] as Value;
  if (typeof v !== 'string') throw typeError(fn, i, 'a string', v);
  return v;
}

export function num(fn: string, args: readonly Value[], i: number): number {
  const v = args[i] as Value;
  if (typeof v !== 'number') throw typeError(fn, i, 'a number', v);
  return v;
}

/** A number that must also be an integer (a non-integer is an evaluation error, as OPA). */
export function int(fn: string, args: readonly Value[], i: number): number {
  const n = num(fn, args, i);
  if (!Number.isInteger(n)) throw evalError(fn, `operand ${i + 1} must be an integer`);
  return n;
}

export function arr(fn: string, args: readonly Value[], i: number): Value[] {
  const v = args[i] as Value;
  if (!Array.isArray(v)) throw typeError(fn, i, 'an array', v);
  return v;
}

export function obj(fn: string, args: readonly Value[], i: number): RegoObject {
  const v = args[i] as Value;
  if (!isObject(v)) throw typeError(fn, i, 'an object', v);
  return v;
}

export function set(fn: string, args: readonly Value[], i: number): RegoSet {
  const v = args[i] as Value;
  if (!(v instanceof RegoSet)) throw typeError(fn, i, 'a set', v);
  return v;
}

/** The elements of an array or set argument (sets in Rego order). */
export function elements(fn: string, args: readonly Value[], i: number): Value[] {
  const v = args[i] as Value;
  if (Array.isArray(v)) return v;
  if (v instanceof RegoSet) return v.sorted();
  throw typeError(fn, i, 'an array or set', v);
}

/** An array or set of strings (sets in Rego order). */
export function strings(fn: string, args: readonly Value[], i: number): string[] {
  const items = elements(fn, args, i);
  for (const x of items) {
    if (typeof x !== 'string') throw typeError(fn, i, 'an array or set of strings (an element)', x);
  }
  return items as string[];
}

/** Charges `n` elements of work. */
export function chargeElems(ctx: BuiltinContext, n: number): void {
  if (n > 0) ctx.charge(n);
}

/** Charges for handling `n` characters (one unit per 64). */
export function chargeChars(ctx: BuiltinContext, n: number): void {
  if (n >= 64) ctx.charge(Math.floor(n / 64));
}

/** Charges and bounds a string about to be built of `len` code units. */
export function reserveString(fn: string, ctx: BuiltinContext, len: number): void {
  if (len > MAX_STRING_OUTPUT) throw evalError(fn, 'result string too long');
  chargeChars(ctx, len);
}

/** Charges and bounds a collection about to be built of `n` elements. */
export function reserveElems(fn: string, ctx: BuiltinContext, n: number): void {
  if (n > MAX_COLLECTION_OUTPUT) throw evalError(fn, 'result collection too large');
  chargeElems(ctx, n);
}

/** A numeric result: non-finite is an error (overflow), -0 becomes 0. */
export function numResult(fn: string, n: number): number {
  if (!Number.isFinite(n)) throw evalError(fn, 'numeric result out of range');
  return n === 0 ? 0 : n;
}

/** Number of Unicode code points in a string. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/**
 * Renders a number as regorus (Rust's f64 Display) does: shortest round-trip digits, never an
 * exponent (1e21 prints as 1000000000000000000000, 1e-7 as 0.0000001).
 */
export function formatNumber(n: number): string {
  if (n === 0) return '0';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const s = String(Math.abs(n));
  const sign = n < 0 ? '-' : '';
  const e = s.indexOf('e');
  if (e < 0) return sign + s;
  const mant = s.slice(0, e);
  const exp = Number(s.slice(e + 1));
  const dot = mant.indexOf('.');
  const digits = dot < 0 ? mant : mant.slice(0, dot) + mant.slice(dot + 1);
  const point = (dot < 0 ? mant.length : dot) + exp;
  if (point <= 0) return sign + '0.' + '0'.repeat(-point) + digits;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return sign + digits.slice(0, point) + '.' + digits.slice(point);
}

/** Copies an object's own entries into a fresh object (safe for "__proto__"). */
export function copyObject(src: RegoObject): RegoObject {
  const out: RegoObject = {};
  for (const k of Object.keys(src)) setKey(out, k, getKey(src, k) as Value);
  return out;
}
