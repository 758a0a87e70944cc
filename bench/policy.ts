/**
 * Policy engine throughput: compile once, evaluate many.
 *   npm run bench:policy
 * Prints evaluations per second and microseconds per evaluation for the KBS resource policies
 * (default.rego, affirming.rego) on a realistic EAR token, and for the default CPU appraisal policy
 * on sample and SNP claims. Targets: < 20 µs (resource policies), < 200 µs (CPU appraisal).
 */
import { APPRAISAL_HOST_FUNCTIONS, appraise, compile, evaluateResourcePolicy, samplePolicyText, type JsonValue } from '../policy/index.js';

const hex = (n: number, seed: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += ((i * 7 + seed) % 16).toString(16);
  return s;
};

/** An EAR token body like the one a TDX guest gets from Trustee (about 4 KB of JSON). */
const token: JsonValue = {
  eat_profile: 'tag:github.com,2024:confidential-containers/Trustee',
  iat: 1767225600,
  exp: 1767225900,
  iss: 'CoCo-Attestation-Service',
  'ear.verifier-id': { build: 'attestation-service 0.14.0', developer: 'https://confidentialcontainers.org' },
  submods: {
    cpu0: {
      'ear.status': 'affirming',
      'ear.trustworthiness-vector': {
        'instance-identity': 0, configuration: 2, executables: 3, 'file-system': 0,
        hardware: 2, 'runtime-opaque': 0, 'storage-opaque': 0, 'sourced-data': 0,
      },
      'ear.appraisal-policy-id': 'default',
      'ear.veraison.annotated-evidence': {
        tdx: {
          quote: {
            header: { version: '0400', att_key_type: '0200', tee_type: '81000000', vendor_id: '939a7233f79c4ca9940a0db3957f0607' },
            body: {
              mr_td: hex(96, 1), mr_config_id: hex(96, 2), mr_owner: hex(96, 3), rtmr_0: hex(96, 4),
              rtmr_1: hex(96, 5), rtmr_2: hex(96, 6), rtmr_3: hex(96, 7), report_data: hex(128, 8),
              xfam: 'e702060000000000', td_attributes: '0000001000000000', tcb_svn: hex(32, 9),
            },
          },
          td_attributes: { debug: false, key_locker: false, perfmon: false, protection_keys: false, septve_disable: true },
          tcb_status: 'UpToDate',
          collateral_expiration_status: '0',
        },
        report_data: hex(88, 10),
        runtime_data_claims: {
          nonce: 'pb7yEXwmOPl6JxoaXTVqu3kV3lNLI7j7bA/BIYDI02k=',
          'tee-pubkey': { kty: 'EC', crv: 'P-256', alg: 'ES256', x: hex(43, 11), y: hex(43, 12) },
        },
        init_data: hex(64, 13),
        init_data_claims: {
          'aa.toml': { token_configs: { kbs: { url: 'https://kbs.example:8080' } } },
          'cdh.toml': { kbc: { name: 'cc_kbc', url: 'https://kbs.example:8080' } },
        },
      },
    },
  },
};

const request = { plugin: 'resource', resourcePath: ['default', 'key', 'secret'], query: {} };

function bench(name: string, fn: () => unknown, target: number): void {
  for (let i = 0; i < 2000; i++) fn(); // warm-up
  let iterations = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < 1_000_000_000n) {
    for (let i = 0; i < 1000; i++) fn();
    iterations += 1000;
    elapsed = process.hrtime.bigint() - start;
  }
  const usPer = Number(elapsed) / 1000 / iterations;
  const perSec = Math.round(iterations / (Number(elapsed) / 1e9));
  const verdict = usPer <= target ? 'ok' : 'OVER TARGET';
  console.log(`${name.padEnd(48)} ${String(perSec).padStart(9)} eval/s  ${usPer.toFixed(2).padStart(8)} µs/eval  (target ${target} µs: ${verdict})`);
}

const def = compile(samplePolicyText('default'));
const affirming = compile(samplePolicyText('affirming'));
const cpu = compile(samplePolicyText('ear_default_policy_cpu'), { hostFunctions: APPRAISAL_HOST_FUNCTIONS });

const rvs: Record<string, JsonValue> = {
  svn: ['1'], launch_digest: ['abcde'], major_version: 1, minimum_minor_version: 1,
  snp_launch_measurement: ['8a'.repeat(48)], snp_bootloader: [3], snp_microcode: [209], snp_snp_svn: [20], snp_tee_svn: [0],
};
const referenceValue = (id: string): JsonValue | null => (Object.hasOwn(rvs, id) ? (rvs[id] as JsonValue) : null);
const sampleClaims: JsonValue = {
  sample: { svn: '1', launch_digest: 'abcde', platform_version: { major: 1, minor: 4 }, debug: false },
  report_data: 'AAAA',
  init_data_claims: {
    agent_policy_claims: {
      containers: [
        { OCI: { Annotations: {}, Process: { User: { UID: 65535 } } } },
        { OCI: { Annotations: { 'io.kubernetes.cri.image-name': 'bitnami/nginx:latest' }, Process: { User: { UID: 1001 } } } },
      ],
    },
  },
};
const snpClaims: JsonValue = {
  snp: {
    measurement: '8a'.repeat(48), reported_tcb_bootloader: 3, reported_tcb_microcode: 209, reported_tcb_snp: 20,
    reported_tcb_tee: 0, policy_debug_allowed: false, policy_migrate_ma: false, platform_smt_enabled: true,
    platform_tsme_enabled: true, policy_abi_major: 1, policy_abi_minor: 0, policy_single_socket: false,
    policy_smt_allowed: true,
  },
};

console.log(`policy engine benchmark (node ${process.version}, ${process.arch})`);
const check = evaluateResourcePolicy(def, token, request);
if (!check.allow) throw new Error(`default.rego should allow the benchmark token: ${check.reason}`);
bench('default.rego (resource, TDX EAR token)', () => evaluateResourcePolicy(def, token, request), 20);
bench('affirming.rego (resource, TDX EAR token)', () => evaluateResourcePolicy(affirming, token, request), 20);
bench('ear_default_policy_cpu.rego (sample claims)', () => appraise(cpu, sampleClaims, { referenceValue }), 200);
bench('ear_default_policy_cpu.rego (SNP claims)', () => appraise(cpu, snpClaims, { referenceValue }), 200);
const t0 = process.hrtime.bigint();
for (let i = 0; i < 100; i++) compile(samplePolicyText('ear_default_policy_cpu'), { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
console.log(`${'compile ear_default_policy_cpu.rego'.padEnd(48)} ${(Number(process.hrtime.bigint() - t0) / 1e6 / 100).toFixed(2).padStart(8)} ms/compile`);
