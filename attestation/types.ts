/**
 * Shared types of the attestation side: TEE names, claims, the verifier contract and the one error
 * type every attestation step throws.
 */
import type { JsonValue } from '../policy/index.js';

/** The `tee` strings of KBS protocol 0.4.0 (kbs-types 0.18 `Tee`, serde names). */
export const TEES = [
  'az-snp-vtpm',
  'az-tdx-vtpm',
  'sgx',
  'snp',
  'tdx',
  'cca',
  'csv',
  'se',
  'tpm',
  'nvidia',
  'hygondcu',
  'sample',
  'sampledevice',
] as const;

export type Tee = (typeof TEES)[number];

export function isTee(value: unknown): value is Tee {
  return typeof value === 'string' && (TEES as readonly string[]).includes(value);
}

/** A JSON object of claims (verifier output, runtime-data claims, init-data claims, EAR claims). */
export type Claims = { [key: string]: JsonValue };

/**
 * The device class a verifier reports its claims under (upstream `TeeClass`): `cpu`, `gpu`, `dcu`,
 * `switch`, … It names the EAR submod (`cpu0`, `gpu0`, …) and selects the appraisal policy
 * (`default_<class>`).
 */
export type TeeClass = string;

/**
 * A TEE evidence verifier (upstream `deps/verifier` `Verifier::evaluate`).
 *
 * `verify` checks the evidence's authenticity, that it binds `expectedReportData` (the runtime-data
 * digest) and, when given, `expectedInitDataHash`; it resolves to the TEE's claims or rejects with an
 * AttestationFailure. A verifier that checks an init-data hash reports it as claim `init_data`; the
 * report data it checked is claim `report_data` (both strings, in the TEE's own encoding).
 */
export interface Verifier {
  readonly tee: Tee;
  /** The device class of the claims (default `cpu`); upstream's sample device is `gpu`. */
  readonly teeClass?: TeeClass;
  verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    expectedInitDataHash: Uint8Array | undefined,
    now: Date,
  ): Promise<Claims>;
}

/** Step names used by this module; verifiers may use finer ones (e.g. `signature`, `certificate-chain`). */
export type AttestationStep =
  | 'request'
  | 'nonce'
  | 'tee-pubkey'
  | 'runtime-data-binding'
  | 'init-data'
  | 'additional-evidence'
  | 'unsupported-tee'
  | 'evidence-format'
  | 'report-data'
  | 'verifier'
  | 'appraisal'
  | (string & {});

/**
 * An attestation that did not succeed. `step` names the failed step. The message is meant for logs
 * and never carries secret material: evidence is referred to by field name only, never quoted.
 */
export class AttestationFailure extends Error {
  readonly step: AttestationStep;

  constructor(step: AttestationStep, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AttestationFailure';
    this.step = step;
  }
}

export function isAttestationFailure(e: unknown): e is AttestationFailure {
  return e instanceof AttestationFailure;
}

/*
 * Member-order helpers reproducing serde_json's `preserve_order` maps (IndexMap), which Trustee is
 * built with: `Map::remove` is `swap_remove` there, so removing a member moves the last member into
 * its place, and `insert` of an existing key keeps its position. Only the order of members in the
 * token depends on this, never their values.
 */

export function isJsonObject(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Builds an object from entries in this order, defining every key as an own data property. */
export function objectFromEntries(entries: ReadonlyArray<readonly [string, JsonValue]>): Claims {
  // Object.fromEntries creates data properties (CreateDataProperty), so even `__proto__` is an own key.
  return Object.fromEntries(entries) as Claims;
}

/**
 * Removes `key` as IndexMap::swap_remove does. Returns the new object and the removed value
 * (undefined when the key is absent; the object is then returned unchanged).
 */
export function swapRemove(obj: Claims, key: string): { object: Claims; removed: JsonValue | undefined } {
  if (!Object.hasOwn(obj, key)) return { object: obj, removed: undefined };
  const entries: Array<[string, JsonValue]> = Object.entries(obj);
  const i = entries.findIndex(([k]) => k === key);
  const removed = (entries[i] as [string, JsonValue])[1];
  const last = entries.pop() as [string, JsonValue];
  if (i < entries.length) entries[i] = last;
  return { object: objectFromEntries(entries), removed };
}

/** Sets `key` as IndexMap::insert does: an existing key keeps its position, a new one goes last. */
export function insertKeepingPosition(obj: Claims, key: string, value: JsonValue): Claims {
  const entries: Array<[string, JsonValue]> = Object.entries(obj);
  const i = entries.findIndex(([k]) => k === key);
  if (i >= 0) entries[i] = [key, value];
  else entries.push([key, value]);
  return objectFromEntries(entries);
}
