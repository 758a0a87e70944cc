/** `POST /kbs/v0/resource-policy` (set, compile-checked) and `GET` (the policy in force). */
import { isPolicyError } from '../../policy/index.js';
import { parseJson, readRawBody } from '../body.js';
import { KbsError } from '../errors.js';
import type { Services } from '../services.js';
import { adminChange } from '../observe.js';
import { requireAdmin } from './admin.js';
import type { Step } from './types.js';

const B64URL_NOPAD = /^[A-Za-z0-9_-]*$/;

function parseError(reason: string): KbsError {
  return new KbsError('ParsePolicyError', `Failed to parse policy: ${reason}`);
}

/** `{"policy": "<base64url without padding>"}` → the policy text. */
export function decodePolicyRequest(body: Buffer): string {
  const json = parseJson(body);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw parseError('Illegal SetPolicy Request Json');
  if (!Object.hasOwn(json, 'policy')) throw parseError('No `policy` field inside SetPolicy Request Json');
  const policy = (json as Record<string, unknown>)['policy'];
  if (typeof policy !== 'string') throw parseError('`policy` field is not a string');
  const bytes = B64URL_NOPAD.test(policy) && policy.length % 4 !== 1 ? Buffer.from(policy, 'base64url') : undefined;
  // canonical only, as Rust's URL_SAFE_NO_PAD: Buffer.from ignores non-zero trailing bits
  if (bytes === undefined || bytes.toString('base64url') !== policy) {
    throw parseError('Failed to decode policy: invalid base64url (no padding) text');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw parseError('Failed to decode policy: not UTF-8');
  }
}

export function setResourcePolicyRoute(s: Services): Step[] {
  const setPolicy: Step = async (ctx) => {
    await adminChange(s, ctx, 'resource-policy.set', undefined, async () => {
      const text = decodePolicyRequest(await readRawBody(ctx, s.payloadLimitBytes));
      try {
        const policy = await s.policies.set(text);
        return { sha384: policy.hash };
      } catch (e) {
        if (isPolicyError(e)) throw new KbsError('PolicyEngineError', `Policy engine error: ${e.message}`);
        throw e;
      }
    });
    ctx.status = 200;
    ctx.body = '';
    ctx.remove('Content-Type');
  };
  return [requireAdmin(s, 'resource-policy'), setPolicy];
}

export function getResourcePolicyRoute(s: Services): Step[] {
  const getPolicy: Step = async (ctx) => {
    const policy = s.policies.current();
    ctx.status = 200;
    ctx.body = { id: 'resource-policy', policy: policy.source, sha384: policy.hash };
  };
  return [requireAdmin(s, 'resource-policy'), getPolicy];
}
