/**
 * Trustee's sample policies, shipped byte-for-byte in policy/samples/ (Apache-2.0 policy data from
 * confidential-containers/trustee): the KBS resource policies and the default CPU appraisal policy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SAMPLE_POLICIES = ['default', 'allow_all', 'deny_all', 'affirming', 'ear_default_policy_cpu'] as const;
export type SamplePolicyName = (typeof SAMPLE_POLICIES)[number];

/** The package root (the folder with package.json), whether this module runs from source or dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the package root (package.json)');
    dir = parent;
  }
}

export function samplesDir(): string {
  return join(packageRoot(), 'policy', 'samples');
}

export function samplePolicyText(name: SamplePolicyName): string {
  return readFileSync(join(samplesDir(), `${name}.rego`), 'utf8');
}
