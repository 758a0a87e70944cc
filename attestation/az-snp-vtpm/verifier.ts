/**
 * The `az-snp-vtpm` verifier: an Azure SEV-SNP confidential VM attesting through its vTPM
 * (upstream `deps/verifier/src/az_snp_vtpm/mod.rs`; verifiers.md §6). Steps, in upstream order:
 *
 * 1. report data is required (`report-data`); decode evidence v2/v1/v0 (`evidence-format`);
 * 2. the vTPM quote is signed by the HCL report's AK (`tpm-signature`), its nonce equals the report
 *    data exactly (`tpm-nonce`), its PCR digest matches PCRs 0–23 (`pcr-digest`);
 * 3. SHA-256(HCL var_data) == SNP report_data[0..32] (`hcl-binding`); v2: var_data `user-data`
 *    starts with the report data (`user-data`);
 * 4. the SNP report: generation from CPUID (v3+ report), VCEK → pinned ASK/ARK, TCB SPLs,
 *    signature (`snp-…`), VMPL 0 (`snp-vmpl`). As upstream, no report-version range, FMC SPL or
 *    HOST_DATA check (§6.4, quirk (c));
 * 5. PCR8 == SHA-256(0³² ‖ init-data digest) when an init-data digest is expected (`init-data`).
 *
 * Claims as upstream: the SNP fields as strings, `measurement`/`report_data`/`init_data` first as
 * base64 of the report fields, then `tpm.pcrNN`, with `init_data` := hex(PCR8) and `report_data` :=
 * hex(quote nonce) overwritten in place.
 */
import {
  checkVmpl,
  parseSnpReport,
  verifySnpReportWithCert,
  type SnpReport,
} from '../snp/index.js';
import { decodeAzSnpEvidence, type VcekEncoding } from '../az-vtpm/evidence.js';
import { verifyVarDataBinding } from '../az-vtpm/hcl.js';
import {
  extendWithVtpmClaims,
  prefixStep,
  requireReportData,
  verifyVersionedUserData,
  verifyVtpmInitData,
  verifyVtpmQuote,
  type AzVtpmExpectations,
} from '../az-vtpm/vtpm.js';
import { AttestationFailure, type Claims, type Verifier } from '../types.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/;

/** The first certificate of the v0 PEM text (upstream `X509::from_pem` reads the first one). */
function vcekDer(vcek: VcekEncoding): Buffer {
  if ('der' in vcek) return vcek.der;
  const m = PEM_CERT.exec(vcek.pem);
  const der = m ? Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64') : undefined;
  if (der === undefined || der.length === 0) throw new AttestationFailure('evidence-format', 'az-snp-vtpm evidence "vcek" is not a PEM certificate');
  return der;
}

const bit = (v: bigint, n: number): string => String(((v >> BigInt(n)) & 1n) === 1n);

/** Upstream `parse_tee_evidence_az`: every value a string; byte fields as standard base64. */
export function azSnpClaims(r: SnpReport): Claims {
  return {
    policy_abi_major: String((r.policy >> 8n) & 0xffn),
    policy_abi_minor: String(r.policy & 0xffn),
    policy_smt_allowed: bit(r.policy, 16),
    policy_migrate_ma: bit(r.policy, 18),
    policy_debug_allowed: bit(r.policy, 19),
    policy_single_socket: bit(r.policy, 20),
    reported_tcb_bootloader: String(r.reportedTcb.bootloader),
    reported_tcb_tee: String(r.reportedTcb.tee),
    reported_tcb_snp: String(r.reportedTcb.snp),
    reported_tcb_microcode: String(r.reportedTcb.microcode),
    platform_tsme_enabled: bit(r.platInfo, 1),
    platform_smt_enabled: bit(r.platInfo, 0),
    measurement: r.measurement.toString('base64'),
    report_data: r.reportData.toString('base64'),
    init_data: r.hostData.toString('base64'),
  };
}

export class AzSnpVtpmVerifier implements Verifier {
  readonly tee = 'az-snp-vtpm' as const;
  readonly teeClass = 'cpu';

  /** Azure evidence always carries its VCEK, so nothing is fetched; `collateralDir` is accepted for uniformity. */
  constructor(readonly options: { collateralDir?: string } = {}) {}

  async verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    expectedInitDataHash: Uint8Array | undefined,
    now: Date,
  ): Promise<Claims> {
    return this.evaluate(evidence, { reportData: expectedReportData, initDataHash: expectedInitDataHash, now });
  }

  async evaluate(evidence: unknown, expected: AzVtpmExpectations): Promise<Claims> {
    const reportData = requireReportData(this.tee, expected.reportData);
    const ev = decodeAzSnpEvidence(evidence);
    const { hcl, attest } = verifyVtpmQuote(ev, 'snp', reportData);

    let report: SnpReport;
    try {
      report = parseSnpReport(hcl.hwReport);
    } catch (e) {
      throw prefixStep('snp', e);
    }
    verifyVarDataBinding(hcl, report.reportData, 'SNP report');
    verifyVersionedUserData(ev, hcl, reportData);

    const der = vcekDer(ev.hw);
    try {
      verifySnpReportWithCert(report, der, { now: expected.now, vekType: 'VCEK', checkVersion: false, checkFmc: false });
      checkVmpl(report);
    } catch (e) {
      throw prefixStep('snp', e);
    }

    verifyVtpmInitData(ev, expected.initDataHash);
    return extendWithVtpmClaims(azSnpClaims(report), ev, attest);
  }
}
