/**
 * Encoding builtins: base64.encode/decode/is_valid (standard alphabet, padding required, as
 * regorus's data_encoding::BASE64) and json.marshal/unmarshal/is_valid.
 */
import { fromUnknown, getKey, RegoSet, type Value } from '../value.js';
import { isPolicyError } from '../errors.js';
import { evalError, type Builtin, type BuiltinContext } from './types.js';
import { chargeChars, chargeElems, def, reserveString, str, table } from './util.js';

/** Largest JSON text json.unmarshal accepts. */
export const MAX_JSON_INPUT = 1024 * 1024;

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Strict canonical base64: length a multiple of 4, '=' only as final padding, zero trailing bits. */
function isStrictBase64(s: string): boolean {
  if (s.length % 4 !== 0) return false;
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  const body = s.length - pad;
  for (let i = 0; i < body; i++) if (B64_ALPHABET.indexOf(s[i] as string) < 0) return false;
  if (pad > 0) {
    const last = B64_ALPHABET.indexOf(s[body - 1] as string);
    if ((pad === 2 && (last & 0x0f) !== 0) || (pad === 1 && (last & 0x03) !== 0)) return false;
  }
  return true;
}

const UTF8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Compact JSON with sorted object keys and sets as sorted arrays (as regorus serialises). */
function marshal(v: Value, ctx: BuiltinContext, parts: string[]): void {
  if (v === null) parts.push('null');
  else if (typeof v === 'boolean') parts.push(v ? 'true' : 'false');
  else if (typeof v === 'number') parts.push(JSON.stringify(v === 0 ? 0 : v));
  else if (typeof v === 'string') parts.push(JSON.stringify(v));
  else if (Array.isArray(v) || v instanceof RegoSet) {
    const items = Array.isArray(v) ? v : v.sorted();
    chargeElems(ctx, items.length);
    parts.push('[');
    items.forEach((x, i) => {
      if (i > 0) parts.push(',');
      marshal(x, ctx, parts);
    });
    parts.push(']');
  } else {
    const keys = Object.keys(v).sort();
    chargeElems(ctx, keys.length);
    parts.push('{');
    keys.forEach((k, i) => {
      if (i > 0) parts.push(',');
      parts.push(JSON.stringify(k), ':');
      marshal(getKey(v, k) as Value, ctx, parts);
    });
    parts.push('}');
  }
}

function parseJson(fn: string, s: string, ctx: BuiltinContext): Value {
  if (s.length > MAX_JSON_INPUT) throw evalError(fn, 'JSON text too long');
  chargeChars(ctx, s.length);
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch {
    throw evalError(fn, 'invalid JSON');
  }
  const v = fromUnknown(parsed);
  if (v === undefined) throw evalError(fn, 'JSON document too deep or out of range');
  return v;
}

export const ENCODING_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('base64.encode', 1, (args, ctx) => {
    const s = str('base64.encode', args, 0);
    reserveString('base64.encode', ctx, Math.ceil(Buffer.byteLength(s, 'utf8') / 3) * 4);
    return Buffer.from(s, 'utf8').toString('base64');
  }),
  def('base64.decode', 1, (args, ctx) => {
    const s = str('base64.decode', args, 0);
    chargeChars(ctx, s.length);
    if (!isStrictBase64(s)) throw evalError('base64.decode', 'invalid base64 input');
    return UTF8.decode(Buffer.from(s, 'base64'));
  }),
  def('base64.is_valid', 1, (args, ctx) => {
    const s = str('base64.is_valid', args, 0);
    chargeChars(ctx, s.length);
    return isStrictBase64(s);
  }),
  def('json.marshal', 1, (args, ctx) => {
    const parts: string[] = [];
    marshal(args[0] as Value, ctx, parts);
    let len = 0;
    for (const p of parts) len += p.length;
    reserveString('json.marshal', ctx, len);
    return parts.join('');
  }),
  def('json.unmarshal', 1, (args, ctx) => parseJson('json.unmarshal', str('json.unmarshal', args, 0), ctx)),
  def('json.is_valid', 1, (args, ctx) => {
    const s = str('json.is_valid', args, 0);
    try {
      parseJson('json.is_valid', s, ctx);
      return true;
    } catch (e) {
      if (isPolicyError(e) && e.code === 'POLICY_EVAL') return false;
      throw e;
    }
  }),
);
