/**
 * The claims upstream `snp::parse_tee_evidence` emits, with its names, member order and encodings
 * (numbers, booleans, lower-case hex). See shared/vectors/snp/e2e-expected-claims.json.
 */
import type { Claims } from '../types.js';
import type { SnpReport } from './report.js';

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

export function snpClaims(r: SnpReport): Claims {
  return {
    policy_abi_major: Number((r.policy >> 8n) & 0xffn),
    policy_abi_minor: Number(r.policy & 0xffn),
    policy_smt_allowed: bit(r.policy, 16),
    policy_migrate_ma: bit(r.policy, 18),
    policy_debug_allowed: bit(r.policy, 19),
    policy_single_socket: bit(r.policy, 20),
    reported_tcb_bootloader: r.reportedTcb.bootloader,
    reported_tcb_tee: r.reportedTcb.tee,
    reported_tcb_snp: r.reportedTcb.snp,
    reported_tcb_microcode: r.reportedTcb.microcode,
    platform_tsme_enabled: bit(r.platInfo, 1),
    platform_smt_enabled: bit(r.platInfo, 0),
    measurement: r.measurement.toString('hex'),
    report_data: r.reportData.toString('hex'),
    init_data: r.hostData.toString('hex'),
    chip_id: r.chipId.toString('hex'),
  };
}
