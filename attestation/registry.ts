/** The verifiers the attestation service can use, one per TEE (upstream `verifier::to_verifier`). */
import { AzSnpVtpmVerifier } from './az-snp-vtpm/verifier.js';
import { AzTdxVtpmVerifier } from './az-tdx-vtpm/verifier.js';
import { IntelCollateral, type PcsOptions } from './intel-dcap/index.js';
import { SampleDeviceVerifier, SampleVerifier } from './sample/verifier.js';
import { SgxVerifier } from './sgx/verifier.js';
import { SnpVerifier, type KdsOptions } from './snp/index.js';
import { TdxVerifier } from './tdx/verifier.js';
import { TpmVerifier } from './tpm/verifier.js';
import type { Tee, Verifier } from './types.js';

export class VerifierRegistry {
  private readonly verifiers = new Map<Tee, Verifier>();

  /** Registers `v` for its TEE, replacing any verifier registered for that TEE before. */
  register(v: Verifier): void {
    this.verifiers.set(v.tee, v);
  }

  get(tee: Tee): Verifier | undefined {
    return this.verifiers.get(tee);
  }

  /** The TEEs with a registered verifier. */
  tees(): Tee[] {
    return [...this.verifiers.keys()];
  }
}

/** The verifiers available without hardware collateral: `sample` and `sampledevice`. */
export function defaultVerifiers(): VerifierRegistry {
  const registry = new VerifierRegistry();
  registry.register(new SampleVerifier());
  registry.register(new SampleDeviceVerifier());
  return registry;
}

/** Where the hardware verifiers find collateral (upstream `snp_verifier` / `dcap_verifier` config). */
export interface HardwareVerifierOptions {
  /**
   * Root of the collateral directory: AMD items (`vcek/`, `crl/`) directly under it, Intel items
   * under `intel/` (see attestation/snp/README.md and attestation/intel-dcap/README.md).
   */
  collateralDir?: string;
  /** The AMD offline store, when it is not `collateralDir` (Trustee's `OfflineStore` path). */
  snpCollateralDir?: string;
  /** Online AMD KDS for VCEKs and CRLs; absent = offline only. */
  kds?: KdsOptions;
  /** Online Intel PCS/PCCS for TCB info, QE identity and CRLs; absent = offline only. */
  pcs?: PcsOptions;
}

/**
 * Registers the hardware verifiers (`snp`, `tdx`, `sgx`, `az-snp-vtpm`, `az-tdx-vtpm`, `tpm`) into
 * `registry` (a new one by default) and returns it. tdx, sgx and az-tdx-vtpm share one Intel
 * collateral cache. `hardwareVerifiers(options, defaultVerifiers())` gives every verifier.
 */
export function hardwareVerifiers(
  options: HardwareVerifierOptions = {},
  registry: VerifierRegistry = new VerifierRegistry(),
): VerifierRegistry {
  const dir = options.collateralDir !== undefined ? { collateralDir: options.collateralDir } : {};
  const dcap = { ...dir, ...(options.pcs !== undefined ? { pcs: options.pcs } : {}) };
  const intel = new IntelCollateral(dcap);
  const amdDir = options.snpCollateralDir !== undefined ? { collateralDir: options.snpCollateralDir } : dir;
  registry.register(new SnpVerifier({ ...amdDir, ...(options.kds !== undefined ? { kds: options.kds } : {}) }));
  registry.register(new TdxVerifier(dcap, intel));
  registry.register(new SgxVerifier(dcap, intel));
  registry.register(new AzSnpVtpmVerifier(amdDir));
  registry.register(new AzTdxVtpmVerifier(dcap, intel));
  registry.register(new TpmVerifier());
  return registry;
}
