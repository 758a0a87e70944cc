/**
 * RVPS messages and the `sample` extractor (kbs-protocol.md §3.7; upstream `rvps/src/lib.rs`
 * `verify_and_extract`, `rvps/src/extractors/sample/mod.rs`, `rvps/src/reference_value.rs`).
 *
 * A message is the JSON text `{"version": "0.1.0", "type": "sample", "payload": "<std base64>"}`
 * (`version` defaults to 0.1.0 when absent, other members are ignored, as serde reads it). The
 * `sample` payload decodes to a JSON object `{<name>: <value>, …}`; every member becomes one
 * reference value named `<name>` whose value is stored as given (usually an array of accepted
 * values), expiring 12 calendar months after registration.
 *
 * Stricter than upstream, so that nothing unexpected reaches the store: names are limited to the
 * storage key characters upstream's file backend accepts (and may not start with `.`), integers
 * must be exact in a double, and each message and value is size-capped.
 */
import { z } from 'zod';

/** The only RVPS message version upstream accepts. */
export const RVPS_MESSAGE_VERSION = '0.1.0';
/** The version upstream writes into each stored reference value. */
export const REFERENCE_VALUE_VERSION = '0.1.0';
/** Upstream `MONTHS_BEFORE_EXPIRATION`. */
export const MONTHS_BEFORE_EXPIRATION = 12;

export const REFERENCE_VALUE_LIMITS = Object.freeze({
  /** Longest reference value name; its file name (`/` written as `\x2F`) must also fit in 255 bytes. */
  nameLength: 200,
  /** Most reference values one message may carry. */
  valuesPerMessage: 1024,
  /** Largest stored record (the serialised `{version, name, expiration, value}`), bytes. */
  recordBytes: 256 * 1024,
  /** Deepest nesting of a value. */
  valueDepth: 32,
});

/** One reference value as upstream's RVPS stores it (`ReferenceValue`, serde field order). */
export interface ReferenceValueRecord {
  version: string;
  name: string;
  /** `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds). */
  expiration: string;
  value: JsonValue;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A message that cannot be registered; `message` is safe to return to the admin. */
export class RvpsMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RvpsMessageError';
  }
}

/** Upstream's storage key characters (`is_valid_key`), without a leading dot. */
const NAME = /^[A-Za-z0-9_\-/][A-Za-z0-9_\-./]*$/;

export function isValidReferenceValueName(name: string): boolean {
  return name.length <= REFERENCE_VALUE_LIMITS.nameLength && NAME.test(name) && fileNameLength(name) <= 255;
}

/** Length of the file name a name is stored under (`/` written as the 4 characters `\x2F`). */
function fileNameLength(name: string): number {
  return name.length + 3 * (name.split('/').length - 1);
}

const Message = z.object({
  version: z.string().default(RVPS_MESSAGE_VERSION),
  payload: z.string(),
  type: z.string(),
});

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Rust's `STANDARD` engine: padded, canonical (no stray trailing bits). */
function decodeStdBase64(text: string): Buffer | undefined {
  if (!STD_BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function clip(s: string): string {
  return s.length > 40 ? `${JSON.stringify(s.slice(0, 40))}…` : JSON.stringify(s);
}

/** Rejects what JSON.parse would silently change (inexact integers) and absurd nesting. */
function checkValue(v: JsonValue, name: string, depth = 0): void {
  if (depth > REFERENCE_VALUE_LIMITS.valueDepth) throw new RvpsMessageError(`reference value ${clip(name)} is nested too deeply`);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new RvpsMessageError(`reference value ${clip(name)} holds an integer that is not exact in a double (beyond ±2^53)`);
    }
  } else if (Array.isArray(v)) {
    for (const x of v) checkValue(x, name, depth + 1);
  } else if (v !== null && typeof v === 'object') {
    for (const x of Object.values(v)) checkValue(x, name, depth + 1);
  }
}

/** `%Y-%m-%dT%H:%M:%SZ` of an instant, seconds truncated. */
export function formatExpiration(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** chrono `checked_add_months`: the same day N months later, clamped to the month's last day. */
export function addMonths(date: Date, months: number): Date {
  const y = date.getUTCFullYear();
  const m = date.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const out = new Date(date.getTime());
  out.setUTCDate(1);
  out.setUTCFullYear(y, m, Math.min(date.getUTCDate(), lastDay));
  return out;
}

const EXPIRATION = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** Parses a stored expiration (`%Y-%m-%dT%H:%M:%SZ`); undefined when it is not one. */
export function parseExpiration(text: string): Date | undefined {
  const m = EXPIRATION.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  const ok =
    date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
  return ok ? date : undefined;
}

/**
 * Parses one RVPS message and runs its extractor; returns the reference values to store (in
 * payload order; a name given twice keeps its last value, as upstream's map does).
 */
export function extractReferenceValues(text: string, now: Date): ReferenceValueRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RvpsMessageError('parse message: not valid JSON');
  }
  const parsed = Message.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `field \`${issue.path.join('.')}\`` : 'message';
    throw new RvpsMessageError(`parse message: ${where} is missing or not a string (expected {"version","type","payload"})`);
  }
  const message = parsed.data;
  if (message.version !== RVPS_MESSAGE_VERSION) {
    throw new RvpsMessageError(`Version unmatched! Need ${RVPS_MESSAGE_VERSION}, given ${clip(message.version)}.`);
  }
  if (message.type !== 'sample') {
    throw new RvpsMessageError(`Could not find extractor for ${clip(message.type)} (this RVPS supports "sample")`);
  }
  return sampleExtractor(message.payload, now);
}

/** Upstream `SampleExtractor::verify_and_extract`. */
export function sampleExtractor(payload: string, now: Date): ReferenceValueRecord[] {
  const bytes = decodeStdBase64(payload);
  if (bytes === undefined) throw new RvpsMessageError('base64 decode: the payload is not standard base64 with padding');
  let provenance: unknown;
  try {
    provenance = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new RvpsMessageError('deserialize sample provenance: the payload is not a JSON document');
  }
  if (provenance === null || typeof provenance !== 'object' || Array.isArray(provenance)) {
    throw new RvpsMessageError('deserialize sample provenance: the payload must be a JSON object of name → value');
  }
  const entries = Object.entries(provenance as Record<string, JsonValue>);
  if (entries.length > REFERENCE_VALUE_LIMITS.valuesPerMessage) {
    throw new RvpsMessageError(`a message may carry at most ${REFERENCE_VALUE_LIMITS.valuesPerMessage} reference values`);
  }
  const expiration = formatExpiration(addMonths(new Date(Math.floor(now.getTime() / 1000) * 1000), MONTHS_BEFORE_EXPIRATION));
  return entries.map(([name, value]) => {
    if (!isValidReferenceValueName(name)) {
      throw new RvpsMessageError(
        `invalid reference value name ${clip(name)}: use 1-${REFERENCE_VALUE_LIMITS.nameLength} of A-Z a-z 0-9 - _ . /, not starting with "."`,
      );
    }
    checkValue(value, name);
    const record: ReferenceValueRecord = { version: REFERENCE_VALUE_VERSION, name, expiration, value };
    if (Buffer.byteLength(JSON.stringify(record)) > REFERENCE_VALUE_LIMITS.recordBytes) {
      throw new RvpsMessageError(`reference value ${clip(name)} is larger than ${REFERENCE_VALUE_LIMITS.recordBytes} bytes`);
    }
    return record;
  });
}
