/**
 * The `sgx` verifier (upstream `deps/verifier/src/sgx/mod.rs`): evidence `{"quote": base64}` (v3).
 * DCAP verification of the quote, REPORT_DATA against the expected report data padded to 64, and
 * CONFIGID against the init-data digest padded to 64.
 */
import { IntelCollateral, type DcapOptions } from '../intel-dcap/collateral.js';
import { verifySgxQuote } from '../intel-dcap/verify.js';
import { decodeStdBase64 } from '../sample/verifier.js';
import { regularize } from '../tdx/verifier.js';
import { AttestationFailure, type Claims, type Verifier } from '../types.js';
import { sgxQuoteClaims } from './claims.js';

const MAX_QUOTE_B64 = 96 * 1024;

export class SgxVerifier implements Verifier {
  readonly tee = 'sgx' as const;
  readonly teeClass = 'cpu';
  readonly collateral: IntelCollateral;

  constructor(options: DcapOptions = {}, collateral?: IntelCollateral) {
    this.collateral = collateral ?? new IntelCollateral(options);
  }

  async verify(evidence: unknown, expectedReportData: Uint8Array, expectedInitDataHash: Uint8Array | undefined, now: Date): Promise<Claims> {
    if (typeof evidence !== 'object' || evidence === null || Array.isArray(evidence)) {
      throw new AttestationFailure('evidence-format', 'sgx evidence must be a JSON object');
    }
    const q = Object.hasOwn(evidence, 'quote') ? (evidence as Record<string, unknown>)['quote'] : undefined;
    if (typeof q !== 'string') throw new AttestationFailure('evidence-format', 'sgx evidence field "quote" must be a string');
    if (q.length === 0) throw new AttestationFailure('evidence-format', 'SGX quote is empty');
    if (q.length > MAX_QUOTE_B64) throw new AttestationFailure('evidence-format', 'sgx evidence field "quote" is too large');
    const bytes = decodeStdBase64(q);
    if (bytes === undefined) throw new AttestationFailure('evidence-format', 'sgx evidence field "quote" is not standard base64');
    const result = await verifySgxQuote(bytes, now, this.collateral);
    const { body } = result.quote;
    if (!regularize(expectedReportData, 64).equals(body.reportData)) {
      throw new AttestationFailure('report-data', 'REPORT_DATA is different from that in the SGX quote');
    }
    if (expectedInitDataHash !== undefined && !regularize(expectedInitDataHash, 64).equals(body.configId)) {
      throw new AttestationFailure('init-data', 'CONFIGID is different from that in the SGX quote');
    }
    return { ...sgxQuoteClaims(result.quote, result.platform), ...result.claims };
  }
}
