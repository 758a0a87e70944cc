/**
 * `POST /kbs/v0/attestation-policy` (admin): set an EAR appraisal policy (kbs-protocol.md §3.6;
 * upstream `kbs/src/attestation/backend.rs` `set_policy`, `attestation-service/src/lib.rs`
 * `set_policy`). Body `{"policy_id": "<id>", "policy": "<base64url, no padding, of Rego>"}`; other
 * members (kbs-client's `type`) are ignored, as upstream. Every failure is 401 `AttestationError`
 * `Attestation error: Set Attestation Policy failed: <reason>`. There is no GET (404, as upstream).
 */
import { AttestationPolicyError } from '../../attestation/appraisal-policy-store.js';
import { parseJson, readRawBody } from '../body.js';
import { KbsError } from '../errors.js';
import type { Services } from '../services.js';
import { adminWho, requireAdmin } from './admin.js';
import type { Step } from './types.js';

const B64URL_NOPAD = /^[A-Za-z0-9_-]*$/;
const FAILED = 'Attestation error: Set Attestation Policy failed';

function failed(reason: string, cause?: unknown): KbsError {
  return new KbsError('AttestationError', `${FAILED}: ${reason}`, cause === undefined ? {} : { cause });
}

/** Upstream `SetPolicyInput` and `URL_SAFE_NO_PAD` (canonical, padding refused) + UTF-8. */
export function decodeSetAttestationPolicy(body: Buffer): { id: string; text: string } {
  const json = parseJson(body);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw failed('parse set policy request: expected a JSON object {"policy_id", "policy"}');
  }
  const o = json as Record<string, unknown>;
  const id = Object.hasOwn(o, 'policy_id') ? o['policy_id'] : undefined;
  const policy = Object.hasOwn(o, 'policy') ? o['policy'] : undefined;
  if (typeof id !== 'string') throw failed('parse set policy request: `policy_id` is missing or not a string');
  if (typeof policy !== 'string') throw failed('parse set policy request: `policy` is missing or not a string');
  const bytes = B64URL_NOPAD.test(policy) && policy.length % 4 !== 1 ? Buffer.from(policy, 'base64url') : undefined;
  if (bytes === undefined || bytes.toString('base64url') !== policy) {
    throw failed('`policy` is not base64url text without padding');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw failed('the policy is not UTF-8 text');
  }
  return { id, text };
}

export function setAttestationPolicyRoute(s: Services): Step[] {
  const setPolicy: Step = async (ctx) => {
    const { id, text } = decodeSetAttestationPolicy(await readRawBody(ctx, s.payloadLimitBytes));
    try {
      const policy = await s.attestationPolicies.set(id, text);
      s.log.info({ policyId: id, sha384: policy.hash, by: adminWho(ctx.state.admin) }, 'attestation policy set');
    } catch (e) {
      if (e instanceof AttestationPolicyError) throw failed(e.message, e);
      throw failed('the policy could not be stored', e);
    }
    ctx.status = 200;
    ctx.body = '';
    ctx.remove('Content-Type');
  };
  return [requireAdmin(s, 'attestation-policy'), setPolicy];
}
