/**
 * The built-in attestation service behind `POST /kbs/v0/attest` (kbs-protocol.md §3.2 steps 5–8 and
 * §6; upstream `kbs/src/attestation/backend.rs` `__attest`, `kbs/src/attestation/coco/builtin.rs`
 * `verify`, `attestation-service/src/lib.rs` `evaluate`, `ear_token/broker.rs` `issue`).
 *
 * `attest` checks the body, the nonce and the runtime-data binding, verifies the primary evidence
 * (and each additional device's), appraises every claim set with the appraisal policy of its device
 * class and returns the unsigned EAR claims. Every failure is an AttestationFailure naming its step.
 * Session handling (cookie, expiry, re-use of an issued token) and signing belong to the server.
 */
import { z } from 'zod';
import { appraise, type Appraisal, type JsonValue, type Policy } from '../policy/index.js';
import { parseTeePubKey } from '../server/tee-pubkey.js';
import { buildEarClaims, DEFAULT_VERIFIER_BUILD, type EarDevice } from './ear-token.js';
import { parseInitData, type InitData } from './init-data.js';
import type { VerifierRegistry } from './registry.js';
import { runtimeDataDigest, type RuntimeDataHash } from './runtime-data.js';
import { AttestationFailure, isJsonObject, isTee, type Claims, type Tee, type TeeClass, type Verifier } from './types.js';

/** Most additional device evidences accepted in one attestation (upstream counts submods in a u8). */
export const MAX_ADDITIONAL_DEVICES = 64;

export interface AttestationServiceOptions {
  verifiers: VerifierRegistry;
  /**
   * The appraisal policy of a device class, looked up at each attestation (e.g. the policy store's
   * `default_<class>`, so that a newly set policy applies to the next attestation). When given,
   * `appraisalPolicy` and `classPolicies` are not used. Undefined: the class has no policy.
   */
  appraisalPolicyFor?: (teeClass: TeeClass) => Policy | undefined;
  /** The `cpu` appraisal policy (`default_cpu`), compiled with APPRAISAL_HOST_FUNCTIONS. */
  appraisalPolicy?: Policy;
  /**
   * Appraisal policies of other device classes (`gpu`, `switch`, `dcu`, …), as upstream's
   * `default_<class>`. A device whose class has no policy fails the appraisal, as upstream does.
   */
  classPolicies?: Readonly<Record<TeeClass, Policy>>;
  /** Backs `query_reference_value(id)`: the stored value, or null when there is none. */
  referenceValue: (id: string) => JsonValue | null;
  /** Token lifetime (`exp - iat`), upstream `duration_min` × 60 (default 5 minutes). */
  tokenLifetimeSeconds: number;
  now?: () => Date;
  /** Keep `additional-evidence` in `runtime_data_claims` (upstream `verbose_token`, default true). */
  verbose?: boolean;
  /** `ear.verifier-id.build` (upstream `build_name`, default `attestation-service 0.1.0`). */
  verifierBuild?: string;
}

export interface AttestRequest {
  /** The `tee` of the session's /auth request. */
  tee: Tee;
  /** The session's challenge nonce. */
  nonce: string;
  /** The parsed /attest JSON body. */
  attestation: unknown;
}

/** kbs-types `Attestation` as serde reads it (unknown members ignored). */
const AttestationBody = z.object({
  'init-data': z.unknown().optional(),
  'runtime-data': z.object({
    nonce: z.string(),
    'tee-pubkey': z.unknown(),
  }),
  'tee-evidence': z.object({
    primary_evidence: z.unknown(),
    additional_evidence: z.string().default(''),
  }),
});

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.code}`)
    .join('; ');
}

/** Upstream hashes the runtime data with SHA-512 for IBM SE and SHA-384 otherwise. */
function runtimeDataHash(tee: Tee): RuntimeDataHash {
  return tee === 'se' ? 'sha512' : 'sha384';
}

function digestFor(tee: Tee, nonce: string, key: object, additionalEvidence: string | undefined): Buffer {
  try {
    return runtimeDataDigest(nonce, key, additionalEvidence, runtimeDataHash(tee));
  } catch (e) {
    throw new AttestationFailure('runtime-data-binding', 'runtime data cannot be canonicalised', { cause: e });
  }
}

/** `additional_evidence`: `""`, or a JSON object string `{"<tee>": <evidence>, …}`. */
function parseAdditionalEvidence(text: string): Array<{ tee: Tee; evidence: unknown }> {
  if (text === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new AttestationFailure('additional-evidence', 'additional_evidence is not valid JSON', { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AttestationFailure('additional-evidence', 'additional_evidence must be a JSON object keyed by TEE');
  }
  const out: Array<{ tee: Tee; evidence: unknown }> = [];
  for (const [tee, evidence] of Object.entries(parsed)) {
    if (!isTee(tee)) throw new AttestationFailure('additional-evidence', 'additional_evidence names an unknown TEE');
    out.push({ tee, evidence });
  }
  if (out.length > MAX_ADDITIONAL_DEVICES) {
    throw new AttestationFailure('additional-evidence', `more than ${MAX_ADDITIONAL_DEVICES} additional evidences`);
  }
  return out;
}

async function runVerifier(
  verifier: Verifier,
  evidence: unknown,
  reportData: Buffer,
  initDataHash: Buffer | undefined,
  now: Date,
): Promise<Claims> {
  let claims: Claims;
  try {
    claims = await verifier.verify(evidence, reportData, initDataHash, now);
  } catch (e) {
    if (e instanceof AttestationFailure) throw e;
    throw new AttestationFailure('verifier', `${verifier.tee} evidence verification failed`, { cause: e });
  }
  if (!isJsonObject(claims)) {
    throw new AttestationFailure('verifier', `${verifier.tee} verifier returned claims that are not a JSON object`);
  }
  return claims;
}

export class AttestationService {
  private readonly verifiers: VerifierRegistry;
  private readonly policyFor: (teeClass: TeeClass) => Policy | undefined;
  private readonly referenceValue: (id: string) => JsonValue | null;
  private readonly lifetimeSeconds: number;
  private readonly now: () => Date;
  private readonly verbose: boolean;
  private readonly verifierBuild: string;

  constructor(options: AttestationServiceOptions) {
    if (!Number.isSafeInteger(options.tokenLifetimeSeconds) || options.tokenLifetimeSeconds <= 0) {
      throw new RangeError('tokenLifetimeSeconds must be a positive integer');
    }
    this.verifiers = options.verifiers;
    if (options.appraisalPolicyFor !== undefined) {
      this.policyFor = options.appraisalPolicyFor;
    } else {
      if (options.appraisalPolicy === undefined) throw new TypeError('appraisalPolicy or appraisalPolicyFor is required');
      const policies = new Map([...Object.entries(options.classPolicies ?? {}), ['cpu', options.appraisalPolicy]]);
      this.policyFor = (teeClass) => policies.get(teeClass);
    }
    this.referenceValue = options.referenceValue;
    this.lifetimeSeconds = options.tokenLifetimeSeconds;
    this.now = options.now ?? (() => new Date());
    this.verbose = options.verbose ?? true;
    this.verifierBuild = options.verifierBuild ?? DEFAULT_VERIFIER_BUILD;
  }

  private verifierFor(tee: Tee): Verifier {
    const verifier = this.verifiers.get(tee);
    if (verifier === undefined) throw new AttestationFailure('unsupported-tee', `no verifier for TEE ${tee}`);
    return verifier;
  }

  private appraise(input: Claims, teeClass: TeeClass, nowNs: number): Appraisal {
    const policy = this.policyFor(teeClass);
    if (policy === undefined) {
      throw new AttestationFailure('appraisal', `no appraisal policy for device class ${teeClass}`);
    }
    return appraise(policy, input, { referenceValue: this.referenceValue, nowNs });
  }

  /** Verifies one /attest body against the session's TEE and nonce; resolves to the EAR claims. */
  async attest(request: AttestRequest): Promise<Claims> {
    const now = this.now();

    const parsed = AttestationBody.safeParse(request.attestation);
    if (!parsed.success) {
      throw new AttestationFailure('request', `invalid attestation body (${describeIssues(parsed.error)})`);
    }
    const body = parsed.data;

    if (body['runtime-data'].nonce !== request.nonce) {
      throw new AttestationFailure('nonce', 'runtime-data nonce differs from the session nonce');
    }

    let teePubKey: object;
    try {
      teePubKey = parseTeePubKey(body['runtime-data']['tee-pubkey']);
    } catch (e) {
      throw new AttestationFailure('tee-pubkey', 'invalid runtime-data tee-pubkey', { cause: e });
    }

    const additionalEvidence = body['tee-evidence'].additional_evidence;
    const reportData = digestFor(request.tee, request.nonce, teePubKey, additionalEvidence);
    const initData: InitData | undefined = parseInitData(body['init-data']);
    const devices = parseAdditionalEvidence(additionalEvidence);

    const primaryVerifier = this.verifierFor(request.tee);
    const deviceVerifiers = devices.map((d) => this.verifierFor(d.tee));

    const teeClaims = await runVerifier(
      primaryVerifier,
      body['tee-evidence'].primary_evidence,
      reportData,
      initData?.digest,
      now,
    );

    // The token carries the projected key, as upstream re-serialises the typed JWK; member order as
    // upstream's `json!` builds the runtime data: tee-pubkey, nonce[, additional-evidence].
    const keyJson = JSON.parse(JSON.stringify(teePubKey)) as JsonValue;
    const verifiedDevices: EarDevice[] = [];
    for (const [i, d] of devices.entries()) {
      const verifier = deviceVerifiers[i] as Verifier;
      const deviceReportData = digestFor(d.tee, request.nonce, teePubKey, undefined);
      const claims = await runVerifier(verifier, d.evidence, deviceReportData, undefined, now);
      verifiedDevices.push({
        tee: d.tee,
        teeClass: verifier.teeClass ?? 'cpu',
        claims,
        runtimeDataClaims: { 'tee-pubkey': keyJson, nonce: request.nonce },
      });
    }

    const nowNs = now.getTime() * 1_000_000;
    return buildEarClaims({
      tee: request.tee,
      teeClass: primaryVerifier.teeClass ?? 'cpu',
      teeClaims,
      runtimeDataClaims: { 'tee-pubkey': keyJson, nonce: request.nonce, 'additional-evidence': additionalEvidence },
      ...(initData !== undefined ? { initData: { claims: initData.claims, digest: initData.digest } } : {}),
      devices: verifiedDevices,
      appraise: (input, teeClass) => this.appraise(input, teeClass, nowNs),
      iat: Math.floor(now.getTime() / 1000),
      lifetimeSeconds: this.lifetimeSeconds,
      verifierBuild: this.verifierBuild,
      verbose: this.verbose,
    });
  }
}
