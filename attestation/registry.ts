/** The verifiers the attestation service can use, one per TEE (upstream `verifier::to_verifier`). */
import { SampleDeviceVerifier, SampleVerifier } from './sample/verifier.js';
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
