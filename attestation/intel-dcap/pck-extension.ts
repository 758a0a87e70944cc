/**
 * The Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1): a SEQUENCE of
 * (OID, value) pairs carrying the PPID, the TCB (16 component SVNs, PCESVN, CPUSVN), PCE-ID, FMSPC,
 * SGX type and, for Platform-CA certificates, the platform instance id and configuration flags.
 */
import {
  certificateExtensions,
  children,
  decodeOid,
  decodeSmallInteger,
  DerError,
  expectTag,
  parseDer,
  TAG,
  type Tlv,
} from '../common/der.js';
import { AttestationFailure } from '../types.js';

export const SGX_EXTENSION_OID = '1.2.840.113741.1.13.1';
const P = SGX_EXTENSION_OID;

export interface PlatformInfo {
  readonly ppid: Buffer;
  readonly tcbComponents: readonly number[];
  readonly pcesvn: number;
  readonly cpusvn: Buffer;
  readonly pceid: Buffer;
  readonly fmspc: Buffer;
  /** 0 Standard, 1 Scalable, 2 Scalable with Integrity. */
  readonly sgxType: number;
  readonly isPlatformCa: boolean;
  /** Platform CA only: the 16 id bytes as carried in the certificate. */
  readonly platformInstanceId?: Buffer;
  readonly dynamicPlatform?: boolean;
  readonly cachedKeys?: boolean;
  readonly smtEnabled?: boolean;
}

/** Reads a SEQUENCE of SEQUENCE{OID, value} into a map (duplicate OIDs rejected). */
function oidMap(tlv: Tlv): Map<string, Tlv> {
  const out = new Map<string, Tlv>();
  for (const entry of children(expectTag(tlv, TAG.SEQUENCE, 'SGX extension list'))) {
    const parts = children(expectTag(entry, TAG.SEQUENCE, 'SGX extension entry'));
    if (parts.length !== 2) throw new DerError('SGX extension entry must have two members');
    const oid = decodeOid(expectTag(parts[0], TAG.OID, 'SGX extension OID').value);
    if (out.has(oid)) throw new DerError(`SGX extension repeats ${oid}`);
    out.set(oid, parts[1] as Tlv);
  }
  return out;
}

function octets(map: Map<string, Tlv>, oid: string, length: number, what: string): Buffer {
  const v = expectTag(map.get(oid), TAG.OCTET_STRING, what).value;
  if (v.length !== length) throw new DerError(`${what} must be ${length} bytes`);
  return Buffer.from(v);
}

function bool(map: Map<string, Tlv>, oid: string, what: string): boolean {
  const v = expectTag(map.get(oid), TAG.BOOLEAN, what).value;
  if (v.length !== 1) throw new DerError(`${what} is not a BOOLEAN`);
  return v[0] !== 0;
}

function int(map: Map<string, Tlv>, oid: string, what: string, max: number): number {
  const t = map.get(oid);
  if (t === undefined) throw new DerError(`missing ${what}`);
  const n = decodeSmallInteger(t);
  if (n > max) throw new DerError(`${what} out of range`);
  return n;
}

/** Parses the SGX extension of a PCK leaf certificate (DER). */
export function parsePckExtension(leafDer: Buffer, isPlatformCa: boolean): PlatformInfo {
  try {
    const ext = certificateExtensions(leafDer).get(SGX_EXTENSION_OID);
    if (ext === undefined) throw new DerError('PCK certificate has no SGX extension');
    const top = oidMap(parseDer(ext.value));
    const tcb = oidMap(top.get(`${P}.2`) ?? (undefined as never));
    const tcbComponents: number[] = [];
    for (let i = 1; i <= 16; i++) tcbComponents.push(int(tcb, `${P}.2.${i}`, `TCB component ${i}`, 255));
    const sgxTypeTlv = top.get(`${P}.5`);
    if (sgxTypeTlv?.tag !== TAG.ENUMERATED) throw new DerError('SGX type must be ENUMERATED');
    const info: PlatformInfo = {
      ppid: octets(top, `${P}.1`, 16, 'PPID'),
      tcbComponents,
      pcesvn: int(tcb, `${P}.2.17`, 'PCESVN', 0xffff),
      cpusvn: octets(tcb, `${P}.2.18`, 16, 'CPUSVN'),
      pceid: octets(top, `${P}.3`, 2, 'PCE-ID'),
      fmspc: octets(top, `${P}.4`, 6, 'FMSPC'),
      sgxType: decodeSmallInteger(sgxTypeTlv),
      isPlatformCa,
    };
    if (!isPlatformCa) {
      if (top.has(`${P}.6`) || top.has(`${P}.7`)) {
        throw new DerError('Processor-CA PCK certificate carries platform fields');
      }
      return info;
    }
    const config = top.get(`${P}.7`);
    if (config === undefined) throw new DerError('Platform-CA PCK certificate has no configuration');
    const flags = oidMap(config);
    return {
      ...info,
      platformInstanceId: octets(top, `${P}.6`, 16, 'platform instance id'),
      dynamicPlatform: bool(flags, `${P}.7.1`, 'dynamic platform flag'),
      cachedKeys: bool(flags, `${P}.7.2`, 'cached keys flag'),
      smtEnabled: bool(flags, `${P}.7.3`, 'SMT flag'),
    };
  } catch (e) {
    if (e instanceof DerError) throw new AttestationFailure('pck-certificate', `PCK SGX extension: ${e.message}`);
    throw e;
  }
}
