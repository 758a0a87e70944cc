/**
 * Offline Intel collateral: the directory layout of README.md (`<dir>/intel/…`) and Intel's PCS
 * Client Tool JSON (`pcs-client-tool.json`, verifiers.md §4.4). Files are re-read only when their
 * mtime changes. Missing items are `undefined`, never an error; unreadable or malformed files are.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AttestationFailure } from '../types.js';
import { JsonScanError, member, rawText, scanJson, type RawNode } from './json-raw.js';
import type { SignedItem } from './signed-collateral.js';

export type IntelTee = 'sgx' | 'tdx';
export type PckCa = 'platform' | 'processor';
export type UpdateType = 'early' | 'standard';

/** Raw (unverified) collateral for one quote. */
export interface CollateralSet {
  tcbInfo?: SignedItem;
  qeIdentity?: SignedItem;
  pckCrl?: Buffer;
  rootCaCrl?: Buffer;
}

interface FileEntry {
  mtimeMs: number;
  data: Buffer;
}
const files = new Map<string, FileEntry>();

/** Reads a file through an mtime-checked cache; undefined when it does not exist. */
export async function readCached(path: string): Promise<Buffer | undefined> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AttestationFailure('collateral', `cannot read collateral file ${path}`);
  }
  const hit = files.get(path);
  if (hit !== undefined && hit.mtimeMs === mtimeMs) return hit.data;
  const data = await readFile(path).catch(() => undefined);
  if (data === undefined) return undefined;
  if (files.size > 512) files.clear();
  files.set(path, { mtimeMs, data });
  return data;
}

/** Relative paths of the layout, shared with the online fetcher and the CLI. */
export const layout = {
  tcbInfo: (tee: IntelTee, fmspc: string, early: boolean) => join('tcbinfo', tee, `${fmspc.toUpperCase()}${early ? '.early' : ''}.json`),
  qeIdentity: (tee: IntelTee, early: boolean) => join('qeidentity', `${tee}${early ? '.early' : ''}.json`),
  chainOf: (jsonPath: string) => jsonPath.replace(/\.json$/, '.chain.pem'),
  signingChain: 'signing-chain.pem',
  pckCrl: (ca: PckCa) => join('pckcrl', `${ca}.der`),
  pckCrlChain: (ca: PckCa) => join('pckcrl', `${ca}.chain.pem`),
  rootCaCrl: 'rootcacrl.der',
  clientTool: 'pcs-client-tool.json',
};

async function signedItem(root: string, rel: string): Promise<SignedItem | undefined> {
  const body = await readCached(join(root, rel));
  if (body === undefined) return undefined;
  const chain = (await readCached(join(root, layout.chainOf(rel)))) ?? (await readCached(join(root, layout.signingChain)));
  if (chain === undefined) return undefined;
  return { text: body.toString('utf8'), issuerChainPem: chain.toString('latin1') };
}

async function firstItem(root: string, rels: string[]): Promise<SignedItem | undefined> {
  for (const rel of rels) {
    const item = await signedItem(root, rel);
    if (item !== undefined) return item;
  }
  return undefined;
}

/** Loose files under `<dir>/intel`. */
export async function loadLooseFiles(intelDir: string, tee: IntelTee, fmspc: string, ca: PckCa, update: UpdateType): Promise<CollateralSet> {
  const early = update === 'early';
  const tcbRels = early ? [layout.tcbInfo(tee, fmspc, true), layout.tcbInfo(tee, fmspc, false)] : [layout.tcbInfo(tee, fmspc, false)];
  const qeRels = early ? [layout.qeIdentity(tee, true), layout.qeIdentity(tee, false)] : [layout.qeIdentity(tee, false)];
  const set: CollateralSet = {};
  const tcbInfo = await firstItem(intelDir, tcbRels);
  const qeIdentity = await firstItem(intelDir, qeRels);
  const pckCrl = await readCached(join(intelDir, layout.pckCrl(ca)));
  const rootCaCrl = await readCached(join(intelDir, layout.rootCaCrl));
  if (tcbInfo !== undefined) set.tcbInfo = tcbInfo;
  if (qeIdentity !== undefined) set.qeIdentity = qeIdentity;
  if (pckCrl !== undefined) set.pckCrl = pckCrl;
  if (rootCaCrl !== undefined) set.rootCaCrl = rootCaCrl;
  return set;
}

interface ClientTool {
  text: string;
  root: RawNode;
}
const toolCache = new WeakMap<Buffer, ClientTool>();

function str(text: string, node: RawNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  const v = JSON.parse(rawText(text, node)) as unknown;
  return typeof v === 'string' ? v : undefined;
}

function hexBytes(s: string | undefined): Buffer | undefined {
  if (s === undefined || !/^([0-9a-fA-F]{2})*$/.test(s)) return undefined;
  return Buffer.from(s, 'hex');
}

function urlDecode(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** The PCS Client Tool JSON (`<dir>/intel/pcs-client-tool.json`), items selected as upstream does. */
export async function loadClientTool(intelDir: string, tee: IntelTee, fmspc: string, ca: PckCa, update: UpdateType): Promise<CollateralSet> {
  const data = await readCached(join(intelDir, layout.clientTool));
  if (data === undefined) return {};
  let tool = toolCache.get(data);
  if (tool === undefined) {
    const text = data.toString('utf8');
    try {
      JSON.parse(text);
      tool = { text, root: scanJson(text) };
    } catch (e) {
      if (e instanceof SyntaxError || e instanceof JsonScanError) throw new AttestationFailure('collateral', 'PCS Client Tool file is not valid JSON');
      throw e;
    }
    toolCache.set(data, tool);
  }
  const { text } = tool;
  const col = member(tool.root, 'collaterals');
  const certs = member(col, 'certificates');
  const early = update === 'early';
  const set: CollateralSet = {};
  const pick = (node: RawNode | undefined, names: string[]): RawNode | undefined => {
    for (const n of names) {
      const v = member(node, n);
      if (v?.members !== undefined) return v;
    }
    return undefined;
  };
  const entry = member(col, 'tcbinfos')?.items?.find((e) => str(text, member(e, 'fmspc'))?.toUpperCase() === fmspc.toUpperCase());
  const tcbNames = early ? [`${tee}_tcbinfo_early`, `${tee}_tcbinfo`] : [`${tee}_tcbinfo`];
  const tcbNode = pick(entry, tcbNames);
  const tcbChain = urlDecode(str(text, member(certs, 'TCB-Info-Issuer-Chain')));
  if (tcbNode !== undefined && tcbChain !== undefined) set.tcbInfo = { text: rawText(text, tcbNode), issuerChainPem: tcbChain };
  const qeBase = tee === 'tdx' ? 'tdqeidentity' : 'qeidentity';
  const qeNode = pick(col, early ? [`${qeBase}_early`, qeBase] : [qeBase]);
  const qeChain = urlDecode(str(text, member(certs, 'SGX-Enclave-Identity-Issuer-Chain')));
  if (qeNode !== undefined && qeChain !== undefined) set.qeIdentity = { text: rawText(text, qeNode), issuerChainPem: qeChain };
  const pckCrl = hexBytes(str(text, member(member(col, 'pckcacrl'), ca === 'platform' ? 'platformCrl' : 'processorCrl')));
  if (pckCrl !== undefined && pckCrl.length > 0) set.pckCrl = pckCrl;
  const rootCaCrl = hexBytes(str(text, member(col, 'rootcacrl')));
  if (rootCaCrl !== undefined && rootCaCrl.length > 0) set.rootCaCrl = rootCaCrl;
  return set;
}
