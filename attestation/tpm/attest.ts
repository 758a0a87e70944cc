/**
 * A strict parser for a TPM 2.0 `TPMS_ATTEST` of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2 §10.12),
 * the `message` a TPM2_Quote signs. Everything is big-endian. Only what a quote may contain is
 * accepted: the TPM_GENERATED magic, the quote tag, bounded TPM2B sizes, and no trailing bytes.
 */
import { ByteReader } from '../common/byte-reader.js';

/** TPM_GENERATED_VALUE: marks a structure the TPM itself produced. */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_QUOTE. */
export const TPM_ST_ATTEST_QUOTE = 0x8018;
/** TPM_ALG_SHA256. */
export const TPM_ALG_SHA256 = 0x000b;

/** Largest TPM2B_DATA (`extraData`) a TPM accepts: sizeof(TPMU_HA) = 64. */
const MAX_EXTRA_DATA = 64;
/** TPM2B_NAME holds a TPMU_NAME: a handle or an algorithm id plus a digest (≤ 2 + 64). */
const MAX_NAME = 66;
/** TPM2B_DIGEST: ≤ 64 bytes (SHA-512). */
const MAX_DIGEST = 64;
/** HASH_COUNT bound on TPML_PCR_SELECTION (TPM 2.0 reference implementation: 16 banks). */
const MAX_PCR_BANKS = 16;
/** PCR_SELECT_MAX: 4 bytes of bitmap (32 PCRs). */
const MAX_SIZEOF_SELECT = 4;

export class TpmParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TpmParseError';
  }
}

/** One TPMS_PCR_SELECTION: a bank and the PCR indices selected in it, ascending. */
export interface PcrSelection {
  readonly hash: number;
  readonly pcrs: readonly number[];
}

export interface TpmsAttest {
  readonly qualifiedSigner: Buffer;
  /** The caller-supplied nonce the quote binds (TPM2B_DATA `extraData`). */
  readonly extraData: Buffer;
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
  readonly firmwareVersion: bigint;
  readonly pcrSelections: readonly PcrSelection[];
  /** Digest of the selected PCR values, in selection order. */
  readonly pcrDigest: Buffer;
}

/** A big-endian cursor for TPM structures; a short read or trailing bytes is a TpmParseError. */
export class BeReader extends ByteReader {
  constructor(buf: Buffer) {
    super(buf, 'be', (message) => {
      throw new TpmParseError(message);
    });
  }

  /** A TPM2B: u16 size then that many bytes, at most `max`. */
  tpm2b(max: number, what: string): Buffer {
    const size = this.u16(`${what} size`);
    if (size > max) throw new TpmParseError(`${what} is larger than ${max} bytes`);
    return this.bytes(size, what);
  }
}

function readPcrSelections(r: BeReader): PcrSelection[] {
  const count = r.u32('TPML_PCR_SELECTION count');
  if (count > MAX_PCR_BANKS) throw new TpmParseError(`TPML_PCR_SELECTION has ${count} banks`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = r.u16('TPMS_PCR_SELECTION hash');
    const sizeofSelect = r.u8('TPMS_PCR_SELECTION sizeofSelect');
    if (sizeofSelect > MAX_SIZEOF_SELECT) throw new TpmParseError(`sizeofSelect ${sizeofSelect} exceeds ${MAX_SIZEOF_SELECT}`);
    const bitmap = r.bytes(sizeofSelect, 'pcrSelect');
    const pcrs: number[] = [];
    for (let byte = 0; byte < sizeofSelect; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        if (((bitmap[byte] as number) >> bit) & 1) pcrs.push(byte * 8 + bit);
      }
    }
    out.push({ hash, pcrs });
  }
  return out;
}

/** Parses a quote's TPMS_ATTEST; throws TpmParseError on anything else. */
export function parseQuoteAttest(message: Uint8Array): TpmsAttest {
  const r = new BeReader(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw new TpmParseError('magic is not TPM_GENERATED_VALUE');
  const type = r.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) throw new TpmParseError(`attestation type 0x${type.toString(16)} is not a quote`);
  const qualifiedSigner = r.tpm2b(MAX_NAME, 'qualifiedSigner');
  const extraData = r.tpm2b(MAX_EXTRA_DATA, 'extraData');
  const clock = r.u64('clock');
  const resetCount = r.u32('resetCount');
  const restartCount = r.u32('restartCount');
  const safe = r.u8('safe');
  if (safe > 1) throw new TpmParseError('clockInfo.safe is not a TPMI_YES_NO');
  const firmwareVersion = r.u64('firmwareVersion');
  const pcrSelections = readPcrSelections(r);
  const pcrDigest = r.tpm2b(MAX_DIGEST, 'pcrDigest');
  r.end('TPMS_ATTEST');
  return {
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe: safe === 1,
    firmwareVersion,
    pcrSelections,
    pcrDigest,
  };
}
