/**
 * The `az-tdx-vtpm` verifier: an Azure TDX confidential VM attesting through its vTPM (upstream
 * `deps/verifier/src/az_tdx_vtpm/mod.rs`; verifiers.md §7). Steps, in upstream order:
 *
 * 1. report data is required (`report-data`); decode evidence v2/v1/v0 (`evidence-format`);
 * 2. the vTPM quote is signed by the HCL report's AK (`tpm-signature`), its nonce equals the report
 *    data exactly (`tpm-nonce`), its PCR digest matches PCRs 0–23 (`pcr-digest`);
 * 3. the TD quote (v4/v5; an SGX v3 quote is refused) passes DCAP: signatures, PCK chain to the
 *    pinned Intel root, collateral and TCB level when available (`tdx-…`);
 * 4. SHA-256(HCL var_data) == TD quote report_data[0..32] (`hcl-binding`); v2: var_data
 *    `user-data` starts with the report data (`user-data`);
 * 5. PCR8 == SHA-256(0³² ‖ init-data digest) when an init-data digest is expected (`init-data`).
 *
 * The TD report inside the HCL report is not used: its MAC can only be checked on the platform, and
 * the TD quote carries the same report data. Claims as upstream: the TDX quote claims without an
 * event log, then `tpm.pcrNN` with `init_data` := hex(PCR8) and `report_data` := hex(quote nonce)
 * overwritten in place, then the DCAP claims (`tcb_status`, …).
 */
import { IntelCollateral, verifyTdQuote, type DcapOptions, type DcapResult, type TdxQuote } from '../intel-dcap/index.js';
import { tdxQuoteClaims } from '../tdx/claims.js';
import { decodeAzTdxEvidence } from '../az-vtpm/evidence.js';
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
import type { Claims, Verifier } from '../types.js';

export class AzTdxVtpmVerifier implements Verifier {
  readonly tee = 'az-tdx-vtpm' as const;
  readonly teeClass = 'cpu';
  readonly collateral: IntelCollateral;

  /** Pass the `tdx` verifier's IntelCollateral to share its caches. */
  constructor(options: DcapOptions = {}, collateral?: IntelCollateral) {
    this.collateral = collateral ?? new IntelCollateral(options);
  }

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
    const ev = decodeAzTdxEvidence(evidence);
    const { hcl, attest } = verifyVtpmQuote(ev, 'tdx', reportData);

    let dcap: DcapResult<TdxQuote>;
    try {
      dcap = await verifyTdQuote(ev.hw, expected.now, this.collateral);
    } catch (e) {
      throw prefixStep('tdx', e);
    }

    verifyVarDataBinding(hcl, dcap.quote.body.reportData, 'TD quote');
    verifyVersionedUserData(ev, hcl, reportData);
    verifyVtpmInitData(ev, expected.initDataHash);

    const claims = extendWithVtpmClaims(tdxQuoteClaims(dcap.quote, dcap.platform, undefined), ev, attest);
    return { ...claims, ...dcap.claims };
  }
}
