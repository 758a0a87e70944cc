/**
 * The `snp` verifier (upstream `deps/verifier/src/snp/mod.rs` `Snp::evaluate`), in upstream's order:
 * parse and version gate, generation, endorsement key (cert_chain, else offline store, else KDS),
 * chain + dates + revocation, report signature, TCB, VMPL, REPORT_DATA, HOST_DATA, claims.
 */
import { AttestationFailure, type Claims, type Verifier } from '../types.js';
import { builtinAnchors } from './anchors.js';
import { checkHostData, checkReportData, checkVmpl } from './checks.js';
import { snpClaims } from './claims.js';
import { crlPath, readIfExists, readOfflineVcek, vcekPaths, writeAtomic } from './collateral.js';
import { verifyCrl, type VerifiedCrl } from './crl.js';
import { parseSnpEvidence, type SnpCertEntry } from './evidence-json.js';
import type { SnpGeneration } from './generation.js';
import { crlUrl, KdsClient, vcekUrl, type KdsOptions } from './kds.js';
import type { SnpReport } from './report.js';
import { generationOf, verifySnpReportWithCert, type SnpVekType } from './verify-report.js';

export interface SnpVerifierOptions {
  /** Root of the AMD collateral directory (offline VCEK store, CRLs, KDS download cache). */
  collateralDir?: string;
  /** Online AMD KDS; absent = no network. */
  kds?: KdsOptions;
  /** How long a loaded CRL is reused before the file is read again (default 5 minutes). */
  crlReloadMs?: number;
}

export type VekSource = 'cert_chain' | 'offline-store' | 'kds';

/** Facts about a verification that are not claims (upstream emits none of them). */
export interface SnpMetadata {
  generation: SnpGeneration;
  vekType: SnpVekType;
  vekSource: VekSource;
  /** 'checked': a CRL signed by the ARK was applied; 'absent': no CRL was available. */
  crl: 'checked' | 'absent';
  /** cert_chain entries (ARK/ASK) that were ignored because they differ from the built-in ones. */
  ignoredCertificates: string[];
}

export interface SnpEvaluation {
  claims: Claims;
  report: SnpReport;
  metadata: SnpMetadata;
}

export interface SnpEvaluateInput {
  /** undefined = upstream `ReportData::NotProvided` (binding not checked). */
  reportData?: Uint8Array | undefined;
  /** undefined = upstream `InitDataHash::NotProvided`. */
  initDataHash?: Uint8Array | undefined;
  now: Date;
}

interface Vek {
  der: Buffer;
  type: SnpVekType;
  source: VekSource;
  ignored: string[];
  /** Set for a KDS download: where to cache it once it verified. */
  kdsUrl?: string;
}

/** Picks the VEK from cert_chain; ARK/ASK entries must equal the built-in ones or are ignored. */
function vekFromChain(chain: SnpCertEntry[], generation: SnpGeneration): Vek {
  const anchors = builtinAnchors(generation);
  const ignored: string[] = [];
  let vek: { der: Buffer; type: SnpVekType } | undefined;
  for (const entry of chain) {
    if (entry.certType === 'ARK' && !entry.data.equals(anchors.ark.der)) ignored.push('ARK');
    else if (entry.certType === 'ASK' && !entry.data.equals(anchors.ask.der) && !entry.data.equals(anchors.asvk.der)) ignored.push('ASK');
    else if ((entry.certType === 'VCEK' || entry.certType === 'VLEK') && vek === undefined) {
      vek = { der: entry.data, type: entry.certType };
    }
  }
  if (vek === undefined) throw new AttestationFailure('certificate-chain', 'If a cert chain is provided, it must include a VCEK/VLEK');
  return { ...vek, source: 'cert_chain', ignored };
}

export class SnpVerifier implements Verifier {
  readonly tee = 'snp' as const;
  readonly teeClass = 'cpu';
  private readonly dir: string | undefined;
  private readonly kds: KdsClient | undefined;
  private readonly crlReloadMs: number;
  private readonly crls = new Map<SnpGeneration, { verified: VerifiedCrl; loadedAt: number }>();
  private readonly crlFetchFailedAt = new Map<SnpGeneration, number>();

  constructor(options: SnpVerifierOptions = {}) {
    this.dir = options.collateralDir;
    this.kds = options.kds === undefined ? undefined : new KdsClient(options.kds);
    this.crlReloadMs = options.crlReloadMs ?? 5 * 60_000;
  }

  async verify(
    evidence: unknown,
    expectedReportData: Uint8Array,
    expectedInitDataHash: Uint8Array | undefined,
    now: Date,
  ): Promise<Claims> {
    const result = await this.evaluate(evidence, { reportData: expectedReportData, initDataHash: expectedInitDataHash, now });
    return result.claims;
  }

  async evaluate(evidence: unknown, input: SnpEvaluateInput): Promise<SnpEvaluation> {
    const { report, certChain } = parseSnpEvidence(evidence, { checkVersion: true });
    const generation = generationOf(report);
    const vek = certChain !== null ? vekFromChain(certChain, generation) : await this.fetchVcek(report, generation);
    const crl = await this.crlFor(generation, input.now);
    try {
      verifySnpReportWithCert(report, vek.der, {
        now: input.now,
        generation,
        vekType: vek.type,
        ...(crl !== undefined ? { crl } : {}),
      });
    } catch (e) {
      if (vek.kdsUrl !== undefined) this.kds?.forget(vek.kdsUrl);
      throw e;
    }
    if (vek.source === 'kds') await this.cacheVcek(report, generation, vek.der);
    checkVmpl(report);
    if (input.reportData !== undefined) checkReportData(report, input.reportData);
    if (input.initDataHash !== undefined) checkHostData(report, input.initDataHash);
    return {
      claims: snpClaims(report),
      report,
      metadata: {
        generation,
        vekType: vek.type,
        vekSource: vek.source,
        crl: crl === undefined ? 'absent' : 'checked',
        ignoredCertificates: vek.ignored,
      },
    };
  }

  /** upstream `fetch_vcek`: the offline store, then KDS; the first source that yields bytes wins. */
  private async fetchVcek(report: SnpReport, generation: SnpGeneration): Promise<Vek> {
    if (report.chipId.every((b) => b === 0)) {
      throw new AttestationFailure('vcek-fetch', 'SNP chip id is masked (MASK_CHIP_ID): the VCEK must be sent in cert_chain');
    }
    const reasons: string[] = [];
    if (this.dir !== undefined) {
      try {
        const found = await readOfflineVcek(this.dir, report, generation);
        if (found !== undefined) return { der: found.der, type: 'VCEK', source: 'offline-store', ignored: [] };
        reasons.push('not in the offline store');
      } catch (e) {
        reasons.push(`offline store unreadable (${e instanceof Error ? e.message : 'error'})`);
      }
    }
    if (this.kds !== undefined) {
      const url = vcekUrl(this.kds.options.baseUrl, generation, report);
      try {
        const der = await this.kds.get(url);
        return { der, type: 'VCEK', source: 'kds', ignored: [], kdsUrl: url };
      } catch (e) {
        reasons.push(e instanceof Error ? e.message : 'KDS error');
      }
    }
    if (reasons.length === 0) reasons.push('no VCEK source is configured');
    throw new AttestationFailure('vcek-fetch', `Failed to fetch VCEK from any configured source: ${reasons.join('; ')}`);
  }

  /** Keeps a verified KDS VCEK in the offline store (best effort: the verification already passed). */
  private async cacheVcek(report: SnpReport, generation: SnpGeneration, der: Buffer): Promise<void> {
    if (this.dir === undefined) return;
    try {
      await writeAtomic(vcekPaths(this.dir, report, generation).tcb, der);
    } catch {
      // A read-only collateral directory only costs a KDS round trip next time.
    }
  }

  /**
   * The generation's CRL, verified with the built-in ARK: from memory (reloaded every
   * `crlReloadMs`), else the collateral directory, else (or when that one is stale) KDS, written
   * back to the directory. A CRL that is present but invalid or stale fails the attestation; no CRL
   * at all is reported in the metadata. A failed KDS CRL download is not retried for a minute.
   */
  private async crlFor(generation: SnpGeneration, now: Date): Promise<VerifiedCrl | undefined> {
    const ark = builtinAnchors(generation).ark;
    const cached = this.crls.get(generation);
    if (cached !== undefined && Date.now() - cached.loadedAt < this.crlReloadMs && crlCurrent(cached.verified, now)) {
      return cached.verified;
    }
    this.crls.delete(generation);
    const what = `AMD ${generation} CRL`;
    const path = this.dir === undefined ? undefined : crlPath(this.dir, generation);
    let der: Buffer | undefined;
    if (path !== undefined) {
      try {
        der = await readIfExists(path);
      } catch (e) {
        throw new AttestationFailure('crl', `${what} cannot be read`, { cause: e });
      }
    }
    if (der !== undefined) {
      const verified = verifyCrl(der, ark, now, what, { allowStale: true });
      if (crlCurrent(verified, now) || this.kds === undefined) {
        const current = verifyCrl(der, ark, now, what);
        this.crls.set(generation, { verified: current, loadedAt: Date.now() });
        return current;
      }
    }
    if (this.kds === undefined) return undefined;
    const failedAt = this.crlFetchFailedAt.get(generation);
    if (failedAt !== undefined && Date.now() - failedAt < 60_000) {
      if (der !== undefined) throw new AttestationFailure('crl', `${what} is stale and KDS is unavailable`);
      return undefined;
    }
    let fresh: Buffer;
    try {
      fresh = await this.kds.getFresh(crlUrl(this.kds.options.baseUrl, generation));
    } catch {
      this.crlFetchFailedAt.set(generation, Date.now());
      if (der !== undefined) throw new AttestationFailure('crl', `${what} is stale and KDS is unavailable`);
      return undefined;
    }
    this.crlFetchFailedAt.delete(generation);
    const verified = verifyCrl(fresh, ark, now, what);
    this.crls.set(generation, { verified, loadedAt: Date.now() });
    if (path !== undefined) await writeAtomic(path, fresh).catch(() => undefined);
    return verified;
  }
}

function crlCurrent(v: VerifiedCrl, now: Date): boolean {
  const { thisUpdate, nextUpdate } = v.crl;
  return thisUpdate.getTime() <= now.getTime() && (nextUpdate === undefined || nextUpdate.getTime() >= now.getTime());
}
