/**
 * sprintf(format, values): Go fmt verbs over Rego values.
 *
 * %v (and %s of a non-string) renders as regorus does: strings raw at the top level, numbers without
 * exponent, composites as `[1, "a"]`, `{"k": 1}`, sets as `{1, 2}` (sorted). Bad or missing
 * arguments print Go's `%!d(string=abc)` / `%!v(MISSING)` / `%!(EXTRA …)` markers instead of failing.
 */
import { getKey, RegoSet, typeName, type Value } from '../value.js';
import { evalError, type Builtin, type BuiltinContext } from './types.js';
import { arr, chargeChars, chargeElems, codePointLength, def, formatNumber, MAX_STRING_OUTPUT, str } from './util.js';

interface Spec {
  minus: boolean;
  plus: boolean;
  space: boolean;
  zero: boolean;
  sharp: boolean;
  width: number | undefined;
  prec: number | undefined;
}

/** %v rendering; `nested` strings are JSON-quoted (regorus's to_string). */
export function renderValue(v: Value, ctx: BuiltinContext, nested = false): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return nested ? JSON.stringify(v) : v;
  if (Array.isArray(v)) {
    chargeElems(ctx, v.length);
    return '[' + v.map((e) => renderValue(e, ctx, true)).join(', ') + ']';
  }
  if (v instanceof RegoSet) {
    chargeElems(ctx, v.size);
    return '{' + v.sorted().map((e) => renderValue(e, ctx, true)).join(', ') + '}';
  }
  const keys = Object.keys(v).sort();
  chargeElems(ctx, keys.length);
  return '{' + keys.map((k) => JSON.stringify(k) + ': ' + renderValue(getKey(v, k) as Value, ctx, true)).join(', ') + '}';
}

function isPrint(ch: string): boolean {
  return ch === ' ' || /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch);
}

const GO_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };

/** Go's strconv.Quote (or QuoteRune with `'`). */
export function goQuote(s: string, q = '"'): string {
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === q || ch === '\\') out += '\\' + ch;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else if (c !== 0x7f && c >= 0x20 && isPrint(ch)) out += ch;
    else {
      const e = GO_ESCAPES[c];
      if (e !== undefined) out += e;
      else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
      else if (c < 0x10000) out += '\\u' + c.toString(16).padStart(4, '0');
      else out += '\\U' + c.toString(16).padStart(8, '0');
    }
  }
  return out + q;
}

/** How a '0' flag pads: not at all, with plain zeros, or with zeros after a leading sign. */
type ZeroPad = 'none' | 'plain' | 'signed';

/** Pads to the width (counted in code points), right-aligned unless '-'. */
function pad(s: string, spec: Spec, zero: ZeroPad): string {
  const n = spec.width === undefined ? 0 : spec.width - codePointLength(s);
  if (n <= 0) return s;
  if (spec.minus) return s + ' '.repeat(n);
  if (spec.zero && zero !== 'none') {
    const sign = zero === 'signed' && (s[0] === '-' || s[0] === '+' || s[0] === ' ') ? (s[0] as string) : '';
    return sign + '0'.repeat(n) + s.slice(sign.length);
  }
  return ' '.repeat(n) + s;
}

function signOf(neg: boolean, spec: Spec): string {
  return neg ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
}

/** |x| with `p` decimals, rounding exact ties to even (as Go's strconv). */
function fixed(x: number, p: number): string {
  if (x >= 1e21) return BigInt(x).toString() + (p > 0 ? '.' + '0'.repeat(p) : '');
  if (p > 100) return x.toFixed(100) + '0'.repeat(p - 100);
  const rounded = x.toFixed(p);
  if (p > 80) return rounded;
  const full = x.toFixed(100);
  const dot = full.indexOf('.');
  const cut = dot + 1 + p;
  const tail = full.slice(cut);
  if (tail[0] !== '5' || !/^50*$/.test(tail)) return rounded;
  const kept = full.slice(0, p === 0 ? dot : cut);
  const last = kept.charCodeAt(kept.length - 1) - 48;
  return last % 2 === 0 ? kept : rounded;
}

/** x.toExponential(p), but rounding exact ties to even (as Go's strconv) for p <= 80. */
function toExp(x: number, p: number): string {
  const rounded = x.toExponential(p);
  if (p > 80 || x === 0) return rounded;
  const full = x.toExponential(100);
  const e = full.indexOf('e');
  const tail = full.slice(2 + p, e);
  if (tail[0] !== '5' || !/^50*$/.test(tail)) return rounded;
  const kept = full.slice(0, p === 0 ? 1 : 2 + p);
  const last = kept.charCodeAt(kept.length - 1) - 48;
  return last % 2 === 0 ? kept + full.slice(e) : rounded;
}

/** Go %e: mantissa with `p` decimals, exponent with at least two digits. */
function expo(x: number, p: number | undefined, upper: boolean): string {
  const s = p === undefined ? x.toExponential() : toExp(x, Math.min(p, 100));
  const [m, e] = s.split('e') as [string, string];
  const sign = e[0] === '-' ? '-' : '+';
  const digits = e.replace(/^[+-]/, '').padStart(2, '0');
  return m + (upper ? 'E' : 'e') + sign + digits;
}

/** Go %g: shortest representation (or `p` significant digits), %e for large/small exponents. */
function general(x: number, p: number | undefined, upper: boolean): string {
  const shortest = p === undefined;
  const s = shortest ? x.toExponential() : toExp(x, Math.min(Math.max(p, 1), 100) - 1);
  const [m, e] = s.split('e') as [string, string];
  const digits = m.replace('.', '').replace(/0+$/, '') || '0';
  const exp = Number(e);
  const dp = exp + 1;
  let prec = shortest ? digits.length : Math.max(p, 1);
  let eprec = prec;
  if (eprec > digits.length && digits.length >= dp) eprec = digits.length;
  if (shortest) eprec = 6;
  if (exp < -4 || exp >= eprec) {
    if (prec > digits.length) prec = digits.length;
    const frac = digits.slice(1, prec);
    const ed = String(Math.abs(exp)).padStart(2, '0');
    return digits[0] + (frac ? '.' + frac : '') + (upper ? 'E' : 'e') + (exp < 0 ? '-' : '+') + ed;
  }
  if (prec > dp) prec = digits.length;
  const decimals = Math.max(prec - dp, 0);
  const intPart = dp > 0 ? digits.slice(0, dp).padEnd(dp, '0') : '0';
  let frac = '';
  for (let i = 0; i < decimals; i++) frac += digits[dp + i] ?? '0';
  return intPart + (decimals > 0 ? '.' + frac : '');
}

function bad(verb: string, v: Value, ctx: BuiltinContext): string {
  return `%!${verb}(${typeName(v)}=${renderValue(v, ctx)})`;
}

function formatInteger(verb: string, n: number, spec: Spec): string {
  const base = verb === 'b' ? 2 : verb === 'o' ? 8 : verb === 'x' || verb === 'X' ? 16 : 10;
  let digits = BigInt(Math.abs(n)).toString(base);
  if (verb === 'X') digits = digits.toUpperCase();
  if (spec.prec !== undefined) digits = digits.padStart(spec.prec, '0');
  if (spec.sharp) digits = (base === 16 ? (verb === 'X' ? '0X' : '0x') : base === 8 ? '0' : base === 2 ? '0b' : '') + digits;
  return pad(signOf(n < 0, spec) + digits, spec, spec.prec === undefined ? 'signed' : 'none');
}

function formatOne(verb: string, v: Value, spec: Spec, ctx: BuiltinContext): string {
  switch (verb) {
    case 'v':
      return pad(renderValue(v, ctx), spec, typeof v === 'number' ? 'signed' : 'plain');
    case 's': {
      let s = renderValue(v, ctx);
      if (spec.prec !== undefined) s = [...s].slice(0, spec.prec).join('');
      return pad(s, spec, 'plain');
    }
    case 't':
      return typeof v === 'boolean' ? pad(String(v), spec, 'plain') : bad(verb, v, ctx);
    case 'q':
      if (typeof v === 'string') return pad(goQuote(v), spec, 'plain');
      if (typeof v === 'number' && Number.isInteger(v)) {
        const ok = v >= 0 && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff);
        return pad(goQuote(ok ? String.fromCodePoint(v) : '\ufffd', "'"), spec, 'plain');
      }
      return bad(verb, v, ctx);
    case 'c':
      if (typeof v === 'number' && Number.isInteger(v)) {
        const ok = v >= 0 && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff);
        return pad(ok ? String.fromCodePoint(v) : '\ufffd', spec, 'plain');
      }
      return bad(verb, v, ctx);
    case 'd':
    case 'b':
    case 'o':
      return typeof v === 'number' && Number.isInteger(v) ? formatInteger(verb, v, spec) : bad(verb, v, ctx);
    case 'x':
    case 'X':
      if (typeof v === 'number' && Number.isInteger(v)) return formatInteger(verb, v, spec);
      if (typeof v === 'string') {
        let hex = Buffer.from(v, 'utf8').toString('hex');
        if (verb === 'X') hex = hex.toUpperCase();
        return pad(hex, spec, 'plain');
      }
      return bad(verb, v, ctx);
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G': {
      if (typeof v !== 'number') return bad(verb, v, ctx);
      const a = Math.abs(v);
      const body =
        verb === 'f' || verb === 'F'
          ? fixed(a, spec.prec ?? 6)
          : verb === 'e' || verb === 'E'
            ? expo(a, spec.prec ?? 6, verb === 'E')
            : general(a, spec.prec, verb === 'G');
      return pad(signOf(v < 0, spec) + body, spec, 'signed');
    }
    default:
      return bad(verb, v, ctx);
  }
}

/** Reads a decimal number at `i`; Go refuses widths and precisions above 1e6. */
function readNumber(f: string, i: number): [number | undefined, number] {
  let n: number | undefined;
  while (i < f.length && f.charCodeAt(i) >= 48 && f.charCodeAt(i) <= 57) {
    n = (n ?? 0) * 10 + (f.charCodeAt(i) - 48);
    if (n > 1e6) n = Infinity;
    i++;
  }
  return [n, i];
}

function append(out: string, piece: string, ctx: BuiltinContext): string {
  if (out.length + piece.length > MAX_STRING_OUTPUT) throw evalError('sprintf', 'result string too long');
  chargeChars(ctx, piece.length);
  return out + piece;
}

export function sprintf(format: string, values: readonly Value[], ctx: BuiltinContext): string {
  chargeChars(ctx, format.length);
  let out = '';
  let argi = 0;
  let i = 0;
  const f = format;
  while (i < f.length) {
    const next = f.indexOf('%', i);
    if (next < 0) {
      out += f.slice(i);
      break;
    }
    out += f.slice(i, next);
    i = next + 1;
    const spec: Spec = { minus: false, plus: false, space: false, zero: false, sharp: false, width: undefined, prec: undefined };
    for (; i < f.length; i++) {
      const c = f[i];
      if (c === '-') spec.minus = true;
      else if (c === '+') spec.plus = true;
      else if (c === ' ') spec.space = true;
      else if (c === '0') spec.zero = true;
      else if (c === '#') spec.sharp = true;
      else break;
    }
    [spec.width, i] = readNumber(f, i);
    if (f[i] === '.') {
      [spec.prec, i] = readNumber(f, i + 1);
      spec.prec ??= 0;
    }
    if (i >= f.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(f.codePointAt(i) as number);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (spec.width === Infinity) {
      out += '%!(BADWIDTH)';
      continue;
    }
    if (spec.prec === Infinity) {
      out += '%!(BADPREC)';
      continue;
    }
    if (argi >= values.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out = append(out, formatOne(verb, values[argi++] as Value, spec, ctx), ctx);
  }
  if (argi < values.length) {
    const extra = values.slice(argi).map((v) => `${typeName(v)}=${renderValue(v, ctx)}`);
    out = append(out, `%!(EXTRA ${extra.join(', ')})`, ctx);
  }
  return out;
}

export const SPRINTF_BUILTINS: ReadonlyMap<string, Builtin> = new Map([
  ['sprintf', def('sprintf', 2, (args, ctx) => sprintf(str('sprintf', args, 0), arr('sprintf', args, 1), ctx))],
]);
