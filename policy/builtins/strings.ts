/**
 * String builtins. Positions and lengths count Unicode code points (as OPA and regorus do).
 */
import { RegoSet, type Value } from '../value.js';
import { evalError, typeError, type Builtin } from './types.js';
import { chargeChars, codePointLength, def, int, num, reserveElems, reserveString, str, strings, table } from './util.js';

/** Unicode White_Space (what Rust's str::trim and Go's strings.TrimSpace remove). */
const WHITE_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
  0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Trims code points matching `drop` from the chosen ends. */
function trimWhere(s: string, drop: (cp: number) => boolean, left: boolean, right: boolean): string {
  let start = 0;
  let end = s.length;
  if (left) {
    while (start < end) {
      const cp = s.codePointAt(start) as number;
      if (!drop(cp)) break;
      start += cp > 0xffff ? 2 : 1;
    }
  }
  if (right) {
    while (end > start) {
      const lo = s.charCodeAt(end - 1);
      const hi = end - 2 >= start ? s.charCodeAt(end - 2) : 0;
      const width = lo >= 0xdc00 && lo <= 0xdfff && hi >= 0xd800 && hi <= 0xdbff ? 2 : 1;
      const cp = s.codePointAt(end - width) as number;
      if (!drop(cp)) break;
      end -= width;
    }
  }
  return s.slice(start, end);
}

function trimCutset(fn: string, left: boolean, right: boolean): Builtin {
  return def(fn, 2, (args, ctx) => {
    const s = str(fn, args, 0);
    const cutset = new Set<number>();
    for (const ch of str(fn, args, 1)) cutset.add(ch.codePointAt(0) as number);
    chargeChars(ctx, s.length);
    return trimWhere(s, (cp) => cutset.has(cp), left, right);
  });
}

/** Each argument of strings.any_*_match: a string or an array/set of strings. */
function stringOrStrings(fn: string, args: readonly Value[], i: number): string[] {
  const v = args[i] as Value;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) || v instanceof RegoSet) return strings(fn, args, i);
  throw typeError(fn, i, 'a string or an array or set of strings', v);
}

function anyMatch(fn: string, test: (s: string, affix: string) => boolean): Builtin {
  return def(fn, 2, (args, ctx) => {
    const search = stringOrStrings(fn, args, 0);
    const base = stringOrStrings(fn, args, 1);
    ctx.charge(Math.max(1, Math.floor((search.length * base.length) / 64)));
    return search.some((s) => base.some((b) => test(s, b)));
  });
}

/** UTF-16 offset of the code point with index `cp` (or s.length). */
function offsetOfCodePoint(s: string, cp: number): number {
  let i = 0;
  for (let n = 0; n < cp && i < s.length; n++) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return i;
}

export const STRING_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('startswith', 2, (args) => str('startswith', args, 0).startsWith(str('startswith', args, 1))),
  def('endswith', 2, (args) => str('endswith', args, 0).endsWith(str('endswith', args, 1))),
  def('contains', 2, (args, ctx) => {
    const s = str('contains', args, 0);
    const sub = str('contains', args, 1);
    chargeChars(ctx, s.length);
    return s.includes(sub);
  }),
  def('lower', 1, (args, ctx) => {
    const s = str('lower', args, 0);
    reserveString('lower', ctx, s.length);
    return s.toLowerCase();
  }),
  def('upper', 1, (args, ctx) => {
    const s = str('upper', args, 0);
    reserveString('upper', ctx, s.length);
    return s.toUpperCase();
  }),
  def('concat', 2, (args, ctx) => {
    const delim = str('concat', args, 0);
    const parts = strings('concat', args, 1);
    let len = Math.max(0, parts.length - 1) * delim.length;
    for (const p of parts) len += p.length;
    reserveString('concat', ctx, len);
    return parts.join(delim);
  }),
  def('split', 2, (args, ctx) => {
    const s = str('split', args, 0);
    const delim = str('split', args, 1);
    chargeChars(ctx, s.length);
    const parts = delim === '' ? Array.from(s) : s.split(delim);
    reserveElems('split', ctx, parts.length);
    return parts;
  }),
  def('replace', 3, (args, ctx) => {
    const s = str('replace', args, 0);
    const old = str('replace', args, 1);
    const repl = str('replace', args, 2);
    if (old === '') {
      // As Rust's str::replace (and Go's strings.ReplaceAll): before every code point and at the end.
      const cps = Array.from(s);
      reserveString('replace', ctx, s.length + (cps.length + 1) * repl.length);
      return repl + cps.map((c) => c + repl).join('');
    }
    const pieces = s.split(old);
    reserveString('replace', ctx, s.length + (pieces.length - 1) * (repl.length - old.length));
    return pieces.join(repl);
  }),
  def('substring', 3, (args, ctx) => {
    const s = str('substring', args, 0);
    const offset = int('substring', args, 1);
    const length = int('substring', args, 2);
    if (offset < 0) throw evalError('substring', 'negative offset');
    chargeChars(ctx, s.length);
    const start = offsetOfCodePoint(s, offset);
    if (length < 0) return s.slice(start);
    const rest = s.slice(start);
    return rest.slice(0, offsetOfCodePoint(rest, length));
  }),
  def('indexof', 2, (args, ctx) => {
    const s = str('indexof', args, 0);
    const sub = str('indexof', args, 1);
    chargeChars(ctx, s.length);
    const i = s.indexOf(sub);
    return i < 0 ? -1 : codePointLength(s.slice(0, i));
  }),
  def('format_int', 2, (args) => {
    const n = num('format_int', args, 0);
    const base = num('format_int', args, 1);
    if (base !== 2 && base !== 8 && base !== 10 && base !== 16) {
      throw evalError('format_int', 'base must be one of 2, 8, 10, 16');
    }
    const digits = BigInt(Math.floor(Math.abs(n))).toString(base);
    return (n < 0 && digits !== '0' ? '-' : '') + digits;
  }),
  def('trim_space', 1, (args, ctx) => {
    const s = str('trim_space', args, 0);
    chargeChars(ctx, s.length);
    return trimWhere(s, (cp) => WHITE_SPACE.has(cp), true, true);
  }),
  trimCutset('trim', true, true),
  trimCutset('trim_left', true, false),
  trimCutset('trim_right', false, true),
  def('trim_prefix', 2, (args) => {
    const s = str('trim_prefix', args, 0);
    const p = str('trim_prefix', args, 1);
    return s.startsWith(p) ? s.slice(p.length) : s;
  }),
  def('trim_suffix', 2, (args) => {
    const s = str('trim_suffix', args, 0);
    const p = str('trim_suffix', args, 1);
    return s.endsWith(p) ? s.slice(0, s.length - p.length) : s;
  }),
  anyMatch('strings.any_prefix_match', (s, b) => s.startsWith(b)),
  anyMatch('strings.any_suffix_match', (s, b) => s.endsWith(b)),
);
