/**
 * The attestation (EAR appraisal) policy store, as upstream's attestation service keeps it
 * (`attestation-service/src/ear_token/broker.rs`, `deps/policy-engine`): policies by id, one
 * `<id>.rego` file each in the `attestation_service_policy` namespace directory; the defaults
 * `default_cpu`, `default_gpu`, `default_switch` and `default_ppcie` are written at start when
 * missing (never overwritten). The KBS appraises a device of class `<class>` with `default_<class>`.
 *
 * Every policy is compiled (with the `query_reference_value` host function) before it is stored,
 * so an invalid policy is refused and the one in force stays; writes are atomic and serialised.
 * Policies are held compiled in memory: a new `default_cpu` applies to the next attestation.
 */
import { mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APPRAISAL_HOST_FUNCTIONS, compile, samplesDir, type Policy } from '../policy/index.js';
import { writeAtomic } from '../policy/store.js';
import { APPRAISAL_POLICY_ID } from './ear-token.js';
import type { TeeClass } from './types.js';

/** Upstream's storage namespace (the directory name under a LocalFs `dir_path`). */
export const ATTESTATION_POLICY_NAMESPACE = 'attestation_service_policy';
/** Upstream's file suffix for Rego policies (`Regorus::policy_suffix`). */
export const POLICY_SUFFIX = '.rego';

export const ATTESTATION_POLICY_LIMITS = Object.freeze({
  /** Most policies the store holds. */
  policies: 256,
  /** Largest policy text, bytes. */
  policyBytes: 1024 * 1024,
  idLength: 128,
});

/** The policies upstream stores at start, with the sample file each one comes from. */
export const DEFAULT_ATTESTATION_POLICIES: Readonly<Record<string, string>> = Object.freeze({
  default_cpu: 'ear_default_policy_cpu.rego',
  default_gpu: 'ear_default_policy_gpu.rego',
  default_switch: 'ear_default_policy_switch.rego',
  default_ppcie: 'ear_default_policy_ppcie.rego',
});

/**
 * Policy ids: upstream's message for bad ids allows "alphabet, numeric, `-` or `_`"; that is also
 * what keeps an id a plain file name (no `/`, no `..`).
 */
const POLICY_ID = /^[A-Za-z0-9_-]+$/;

export function isValidPolicyId(id: string): boolean {
  return id.length > 0 && id.length <= ATTESTATION_POLICY_LIMITS.idLength && POLICY_ID.test(id);
}

/** The id of the policy that appraises a device class (upstream `<policy id>_<tee class>`). */
export function policyIdForClass(teeClass: TeeClass): string {
  return `${APPRAISAL_POLICY_ID}_${teeClass}`;
}

/** A set-policy request that is refused; `message` is safe to return to the admin. */
export class AttestationPolicyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AttestationPolicyError';
  }
}

function compileAppraisal(text: string): Policy {
  return compile(text, { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
}

export class AttestationPolicyStore {
  private readonly policies = new Map<string, Policy>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly dir: string) {}

  /**
   * Opens the store: writes the missing default policies, then loads and compiles every `<id>.rego`
   * in the directory. A stored policy that does not compile stops the start (fail closed).
   */
  static async open(dir: string): Promise<AttestationPolicyStore> {
    const store = new AttestationPolicyStore(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const [id, sample] of Object.entries(DEFAULT_ATTESTATION_POLICIES)) {
      const text = await readFile(join(samplesDir(), sample), 'utf8');
      try {
        await writeFile(join(dir, id + POLICY_SUFFIX), text, { flag: 'wx', mode: 0o600 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    for (const file of (await readdir(dir)).sort()) {
      const path = join(dir, file);
      if (/^\.[0-9a-f]{16}\.tmp$/.test(file)) {
        await unlink(path).catch(() => undefined); // left by a crash before its rename
        continue;
      }
      if (!file.endsWith(POLICY_SUFFIX)) continue;
      const id = file.slice(0, -POLICY_SUFFIX.length);
      if (!isValidPolicyId(id)) throw new Error(`attestation policy file ${path}: "${id}" is not a valid policy id`);
      const info = await stat(path);
      if (!info.isFile()) throw new Error(`attestation policy file ${path} is not a regular file`);
      if (info.size > ATTESTATION_POLICY_LIMITS.policyBytes) throw new Error(`attestation policy file ${path} is too large`);
      try {
        store.policies.set(id, compileAppraisal(await readFile(path, 'utf8')));
      } catch (e) {
        throw new Error(`the stored attestation policy ${path} does not compile: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return store;
  }

  /** The compiled policy with this id, if any. */
  get(id: string): Policy | undefined {
    return this.policies.get(id);
  }

  /** The policy that appraises a device class (`default_<class>`), if any. */
  forClass(teeClass: TeeClass): Policy | undefined {
    return this.policies.get(policyIdForClass(teeClass));
  }

  /** Stored policy ids, sorted. */
  ids(): string[] {
    return [...this.policies.keys()].sort();
  }

  /**
   * Compiles and stores a policy (overwriting one with the same id). Throws AttestationPolicyError
   * (nothing changes) for a bad id or a policy that does not compile; other errors are storage
   * failures (the previous file and policy stay).
   */
  set(id: string, text: string): Promise<Policy> {
    const run = this.queue.then(() => this.setNow(id, text));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async setNow(id: string, text: string): Promise<Policy> {
    if (!isValidPolicyId(id)) {
      throw new AttestationPolicyError(
        `Illegal policy id: use 1-${ATTESTATION_POLICY_LIMITS.idLength} characters of A-Z a-z 0-9 - _`,
      );
    }
    if (Buffer.byteLength(text) > ATTESTATION_POLICY_LIMITS.policyBytes) {
      throw new AttestationPolicyError(`the policy is larger than ${ATTESTATION_POLICY_LIMITS.policyBytes} bytes`);
    }
    if (!this.policies.has(id) && this.policies.size >= ATTESTATION_POLICY_LIMITS.policies) {
      throw new AttestationPolicyError(`the store already holds ${ATTESTATION_POLICY_LIMITS.policies} policies`);
    }
    let policy: Policy;
    try {
      policy = compileAppraisal(text);
    } catch (e) {
      throw new AttestationPolicyError(`Malformed policy: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    await writeAtomic(join(this.dir, id + POLICY_SUFFIX), text);
    this.policies.set(id, policy);
    return policy;
  }
}
