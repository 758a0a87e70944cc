/** Everything the HTTP layer needs, built once at start (server/start.ts) and injected into the app. */
import type { AttestationPolicyStore } from '../attestation/appraisal-policy-store.js';
import type { ReferenceValueStore } from '../attestation/reference-values/store.js';
import type { AttestationService } from '../attestation/service.js';
import type { StorageBackend } from '../backends/types.js';
import type { AadTokenBroker } from '../backends/azure-key-vault/aad-tokens.js';
import type { ResourcePolicyStore } from '../policy/store.js';
import type { AdminAuthorizer } from './admin-auth.js';
import type { AuditLog } from './audit.js';
import type { CryptoPool } from './crypto-pool.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './log.js';
import type { RateLimiter } from './rate-limit.js';
import type { SessionStore } from './sessions.js';
import type { TokenSigner, TokenVerifier } from './tokens.js';

export interface Services {
  log: Logger;
  sessions: SessionStore;
  attestation: AttestationService;
  signer: TokenSigner;
  verifier: TokenVerifier;
  policies: ResourcePolicyStore;
  /** Attestation (EAR appraisal) policies by id (`default_<class>`). */
  attestationPolicies: AttestationPolicyStore;
  /** The built-in RVPS: reference values for `query_reference_value`. */
  referenceValues: ReferenceValueStore;
  backend: StorageBackend;
  /** The aad-token plugin's token sources, when `[[plugins]] name = "aad-token"` is configured. */
  aadTokens?: AadTokenBroker;
  admin: AdminAuthorizer;
  /** Largest accepted request body, in bytes. */
  payloadLimitBytes: number;
  /** Policy evaluation step budget. */
  policyStepBudget: number;
  /** JSON pointers tried first when looking for the TEE key in token claims. */
  extraTeeKeyPaths: readonly string[];
  /** Set the `Secure` cookie attribute (HTTPS). */
  secureCookies: boolean;
  /** Prometheus metrics (counted always; served on GET /metrics when `metricsEnabled`). */
  metrics: Metrics;
  metricsEnabled: boolean;
  /** The audit log (a no-op when `[audit]` is disabled). */
  audit: AuditLog;
  /** Set when the server starts shutting down: /readyz answers 503 from then on. */
  lifecycle: { draining: boolean };
  /** Worker threads for the JWE key agreements (`crypto_threads`); absent: on the event loop. */
  cryptoPool?: CryptoPool;
  /** Per-client limits on /auth and /attest; absent when `[rate_limit] enabled = false`. */
  rateLimiter?: RateLimiter;
}
