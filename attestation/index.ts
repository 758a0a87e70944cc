/** The attestation side of the KBS: verifiers, runtime-data binding, init-data, EAR claims. */
export {
  TEES,
  isTee,
  AttestationFailure,
  isAttestationFailure,
  type Tee,
  type TeeClass,
  type Claims,
  type Verifier,
  type AttestationStep,
} from './types.js';
export {
  canonicalJson,
  CanonicalJsonError,
  CANONICAL_JSON_MAX_DEPTH,
  runtimeDataDigest,
  runtimeDataObject,
  isWellFormedString,
  type RuntimeDataHash,
} from './runtime-data.js';
export { parseInitData, extractPolicyData, INIT_DATA_MAX_BYTES, type InitData, type InitDataAlgorithm } from './init-data.js';
export { SampleVerifier, SampleDeviceVerifier, decodeStdBase64, SAMPLE_MAX_SVN_LENGTH } from './sample/verifier.js';
export { VerifierRegistry, defaultVerifiers, hardwareVerifiers, type HardwareVerifierOptions } from './registry.js';
export {
  buildEarClaims,
  transformClaims,
  EAR_PROFILE,
  EAR_ISSUER,
  EAR_DEVELOPER,
  DEFAULT_VERIFIER_BUILD,
  APPRAISAL_POLICY_ID,
  type EarInput,
  type EarDevice,
} from './ear-token.js';
export {
  AttestationService,
  MAX_ADDITIONAL_DEVICES,
  type AttestationServiceOptions,
  type AttestRequest,
} from './service.js';
