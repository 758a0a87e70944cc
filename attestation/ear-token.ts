/**
 * The EAR claims set Trustee's attestation service issues (kbs-protocol.md §7.1, policy.md §4.1;
 * upstream `attestation-service/src/ear_token/broker.rs` `issue`, `transform_claims`, and the
 * serialisation of `rust-ear` 0.5 `Ear`/`Appraisal`):
 *
 * ```
 * { eat_profile, iat, "ear.verifier-id": {developer, build},
 *   submods: { cpu0: { "ear.status", "ear.trustworthiness-vector", "ear.appraisal-policy-id",
 *                      "ear.veraison.annotated-evidence", <policy extensions by name> }, gpu0: … },
 *   exp, iss }
 * ```
 *
 * The claims are unsigned; the server signs them (ES256 JWT).
 */
import type { Appraisal } from '../policy/index.js';
import { TRUST_CLAIMS, type JsonValue } from '../policy/index.js';
import {
  AttestationFailure,
  isJsonObject,
  objectFromEntries,
  swapRemove,
  type Claims,
  type Tee,
  type TeeClass,
} from './types.js';

export const EAR_PROFILE = 'tag:github.com,2024:confidential-containers/Trustee';
export const EAR_ISSUER = 'CoCo-Attestation-Service';
export const EAR_DEVELOPER = 'https://confidentialcontainers.org';
/** Upstream's default `build_name` (`<crate> <version>` of the attestation service). */
export const DEFAULT_VERIFIER_BUILD = 'attestation-service 0.1.0';
/** The policy id the KBS always asks for; the token carries it as `ear.appraisal-policy-id`. */
export const APPRAISAL_POLICY_ID = 'default';

/** Appraisal members of rust-ear; a policy extension may not reuse these names. */
const RESERVED_SUBMOD_MEMBERS = new Set([
  'ear.status',
  'ear.trustworthiness-vector',
  'ear.appraisal-policy-id',
  'ear.veraison.annotated-evidence',
  'ear.veraison.policy-claims',
  'ear.veraison.key-attestation',
]);

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Upstream `transform_claims`: moves the verifier's `init_data` and `report_data` claims next to the
 * TEE's claims, adding `init_data_claims` (with `init_data`) and `runtime_data_claims` (with
 * `report_data`; without `additional-evidence` unless verbose). The result is both the appraisal
 * policy's `input` and the submod's `ear.veraison.annotated-evidence`; its members are sorted by name
 * (a BTreeMap upstream).
 */
export function transformClaims(
  teeClaims: Claims,
  initDataClaims: JsonValue,
  runtimeDataClaims: JsonValue,
  tee: Tee,
  verbose: boolean,
): Claims {
  const out = new Map<string, JsonValue>();
  let claims = teeClaims;

  const initData = swapRemove(claims, 'init_data');
  claims = initData.object;
  if (initData.removed !== undefined) {
    if (typeof initData.removed !== 'string') {
      throw new AttestationFailure('verifier', `${tee} verifier reported a non-string init_data claim`);
    }
    out.set('init_data', initData.removed);
    out.set('init_data_claims', initDataClaims);
  }

  const reportData = swapRemove(claims, 'report_data');
  claims = reportData.object;
  if (reportData.removed !== undefined) {
    if (typeof reportData.removed !== 'string') {
      throw new AttestationFailure('verifier', `${tee} verifier reported a non-string report_data claim`);
    }
    out.set('report_data', reportData.removed);
    let rdc = runtimeDataClaims;
    if (!verbose && isJsonObject(rdc)) rdc = swapRemove(rdc, 'additional-evidence').object;
    out.set('runtime_data_claims', rdc);
  }

  out.set(tee, claims);
  return objectFromEntries([...out.entries()].sort(([a], [b]) => byCodeUnits(a, b)));
}

export interface EarDevice {
  tee: Tee;
  /** Device class of the claims (default `cpu`). */
  teeClass?: TeeClass;
  claims: Claims;
  runtimeDataClaims: Claims;
}

export interface EarInput {
  tee: Tee;
  /** Device class of the primary claims (default `cpu`). */
  teeClass?: TeeClass;
  teeClaims: Claims;
  /** `{"tee-pubkey", "nonce", "additional-evidence"}` for the primary evidence. */
  runtimeDataClaims: Claims;
  /**
   * The primary evidence's init-data. Its claims become `init_data_claims` when the verifier reported
   * an `init_data` claim (which carries the digest in the TEE's own encoding; `digest` is not used).
   */
  initData?: { claims: Claims; digest?: Uint8Array };
  /** Additional devices (runtime data `{"tee-pubkey", "nonce"}`, no init-data). */
  devices?: EarDevice[];
  /** Runs the appraisal policy for the device class on one `transform_claims` result. */
  appraise: (input: Claims, teeClass: TeeClass) => Appraisal;
  /** Seconds since the epoch (integer). */
  iat: number;
  lifetimeSeconds: number;
  verifierBuild: string;
  /** Keep `additional-evidence` in `runtime_data_claims` (upstream `verbose_token`, default true). */
  verbose?: boolean;
  profile?: string;
  developer?: string;
  issuer?: string;
  policyId?: string;
}

function trustVectorJson(appraisal: Appraisal): Claims {
  const entries: Array<[string, JsonValue]> = [];
  for (const name of TRUST_CLAIMS) {
    const v = appraisal.trustVector[name];
    if (v !== undefined) entries.push([name, v]);
  }
  return objectFromEntries(entries);
}

function submod(annotatedEvidence: Claims, appraisal: Appraisal, policyId: string, name: string): Claims {
  const entries: Array<[string, JsonValue]> = [['ear.status', appraisal.status]];
  const vector = trustVectorJson(appraisal);
  if (Object.keys(vector).length > 0) entries.push(['ear.trustworthiness-vector', vector]);
  entries.push(['ear.appraisal-policy-id', policyId]);
  entries.push(['ear.veraison.annotated-evidence', annotatedEvidence]);

  // rust-ear `Extensions`: one registration per name and per key; serialised by name, null skipped.
  const names = new Set<string>();
  const keys = new Set<number>();
  const extensions: Array<[string, JsonValue]> = [];
  for (const ext of appraisal.extensions) {
    if (RESERVED_SUBMOD_MEMBERS.has(ext.name)) {
      throw new AttestationFailure('appraisal', `appraisal extension for ${name} reuses a reserved member name`);
    }
    if (names.has(ext.name) || keys.has(ext.key)) {
      throw new AttestationFailure('appraisal', `appraisal extensions for ${name} register a name or key twice`);
    }
    names.add(ext.name);
    keys.add(ext.key);
    if (ext.value !== null) extensions.push([ext.name, ext.value]);
  }
  extensions.sort(([a], [b]) => byCodeUnits(a, b));
  return objectFromEntries([...entries, ...extensions]);
}

/** Builds the unsigned EAR claims set for one attestation (primary evidence plus devices). */
export function buildEarClaims(input: EarInput): Claims {
  if (!Number.isSafeInteger(input.iat)) throw new RangeError('iat must be an integer');
  if (!Number.isSafeInteger(input.lifetimeSeconds) || input.lifetimeSeconds < 0) {
    throw new RangeError('lifetimeSeconds must be a non-negative integer');
  }
  const verbose = input.verbose ?? true;
  const policyId = input.policyId ?? APPRAISAL_POLICY_ID;

  const evidence: Array<{ tee: Tee; teeClass: TeeClass; annotated: Claims }> = [
    {
      tee: input.tee,
      teeClass: input.teeClass ?? 'cpu',
      annotated: transformClaims(
        input.teeClaims,
        input.initData?.claims ?? null,
        input.runtimeDataClaims,
        input.tee,
        verbose,
      ),
    },
  ];
  for (const d of input.devices ?? []) {
    evidence.push({
      tee: d.tee,
      teeClass: d.teeClass ?? 'cpu',
      annotated: transformClaims(d.claims, null, d.runtimeDataClaims, d.tee, verbose),
    });
  }

  const classIndex = new Map<TeeClass, number>();
  const submods: Array<[string, JsonValue]> = [];
  for (const e of evidence) {
    const index = classIndex.has(e.teeClass) ? (classIndex.get(e.teeClass) as number) + 1 : 0;
    classIndex.set(e.teeClass, index);
    const name = `${e.teeClass}${index}`;
    let appraisal: Appraisal;
    try {
      appraisal = input.appraise(e.annotated, e.teeClass);
    } catch (err) {
      if (err instanceof AttestationFailure) throw err;
      const code = typeof err === 'object' && err !== null && 'code' in err ? ` (${String(err.code)})` : '';
      throw new AttestationFailure('appraisal', `appraisal policy failed for ${name}${code}`, { cause: err });
    }
    submods.push([name, submod(e.annotated, appraisal, policyId, name)]);
  }
  submods.sort(([a], [b]) => byCodeUnits(a, b));

  return objectFromEntries([
    ['eat_profile', input.profile ?? EAR_PROFILE],
    ['iat', input.iat],
    [
      'ear.verifier-id',
      objectFromEntries([
        ['developer', input.developer ?? EAR_DEVELOPER],
        ['build', input.verifierBuild],
      ]),
    ],
    ['submods', objectFromEntries(submods)],
    ['exp', input.iat + input.lifetimeSeconds],
    ['iss', input.issuer ?? EAR_ISSUER],
  ]);
}
