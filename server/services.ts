/** Everything the HTTP layer needs, built once at start (server/start.ts) and injected into the app. */
import type { AttestationService } from '../attestation/service.js';
import type { StorageBackend } from '../backends/types.js';
import type { AadTokenBroker } from '../backends/azure-key-vault/aad-tokens.js';
import type { ResourcePolicyStore } from '../policy/store.js';
import type { AdminAuthorizer } from './admin-auth.js';
import type { Logger } from './log.js';
import type { SessionStore } from './sessions.js';
import type { TokenSigner, TokenVerifier } from './tokens.js';

export interface Services {
  log: Logger;
  sessions: SessionStore;
  attestation: AttestationService;
  signer: TokenSigner;
  verifier: TokenVerifier;
  policies: ResourcePolicyStore;
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
}
