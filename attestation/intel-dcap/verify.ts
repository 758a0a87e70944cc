/**
 * The full DCAP verification of one quote at `now`: signatures and PCK chain (`quote-verify.ts`),
 * then, with whatever collateral is available, revocation, collateral signatures and the TCB level.
 * Missing collateral leaves the TCB status "Unknown"; Revoked rejects; everything else is reported.
 */
import type { X509Certificate } from 'node:crypto';
import type { Claims } from '../types.js';
import { AttestationFailure } from '../types.js';
import { chainValidAt, type VerifiedChain } from './certs.js';
import type { IntelCollateral } from './collateral.js';
import { isRevoked, verifyCrl } from './crl.js';
import { dcapClaims } from './dcap-claims.js';
import type { PlatformInfo } from './pck-extension.js';
import type { Quote, SgxQuote, TdxQuote } from './quote.js';
import { verifyQuoteSignatures } from './quote-verify.js';
import { intelRootCertificate } from './root.js';
import { verifyQeIdentity, verifyTcbInfo } from './signed-collateral.js';
import { evaluateTcb, type TcbEvaluation } from './tcb.js';
import type { TcbStatus } from './collateral-schema.js';

export interface TcbVerdict {
  /** The converged status, or "Unknown" when TCB info or QE identity is not available. */
  readonly status: TcbStatus | 'Unknown';
  readonly evaluation?: TcbEvaluation;
  /** Some collateral item is past its nextUpdate/notAfter at `now` (or collateral is missing). */
  readonly collateralExpired: boolean;
  /** Both CRLs were available and verified. */
  readonly crlChecked: boolean;
  readonly advisoryIds: readonly string[];
  readonly tcbDate?: string;
  readonly pckCrlNumber?: number;
  readonly rootCaCrlNumber?: number;
  readonly tcbEvaluationNumber?: number;
  readonly earliestIssueDate: Date;
  readonly latestIssueDate: Date;
  readonly earliestExpirationDate: Date;
}

export interface DcapResult<Q extends Quote = Quote> {
  readonly quote: Q;
  readonly platform: PlatformInfo;
  readonly pckChain: VerifiedChain;
  readonly tcb: TcbVerdict;
  /** The DCAP claims (README.md), in upstream order. */
  readonly claims: Claims;
}

class Dates {
  issue: number[] = [];
  expiry: number[] = [];
  expired = false;
  constructor(private readonly now: number) {}
  add(issued: number | undefined, expires: number | undefined): void {
    if (issued !== undefined && !Number.isNaN(issued)) this.issue.push(issued);
    if (expires !== undefined && !Number.isNaN(expires)) {
      this.expiry.push(expires);
      if (expires < this.now) this.expired = true;
    }
  }
  addChain(chain: VerifiedChain): void {
    for (const c of chain.certs) this.add(Date.parse(c.validFrom), Date.parse(c.validTo));
  }
}

function revoked(message: string): never {
  throw new AttestationFailure('tcb-status', message);
}

async function verifyDcapQuote(bytes: Uint8Array, now: Date, collateral: IntelCollateral, tee: 'tdx' | 'sgx'): Promise<DcapResult> {
  try {
    return await verifyUnchecked(bytes, now, collateral, tee);
  } catch (e) {
    // The contract is AttestationFailure only; anything else is a defect or an I/O problem, reported without detail.
    if (e instanceof AttestationFailure) throw e;
    throw new AttestationFailure('dcap', 'quote verification failed unexpectedly', { cause: e });
  }
}

async function verifyUnchecked(bytes: Uint8Array, now: Date, collateral: IntelCollateral, tee: 'tdx' | 'sgx'): Promise<DcapResult> {
  const { quote, pck } = verifyQuoteSignatures(bytes, now);
  if (quote.kind !== tee) {
    throw new AttestationFailure('quote-format', tee === 'tdx' ? 'expected a TDX quote (v4/v5), got an SGX quote' : 'expected an SGX quote (v3)');
  }
  const { platform } = pck;
  const fmspc = platform.fmspc.toString('hex').toUpperCase();
  const set = await collateral.collect(tee, fmspc, platform.isPlatformCa ? 'platform' : 'processor', now);
  const dates = new Dates(now.getTime());
  // PCK chain dates were enforced already; they still count for the issue/expiration claims.
  for (const c of pck.chain.certs) dates.issue.push(Date.parse(c.validFrom)), dates.expiry.push(Date.parse(c.validTo));

  const [leaf, intermediate] = pck.chain.certs as [X509Certificate, X509Certificate, X509Certificate];
  let rootCaCrlNumber: number | undefined;
  let pckCrlNumber: number | undefined;
  if (set.rootCaCrl !== undefined) {
    const { crl, number } = verifyCrl(set.rootCaCrl, intelRootCertificate(), 'Root CA CRL');
    if (isRevoked(crl, intermediate)) revoked('the PCK CA certificate is revoked');
    dates.add(crl.thisUpdate.getTime(), crl.nextUpdate?.getTime());
    rootCaCrlNumber = number;
  }
  if (set.pckCrl !== undefined) {
    const { crl, number } = verifyCrl(set.pckCrl, intermediate, 'PCK CRL');
    if (isRevoked(crl, leaf)) revoked('the PCK certificate is revoked');
    dates.add(crl.thisUpdate.getTime(), crl.nextUpdate?.getTime());
    pckCrlNumber = number;
  }
  const crlChecked = rootCaCrlNumber !== undefined && pckCrlNumber !== undefined;

  let tcb: TcbVerdict;
  if (set.tcbInfo !== undefined && set.qeIdentity !== undefined) {
    const info = verifyTcbInfo(set.tcbInfo);
    const identity = verifyQeIdentity(set.qeIdentity);
    for (const v of [info, identity]) {
      dates.addChain(v.chain);
      if (!chainValidAt(v.chain, now)) dates.expired = true;
    }
    dates.add(Date.parse(info.value.issueDate), Date.parse(info.value.nextUpdate));
    dates.add(Date.parse(identity.value.issueDate), Date.parse(identity.value.nextUpdate));
    const evaluation = evaluateTcb(quote, platform, info.value, identity.value);
    if (evaluation.status === 'Revoked') revoked('the TCB status is Revoked');
    tcb = {
      status: evaluation.status,
      evaluation,
      collateralExpired: dates.expired,
      crlChecked,
      advisoryIds: evaluation.advisoryIds,
      tcbDate: evaluation.tcbDate,
      pckCrlNumber: pckCrlNumber ?? 0,
      rootCaCrlNumber: rootCaCrlNumber ?? 0,
      tcbEvaluationNumber: Math.min(info.value.tcbEvaluationDataNumber, identity.value.tcbEvaluationDataNumber),
      ...span(dates),
    };
  } else {
    tcb = { status: 'Unknown', collateralExpired: true, crlChecked, advisoryIds: [], ...span(dates) };
  }
  return { quote, platform, pckChain: pck.chain, tcb, claims: dcapClaims(platform, tcb) };
}

function span(d: Dates): Pick<TcbVerdict, 'earliestIssueDate' | 'latestIssueDate' | 'earliestExpirationDate'> {
  return {
    earliestIssueDate: new Date(Math.min(...d.issue)),
    latestIssueDate: new Date(Math.max(...d.issue)),
    earliestExpirationDate: new Date(Math.min(...d.expiry)),
  };
}

/**
 * Verifies a TDX quote (v4/v5) at `now`: signatures, PCK chain, revocation and TCB as far as
 * collateral allows. REPORT_DATA and MRCONFIGID are the caller's business. Throws AttestationFailure.
 */
export async function verifyTdQuote(bytes: Uint8Array, now: Date, collateral: IntelCollateral): Promise<DcapResult<TdxQuote>> {
  return (await verifyDcapQuote(bytes, now, collateral, 'tdx')) as DcapResult<TdxQuote>;
}

/** The same for SGX (v3) quotes. */
export async function verifySgxQuote(bytes: Uint8Array, now: Date, collateral: IntelCollateral): Promise<DcapResult<SgxQuote>> {
  return (await verifyDcapQuote(bytes, now, collateral, 'sgx')) as DcapResult<SgxQuote>;
}
