/**
 * Trustee's sample policies, shipped byte-for-byte in policy/samples/ (Apache-2.0 policy data from
 * confidential-containers/trustee): the KBS resource policies and the default CPU appraisal policy.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SAMPLE_POLICIES = ['default', 'allow_all', 'deny_all', 'affirming', 'ear_default_policy_cpu'] as const;
export type SamplePolicyName = (typeof SAMPLE_POLICIES)[number];

/** policy/samples, found from this module whether it runs from source or from dist/. */
export function samplesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      readFileSync(join(dir, 'package.json'));
      return join(dir, 'policy', 'samples');
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('cannot locate the package root (policy/samples)');
}

export function samplePolicyText(name: SamplePolicyName): string {
  return readFileSync(join(samplesDir(), `${name}.rego`), 'utf8');
}
