/** `POST /kbs/v0/attest`: verify the evidence of an authed session and issue the attestation token. */
import { AttestationFailure } from '../../attestation/types.js';
import { parseJson, readRawBody } from '../body.js';
import { readSessionCookie, sessionCookie } from '../cookie.js';
import { KbsError } from '../errors.js';
import { attestationVerdict, countAttestation } from '../observe.js';
import type { Services } from '../services.js';
import type { AuthedSession, Session } from '../sessions.js';
import type { KbsContext, Step } from './types.js';

/** Upstream's only detail for every /attest failure; the cause is logged, never sent. */
function attestFailed(cause: string): KbsError {
  return new KbsError('AttestationError', 'Attestation error: RCAR handshake Attest failed', { cause });
}

export function attestRoute(s: Services): Step[] {
  const loadSession: Step = async (ctx, next) => {
    const id = readSessionCookie(ctx.get('Cookie'));
    if (!id) throw attestFailed('no kbs-session-id cookie');
    const raw = await readRawBody(ctx, s.payloadLimitBytes);
    const body = parseJson(raw);
    if (body === undefined) throw attestFailed('the body is not JSON');
    const session = await s.sessions.get(id);
    if (!session) throw attestFailed('unknown or expired session');
    ctx.state.session = session;
    ctx.state.body = body;
    await next();
  };

  const reuseIssuedToken: Step = async (ctx, next) => {
    const session = ctx.state.session as Session;
    if (session.state !== 'attested') return next();
    respond(ctx, session.id, session.expiresAt, session.token, s.secureCookies);
  };

  const verifyAndIssue: Step = async (ctx) => {
    const session = ctx.state.session as AuthedSession;
    const body = ctx.state.body;
    let claims;
    try {
      claims = await s.attestation.attest({ tee: session.tee, nonce: session.nonce, attestation: body });
    } catch (e) {
      if (e instanceof AttestationFailure) {
        await attestationVerdict(s, ctx, session.tee, e);
        // The detail names the failed step (a stable word, never evidence); the message is logged.
        throw new KbsError('AttestationError', `Attestation error: RCAR handshake Attest failed: ${e.step}`, {
          cause: `${e.step}: ${e.message}`,
        });
      }
      throw e;
    }
    const token = await s.signer.sign(claims);
    s.verifier.rememberIssued(token, s.signer);
    const attested = await s.sessions.attest(session.id, token);
    if (!attested) throw attestFailed('the session expired during attestation');
    await attestationVerdict(s, ctx, session.tee);
    respond(ctx, attested.id, attested.expiresAt, token, s.secureCookies);
  };

  return [countAttestation(s), loadSession, reuseIssuedToken, verifyAndIssue];
}

function respond(ctx: KbsContext, id: string, expiresAt: number, token: string, secure: boolean): void {
  ctx.set('Set-Cookie', sessionCookie(id, expiresAt, secure));
  ctx.status = 200;
  ctx.body = { token };
}
