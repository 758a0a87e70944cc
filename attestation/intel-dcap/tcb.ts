/**
 * TCB evaluation (Intel QVL semantics, verifiers.md §4.3 steps 6–8): the platform TCB level from the
 * PCK certificate's SVNs (and, for TDX, the TEE TCB SVN), the TDX module identity, the QE identity,
 * and the convergence of their statuses into one result.
 */
import { AttestationFailure } from '../types.js';
import { sgxComponents, type EnclaveIdentity, type TcbInfo, type TcbLevel, type TcbStatus } from './collateral-schema.js';
import type { PlatformInfo } from './pck-extension.js';
import type { Quote, SgxReportBody } from './quote.js';

export interface TcbEvaluation {
  readonly status: TcbStatus;
  readonly platformStatus: TcbStatus;
  readonly qeStatus: TcbStatus;
  readonly moduleStatus?: TcbStatus;
  readonly tcbDate: string;
  readonly advisoryIds: readonly string[];
}

function fail(step: string, message: string): never {
  throw new AttestationFailure(step, message);
}

const hexEq = (a: string, b: Buffer): boolean => a.toLowerCase() === b.toString('hex');

/** `(value & mask) == expected` over equal-length hex/bytes. */
function maskedEq(value: Buffer, maskHex: string, expectedHex: string): boolean {
  const mask = Buffer.from(maskHex, 'hex');
  const expected = Buffer.from(expectedHex, 'hex');
  if (mask.length !== value.length || expected.length !== value.length) return false;
  for (let i = 0; i < value.length; i++) if (((value[i] as number) & (mask[i] as number)) !== expected[i]) return false;
  return true;
}

/** Applies a lower-precedence status (TDX module or QE) to the platform status, as QVL does. */
export function converge(platform: TcbStatus, other: TcbStatus): TcbStatus {
  if (other === 'Revoked') return 'Revoked';
  if (other !== 'OutOfDate') return platform;
  if (platform === 'UpToDate' || platform === 'SWHardeningNeeded') return 'OutOfDate';
  if (platform === 'ConfigurationNeeded' || platform === 'ConfigurationAndSWHardeningNeeded') return 'OutOfDateConfigurationNeeded';
  return platform;
}

function qeLevel(identity: EnclaveIdentity, qe: SgxReportBody, expectedId: string): TcbLevel {
  if (identity.id !== expectedId) fail('qe-identity', `QE identity is ${identity.id}, expected ${expectedId}`);
  if (!maskedEq(qe.miscSelect, identity.miscselectMask, identity.miscselect)) fail('qe-identity', 'QE MISCSELECT does not match the QE identity');
  if (!maskedEq(qe.attributes, identity.attributesMask, identity.attributes)) fail('qe-identity', 'QE attributes do not match the QE identity');
  if (!hexEq(identity.mrsigner, qe.mrSigner)) fail('qe-identity', 'QE MRSIGNER does not match the QE identity');
  if (identity.isvprodid !== qe.isvProdId) fail('qe-identity', 'QE ISVPRODID does not match the QE identity');
  const level = identity.tcbLevels.find((l) => (l.tcb.isvsvn ?? Infinity) <= qe.isvSvn);
  return level ?? fail('qe-identity', 'QE ISVSVN is below every QE identity TCB level');
}

function platformLevel(info: TcbInfo, platform: PlatformInfo, teeTcbSvn: Buffer | undefined): TcbLevel {
  const tdxFrom = teeTcbSvn !== undefined && teeTcbSvn[1] !== 0 ? 2 : 0;
  for (const level of info.tcbLevels) {
    const sgx = sgxComponents(level);
    if (sgx === undefined || level.tcb.pcesvn === undefined) fail('tcb-info', 'TCB level lacks SGX components or PCESVN');
    if (sgx.some((svn, i) => (platform.tcbComponents[i] as number) < svn)) continue;
    if (platform.pcesvn < level.tcb.pcesvn) continue;
    if (teeTcbSvn !== undefined) {
      const tdx = level.tcb.tdxtcbcomponents;
      if (tdx === undefined) fail('tcb-info', 'TDX TCB level lacks TDX components');
      let ok = true;
      for (let i = tdxFrom; i < 16; i++) if ((teeTcbSvn[i] as number) < (tdx[i] as { svn: number }).svn) ok = false;
      if (!ok) continue;
    }
    return level;
  }
  return fail('tcb-info', 'the platform TCB is below every TCB level (TCB not supported)');
}

function moduleLevel(info: TcbInfo, quote: Quote): TcbLevel | undefined {
  if (quote.kind !== 'tdx') return undefined;
  const { teeTcbSvn, mrSignerSeam, seamAttributes } = quote.body;
  const version = teeTcbSvn[1] as number;
  if (version === 0) {
    const m = info.tdxModule;
    if (m === undefined) return undefined;
    if (!hexEq(m.mrsigner, mrSignerSeam)) fail('tcb-info', 'MRSIGNER_SEAM does not match the TDX module');
    if (!maskedEq(seamAttributes, m.attributesMask, m.attributes)) fail('tcb-info', 'SEAM attributes do not match the TDX module');
    return undefined;
  }
  const id = `TDX_${version.toString(16).toUpperCase().padStart(2, '0')}`;
  const identity = info.tdxModuleIdentities?.find((m) => m.id.toUpperCase() === id);
  if (identity === undefined) fail('tcb-info', `TCB info has no TDX module identity ${id}`);
  if (!hexEq(identity.mrsigner, mrSignerSeam)) fail('tcb-info', 'MRSIGNER_SEAM does not match the TDX module identity');
  if (!maskedEq(seamAttributes, identity.attributesMask, identity.attributes)) fail('tcb-info', 'SEAM attributes do not match the TDX module identity');
  const level = identity.tcbLevels.find((l) => (l.tcb.isvsvn ?? Infinity) <= (teeTcbSvn[0] as number));
  return level ?? fail('tcb-info', 'TDX module SVN is below every module TCB level');
}

/** Evaluates the TCB of a signature-verified quote against verified collateral. */
export function evaluateTcb(quote: Quote, platform: PlatformInfo, info: TcbInfo, identity: EnclaveIdentity): TcbEvaluation {
  const isTdx = quote.kind === 'tdx';
  if (isTdx ? info.id !== 'TDX' || info.version !== 3 : info.id !== undefined && info.id !== 'SGX') {
    fail('tcb-info', `TCB info is not for ${isTdx ? 'TDX' : 'SGX'}`);
  }
  if (!hexEq(info.fmspc, platform.fmspc)) fail('tcb-info', 'TCB info FMSPC does not match the PCK certificate');
  if (!hexEq(info.pceId, platform.pceid)) fail('tcb-info', 'TCB info PCE-ID does not match the PCK certificate');
  const qe = qeLevel(identity, quote.sig.qeReport, isTdx ? 'TD_QE' : 'QE');
  const plat = platformLevel(info, platform, isTdx ? quote.body.teeTcbSvn : undefined);
  const mod = moduleLevel(info, quote);
  let status = plat.tcbStatus;
  if (mod !== undefined) status = converge(status, mod.tcbStatus);
  status = converge(status, qe.tcbStatus);
  const advisoryIds = [...new Set([...(plat.advisoryIDs ?? []), ...(mod?.advisoryIDs ?? []), ...(qe.advisoryIDs ?? [])])];
  return {
    status,
    platformStatus: plat.tcbStatus,
    qeStatus: qe.tcbStatus,
    ...(mod !== undefined ? { moduleStatus: mod.tcbStatus } : {}),
    tcbDate: plat.tcbDate,
    advisoryIds,
  };
}
