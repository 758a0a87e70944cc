/**
 * Init-data (kbs-protocol.md §11): the `init-data` member of the /attest body,
 * `{"format": "toml", "body": "<initdata TOML>"}`, as Trustee's attestation service reads it
 * (`attestation-service/src/lib.rs` `parse_init_data`, `extract_policy_data`;
 * `kbs/src/attestation/coco/builtin.rs` `verify` for the format check).
 *
 * - The body is TOML `{version: string, algorithm, data: {string: string}}`; other top-level keys are
 *   ignored. `algorithm` is `sha256`/`sha384`/`sha512`/`sm3` (kbs-types `HashAlgorithm`), also accepted
 *   as the IANA names `sha-256`/`sha-384`/`sha-512` that Trustee's initdata.md uses.
 * - The digest is `algorithm(raw body bytes)`; the verifier compares it with the TEE's init-data field.
 * - The claims are the `data` map, with the values of `cdh.toml` and `aa.toml` converted from TOML to
 *   JSON when they parse (kept as strings otherwise), and `policy.rego` replaced by
 *   `agent_policy_claims` (the JSON object after `policy_data := `) when that object is extractable.
 */
import { createHash, getHashes } from 'node:crypto';
import { parse as parseToml, TomlDate } from 'smol-toml';
import type { JsonValue } from '../policy/index.js';
import { isWellFormedString } from './runtime-data.js';
import {
  AttestationFailure,
  insertKeepingPosition,
  objectFromEntries,
  swapRemove,
  type Claims,
} from './types.js';

/** Largest accepted init-data body, in UTF-8 bytes. */
export const INIT_DATA_MAX_BYTES = 64 * 1024;

export type InitDataAlgorithm = 'sha256' | 'sha384' | 'sha512' | 'sm3';

export interface InitData {
  /** `algorithm(raw body bytes)`. */
  digest: Buffer;
  /** The normalised algorithm name (`sha256`, `sha384`, `sha512` or `sm3`). */
  algorithm: InitDataAlgorithm;
  /** The `init_data_claims` of the token. */
  claims: Claims;
}

const ALGORITHMS: Readonly<Record<string, InitDataAlgorithm>> = {
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
  sm3: 'sm3',
  'sha-256': 'sha256',
  'sha-384': 'sha384',
  'sha-512': 'sha512',
};

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** Nesting limit for TOML documents (inline tables/arrays) and for `policy_data` JSON. */
const MAX_DEPTH = 127;

function fail(message: string, cause?: unknown): AttestationFailure {
  return new AttestationFailure('init-data', message, cause === undefined ? undefined : { cause });
}

class NotRepresentable extends Error {}

/**
 * toml_datetime's Display form: `T` separator, fractional seconds only when non-zero and without
 * trailing zeros, `Z` or `±hh:mm`. (TomlDate keeps milliseconds; finer digits are lost.)
 */
function tomlDatetimeString(d: TomlDate): string {
  return d.toISOString().replace(/\.(\d+)/, (_m, frac: string) => {
    const t = frac.replace(/0+$/, '');
    return t === '' ? '' : `.${t}`;
  });
}

/**
 * A parsed TOML value as `serde_json::to_value(toml::Value)` renders it: integers and floats as
 * numbers (non-finite floats as null), datetimes as `{"$__toml_private_datetime": "<text>"}`.
 * Throws NotRepresentable for an integer outside i64 (the toml crate rejects the document).
 */
function tomlToJson(v: unknown, depth: number): JsonValue {
  if (depth > MAX_DEPTH) throw new NotRepresentable('too deep');
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'bigint') {
    if (v < I64_MIN || v > I64_MAX) throw new NotRepresentable('integer outside i64');
    return Number(v);
  }
  if (v instanceof TomlDate) return objectFromEntries([['$__toml_private_datetime', tomlDatetimeString(v)]]);
  if (Array.isArray(v)) return v.map((x) => tomlToJson(x, depth + 1));
  if (typeof v === 'object' && v !== null) {
    return objectFromEntries(Object.entries(v).map(([k, x]) => [k, tomlToJson(x, depth + 1)] as const));
  }
  throw new NotRepresentable('unexpected TOML value');
}

/** Parses a TOML document into a JSON object, or returns undefined when the toml crate would refuse it. */
function parseTomlDocument(text: string): Claims | undefined {
  let doc: unknown;
  try {
    doc = parseToml(text, { integersAsBigInt: 'asNeeded', maxDepth: MAX_DEPTH });
  } catch {
    return undefined;
  }
  try {
    const json = tomlToJson(doc, 0);
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? json : undefined;
  } catch (e) {
    if (e instanceof NotRepresentable) return undefined;
    throw e;
  }
}

/** What serde_json would refuse in a JSON.parse result: lone surrogates, non-finite numbers, depth. */
function serdeJsonAccepts(v: JsonValue, depth: number): boolean {
  if (typeof v === 'string') return isWellFormedString(v);
  if (typeof v === 'number') return Number.isFinite(v);
  if (v === null || typeof v === 'boolean') return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(v)) return v.every((x) => serdeJsonAccepts(x, depth + 1));
  return Object.entries(v).every(([k, x]) => isWellFormedString(k) && serdeJsonAccepts(x, depth + 1));
}

const POLICY_DATA_START = 'policy_data := {';

/**
 * Upstream `extract_policy_data`: the JSON value starting at the `{` of the first
 * `policy_data := {` and running to the end of the text (only whitespace may follow it), or
 * undefined when there is none or it does not parse.
 */
export function extractPolicyData(rego: string): JsonValue | undefined {
  const start = rego.indexOf(POLICY_DATA_START);
  if (start < 0) return undefined;
  const jsonText = rego.slice(start + POLICY_DATA_START.length - 1);
  let value: JsonValue;
  try {
    value = JSON.parse(jsonText) as JsonValue;
  } catch {
    return undefined;
  }
  return serdeJsonAccepts(value, 0) ? value : undefined;
}

function initDataClaims(data: ReadonlyArray<readonly [string, string]>): Claims {
  let claims = objectFromEntries(data);
  for (const key of ['cdh.toml', 'aa.toml']) {
    const text = Object.hasOwn(claims, key) ? claims[key] : undefined;
    if (typeof text !== 'string') continue;
    const json = parseTomlDocument(text);
    if (json !== undefined) claims = insertKeepingPosition(claims, key, json);
  }
  const rego = Object.hasOwn(claims, 'policy.rego') ? claims['policy.rego'] : undefined;
  if (typeof rego === 'string') {
    const policyData = extractPolicyData(rego);
    if (policyData !== undefined) {
      claims = swapRemove(claims, 'policy.rego').object;
      claims = insertKeepingPosition(claims, 'agent_policy_claims', policyData);
    }
  }
  return claims;
}

function digestWith(algorithm: InitDataAlgorithm, bytes: Buffer): Buffer {
  if (algorithm === 'sm3' && !getHashes().includes('sm3')) {
    throw fail('init-data algorithm sm3 is not supported by this runtime');
  }
  return createHash(algorithm).update(bytes).digest();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses the `init-data` member of an /attest body. Absent or null gives undefined (no init-data);
 * anything unacceptable throws AttestationFailure with step `init-data`.
 */
export function parseInitData(initData: unknown): InitData | undefined {
  if (initData === undefined || initData === null) return undefined;
  if (!isRecord(initData)) throw fail('init-data must be an object with "format" and "body"');
  const { format, body } = initData;
  if (typeof format !== 'string') throw fail('init-data "format" must be a string');
  if (typeof body !== 'string') throw fail('init-data "body" must be a string');
  if (format !== 'toml') throw fail('unsupported init-data format (only "toml" is accepted)');
  if (!isWellFormedString(body)) throw fail('init-data body is not valid Unicode');
  const bytes = Buffer.from(body, 'utf8');
  if (bytes.length > INIT_DATA_MAX_BYTES) {
    throw fail(`init-data body exceeds ${INIT_DATA_MAX_BYTES} bytes`);
  }

  let doc: Record<string, unknown>;
  try {
    doc = parseToml(body, { integersAsBigInt: 'asNeeded', maxDepth: MAX_DEPTH }) as Record<string, unknown>;
    tomlToJson(doc, 0); // the toml crate refuses the whole document for an out-of-range integer
  } catch (e) {
    throw fail('init-data body is not valid TOML', e instanceof NotRepresentable ? undefined : e);
  }

  const version = doc['version'];
  if (typeof version !== 'string') throw fail('init-data "version" must be a string');
  const algorithmName = doc['algorithm'];
  if (typeof algorithmName !== 'string') throw fail('init-data "algorithm" must be a string');
  if (!Object.hasOwn(ALGORITHMS, algorithmName)) {
    throw fail('init-data "algorithm" must be one of sha256, sha384, sha512, sm3');
  }
  const algorithm = ALGORITHMS[algorithmName] as InitDataAlgorithm;
  const data = doc['data'];
  if (!isRecord(data) || data instanceof TomlDate) throw fail('init-data "data" must be a table');
  const entries: Array<readonly [string, string]> = [];
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== 'string') throw fail('every init-data "data" value must be a string');
    entries.push([k, v]);
  }

  return { digest: digestWith(algorithm, bytes), algorithm, claims: initDataClaims(entries) };
}
