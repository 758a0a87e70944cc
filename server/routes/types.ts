import type { ParameterizedContext } from 'koa';
import type { JWTPayload } from 'jose';
import type { AdminIdentity } from '../admin-auth.js';
import type { ResourcePath } from '../../backends/types.js';
import type { Tee } from '../../attestation/types.js';
import type { Logger } from '../log.js';
import type { Session } from '../sessions.js';

/** What the steps of one request hand to each other. */
export interface KbsState {
  /** Set first (server/request-observer.ts): the request id and a logger bound to it. */
  requestId?: string;
  log?: Logger;
  /** /attest: set once the evidence has a verdict (metrics tell verdicts from errors). */
  attestationVerdict?: 'success' | 'failure';
  /** /auth: the TEE of the request. */
  tee?: Tee;
  /** /attest: the session from the cookie and the parsed body. */
  session?: Session;
  body?: unknown;
  /** Plugin name and resource path segments from the URL. */
  plugin?: string;
  segments?: string[];
  token?: string;
  claims?: JWTPayload;
  admin?: AdminIdentity;
  resourcePath?: ResourcePath;
  resource?: Uint8Array;
}

export type KbsContext = ParameterizedContext<KbsState>;
export type Step = (ctx: KbsContext, next: () => Promise<void>) => Promise<void>;
