/**
 * AMD EPYC generations and the TCB_VERSION byte layout that depends on them.
 *
 * Two rules exist upstream and both are reproduced: the `sev` crate's (used to lay out the report
 * bytes, including its guess for v2 reports that carry no CPUID) and Trustee's (which decides the
 * trust anchors and refuses reports older than v3).
 */
import { AttestationFailure } from '../types.js';

export type SnpGeneration = 'Milan' | 'Genoa' | 'Turin';

export const SNP_GENERATIONS: readonly SnpGeneration[] = ['Milan', 'Genoa', 'Turin'];

/** The TCB byte layouts: Milan and Genoa share one; Turin (and sev's Venice) put FMC first. */
export type TcbLayout = 'legacy' | 'turin';

/** Report versions Trustee accepts (REPORT_VERSION_MIN..=REPORT_VERSION_MAX). */
export const REPORT_VERSION_MIN = 3;
export const REPORT_VERSION_MAX = 5;

export interface SnpTcb {
  /** Firmware-first-code SVN: present in the Turin layout only. */
  fmc: number | null;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

/**
 * sev `Generation::identify_cpu` reduced to the layout it implies. Venice is known to sev (Turin
 * layout) although Trustee has no anchors for it. Undefined for an unknown family/model.
 */
export function sevLayoutFromCpuid(family: number, model: number): TcbLayout | undefined {
  if (family === 0x19) {
    if (model <= 0x0f || (model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'legacy';
    return undefined;
  }
  if (family === 0x1a) {
    if (model <= 0x11) return 'turin';
    if ((model >= 0x50 && model <= 0x57) || (model >= 0x90 && model <= 0xaf) || (model >= 0xc0 && model <= 0xc7)) {
      return 'turin';
    }
  }
  return undefined;
}

/**
 * Trustee `get_processor_generation`: family 0x19 model 0x00–0x0F Milan, 0x10–0x1F or 0xA0–0xAE
 * Genoa (Trustee's range is end-exclusive), family 0x1A model 0x00–0x11 Turin. Anything else is
 * refused with step `generation`.
 */
export function generationFromFamilyModel(family: number, model: number): SnpGeneration {
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan';
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model < 0xaf)) return 'Genoa';
    throw new AttestationFailure('generation', 'SNP processor model not supported');
  }
  if (family === 0x1a) {
    if (model <= 0x11) return 'Turin';
    throw new AttestationFailure('generation', 'SNP processor model not supported');
  }
  throw new AttestationFailure('generation', 'SNP processor family not supported');
}

export function layoutOf(generation: SnpGeneration): TcbLayout {
  return generation === 'Turin' ? 'turin' : 'legacy';
}

/** Decodes an 8-byte TCB_VERSION in the given layout. */
export function decodeTcb(b: Buffer, layout: TcbLayout): SnpTcb {
  if (layout === 'turin') {
    return { fmc: b[0] as number, bootloader: b[1] as number, tee: b[2] as number, snp: b[3] as number, microcode: b[7] as number };
  }
  return { fmc: null, bootloader: b[0] as number, tee: b[1] as number, snp: b[6] as number, microcode: b[7] as number };
}

/** Encodes a TCB_VERSION; the legacy layout drops `fmc`, the Turin layout writes null as 0 (as sev). */
export function encodeTcb(tcb: SnpTcb, layout: TcbLayout): Buffer {
  if (layout === 'turin') {
    return Buffer.from([tcb.fmc ?? 0, tcb.bootloader, tcb.tee, tcb.snp, 0, 0, 0, tcb.microcode]);
  }
  return Buffer.from([tcb.bootloader, tcb.tee, 0, 0, 0, 0, tcb.snp, tcb.microcode]);
}
