/**
 * The `tdx` verifier (upstream `deps/verifier/src/tdx/mod.rs`): evidence
 * `{"cc_eventlog": base64 | null, "quote": base64}`. DCAP verification of the quote, REPORT_DATA
 * against the expected report data padded to 64, MRCONFIGID against the init-data digest padded to
 * 48, and, with an event log, its replay into RTMR 0..3, which must equal the quote's.
 */
import type { JsonValue } from '../../policy/index.js';
import { IntelCollateral, type DcapOptions } from '../intel-dcap/collateral.js';
import { verifyTdQuote } from '../intel-dcap/verify.js';
import { decodeStdBase64 } from '../sample/verifier.js';
import { AttestationFailure, type Claims, type Verifier } from '../types.js';
import { eventLogClaims, parseCcel, replayRtmr } from './ccel.js';
import { tdxQuoteClaims } from './claims.js';

/** Longest accepted base64 texts: a quote is ~5 KiB, a CCEL area is up to a few MiB. */
const MAX_QUOTE_B64 = 96 * 1024;
const MAX_CCEL_B64 = 12 * 1024 * 1024;

/** `data` padded with zeros (or truncated) to `len` bytes (upstream `regularize_data`). */
export function regularize(data: Uint8Array, len: number): Buffer {
  const out = Buffer.alloc(len);
  Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, len)).copy(out);
  return out;
}

function field(ev: Record<string, unknown>, name: string, max: number, optional: boolean): Buffer | undefined {
  const v = Object.hasOwn(ev, name) ? ev[name] : undefined;
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new AttestationFailure('evidence-format', `tdx evidence field "${name}" is missing`);
  }
  if (typeof v !== 'string') throw new AttestationFailure('evidence-format', `tdx evidence field "${name}" must be a string`);
  if (optional && v === '') return undefined;
  if (v.length > max) throw new AttestationFailure('evidence-format', `tdx evidence field "${name}" is too large`);
  const bytes = decodeStdBase64(v);
  if (bytes === undefined) throw new AttestationFailure('evidence-format', `tdx evidence field "${name}" is not standard base64`);
  return bytes;
}

export class TdxVerifier implements Verifier {
  readonly tee = 'tdx' as const;
  readonly teeClass = 'cpu';
  readonly collateral: IntelCollateral;

  constructor(options: DcapOptions = {}, collateral?: IntelCollateral) {
    this.collateral = collateral ?? new IntelCollateral(options);
  }

  async verify(evidence: unknown, expectedReportData: Uint8Array, expectedInitDataHash: Uint8Array | undefined, now: Date): Promise<Claims> {
    if (typeof evidence !== 'object' || evidence === null || Array.isArray(evidence)) {
      throw new AttestationFailure('evidence-format', 'tdx evidence must be a JSON object');
    }
    const ev = evidence as Record<string, unknown>;
    const quoteBytes = field(ev, 'quote', MAX_QUOTE_B64, false) as Buffer;
    if (quoteBytes.length === 0) throw new AttestationFailure('evidence-format', 'TDX quote is empty');
    const ccel = field(ev, 'cc_eventlog', MAX_CCEL_B64, true);
    const result = await verifyTdQuote(quoteBytes, now, this.collateral);
    const { body } = result.quote;
    if (!regularize(expectedReportData, 64).equals(body.reportData)) {
      throw new AttestationFailure('report-data', 'REPORT_DATA is different from that in the TDX quote');
    }
    if (expectedInitDataHash !== undefined && !regularize(expectedInitDataHash, 48).equals(body.mrConfigId)) {
      throw new AttestationFailure('init-data', 'MRCONFIGID is different from that in the TDX quote');
    }
    let eventLog: JsonValue[] | undefined;
    if (ccel !== undefined) {
      let events;
      try {
        events = parseCcel(ccel);
      } catch (e) {
        if (e instanceof AttestationFailure) throw e;
        throw new AttestationFailure('eventlog', 'CC event log cannot be parsed', { cause: e });
      }
      for (let i = 0; i < 4; i++) {
        if (!replayRtmr(events, i + 1).equals(body.rtmrs[i] as Buffer)) {
          throw new AttestationFailure('eventlog', `CC event log replay does not match RTMR${i}`);
        }
      }
      eventLog = eventLogClaims(events);
    }
    return { ...tdxQuoteClaims(result.quote, result.platform, eventLog), ...result.claims };
  }
}
