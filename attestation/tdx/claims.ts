/**
 * TDX claims as upstream `tdx/claims.rs` builds them: `uefi_event_logs` (with an event log),
 * `quote{header, body[, type, size]}`, `td_attributes`, `report_data`, `init_data` and, for
 * Platform-CA PCK certificates, `platform_instance_id`. All byte fields are lower-case hex.
 */
import type { JsonValue } from '../../policy/index.js';
import type { PlatformInfo } from '../intel-dcap/pck-extension.js';
import type { TdxQuote } from '../intel-dcap/quote.js';
import { objectFromEntries, type Claims } from '../types.js';

const hex = (b: Buffer): string => b.toString('hex');

function headerClaims(q: TdxQuote): Claims {
  const h = q.header.raw;
  return objectFromEntries([
    ['version', hex(h.subarray(0, 2))],
    ['att_key_type', hex(h.subarray(2, 4))],
    ['tee_type', hex(h.subarray(4, 8))],
    ['reserved', hex(h.subarray(8, 12))],
    ['vendor_id', hex(h.subarray(12, 28))],
    ['user_data', hex(h.subarray(28, 48))],
  ]);
}

function bodyClaims(q: TdxQuote): Claims {
  const b = q.body;
  const e: Array<[string, JsonValue]> = [
    ['tcb_svn', hex(b.teeTcbSvn)],
    ['mr_seam', hex(b.mrSeam)],
    ['mrsigner_seam', hex(b.mrSignerSeam)],
    ['seam_attributes', hex(b.seamAttributes)],
    ['td_attributes', hex(b.tdAttributes)],
    ['xfam', hex(b.xfam)],
    ['mr_td', hex(b.mrTd)],
    ['mr_config_id', hex(b.mrConfigId)],
    ['mr_owner', hex(b.mrOwner)],
    ['mr_owner_config', hex(b.mrOwnerConfig)],
    ['rtmr_0', hex(b.rtmrs[0])],
    ['rtmr_1', hex(b.rtmrs[1])],
    ['rtmr_2', hex(b.rtmrs[2])],
    ['rtmr_3', hex(b.rtmrs[3])],
    ['report_data', hex(b.reportData)],
  ];
  if (b.teeTcbSvn2 !== undefined && b.mrServiceTd !== undefined) {
    e.push(['tee_tcb_svn2', hex(b.teeTcbSvn2)], ['mr_servicetd', hex(b.mrServiceTd)]);
  }
  return objectFromEntries(e);
}

/** TD attribute flags from the little-endian u64 (upstream bitflags, in declaration order). */
export function tdAttributes(raw: Buffer): Claims {
  const v = raw.readBigUInt64LE(0);
  const bit = (n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
  return objectFromEntries([
    ['debug', bit(0)],
    ['septve_disable', bit(28)],
    ['protection_keys', bit(30)],
    ['key_locker', bit(31)],
    ['perfmon', bit(63)],
  ]);
}

/**
 * The TDX claims of a verified quote. `eventLog` is the `uefi_event_logs` value when the evidence
 * carried a CC event log (see `ccel.ts` `eventLogClaims`).
 */
export function tdxQuoteClaims(quote: TdxQuote, platform: PlatformInfo, eventLog: JsonValue[] | undefined): Claims {
  const quoteEntries: Array<[string, JsonValue]> = [];
  if (quote.v5 !== undefined) {
    const type = Buffer.alloc(2);
    type.writeUInt16LE(quote.v5.type);
    quoteEntries.push(['type', hex(type)], ['size', hex(quote.v5.size)]);
  }
  quoteEntries.push(['header', headerClaims(quote)], ['body', bodyClaims(quote)]);
  const e: Array<[string, JsonValue]> = [];
  if (eventLog !== undefined) e.push(['uefi_event_logs', eventLog]);
  e.push(['quote', objectFromEntries(quoteEntries)]);
  e.push(['td_attributes', tdAttributes(quote.body.tdAttributes)]);
  e.push(['report_data', hex(quote.body.reportData)]);
  e.push(['init_data', hex(quote.body.mrConfigId)]);
  if (platform.platformInstanceId !== undefined) {
    e.push(['platform_instance_id', hex(Buffer.from(platform.platformInstanceId).reverse())]);
  }
  return objectFromEntries(e);
}
