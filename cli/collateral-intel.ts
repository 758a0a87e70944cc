/**
 * `kbs collateral fetch` (Intel part): fills `<dir>/intel/` (layout in attestation/intel-dcap/README.md)
 * from Intel PCS v4 for the given FMSPCs and/or the platforms of the given quote files, so that
 * verification can run offline. Every TCB info and QE identity is signature-checked before it is
 * written; each file is written atomically.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../policy/store.js';
import { layout, type IntelTee, type PckCa } from '../attestation/intel-dcap/offline-store.js';
import { PcsClient } from '../attestation/intel-dcap/pcs.js';
import { verifyPckChain } from '../attestation/intel-dcap/quote-verify.js';
import { parseQuote } from '../attestation/intel-dcap/quote.js';
import { verifyQeIdentity, verifyTcbInfo } from '../attestation/intel-dcap/signed-collateral.js';
import type { X509Certificate } from 'node:crypto';
import { verifyChain } from '../attestation/intel-dcap/certs.js';
import { verifyCrl } from '../attestation/intel-dcap/crl.js';
import { parsePemChain } from '../attestation/intel-dcap/pem.js';

export interface FetchIntelCollateralOptions {
  dir: string;
  pcsBaseUrl: string;
  timeoutMs: number;
  /** FMSPCs (12 hex digits); TCB info is fetched for both SGX and TDX, whichever PCS has. */
  fmspcs?: string[];
  /** Raw quote files (SGX v3 or TDX v4/v5); their FMSPC, TEE and PCK CA select what is fetched. */
  quoteFiles?: string[];
  updateType: 'early' | 'standard';
}

interface Target {
  fmspc: string;
  tees: IntelTee[];
}

async function targets(opts: FetchIntelCollateralOptions): Promise<{ list: Target[]; cas: Set<PckCa> }> {
  const list: Target[] = [];
  const cas = new Set<PckCa>();
  for (const f of opts.fmspcs ?? []) {
    if (!/^[0-9a-fA-F]{12}$/.test(f)) throw new Error(`invalid FMSPC ${JSON.stringify(f)} (12 hex digits expected)`);
    list.push({ fmspc: f.toUpperCase(), tees: ['sgx', 'tdx'] });
    cas.add('platform').add('processor');
  }
  for (const file of opts.quoteFiles ?? []) {
    const quote = parseQuote(await readFile(file));
    const { platform } = verifyPckChain(quote.sig.pckChainPem);
    list.push({ fmspc: platform.fmspc.toString('hex').toUpperCase(), tees: [quote.kind] });
    cas.add(platform.isPlatformCa ? 'platform' : 'processor');
  }
  if (list.length === 0) throw new Error('no FMSPC or quote file given');
  return { list, cas };
}

/** Fetches Intel collateral into `opts.dir/intel` and returns the paths written. */
export async function fetchIntelCollateral(opts: FetchIntelCollateralOptions): Promise<string[]> {
  const pcs = new PcsClient({ baseUrl: opts.pcsBaseUrl, timeoutMs: opts.timeoutMs, updateType: opts.updateType });
  const root = join(opts.dir, 'intel');
  const early = opts.updateType === 'early';
  const written: string[] = [];
  const put = async (rel: string, data: Buffer | string): Promise<void> => {
    const path = join(root, rel);
    await writeAtomic(path, data);
    written.push(path);
  };
  const { list, cas } = await targets(opts);
  const tees = new Set<IntelTee>();
  for (const t of list) {
    let found = false;
    for (const tee of t.tees) {
      const item = await pcs.tcbInfo(tee, t.fmspc);
      if (item === undefined) continue;
      verifyTcbInfo(item);
      const rel = layout.tcbInfo(tee, t.fmspc, early);
      await put(rel, item.text);
      await put(layout.chainOf(rel), item.issuerChainPem);
      tees.add(tee);
      found = true;
    }
    if (!found) throw new Error(`PCS has no TCB info for FMSPC ${t.fmspc} (or did not answer in time)`);
  }
  for (const tee of tees) {
    const item = await pcs.qeIdentity(tee);
    if (item === undefined) throw new Error(`PCS has no ${tee} QE identity (or did not answer in time)`);
    verifyQeIdentity(item);
    const rel = layout.qeIdentity(tee, early);
    await put(rel, item.text);
    await put(layout.chainOf(rel), item.issuerChainPem);
  }
  // CRLs are verified before they are written: each PCK CRL by its CA (whose chain must end at the
  // pinned Intel root), the Root CA CRL by that root. A CRL PCS does not have is skipped (the
  // verifier then reports crl_status "missing"); one that does not verify is an error.
  let rootCa: X509Certificate | undefined;
  for (const ca of cas) {
    const crl = await pcs.pckCrl(ca);
    if (crl === undefined) continue;
    if (crl.chain === undefined) throw new Error(`PCS sent the ${ca} PCK CRL without its issuer chain`);
    const chain = verifyChain(parsePemChain(crl.chain, 'collateral-crl'), 'collateral-crl');
    verifyCrl(crl.der, chain.certs[0] as X509Certificate, `${ca} PCK CRL`);
    rootCa = chain.certs[chain.certs.length - 1];
    await put(layout.pckCrl(ca), crl.der);
    await put(layout.pckCrlChain(ca), crl.chain);
  }
  const rootCrl = await pcs.rootCaCrl();
  if (rootCrl !== undefined) {
    if (rootCa === undefined) throw new Error('the Intel Root CA CRL cannot be checked without a PCK CRL issuer chain');
    verifyCrl(rootCrl, rootCa, 'Intel Root CA CRL');
    await put(layout.rootCaCrl, rootCrl);
  }
  return written;
}
