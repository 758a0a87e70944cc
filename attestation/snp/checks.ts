/** The policy steps of upstream's SNP `evaluate` after the report is authenticated. */
import { AttestationFailure } from '../types.js';
import type { SnpReport } from './report.js';

/** upstream `regularize_data`: pad with zero bytes or truncate to `len`. */
export function regularize(data: Uint8Array, len: number): Buffer {
  const out = Buffer.alloc(len);
  Buffer.from(data.subarray(0, len)).copy(out);
  return out;
}

export function checkVmpl(report: SnpReport): void {
  if (report.vmpl !== 0) throw new AttestationFailure('vmpl', `VMPL Check Failed (report VMPL ${report.vmpl}, expected 0)`);
}

/** REPORT_DATA must equal the expected value padded (or truncated) to 64 bytes. */
export function checkReportData(report: SnpReport, expected: Uint8Array): void {
  if (!regularize(expected, 64).equals(report.reportData)) {
    throw new AttestationFailure('report-data', 'SNP REPORT_DATA does not match the runtime data');
  }
}

/** HOST_DATA must equal the init-data digest padded (or truncated) to 32 bytes. */
export function checkHostData(report: SnpReport, expected: Uint8Array): void {
  if (!regularize(expected, 32).equals(report.hostData)) {
    throw new AttestationFailure('init-data', 'SNP HOST_DATA does not match the init-data digest');
  }
}
