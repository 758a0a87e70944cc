/** `POST /kbs/v0/auth`: the RCAR challenge. */
import { z } from 'zod';
import { TEES, type Tee } from '../../attestation/types.js';
import { parseJson, readRawBody } from '../body.js';
import { sessionCookie } from '../cookie.js';
import { randomBytesPooled } from '../random.js';
import { KbsError } from '../errors.js';
import { countAuth } from '../observe.js';
import type { Services } from '../services.js';
import type { Step } from './types.js';

export const PROTOCOL_VERSION = '0.4.0';

const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

const AuthRequest = z.object({
  version: z.string().max(256),
  tee: z.enum(TEES),
  'extra-params': z.unknown(),
});

function authFailed(cause: string): KbsError {
  return new KbsError('AttestationError', `Attestation error: RCAR handshake Auth failed: ${cause}`);
}

export function authRoute(s: Services): Step[] {
  const readAuthRequest: Step = async (ctx, next) => {
    const body = parseJson(await readRawBody(ctx, s.payloadLimitBytes));
    const parsed = AuthRequest.safeParse(body);
    if (!parsed.success || !('extra-params' in (body as object))) throw authFailed('deserialize Request');
    const m = SEMVER.exec(parsed.data.version);
    if (!m) throw authFailed('failed to parse KBS version');
    if (m[1] !== '0' || m[2] !== '4' || m[3] !== '0' || m[4] !== undefined) {
      throw authFailed(`KBS Client Protocol Version Mismatch: expect =${PROTOCOL_VERSION} while the request is ${parsed.data.version}`);
    }
    ctx.state.tee = parsed.data.tee;
    await next();
  };

  const issueChallenge: Step = async (ctx) => {
    const tee = ctx.state.tee as Tee;
    const nonce = randomBytesPooled(32).toString('base64');
    const session = await s.sessions.create(tee, nonce);
    ctx.set('Set-Cookie', sessionCookie(session.id, session.expiresAt, s.secureCookies));
    ctx.status = 200;
    ctx.body = { nonce, 'extra-params': '' };
  };

  return [countAuth(s), readAuthRequest, issueChallenge];
}
