/**
 * Metrics and audit records at the named steps of the routes, kept here so the route files stay
 * about the protocol. Counter names and where they move follow Trustee's KBS; audit records carry
 * fingerprints of session ids and tokens, never the values.
 */
import type { AttestationFailure, Tee } from '../attestation/types.js';
import { readSessionCookie } from './cookie.js';
import { fingerprint, type AuditRecord } from './audit.js';
import { isKbsError } from './errors.js';
import type { Logger } from './log.js';
import type { Services } from './services.js';
import type { AdminIdentity } from './admin-auth.js';
import { adminWho } from './routes/admin.js';
import type { KbsContext, Step } from './routes/types.js';

/** The request's logger (bound to its request id), or the server's outside a request. */
export function reqLog(ctx: KbsContext, s: Services): Logger {
  return ctx.state.log ?? s.log;
}

function errorName(e: unknown): string {
  return isKbsError(e) ? e.code : 'InternalError';
}

function sessionFingerprint(ctx: KbsContext): string | undefined {
  const id = readSessionCookie(ctx.get('Cookie'));
  return id ? fingerprint(id) : undefined;
}

function who(admin: AdminIdentity | undefined): AuditRecord[string] {
  return { subject: admin?.subject ?? null, role: admin?.role ?? null };
}

/** First step of /auth: kbs_auth_requests_total, then _successes_total or _errors_total. */
export function countAuth(s: Services): Step {
  return async function countAuthRequest(_ctx, next) {
    s.metrics.authRequests.inc();
    try {
      await next();
    } catch (e) {
      s.metrics.authErrors.inc();
      throw e;
    }
    s.metrics.authSuccesses.inc();
  };
}

/**
 * First step of /attest: kbs_attestation_requests_total; a failure before or around the evidence
 * verification (no cookie, bad body, unknown session) is kbs_attestation_errors_total. Verdicts are
 * counted by `attestationVerdict`.
 */
export function countAttestation(s: Services): Step {
  return async function countAttestationRequest(ctx, next) {
    s.metrics.attestationRequests.inc();
    try {
      await next();
    } catch (e) {
      if (ctx.state.attestationVerdict === undefined) s.metrics.attestationErrors.inc();
      throw e;
    }
  };
}

/** The evidence verdict: counter by `tee_type`, log line and audit record. */
export async function attestationVerdict(s: Services, ctx: KbsContext, tee: Tee, failure?: AttestationFailure): Promise<void> {
  ctx.state.attestationVerdict = failure ? 'failure' : 'success';
  const log = reqLog(ctx, s);
  if (failure) {
    s.metrics.attestationFailures.inc({ tee_type: tee });
    log.warn({ tee, step: failure.step, reason: failure.message }, 'attestation failed');
  } else {
    s.metrics.attestationSuccesses.inc({ tee_type: tee });
    log.info({ tee }, 'attestation succeeded');
  }
  await s.audit.write(
    {
      event: 'attestation',
      tee,
      verdict: failure ? 'failure' : 'success',
      ...(failure ? { step: failure.step, reason: failure.message } : {}),
      session: sessionFingerprint(ctx),
    },
    ctx.state.requestId,
  );
}

/** Policy evaluation errors (as opposed to a policy that says no), by the decision's reason. */
function isPolicyError(reason: string): boolean {
  return reason.startsWith('policy evaluation error') || reason.includes('is not a boolean') || reason.includes('package is');
}

/**
 * A resource policy decision: evaluation, approval, violation and error counters; a denial is
 * logged and audited here (the allow is audited when the release completes, `auditRelease`).
 */
export async function policyDecision(s: Services, ctx: KbsContext, resource: string, decision: { allow: boolean; reason: string }): Promise<void> {
  s.metrics.policyEvaluations.inc();
  if (decision.allow) {
    s.metrics.policyApprovals.inc();
    return;
  }
  if (isPolicyError(decision.reason)) s.metrics.policyErrors.inc();
  else s.metrics.policyViolations.inc();
  reqLog(ctx, s).info({ resource, reason: decision.reason }, 'release denied by policy');
  if (s.audit.enabled) await s.audit.write(releaseRecord(ctx, resource, 'deny', { reason: decision.reason, released: false }), ctx.state.requestId);
}

function releaseRecord(ctx: KbsContext, resource: string, decision: 'allow' | 'deny', extra: Record<string, AuditRecord[string]>): AuditRecord {
  const token = ctx.state.token;
  return {
    event: 'resource.release',
    resource,
    decision,
    ...extra,
    token: token === undefined ? undefined : fingerprint(token),
    session: sessionFingerprint(ctx),
  };
}

/**
 * Placed right after the policy step of a release: once the secret is encrypted (the body set but
 * not yet sent), the allow is audited; when the audit log is required and the record cannot be
 * written, the release is refused (503) and the body never leaves. A failure after the policy
 * allowed (no such resource, JWE error) is audited with its error code.
 */
export function auditRelease(s: Services): Step {
  return async function auditReleaseDecision(ctx, next) {
    const resource = (ctx.state.segments ?? []).join('/');
    try {
      await next();
    } catch (e) {
      if (s.audit.enabled) await s.audit.write(releaseRecord(ctx, resource, 'allow', { released: false, error: errorName(e) }), ctx.state.requestId);
      throw e;
    }
    // Records (and their fingerprints) are only built when there is an audit log to take them.
    if (s.audit.enabled) await s.audit.require(releaseRecord(ctx, resource, 'allow', { released: true }), ctx.state.requestId);
    s.metrics.resourceReads.inc({ resource_path: s.metrics.resourcePathLabel(resource) });
    reqLog(ctx, s).info({ resource }, 'resource released');
  };
}

export type AdminAction = 'resource.write' | 'resource.delete' | 'resource-policy.set';

const ADMIN_MESSAGES: Readonly<Record<AdminAction, string>> = {
  'resource.write': 'resource written',
  'resource.delete': 'resource deleted',
  'resource-policy.set': 'resource policy set',
};

/**
 * An admin change: audited before it happens (when required and the record cannot be written, it
 * does not happen: 503) and again with its outcome. `change` returns fields for the outcome record
 * and log line (sizes, hashes; never values).
 */
export async function adminChange(
  s: Services,
  ctx: KbsContext,
  action: AdminAction,
  resource: string | undefined,
  change: () => Promise<Record<string, string | number>>,
): Promise<void> {
  const base: AuditRecord = { event: 'admin.change', action, resource, by: who(ctx.state.admin) };
  await s.audit.require({ ...base, outcome: 'requested' }, ctx.state.requestId);
  let details: Record<string, string | number>;
  try {
    details = await change();
  } catch (e) {
    await s.audit.write({ ...base, outcome: errorName(e) }, ctx.state.requestId);
    throw e;
  }
  await s.audit.write({ ...base, outcome: 'ok', ...details }, ctx.state.requestId);
  if (resource !== undefined) {
    const label = s.metrics.resourcePathLabel(resource);
    if (action === 'resource.write') s.metrics.resourceWrites.inc({ resource_path: label });
    if (action === 'resource.delete') s.metrics.resourceDeletes.inc({ resource_path: label });
  }
  reqLog(ctx, s).info({ action, resource, ...details, by: adminWho(ctx.state.admin) }, ADMIN_MESSAGES[action]);
}

/** A refused admin request: logged and audited (never the presented token). */
export async function adminDenied(s: Services, ctx: KbsContext, reason: string): Promise<void> {
  reqLog(ctx, s).warn({ method: ctx.method, path: ctx.path, reason }, 'admin request denied');
  await s.audit.write({ event: 'admin.denied', method: ctx.method, path: ctx.path, reason }, ctx.state.requestId);
}
