/**
 * The SNP evidence as the guest sends it: `{"attestation_report": <sev-crate serde JSON>,
 * "cert_chain": null | [{"cert_type": …, "data": [bytes]}]}` (verifiers.md §3.1), converted to
 * and from the binary report. Parsing is strict in the way serde is: fixed-length byte arrays,
 * integers in range, unknown members ignored.
 */
import { AttestationFailure } from '../types.js';
import type { SnpTcb } from './generation.js';
import { checkReportVersion, encodeSnpReport, type SnpReport, type SnpReportFields, type SnpVersionTriple } from './report.js';

/** Largest certificate accepted from `cert_chain` (AMD certificates are about 1.4 KB). */
export const MAX_CERT_BYTES = 16 * 1024;
/** Most `cert_chain` entries accepted (the firmware table has a handful). */
export const MAX_CERT_ENTRIES = 16;

export type SnpCertType = 'ARK' | 'ASK' | 'VCEK' | 'VLEK' | 'CRL' | 'Empty' | 'OTHER';

export interface SnpCertEntry {
  certType: SnpCertType;
  data: Buffer;
}

export interface SnpEvidence {
  report: SnpReport;
  certChain: SnpCertEntry[] | null;
}

type Json = unknown;

function fail(message: string): never {
  throw new AttestationFailure('evidence-format', `SNP evidence: ${message}`);
}

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function member(obj: Record<string, Json>, key: string): Json {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function uint(v: Json, bits: 8 | 32, name: string): number {
  const max = bits === 8 ? 0xff : 0xffffffff;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) fail(`${name} must be a u${bits}`);
  return v;
}

/** A u64 given as a JSON number. Numbers above 2^53 cannot be exact after JSON.parse: refused. */
function u64(v: Json, name: string): bigint {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${name} must be a u64 below 2^53`);
  return BigInt(v);
}

function bytes(v: Json, len: number, name: string): Buffer {
  if (!Array.isArray(v) || v.length !== len) fail(`${name} must be an array of ${len} bytes`);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = uint(v[i], 8, name);
  return out;
}

function optionalU8(v: Json, name: string): number | null {
  return v === undefined || v === null ? null : uint(v, 8, name);
}

function optionalU64(v: Json, name: string): bigint | null {
  return v === undefined || v === null ? null : u64(v, name);
}

function tcb(v: Json, name: string): SnpTcb {
  if (!isObject(v)) fail(`${name} must be an object`);
  return {
    fmc: optionalU8(member(v, 'fmc'), `${name}.fmc`),
    bootloader: uint(member(v, 'bootloader'), 8, `${name}.bootloader`),
    tee: uint(member(v, 'tee'), 8, `${name}.tee`),
    snp: uint(member(v, 'snp'), 8, `${name}.snp`),
    microcode: uint(member(v, 'microcode'), 8, `${name}.microcode`),
  };
}

function triple(v: Json, name: string): SnpVersionTriple {
  if (!isObject(v)) fail(`${name} must be an object`);
  return {
    major: uint(member(v, 'major'), 8, `${name}.major`),
    minor: uint(member(v, 'minor'), 8, `${name}.minor`),
    build: uint(member(v, 'build'), 8, `${name}.build`),
  };
}

/** Reads the sev-crate JSON `attestation_report` into typed fields (no layout decisions yet). */
export function reportFieldsFromJson(json: Json): SnpReportFields {
  if (!isObject(json)) fail('attestation_report must be an object');
  const g = (k: string): Json => member(json, k);
  const sig = g('signature');
  if (!isObject(sig)) fail('signature must be an object');
  return {
    version: uint(g('version'), 32, 'version'),
    guestSvn: uint(g('guest_svn'), 32, 'guest_svn'),
    policy: u64(g('policy'), 'policy'),
    familyId: bytes(g('family_id'), 16, 'family_id'),
    imageId: bytes(g('image_id'), 16, 'image_id'),
    vmpl: uint(g('vmpl'), 32, 'vmpl'),
    sigAlgo: uint(g('sig_algo'), 32, 'sig_algo'),
    currentTcb: tcb(g('current_tcb'), 'current_tcb'),
    platInfo: u64(g('plat_info'), 'plat_info'),
    keyInfo: uint(g('key_info'), 32, 'key_info'),
    reportData: bytes(g('report_data'), 64, 'report_data'),
    measurement: bytes(g('measurement'), 48, 'measurement'),
    hostData: bytes(g('host_data'), 32, 'host_data'),
    idKeyDigest: bytes(g('id_key_digest'), 48, 'id_key_digest'),
    authorKeyDigest: bytes(g('author_key_digest'), 48, 'author_key_digest'),
    reportId: bytes(g('report_id'), 32, 'report_id'),
    reportIdMa: bytes(g('report_id_ma'), 32, 'report_id_ma'),
    reportedTcb: tcb(g('reported_tcb'), 'reported_tcb'),
    cpuidFamId: optionalU8(g('cpuid_fam_id'), 'cpuid_fam_id'),
    cpuidModId: optionalU8(g('cpuid_mod_id'), 'cpuid_mod_id'),
    cpuidStep: optionalU8(g('cpuid_step'), 'cpuid_step'),
    chipId: bytes(g('chip_id'), 64, 'chip_id'),
    committedTcb: tcb(g('committed_tcb'), 'committed_tcb'),
    current: triple(g('current'), 'current'),
    committed: triple(g('committed'), 'committed'),
    launchTcb: tcb(g('launch_tcb'), 'launch_tcb'),
    launchMitVector: optionalU64(g('launch_mit_vector'), 'launch_mit_vector'),
    currentMitVector: optionalU64(g('current_mit_vector'), 'current_mit_vector'),
    signatureR: bytes(member(sig, 'r'), 72, 'signature.r'),
    signatureS: bytes(member(sig, 's'), 72, 'signature.s'),
  };
}

/**
 * sev-crate JSON → the 1184 signed bytes → SnpReport. A Turin-layout report must give every TCB's
 * `fmc` (upstream would panic on a missing one when checking it).
 */
export function snpReportFromEvidenceJson(json: Json, options: { checkVersion?: boolean } = {}): SnpReport {
  const fields = reportFieldsFromJson(json);
  if (options.checkVersion === true) checkReportVersion(fields.version);
  const report = encodeSnpReport(fields);
  if (report.tcbLayout === 'turin') {
    for (const t of [fields.currentTcb, fields.reportedTcb, fields.committedTcb, fields.launchTcb]) {
      if (t.fmc === null) fail('a Turin report must give fmc in every TCB');
    }
  }
  return report;
}

const byteArray = (b: Buffer): number[] => [...b];
const tcbJson = (t: SnpTcb): Record<string, number | null> => ({
  fmc: t.fmc,
  bootloader: t.bootloader,
  tee: t.tee,
  snp: t.snp,
  microcode: t.microcode,
});

/** SnpReport → the sev-crate JSON shape (member order as sev's struct). u64s above 2^53 throw. */
export function snpReportToEvidenceJson(r: SnpReport): Record<string, unknown> {
  const num = (n: bigint, name: string): number => {
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${name} does not fit a JSON number exactly`);
    return Number(n);
  };
  return {
    version: r.version,
    guest_svn: r.guestSvn,
    policy: num(r.policy, 'policy'),
    family_id: byteArray(r.familyId),
    image_id: byteArray(r.imageId),
    vmpl: r.vmpl,
    sig_algo: r.sigAlgo,
    current_tcb: tcbJson(r.currentTcb),
    plat_info: num(r.platInfo, 'plat_info'),
    key_info: r.keyInfo,
    report_data: byteArray(r.reportData),
    measurement: byteArray(r.measurement),
    host_data: byteArray(r.hostData),
    id_key_digest: byteArray(r.idKeyDigest),
    author_key_digest: byteArray(r.authorKeyDigest),
    report_id: byteArray(r.reportId),
    report_id_ma: byteArray(r.reportIdMa),
    reported_tcb: tcbJson(r.reportedTcb),
    cpuid_fam_id: r.cpuidFamId,
    cpuid_mod_id: r.cpuidModId,
    cpuid_step: r.cpuidStep,
    chip_id: byteArray(r.chipId),
    committed_tcb: tcbJson(r.committedTcb),
    current: { ...r.current },
    committed: { ...r.committed },
    launch_tcb: tcbJson(r.launchTcb),
    launch_mit_vector: r.launchMitVector === null ? null : num(r.launchMitVector, 'launch_mit_vector'),
    current_mit_vector: r.currentMitVector === null ? null : num(r.currentMitVector, 'current_mit_vector'),
    signature: { r: byteArray(r.signatureR), s: byteArray(r.signatureS) },
  };
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const NAMED: readonly SnpCertType[] = ['ARK', 'ASK', 'VCEK', 'VLEK', 'CRL', 'Empty'];

function certType(v: Json): SnpCertType {
  if (typeof v === 'string' && (NAMED as readonly string[]).includes(v)) return v as SnpCertType;
  if (isObject(v) && Object.keys(v).length === 1 && typeof member(v, 'OTHER') === 'string' && UUID.test(v['OTHER'] as string)) {
    return 'OTHER';
  }
  fail('cert_chain entry has an unknown cert_type');
}

function certChain(v: Json): SnpCertEntry[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) fail('cert_chain must be an array or null');
  if (v.length > MAX_CERT_ENTRIES) fail(`cert_chain has more than ${MAX_CERT_ENTRIES} entries`);
  return v.map((entry: Json) => {
    if (!isObject(entry)) fail('cert_chain entry must be an object');
    const data = member(entry, 'data');
    if (!Array.isArray(data) || data.length > MAX_CERT_BYTES) fail('cert_chain entry data must be a byte array');
    return { certType: certType(member(entry, 'cert_type')), data: bytes(data, data.length, 'cert_chain data') };
  });
}

/**
 * Parses the whole evidence object. With `checkVersion`, the report version is checked (as upstream,
 * right after deserialising) before the bytes are laid out.
 */
export function parseSnpEvidence(evidence: Json, options: { checkVersion?: boolean } = {}): SnpEvidence {
  if (!isObject(evidence)) fail('evidence must be a JSON object');
  const report = snpReportFromEvidenceJson(member(evidence, 'attestation_report'), options);
  return { report, certChain: certChain(member(evidence, 'cert_chain')) };
}
