/**
 * `[attestation_service.verifier_config]`: where the hardware verifiers find collateral.
 *
 * Trustee's keys are accepted as Trustee reads them (attestation-service/docs/config.md):
 * `snp_verifier.vcek_sources = [{type = "OfflineStore", path}, {type = "KDS", base_url}]` and
 * `dcap_verifier = {collateral_service, tcb_update_type}`. Ours: `collateral_dir` (the offline
 * directory every verifier reads first; AMD items at its top, Intel items under `intel/`),
 * `offline` (never contact AMD KDS or Intel PCS) and `fetch_timeout_seconds`.
 *
 * Offline first: the directory is always consulted before the network. Without a verifier_config
 * the network sources are Trustee's defaults (AMD KDS and Intel PCS), so a guest whose SNP evidence
 * carries no VCEK still attests, as with Trustee; `offline = true` turns every fetch off.
 */
import { z } from 'zod';
import type { Issues } from './issues.js';
import type { Resolver } from './paths.js';

export const DEFAULT_KDS_URL = 'https://kdsintf.amd.com';
export const DEFAULT_PCS_URL = 'https://api.trustedservices.intel.com/sgx/certification/v4/';
export const DEFAULT_COLLATERAL_DIR = 'collateral';
export const DEFAULT_FETCH_TIMEOUT_SECONDS = 5;

const nonEmpty = z.string().min(1, { error: 'must not be empty' });

const VcekSourceToml = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('OfflineStore'), path: nonEmpty.optional() }),
  z.strictObject({ type: z.literal('KDS'), base_url: nonEmpty.optional() }),
]);

export const VerifierConfigToml = z.strictObject({
  collateral_dir: nonEmpty.optional(),
  offline: z.boolean().optional(),
  fetch_timeout_seconds: z.number().positive().max(300).optional(),
  snp_verifier: z.strictObject({ vcek_sources: z.array(VcekSourceToml).max(8).optional() }).optional(),
  dcap_verifier: z
    .strictObject({
      collateral_service: nonEmpty,
      tcb_update_type: z.enum(['early', 'standard']).optional(),
    })
    .optional(),
});

export type VerifierConfigTomlInput = z.output<typeof VerifierConfigToml>;

/** The resolved verifier settings (the options of attestation/registry.ts `hardwareVerifiers`). */
export interface VerifierConfig {
  /** Offline collateral root (AMD `vcek/`, `crl/`; Intel `intel/`). */
  readonly collateralDir: string;
  /** AMD offline store when a Trustee `OfflineStore` source names another directory. */
  readonly snpCollateralDir?: string;
  readonly kds?: { readonly baseUrl: string; readonly timeoutMs: number };
  readonly pcs?: { readonly baseUrl: string; readonly timeoutMs: number; readonly updateType: 'early' | 'standard' };
}

const AT = ['attestation_service', 'verifier_config'] as const;

function httpsUrl(issues: Issues, at: readonly (string | number)[], value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    issues.add(at, 'must be an http(s) URL');
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    issues.add(at, 'must be an http(s) URL');
    return undefined;
  }
  return value;
}

export function resolveVerifierConfig(r: Resolver, toml: VerifierConfigTomlInput | undefined): VerifierConfig {
  const vc = toml ?? {};
  const collateralDir =
    vc.collateral_dir === undefined
      ? r.defaultPath(DEFAULT_COLLATERAL_DIR)
      : (r.path([...AT, 'collateral_dir'], vc.collateral_dir) ?? '');
  const timeoutMs = Math.round((vc.fetch_timeout_seconds ?? DEFAULT_FETCH_TIMEOUT_SECONDS) * 1000);
  const offline = vc.offline === true;

  // AMD: Trustee's source list; only one offline store and one KDS are meaningful.
  const sources = vc.snp_verifier?.vcek_sources ?? [{ type: 'KDS' as const }];
  let snpCollateralDir: string | undefined;
  let kds: VerifierConfig['kds'];
  sources.forEach((s, i) => {
    const at = [...AT, 'snp_verifier', 'vcek_sources', i];
    if (s.type === 'OfflineStore') {
      if (snpCollateralDir !== undefined) r.issues.add(at, 'only one OfflineStore source is supported');
      const dir = s.path === undefined ? collateralDir : r.path([...at, 'path'], s.path);
      if (dir !== undefined && dir !== collateralDir) snpCollateralDir = dir;
      else snpCollateralDir ??= collateralDir;
    } else {
      if (kds !== undefined) r.issues.add(at, 'only one KDS source is supported');
      const baseUrl = s.base_url === undefined ? DEFAULT_KDS_URL : httpsUrl(r.issues, [...at, 'base_url'], s.base_url);
      if (baseUrl !== undefined && !offline) kds = { baseUrl, timeoutMs };
    }
  });

  // Intel: a PCS/PCCS URL; Trustee's file:// form is the PCS Client Tool JSON, read from the directory.
  let pcs: VerifierConfig['pcs'];
  const dcap = vc.dcap_verifier;
  const service = dcap?.collateral_service ?? DEFAULT_PCS_URL;
  if (service.startsWith('file://')) {
    r.issues.add(
      [...AT, 'dcap_verifier', 'collateral_service'],
      `file:// collateral is read from the collateral directory: copy the PCS Client Tool JSON to ${collateralDir}/intel/pcs-client-tool.json and remove this key (or set offline = true)`,
    );
  } else {
    const baseUrl = httpsUrl(r.issues, [...AT, 'dcap_verifier', 'collateral_service'], service);
    if (baseUrl !== undefined && !offline) pcs = { baseUrl, timeoutMs, updateType: dcap?.tcb_update_type ?? 'early' };
  }

  return {
    collateralDir,
    ...(snpCollateralDir !== undefined && snpCollateralDir !== collateralDir ? { snpCollateralDir } : {}),
    ...(kds !== undefined ? { kds } : {}),
    ...(pcs !== undefined ? { pcs } : {}),
  };
}
