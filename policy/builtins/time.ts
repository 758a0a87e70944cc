/**
 * Time builtins: time.now_ns, time.parse_rfc3339_ns, time.date, time.clock, time.weekday,
 * time.add_date. Timestamps are nanoseconds since the Unix epoch as JS numbers (doubles lose
 * sub-microsecond precision at today's magnitudes); arithmetic is done in BigInt and the result must
 * fit in an int64, as in regorus. A timestamp argument is `ns` or `[ns, tz]` (tz "UTC", "", "Local"
 * or an IANA name).
 */
import type { Value } from '../value.js';
import { evalError, typeError, type Builtin } from './types.js';
import { def, int, str, table } from './util.js';

const NS = 1_000_000_000n;
const DAY = 86_400n;
const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;
}

function checkRange(fn: string, ns: bigint): number {
  if (ns > I64_MAX || ns < I64_MIN) throw evalError(fn, 'time outside of valid range');
  return Number(ns);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Offset in seconds of `tz` from UTC at the instant `ns`. */
function offsetAt(fn: string, tz: string, ns: bigint): bigint {
  if (tz === 'UTC' || tz === '') return 0n;
  let f = formatters.get(tz);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz === 'Local' ? undefined : tz,
        hourCycle: 'h23',
        era: 'short',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw evalError(fn, 'unknown time zone');
    }
    if (formatters.size >= 64) formatters.clear();
    formatters.set(tz, f);
  }
  const utcSecs = floorDiv(ns, NS);
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(new Date(Number(utcSecs) * 1000))) parts[p.type] = p.value;
  const year = parts.era === 'BC' || parts.era === 'B' ? 1 - Number(parts.year) : Number(parts.year);
  const wall =
    BigInt(daysFromCivil(year, Number(parts.month), Number(parts.day))) * DAY +
    BigInt(Number(parts.hour) * 3600 + Number(parts.minute) * 60 + Number(parts.second));
  return wall - utcSecs;
}

interface Instant {
  ns: bigint;
  offset: bigint;
}

/** Reads `ns` or `[ns, tz]` (a third "layout" element is accepted and ignored, as regorus). */
function instant(fn: string, args: readonly Value[], i: number): Instant {
  const v = args[i] as Value;
  let n: Value | undefined = v;
  let tz = 'UTC';
  if (Array.isArray(v)) {
    n = v[0];
    const z = v[1];
    if (v.length === 0 || v.length > 3 || (v.length >= 2 && typeof z !== 'string')) {
      throw typeError(fn, i, 'a number or an array [ns, tz]', v);
    }
    if (typeof z === 'string') tz = z;
  }
  if (typeof n !== 'number') throw typeError(fn, i, 'a number or an array [ns, tz]', v);
  if (!Number.isInteger(n) || Math.abs(n) > 9.3e18) throw evalError(fn, 'could not convert ns to int64');
  const ns = BigInt(n);
  checkRange(fn, ns);
  return { ns, offset: offsetAt(fn, tz, ns) };
}

/** Wall-clock days since the epoch and nanoseconds into that day. */
function wall(t: Instant): [number, bigint] {
  const local = t.ns + t.offset * NS;
  const days = floorDiv(local, DAY * NS);
  return [Number(days), local - days * DAY * NS];
}

const WEEKDAYS = ['Thursday', 'Friday', 'Saturday', 'Sunday', 'Monday', 'Tuesday', 'Wednesday'];

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function parseRfc3339(s: string): number {
  const fn = 'time.parse_rfc3339_ns';
  const m = RFC3339.exec(s);
  if (!m) throw evalError(fn, 'could not parse RFC 3339 time');
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || sec > 59) {
    throw evalError(fn, 'time field out of range');
  }
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw evalError(fn, 'time zone offset out of range');
    offset = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const frac = BigInt((m[7] ?? '').padEnd(9, '0'));
  const secs = BigInt(daysFromCivil(y, mo, d)) * DAY + BigInt(h * 3600 + mi * 60 + sec - offset);
  return checkRange(fn, secs * NS + frac);
}

function addDate(t: Instant, years: number, months: number, days: number): number | undefined {
  const [day, tod] = wall(t);
  const [y, m, d] = civilFromDays(day);
  const ny = y + years;
  // chrono's with_year: Feb 29 in a year that has none is no date (undefined, as regorus).
  if (m === 2 && d === 29 && !isLeap(ny)) return undefined;
  // chrono's checked_add_months: the day is clamped to the end of the target month.
  const total = ny * 12 + (m - 1) + months;
  const y2 = Math.floor(total / 12);
  const m2 = total - y2 * 12 + 1;
  const d2 = Math.min(d, daysInMonth(y2, m2));
  const nd = BigInt(daysFromCivil(y2, m2, d2) + days);
  return checkRange('time.add_date', nd * DAY * NS + tod - t.offset * NS);
}

function int32(fn: string, args: readonly Value[], i: number): number {
  const n = int(fn, args, i);
  if (n < -(2 ** 31) || n >= 2 ** 31) throw evalError(fn, `operand ${i + 1} does not fit in an int32`);
  return n;
}

export const TIME_BUILTINS: ReadonlyMap<string, Builtin> = table(
  def('time.now_ns', 0, (_args, ctx) => ctx.nowNs),
  def('time.parse_rfc3339_ns', 1, (args) => parseRfc3339(str('time.parse_rfc3339_ns', args, 0))),
  def('time.date', 1, (args) => civilFromDays(wall(instant('time.date', args, 0))[0])),
  def('time.clock', 1, (args) => {
    const secs = Number(wall(instant('time.clock', args, 0))[1] / NS);
    return [Math.floor(secs / 3600), Math.floor((secs % 3600) / 60), secs % 60];
  }),
  def('time.weekday', 1, (args) => {
    const day = wall(instant('time.weekday', args, 0))[0];
    return WEEKDAYS[((day % 7) + 7) % 7] as string;
  }),
  def('time.add_date', 4, (args) => {
    const t = instant('time.add_date', args, 0);
    return addDate(t, int32('time.add_date', args, 1), int32('time.add_date', args, 2), int32('time.add_date', args, 3));
  }),
);
