/**
 * Azure vTPM evidence decoding (upstream `az_snp_vtpm/compat.rs`, `az_tdx_vtpm/compat.rs`;
 * verifiers.md §6.1, §7). The evidence is an untagged union tried in the order V2, V1, V0:
 *
 * - v2 / v1: `{"version": 2|1, "tpm_quote": {signature, message: hex, pcrs: [hex]},
 *   "hcl_report": base64url, "<hw>": base64url}` (v2 also binds the report data in the HCL
 *   variable data's `user-data`);
 * - v0: `{"<quote>": {signature, message: [u8], pcrs: [[u8]]}, "<report>": [u8], "<hw>": …}`.
 *
 * `<hw>` is `vcek` (SNP: DER in v1/v2, a PEM string in v0) or `td_quote` (TDX: bytes). `version`
 * must equal the variant's exactly; unknown members are ignored as serde does.
 */
import { AttestationFailure } from '../types.js';
import type { TpmQuote } from '../tpm/quote.js';
import { decodeBase64Url, decodeByteArray, decodeHex, QUOTE_LIMITS } from './codec.js';

export type AzEvidenceVersion = 0 | 1 | 2;

export interface AzEvidence<Hw> {
  readonly version: AzEvidenceVersion;
  readonly tpmQuote: TpmQuote;
  readonly hclReport: Buffer;
  readonly hw: Hw;
}

/** The VCEK as sent: PEM text (v0) or DER (v1, v2). */
export type VcekEncoding = { readonly pem: string } | { readonly der: Buffer };

const MAX_HCL_REPORT = 16 * 1024;
const MAX_VCEK = 16 * 1024;
const MAX_TD_QUOTE = 128 * 1024;

type Decoder<T> = (v: unknown) => T | undefined;

function member(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function decodeList(v: unknown, decode: Decoder<Buffer>): Buffer[] | undefined {
  if (!Array.isArray(v) || v.length > QUOTE_LIMITS.pcrs) return undefined;
  const out: Buffer[] = [];
  for (const item of v) {
    const pcr = decode(item);
    if (pcr === undefined || pcr.length !== QUOTE_LIMITS.pcrSize) return undefined;
    out.push(pcr);
  }
  return out;
}

function decodeQuote(v: unknown, bytes: (v: unknown, max: number) => Buffer | undefined): TpmQuote | undefined {
  const q = asObject(v);
  if (q === undefined) return undefined;
  const signature = bytes(member(q, 'signature'), QUOTE_LIMITS.signature);
  const message = bytes(member(q, 'message'), QUOTE_LIMITS.message);
  const pcrs = decodeList(member(q, 'pcrs'), (p) => bytes(p, QUOTE_LIMITS.pcrSize));
  if (signature === undefined || message === undefined || pcrs === undefined) return undefined;
  return { signature, message, pcrs };
}

/** Field names and the `<hw>` decoders of one TEE's evidence. */
interface Shape<Hw> {
  /** v0 names of the quote and the HCL report. */
  readonly v0Quote: string;
  readonly v0Report: string;
  readonly hwKey: string;
  readonly hwV0: Decoder<Hw>;
  readonly hwV1: Decoder<Hw>;
}

function tryVersioned<Hw>(ev: Record<string, unknown>, version: 1 | 2, shape: Shape<Hw>): AzEvidence<Hw> | undefined {
  if (member(ev, 'version') !== version) return undefined;
  const tpmQuote = decodeQuote(member(ev, 'tpm_quote'), decodeHex);
  const hclReport = decodeBase64Url(member(ev, 'hcl_report'), MAX_HCL_REPORT);
  const hw = shape.hwV1(member(ev, shape.hwKey));
  if (tpmQuote === undefined || hclReport === undefined || hw === undefined) return undefined;
  return { version, tpmQuote, hclReport, hw };
}

function tryV0<Hw>(ev: Record<string, unknown>, shape: Shape<Hw>): AzEvidence<Hw> | undefined {
  const tpmQuote = decodeQuote(member(ev, shape.v0Quote), decodeByteArray);
  const hclReport = decodeByteArray(member(ev, shape.v0Report), MAX_HCL_REPORT);
  const hw = shape.hwV0(member(ev, shape.hwKey));
  if (tpmQuote === undefined || hclReport === undefined || hw === undefined) return undefined;
  return { version: 0, tpmQuote, hclReport, hw };
}

function decodeEvidence<Hw>(tee: string, evidence: unknown, shape: Shape<Hw>): AzEvidence<Hw> {
  const ev = asObject(evidence);
  if (ev === undefined) throw new AttestationFailure('evidence-format', `${tee} evidence must be a JSON object`);
  const decoded = tryVersioned(ev, 2, shape) ?? tryVersioned(ev, 1, shape) ?? tryV0(ev, shape);
  if (decoded === undefined) {
    throw new AttestationFailure('evidence-format', `${tee} evidence matches none of the evidence formats v2, v1 or v0`);
  }
  return decoded;
}

const SNP_SHAPE: Shape<VcekEncoding> = {
  v0Quote: 'quote',
  v0Report: 'report',
  hwKey: 'vcek',
  hwV0: (v) => (typeof v === 'string' && v.length <= MAX_VCEK * 2 ? { pem: v } : undefined),
  hwV1: (v) => {
    const der = decodeBase64Url(v, MAX_VCEK);
    return der === undefined ? undefined : { der };
  },
};

const TDX_SHAPE: Shape<Buffer> = {
  v0Quote: 'tpm_quote',
  v0Report: 'hcl_report',
  hwKey: 'td_quote',
  hwV0: (v) => decodeByteArray(v, MAX_TD_QUOTE),
  hwV1: (v) => decodeBase64Url(v, MAX_TD_QUOTE),
};

/** Decodes `az-snp-vtpm` evidence; a shape error fails `evidence-format`. */
export function decodeAzSnpEvidence(evidence: unknown): AzEvidence<VcekEncoding> {
  return decodeEvidence('az-snp-vtpm', evidence, SNP_SHAPE);
}

/** Decodes `az-tdx-vtpm` evidence; a shape error fails `evidence-format`. */
export function decodeAzTdxEvidence(evidence: unknown): AzEvidence<Buffer> {
  return decodeEvidence('az-tdx-vtpm', evidence, TDX_SHAPE);
}
