/**
 * Regex builtins on RE2 syntax (re2js: linear time, no backreferences or lookaround), as regorus
 * uses Rust's regex crate. Policy patterns never reach JS RegExp.
 *
 * Compiled patterns live in a bounded LRU; patterns over 8 KiB or compiling to huge programs are
 * refused. Matching is charged by input length times program size, so hostile patterns on large
 * inputs hit the step budget.
 */
import { RE2JS } from 're2js';
import type { Value } from '../value.js';
import { evalError, type Builtin, type BuiltinContext } from './types.js';
import { chargeChars, def, int, MAX_STRING_OUTPUT, reserveElems, str, table } from './util.js';

export const MAX_PATTERN_LENGTH = 8 * 1024;
const MAX_PROGRAM_SIZE = 64 * 1024;
const CACHE_SIZE = 256;

/** The parts of re2js's internal RE2 object used here (Go regexp semantics, UTF-16 offsets). */
interface Re2Engine {
  findAllIndex(input: string, n: number): number[][] | null | undefined;
  findAllSubmatchIndex(input: string, n: number): number[][] | null | undefined;
}

interface Compiled {
  re: RE2JS;
  engine: Re2Engine;
  size: number;
}

const cache = new Map<string, Compiled | string>();

function compileUncached(pattern: string): Compiled | string {
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch {
    return 'invalid regex';
  }
  const size = re.programSize();
  if (size > MAX_PROGRAM_SIZE) return 'regex program too large';
  return { re, engine: re.re2() as unknown as Re2Engine, size };
}

/** Compiles through the LRU (a miss is charged by pattern length); failures are cached too. */
function lookup(pattern: string, ctx: BuiltinContext): Compiled | string {
  if (pattern.length > MAX_PATTERN_LENGTH) return 'pattern too long'; // never cached: keys stay small
  const hit = cache.get(pattern);
  if (hit !== undefined) {
    cache.delete(pattern);
    cache.set(pattern, hit);
    return hit;
  }
  ctx.charge(1 + Math.floor(pattern.length / 8));
  const c = compileUncached(pattern);
  cache.set(pattern, c);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return c;
}

function compile(fn: string, pattern: string, ctx: BuiltinContext): Compiled {
  const c = lookup(pattern, ctx);
  if (typeof c === 'string') throw evalError(fn, c);
  return c;
}

/** Charges a scan of `input` with the compiled program. */
function chargeScan(ctx: BuiltinContext, c: Compiled, input: string): void {
  ctx.charge(1 + Math.floor(input.length / 64) * Math.max(1, Math.ceil(c.size / 64)));
}

/** Expands `$1`, `${1}`, `$name`, `${name}` and `$$` as Rust's and Go's regex replacement does. */
function expand(template: string, input: string, m: number[], names: Record<string, number>): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const d = template.indexOf('$', i);
    if (d < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, d);
    i = d + 1;
    if (template[i] === '$') {
      out += '$';
      i++;
      continue;
    }
    let name: string;
    if (template[i] === '{') {
      const close = template.indexOf('}', i + 1);
      name = close < 0 ? '' : template.slice(i + 1, close);
      if (close < 0 || !/^[A-Za-z0-9_]+$/.test(name)) {
        out += '$';
        continue;
      }
      i = close + 1;
    } else {
      const start = i;
      while (i < template.length && /[A-Za-z0-9_]/.test(template[i] as string)) i++;
      name = template.slice(start, i);
      if (name === '') {
        out += '$';
        continue;
      }
    }
    const group = /^[0-9]+$/.test(name) ? Number(name) : Object.hasOwn(names, name) ? names[name] : undefined;
    if (group === undefined || 2 * group + 1 >= m.length) continue;
    const s = m[2 * group] as number;
    const e = m[2 * group + 1] as number;
    if (s >= 0 && e >= 0) out += input.slice(s, e);
  }
  return out;
}

export const REGEX_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('regex.match', 2, (args, ctx) => {
    const p = str('regex.match', args, 0);
    const s = str('regex.match', args, 1);
    const c = compile('regex.match', p, ctx);
    chargeScan(ctx, c, s);
    return c.re.test(s);
  }),
  def('regex.is_valid', 1, (args, ctx) => {
    const p = args[0] as Value;
    return typeof p === 'string' && typeof lookup(p, ctx) !== 'string';
  }),
  def('regex.find_n', 3, (args, ctx) => {
    const p = str('regex.find_n', args, 0);
    const s = str('regex.find_n', args, 1);
    const n = int('regex.find_n', args, 2);
    const c = compile('regex.find_n', p, ctx);
    if (n === 0) return [];
    chargeScan(ctx, c, s);
    const found = c.engine.findAllIndex(s, n < 0 ? -1 : n) ?? [];
    reserveElems('regex.find_n', ctx, found.length);
    return found.map(([a, b]) => s.slice(a, b));
  }),
  def('regex.split', 2, (args, ctx) => {
    const p = str('regex.split', args, 0);
    const s = str('regex.split', args, 1);
    const c = compile('regex.split', p, ctx);
    chargeScan(ctx, c, s);
    // As Rust's Regex::split (regorus): the text between consecutive matches, then the rest.
    const found = c.engine.findAllIndex(s, -1) ?? [];
    reserveElems('regex.split', ctx, found.length + 1);
    const out: string[] = [];
    let last = 0;
    for (const [a, b] of found) {
      out.push(s.slice(last, a));
      last = b as number;
    }
    out.push(s.slice(last));
    return out;
  }),
  def('regex.replace', 3, (args, ctx) => {
    const s = str('regex.replace', args, 0);
    const p = str('regex.replace', args, 1);
    const repl = str('regex.replace', args, 2);
    const c = compile('regex.replace', p, ctx);
    chargeScan(ctx, c, s);
    const found = c.engine.findAllSubmatchIndex(s, -1) ?? [];
    const names = c.re.namedGroups();
    let out = '';
    let last = 0;
    for (const m of found) {
      const piece = s.slice(last, m[0]) + expand(repl, s, m, names);
      if (out.length + piece.length > MAX_STRING_OUTPUT) throw evalError('regex.replace', 'result string too long');
      chargeChars(ctx, piece.length);
      out += piece;
      last = m[1] as number;
    }
    return out + s.slice(last);
  }),
);
