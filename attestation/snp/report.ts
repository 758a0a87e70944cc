/**
 * The SEV-SNP ATTESTATION_REPORT (SNP firmware ABI, 1184 bytes) decoded to typed fields and
 * encoded back, with the `sev` crate's layout rules: CPUID bytes from v3, mitigation vectors from
 * v5, reserved bytes written as zero, TCB_VERSION layout chosen by generation.
 */
import { AttestationFailure } from '../types.js';
import {
  decodeTcb,
  encodeTcb,
  REPORT_VERSION_MAX,
  REPORT_VERSION_MIN,
  sevLayoutFromCpuid,
  type SnpTcb,
  type TcbLayout,
} from './generation.js';

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, 0x2A0). */
export const SNP_SIGNED_SIZE = 0x2a0;

export interface SnpVersionTriple {
  major: number;
  minor: number;
  build: number;
}

/** Every field of the report (the `sev` crate's `AttestationReport`). */
export interface SnpReportFields {
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  sigAlgo: number;
  currentTcb: SnpTcb;
  platInfo: bigint;
  keyInfo: number;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: SnpTcb;
  /** null for v2 reports (no CPUID bytes). */
  cpuidFamId: number | null;
  cpuidModId: number | null;
  cpuidStep: number | null;
  chipId: Buffer;
  committedTcb: SnpTcb;
  current: SnpVersionTriple;
  committed: SnpVersionTriple;
  launchTcb: SnpTcb;
  /** null before v5. */
  launchMitVector: bigint | null;
  currentMitVector: bigint | null;
  /** The 72-byte little-endian R and S fields as stored in the report. */
  signatureR: Buffer;
  signatureS: Buffer;
}

export interface SnpReport extends SnpReportFields {
  /** The exact 1184 report bytes. */
  readonly raw: Buffer;
  /** The TCB byte layout the fields were decoded with. */
  readonly tcbLayout: TcbLayout;
}

/** Report variant as sev decides it from the version: v2, v3 (3 and 4) or v5 (5 and later). */
type Variant = 'v2' | 'v3' | 'v5';

function variantOf(version: number): Variant {
  if (version < 2) throw new AttestationFailure('report-version', 'Attestation Report version is too old');
  if (version === 2) return 'v2';
  return version <= 4 ? 'v3' : 'v5';
}

/** sev's layout choice: v2 guesses from chip_id (Turin-like when bytes 8.. are zero), v3+ uses CPUID. */
function layoutFor(variant: Variant, chipId: Buffer, family: number, model: number): TcbLayout {
  if (variant === 'v2') {
    if (chipId.every((b) => b === 0)) {
      throw new AttestationFailure('evidence-format', 'SNP v2 report has a masked chip id: its TCB layout is unknown');
    }
    return chipId.subarray(8).every((b) => b === 0) ? 'turin' : 'legacy';
  }
  const layout = sevLayoutFromCpuid(family, model);
  if (layout === undefined) throw new AttestationFailure('generation', 'SNP report names an unknown processor family/model');
  return layout;
}

/** Decodes 1184 report bytes. The returned `raw` is a copy, independent of the caller's buffer. */
export function parseSnpReport(bytes: Buffer | Uint8Array): SnpReport {
  if (bytes.length !== SNP_REPORT_SIZE) {
    throw new AttestationFailure('evidence-format', `SNP report must be ${SNP_REPORT_SIZE} bytes, got ${bytes.length}`);
  }
  const raw = Buffer.from(bytes);
  const version = raw.readUInt32LE(0);
  const variant = variantOf(version);
  const chipId = Buffer.from(raw.subarray(0x1a0, 0x1e0));
  const layout = layoutFor(variant, chipId, raw[0x188] as number, raw[0x189] as number);
  const slice = (start: number, len: number): Buffer => Buffer.from(raw.subarray(start, start + len));
  const tcb = (off: number): SnpTcb => decodeTcb(raw.subarray(off, off + 8), layout);
  const triple = (off: number): SnpVersionTriple => ({
    build: raw[off] as number,
    minor: raw[off + 1] as number,
    major: raw[off + 2] as number,
  });
  const v3 = variant !== 'v2';
  const v5 = variant === 'v5';
  return {
    raw,
    tcbLayout: layout,
    version,
    guestSvn: raw.readUInt32LE(0x04),
    policy: raw.readBigUInt64LE(0x08),
    familyId: slice(0x10, 16),
    imageId: slice(0x20, 16),
    vmpl: raw.readUInt32LE(0x30),
    sigAlgo: raw.readUInt32LE(0x34),
    currentTcb: tcb(0x38),
    platInfo: raw.readBigUInt64LE(0x40),
    keyInfo: raw.readUInt32LE(0x48),
    reportData: slice(0x50, 64),
    measurement: slice(0x90, 48),
    hostData: slice(0xc0, 32),
    idKeyDigest: slice(0xe0, 48),
    authorKeyDigest: slice(0x110, 48),
    reportId: slice(0x140, 32),
    reportIdMa: slice(0x160, 32),
    reportedTcb: tcb(0x180),
    cpuidFamId: v3 ? (raw[0x188] as number) : null,
    cpuidModId: v3 ? (raw[0x189] as number) : null,
    cpuidStep: v3 ? (raw[0x18a] as number) : null,
    chipId,
    committedTcb: tcb(0x1e0),
    current: triple(0x1e8),
    committed: triple(0x1ec),
    launchTcb: tcb(0x1f0),
    launchMitVector: v5 ? raw.readBigUInt64LE(0x1f8) : null,
    currentMitVector: v5 ? raw.readBigUInt64LE(0x200) : null,
    signatureR: slice(0x2a0, 72),
    signatureS: slice(0x2e8, 72),
  };
}

function putBytes(out: Buffer, off: number, value: Buffer, len: number, name: string): void {
  if (value.length !== len) throw new AttestationFailure('evidence-format', `SNP report field ${name} must be ${len} bytes`);
  value.copy(out, off);
}

/**
 * Encodes report fields to the 1184-byte firmware layout as sev's `Encoder` does: reserved bytes
 * zero, CPUID bytes only from v3 (written as 0 when null), mitigation vectors only from v5.
 */
export function encodeSnpReport(f: SnpReportFields): SnpReport {
  const variant = variantOf(f.version);
  const layout = layoutFor(variant, f.chipId, f.cpuidFamId ?? 0, f.cpuidModId ?? 0);
  const out = Buffer.alloc(SNP_REPORT_SIZE);
  out.writeUInt32LE(f.version, 0x00);
  out.writeUInt32LE(f.guestSvn, 0x04);
  out.writeBigUInt64LE(f.policy, 0x08);
  putBytes(out, 0x10, f.familyId, 16, 'family_id');
  putBytes(out, 0x20, f.imageId, 16, 'image_id');
  out.writeUInt32LE(f.vmpl, 0x30);
  out.writeUInt32LE(f.sigAlgo, 0x34);
  encodeTcb(f.currentTcb, layout).copy(out, 0x38);
  out.writeBigUInt64LE(f.platInfo, 0x40);
  out.writeUInt32LE(f.keyInfo, 0x48);
  putBytes(out, 0x50, f.reportData, 64, 'report_data');
  putBytes(out, 0x90, f.measurement, 48, 'measurement');
  putBytes(out, 0xc0, f.hostData, 32, 'host_data');
  putBytes(out, 0xe0, f.idKeyDigest, 48, 'id_key_digest');
  putBytes(out, 0x110, f.authorKeyDigest, 48, 'author_key_digest');
  putBytes(out, 0x140, f.reportId, 32, 'report_id');
  putBytes(out, 0x160, f.reportIdMa, 32, 'report_id_ma');
  encodeTcb(f.reportedTcb, layout).copy(out, 0x180);
  if (variant !== 'v2') {
    out[0x188] = f.cpuidFamId ?? 0;
    out[0x189] = f.cpuidModId ?? 0;
    out[0x18a] = f.cpuidStep ?? 0;
  }
  putBytes(out, 0x1a0, f.chipId, 64, 'chip_id');
  encodeTcb(f.committedTcb, layout).copy(out, 0x1e0);
  out.set([f.current.build, f.current.minor, f.current.major], 0x1e8);
  out.set([f.committed.build, f.committed.minor, f.committed.major], 0x1ec);
  encodeTcb(f.launchTcb, layout).copy(out, 0x1f0);
  if (variant === 'v5') {
    out.writeBigUInt64LE(f.launchMitVector ?? 0n, 0x1f8);
    out.writeBigUInt64LE(f.currentMitVector ?? 0n, 0x200);
  }
  putBytes(out, 0x2a0, f.signatureR, 72, 'signature.r');
  putBytes(out, 0x2e8, f.signatureS, 72, 'signature.s');
  return parseSnpReport(out);
}

/**
 * Trustee's version gate: 3..=5. A v2 report has no CPUID, so its generation (and trust anchors)
 * cannot be known.
 */
export function checkReportVersion(version: number): void {
  if (version < REPORT_VERSION_MIN) {
    throw new AttestationFailure('report-version', 'Attestation Report version is too old. Please update your firmware.');
  }
  if (version > REPORT_VERSION_MAX) {
    throw new AttestationFailure('report-version', 'Unexpected attestation report version. Check SNP Firmware ABI specification');
  }
}

/** key_info SIGNING_KEY (bits 4:2): 0 VCEK, 1 VLEK, 7 none. */
export function signingKeyOf(report: SnpReport): number {
  return (report.keyInfo >>> 2) & 0x7;
}

/** The P-384 signature as IEEE P1363 r‖s (96 bytes): the low 48 bytes of each field, reversed. */
export function signatureP1363(report: SnpReport): Buffer {
  const r = Buffer.from(report.signatureR.subarray(0, 48)).reverse();
  const s = Buffer.from(report.signatureS.subarray(0, 48)).reverse();
  return Buffer.concat([r, s]);
}

/** True when the upper 24 bytes of R or S are not zero (not a P-384 value). */
export function signatureHasHighBytes(report: SnpReport): boolean {
  return !report.signatureR.subarray(48).every((b) => b === 0) || !report.signatureS.subarray(48).every((b) => b === 0);
}
