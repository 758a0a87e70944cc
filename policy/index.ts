/** The Rego policy engine: public API. */
export { compile, Policy, parseRulePath } from './policy.js';
export type { CompileOptions, EvaluateOptions, EvaluationDocuments, RuleFailure } from './policy.js';
export { PolicyError, isPolicyError } from './errors.js';
export type { PolicyErrorCode, SourcePosition } from './errors.js';
export { evaluateResourcePolicy, resourcePolicyData, RESOURCE_RULE } from './resource.js';
export type { ResourceDecision, ResourceRequest } from './resource.js';
export {
  appraise,
  statusOf,
  tierOf,
  trustVectorFromClaims,
  TRUST_CLAIMS,
  APPRAISAL_HOST_FUNCTIONS,
} from './ear.js';
export type { Appraisal, AppraiseOptions, EarExtension, EarStatus, TrustClaimName, TrustVector } from './ear.js';
export { packageRoot, samplePolicyText, samplesDir, SAMPLE_POLICIES } from './samples.js';
export type { SamplePolicyName } from './samples.js';
export type { JsonValue, Value } from './value.js';
export type { HostFunction } from './evaluator.js';
export { ResourcePolicyStore } from './store.js';
