/** The DCAP claims (upstream `intel_dcap/claims.rs` names and order; README.md). */
import type { JsonValue } from '../../policy/index.js';
import { objectFromEntries, type Claims } from '../types.js';
import type { PlatformInfo } from './pck-extension.js';
import { INTEL_ROOT_KEY_ID } from './root.js';
import type { TcbVerdict } from './verify.js';

/** RFC 3339 without fractional seconds, as the `time` crate prints a whole-second timestamp. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const SGX_TYPES = ['Standard', 'Scalable', 'Scalable with Integrity'];

export function dcapClaims(platform: PlatformInfo, tcb: TcbVerdict): Claims {
  const e: Array<[string, JsonValue]> = [
    ['earliest_issue_date', rfc3339(tcb.earliestIssueDate)],
    ['latest_issue_date', rfc3339(tcb.latestIssueDate)],
    ['earliest_expiration_date', rfc3339(tcb.earliestExpirationDate)],
  ];
  if (tcb.tcbDate !== undefined) e.push(['tcb_date', rfc3339(new Date(tcb.tcbDate))]);
  if (tcb.pckCrlNumber !== undefined) e.push(['pck_crl_num', tcb.pckCrlNumber]);
  if (tcb.rootCaCrlNumber !== undefined) e.push(['root_ca_crl_num', tcb.rootCaCrlNumber]);
  if (tcb.tcbEvaluationNumber !== undefined) e.push(['tcb_eval_num', tcb.tcbEvaluationNumber]);
  e.push(['platform_provider_id', platform.ppid.toString('hex')]);
  e.push(['sgx_type', SGX_TYPES[platform.sgxType] ?? `Unknown (${platform.sgxType})`]);
  if (platform.sgxType > 0) {
    e.push(['is_dynamic_platform', platform.dynamicPlatform === true]);
    e.push(['is_cached_keys', platform.cachedKeys === true]);
    e.push(['is_smt_enabled', platform.smtEnabled === true]);
  }
  e.push(['root_key_id', INTEL_ROOT_KEY_ID]);
  e.push(['tcb_status', tcb.status]);
  e.push(['collateral_expiration_status', tcb.collateralExpired ? '1' : '0']);
  e.push(['advisory_ids', [...tcb.advisoryIds]]);
  e.push(['crl_status', tcb.crlChecked ? 'checked' : 'missing']);
  return objectFromEntries(e);
}
