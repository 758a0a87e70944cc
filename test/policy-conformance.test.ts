/**
 * Conformance cases K1–K31 (KBS resource policy) and E1–E10 (AS/EAR appraisal) from
 * docs/policy.md §7. Expected values were checked against the policy texts and regorus 0.11 semantics.
 * The policies come from test/fixtures/policy (byte-for-byte upstream texts); the short synthetic
 * policies of K19/K25–K31 are written inline exactly as the table gives them.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { TRUST_CLAIMS, appraise, compile, evaluateResourcePolicy, statusOf, tierOf } from '../policy/index.js';
import type { EarStatus, Policy } from '../policy/index.js';
import type { JsonValue } from '../policy/value.js';
import { PolicyError } from '../policy/errors.js';
import { packageRoot } from '../policy/samples.js';

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

const FIXTURES = path.join(packageRoot(), 'test', 'fixtures', 'policy');

const P = {
  default: 'upstream/kbs/sample_policies/default.rego',
  allowAll: 'upstream/kbs/sample_policies/allow_all.rego',
  denyAll: 'upstream/kbs/sample_policies/deny_all.rego',
  affirming: 'upstream/kbs/sample_policies/affirming.rego',
  policy1: 'upstream/deps/policy-engine/test_data/policy_1.rego',
  policy3: 'upstream/deps/policy-engine/test_data/policy_3.rego',
  policy4: 'upstream/deps/policy-engine/test_data/policy_4.rego',
  policy5: 'upstream/deps/policy-engine/test_data/policy_5.rego',
  earCpu: 'upstream/attestation-service/src/ear_token/ear_default_policy_cpu.rego',
  example3: 'upstream/attestation-service/tests/coco-as/policy/example-3.rego',
  allowAllInline: 'inline/ALLOW_ALL_POLICY.rego',
  checkContraindicated: 'inline/CHECK_CONTRAINDICATED_POLICY.rego',
  checkContraindicatedDevice: 'inline/CHECK_CONTRAINDICATED_DEVICE_POLICY.rego',
  initDataForOpa: 'inline/INIT_DATA_FOR_OPA_POLICY.rego',
  teePolicy: 'inline/TEE_POLICY_REGO.rego',
  earRv: 'inline/EAR_RV_ATTESTATION_POLICY.rego',
  earContraindicated: 'inline/EAR_CONTRAINDICATED_ATTESTATION_POLICY.rego',
} as const;

const cache = new Map<string, Policy>();

/** A KBS resource policy: compiled without host functions, as the KBS registers none. */
function kbsPolicy(file: string): Policy {
  const key = 'kbs:' + file;
  let p = cache.get(key);
  if (!p) {
    p = compile(readFileSync(path.join(FIXTURES, file), 'utf8'));
    cache.set(key, p);
  }
  return p;
}

/** An AS/EAR policy: compiled with the `query_reference_value/1` host function, as the AS does. */
function asPolicy(file: string): Policy {
  const key = 'as:' + file;
  let p = cache.get(key);
  if (!p) {
    p = compile(readFileSync(path.join(FIXTURES, file), 'utf8'), { hostFunctions: { query_reference_value: 1 } });
    cache.set(key, p);
  }
  return p;
}

interface ResourceRequest {
  plugin: string;
  resourcePath: string[];
  query: Record<string, string>;
}

/** `D_res` = {"plugin":"resource","resource-path":["default","test","secret"],"query":{}} */
const D_res: ResourceRequest = { plugin: 'resource', resourcePath: ['default', 'test', 'secret'], query: {} };

function req(plugin: string, resourcePath: string[], query: Record<string, string> = {}): ResourceRequest {
  return { plugin, resourcePath, query };
}

/** The `data` document the KBS builds for a request (docs/policy.md §2.2). */
function dataDoc(r: ResourceRequest): JsonValue {
  return { plugin: r.plugin, 'resource-path': r.resourcePath, query: r.query };
}

/** `I(tee, status)` */
function I(tee: string, status: string): JsonValue {
  return { submods: { cpu0: { 'ear.status': status, 'ear.veraison.annotated-evidence': { [tee]: {} } } } };
}

/** `PE(name, svn)`: the input of deps/policy-engine's rstest table. */
function PE(name: string, svn: number): JsonValue {
  return {
    submods: {
      cpu0: {
        'ear.trustworthiness-vector': { executables: 2, hardware: 3 },
        'ear.veraison.annotated-evidence': { sample: { productId: name, svn } },
      },
    },
  };
}

/** `SAMPLE`: the AS input for the sample attester. */
function SAMPLE(): { [key: string]: JsonValue } {
  return { sample: { svn: '1', launch_digest: 'abcde', platform_version: { major: 1, minor: 4 }, debug: false } };
}

function allowOf(t: ExecutionContext, policy: Policy, claims: JsonValue, r: ResourceRequest): boolean {
  const decision = evaluateResourcePolicy(policy, claims, r);
  t.is(typeof decision.allow, 'boolean', 'allow must be a boolean');
  t.is(typeof decision.reason, 'string', 'reason must be a string');
  return decision.allow;
}

type ClaimName = (typeof TRUST_CLAIMS)[number];

/** A full trust vector: the eight AR4SI claims, 0 unless given. */
function vector(set: Partial<Record<ClaimName, number>>): Record<string, number> {
  return {
    'instance-identity': 0,
    configuration: 0,
    executables: 0,
    'file-system': 0,
    hardware: 0,
    'runtime-opaque': 0,
    'storage-opaque': 0,
    'sourced-data': 0,
    ...set,
  };
}

/** An RVPS stand-in: the value registered for `id`, or null (what the AS host function returns for a missing id). */
function rvps(values: Record<string, JsonValue>): (id: string) => JsonValue | null {
  return (id: string) => (Object.hasOwn(values, id) ? (values[id] as JsonValue) : null);
}

/** The RV set of the integration tests (E1). */
const RV_E1: Record<string, JsonValue> = {
  svn: ['1'],
  launch_digest: ['abcde'],
  major_version: 1,
  minimum_minor_version: 1,
};

function identifiersExtension(validated: JsonValue): Array<{ name: string; key: number; value: JsonValue }> {
  return [{ name: 'ear.trustee.identifiers', key: -18, value: { validated } }];
}

// Two containers as in integration-tests/tests/init-data-with-policy.toml: the pause container
// (no image-name annotation, UID 65535) and bitnami/nginx (UID 1001).
const PAUSE_CONTAINER: JsonValue = {
  OCI: {
    Annotations: {},
    Process: { Args: ['/pause'], User: { UID: 65535 } },
  },
};
const NGINX_CONTAINER: JsonValue = {
  OCI: {
    Annotations: { 'io.kubernetes.cri.image-name': 'bitnami/nginx:latest' },
    Process: {
      Args: ['/opt/bitnami/scripts/nginx/entrypoint.sh', '/opt/bitnami/scripts/nginx/run.sh'],
      User: { UID: 1001 },
    },
  },
};

/** A resource-policy input whose cpu0 annotated evidence carries init_data_claims with these containers. */
function withContainers(containers: JsonValue[]): JsonValue {
  return {
    submods: {
      cpu0: {
        'ear.status': 'affirming',
        'ear.veraison.annotated-evidence': {
          sample: SAMPLE()['sample'] as JsonValue,
          init_data: 'aGFzaA',
          init_data_claims: { agent_policy_claims: { containers } },
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// K: the KBS resource policy (data.policy.allow; deny = false/undefined/missing/non-boolean/error)

test('K1 default.rego allows a TDX token', (t) => {
  t.true(allowOf(t, kbsPolicy(P.default), I('tdx', 'affirming'), D_res));
});

test('K2 default.rego denies sample evidence', (t) => {
  t.false(allowOf(t, kbsPolicy(P.default), I('sample', 'affirming'), D_res));
});

test('K3 default.rego denies a plugin other than resource', (t) => {
  t.false(allowOf(t, kbsPolicy(P.default), I('tdx', 'affirming'), req('nebula-ca', [])));
});

test('K4 default.rego allows a token without submods (not of undefined)', (t) => {
  t.true(allowOf(t, kbsPolicy(P.default), {}, D_res));
});

test('K5 allow_all.rego allows contraindicated sample evidence', (t) => {
  t.true(allowOf(t, kbsPolicy(P.allowAll), I('sample', 'contraindicated'), D_res));
});

test('K6 allow_all.rego denies a plugin other than resource', (t) => {
  t.false(allowOf(t, kbsPolicy(P.allowAll), I('tdx', 'affirming'), req('pkcs11', ['default', 'test', 'secret'])));
});

test('K7 deny_all.rego denies', (t) => {
  t.false(allowOf(t, kbsPolicy(P.denyAll), I('tdx', 'affirming'), D_res));
});

test('K8 affirming.rego allows an affirming token for any plugin', (t) => {
  const input: JsonValue = { submods: { cpu0: { 'ear.status': 'affirming' } } };
  t.true(allowOf(t, kbsPolicy(P.affirming), input, req('external', ['echo-test'])));
});

test('K9 affirming.rego denies when one submod is not affirming', (t) => {
  const input: JsonValue = { submods: { cpu0: { 'ear.status': 'affirming' }, gpu0: { 'ear.status': 'warning' } } };
  t.false(allowOf(t, kbsPolicy(P.affirming), input, D_res));
});

test('K10 affirming.rego denies empty submods', (t) => {
  t.false(allowOf(t, kbsPolicy(P.affirming), { submods: {} }, D_res), '{"submods":{}}: count(...) > 0 fails');
});

test('K10 affirming.rego denies a token without submods', (t) => {
  t.false(allowOf(t, kbsPolicy(P.affirming), {}, D_res), '{}: count(undefined) is undefined');
});

test('K11 affirming.rego allows a submod without ear.status (!= on undefined is undefined)', (t) => {
  t.true(allowOf(t, kbsPolicy(P.affirming), { submods: { cpu0: {} } }, D_res));
});

test('K12 policy_1.rego allows the matching productId', (t) => {
  t.true(allowOf(t, kbsPolicy(P.policy1), PE('Alice', 1), req('resource', ['my_repo', 'Alice', 'key'])));
});

test('K13 policy_1.rego denies another plugin', (t) => {
  t.false(allowOf(t, kbsPolicy(P.policy1), PE('Alice', 1), req('another-plugin', ['my_repo', 'Alice', 'key'])));
});

test('K14 policy_1.rego denies another productId', (t) => {
  t.false(allowOf(t, kbsPolicy(P.policy1), PE('Bob', 1), req('resource', ['my_repo', 'Alice', 'key'])));
});

test('K15 policy_4.rego (blank lines, unused rule) allows as K12', (t) => {
  t.true(allowOf(t, kbsPolicy(P.policy4), PE('Alice', 1), req('resource', ['my_repo', 'Alice', 'key'])));
});

test('K16 policy_3.rego denies anything', (t) => {
  t.false(allowOf(t, kbsPolicy(P.policy3), PE('Alice', 1), req('resource', ['my_repo', 'Alice', 'key'])));
  t.false(allowOf(t, kbsPolicy(P.policy3), I('tdx', 'affirming'), D_res));
  t.false(allowOf(t, kbsPolicy(P.policy3), {}, req('abc', [])));
});

test('K17 policy_5.rego allows svn 2 for secret1 (2 <= 2)', (t) => {
  t.true(allowOf(t, kbsPolicy(P.policy5), PE('n', 2), req('resource', ['myrepo', 'secret', 'secret1'])));
});

test('K18 policy_5.rego denies svn 1 for secret1 (2 <= 1 is false)', (t) => {
  t.false(allowOf(t, kbsPolicy(P.policy5), PE('n', 1), req('resource', ['myrepo', 'secret', 'secret1'])));
});

test('K18 policy_5.rego denies secret3 (key not in resources)', (t) => {
  t.false(allowOf(t, kbsPolicy(P.policy5), PE('n', 3), req('resource', ['myrepo', 'secret', 'secret3'])));
});

test('K19 ALLOW_ALL_POLICY (indented, allow = true without default) allows anything', (t) => {
  const policy = kbsPolicy(P.allowAllInline);
  t.true(allowOf(t, policy, {}, D_res));
  t.true(allowOf(t, policy, I('sample', 'contraindicated'), D_res));
  t.true(allowOf(t, policy, I('tdx', 'affirming'), req('nebula-ca', [])));
});

test('K20 CHECK_CONTRAINDICATED_POLICY allows a warning token', (t) => {
  t.true(allowOf(t, kbsPolicy(P.checkContraindicated), I('sample', 'warning'), D_res));
});

test('K21 CHECK_CONTRAINDICATED_POLICY denies a contraindicated token', (t) => {
  t.false(allowOf(t, kbsPolicy(P.checkContraindicated), I('sample', 'contraindicated'), D_res));
});

test('K22 CHECK_CONTRAINDICATED_DEVICE_POLICY denies when gpu0 is missing (undefined ref)', (t) => {
  const policy = kbsPolicy(P.checkContraindicatedDevice);
  t.false(allowOf(t, policy, I('sample', 'warning'), D_res));
  // Control: the same token with a non-contraindicated gpu0 is allowed.
  const withGpu: JsonValue = {
    submods: {
      cpu0: { 'ear.status': 'warning', 'ear.veraison.annotated-evidence': { sample: {} } },
      gpu0: { 'ear.status': 'affirming', 'ear.veraison.annotated-evidence': { sampledevice: {} } },
    },
  };
  t.true(allowOf(t, policy, withGpu, D_res));
});

test('K23 INIT_DATA_FOR_OPA_POLICY allows when the 2nd container runs the nginx entrypoint', (t) => {
  t.true(allowOf(t, kbsPolicy(P.initDataForOpa), withContainers([PAUSE_CONTAINER, NGINX_CONTAINER]), D_res));
});

test('K23 INIT_DATA_FOR_OPA_POLICY denies with only one container (index out of range is undefined)', (t) => {
  t.false(allowOf(t, kbsPolicy(P.initDataForOpa), withContainers([PAUSE_CONTAINER]), D_res));
});

test('K24 TEE_POLICY_REGO (TEE=sample) allows one/two/three', (t) => {
  t.true(allowOf(t, kbsPolicy(P.teePolicy), I('sample', 'warning'), req('resource', ['one', 'two', 'three'])));
});

test('K24 TEE_POLICY_REGO (TEE=sample) denies one/two', (t) => {
  t.false(allowOf(t, kbsPolicy(P.teePolicy), I('sample', 'warning'), req('resource', ['one', 'two'])));
});

const K25_POLICY = `package policy
import rego.v1
default allow := false
allow if { data.plugin == "plugin1"; data.query.version == "1.0.0" }`;

test('K25 data carries plugin, resource-path and query (/kbs/v0/plugin1/para/meters?version=1.0.0)', (t) => {
  const policy = compile(K25_POLICY);
  t.true(allowOf(t, policy, {}, req('plugin1', ['para', 'meters'], { version: '1.0.0' })));
  // Control: another version is denied.
  t.false(allowOf(t, policy, {}, req('plugin1', ['para', 'meters'], { version: '1.0.1' })));
});

test('K26 a policy outside package policy denies (data.policy.allow missing)', (t) => {
  const policy = compile('package my_policy\nallow := true');
  t.deepEqual(policy.packagePath, ['my_policy']);
  t.false(allowOf(t, policy, I('tdx', 'affirming'), D_res));
  t.false(allowOf(t, policy, {}, D_res));
});

test('K27 a non-boolean allow denies', (t) => {
  const policy = compile('package policy\nallow := "yes"');
  t.false(allowOf(t, policy, I('tdx', 'affirming'), D_res));
  t.false(allowOf(t, policy, {}, D_res));
});

const K28_POLICY = 'package policy\nimport rego.v1\ndefault allow := false\nallow if { input.flag }';

test('K28 truthiness: flag 0 allows', (t) => {
  t.true(allowOf(t, compile(K28_POLICY), { flag: 0 }, D_res));
});

test('K28 truthiness: flag null allows', (t) => {
  t.true(allowOf(t, compile(K28_POLICY), { flag: null }, D_res));
});

test('K28 truthiness: flag false denies', (t) => {
  t.false(allowOf(t, compile(K28_POLICY), { flag: false }, D_res));
});

test('K28 truthiness: no flag denies', (t) => {
  t.false(allowOf(t, compile(K28_POLICY), {}, D_res));
});

const K29_POLICY = 'package policy\nimport rego.v1\nallow := true if { input.a }\nallow := false if { input.b }';

test('K29 conflicting complete-rule values are an evaluation error (deny)', (t) => {
  const policy = compile(K29_POLICY);
  const input: JsonValue = { a: true, b: true };
  t.false(allowOf(t, policy, input, D_res));
  const err = t.throws(() => policy.evaluate('data.policy.allow', { input, data: dataDoc(D_res) }), { instanceOf: PolicyError });
  t.is(err.code, 'POLICY_CONFLICT');
  // Control: one definition alone is fine.
  t.is(policy.evaluate('data.policy.allow', { input: { a: true, b: false }, data: dataDoc(D_res) }), true);
  t.true(allowOf(t, policy, { a: true, b: false }, D_res));
});

const K30_POLICY = 'package policy\nimport rego.v1\ndefault allow := false\nallow if { not startswith(input.n, "x") }';

test('K30 a builtin type error is an evaluation error even under not (deny)', (t) => {
  const policy = compile(K30_POLICY);
  const input: JsonValue = { n: 5 };
  t.false(allowOf(t, policy, input, D_res));
  const err = t.throws(() => policy.evaluate('data.policy.allow', { input, data: dataDoc(D_res) }), { instanceOf: PolicyError });
  t.is(err.code, 'POLICY_TYPE');
  // Control: with a string the rule works both ways.
  t.true(allowOf(t, policy, { n: 'abc' }, D_res));
  t.false(allowOf(t, policy, { n: 'xyz' }, D_res));
});

test('K31 a v0 rule body without if is rejected at upload', (t) => {
  const err = t.throws(() => compile('package policy\nallow { true }'), { instanceOf: PolicyError });
  t.is(err.code, 'POLICY_SYNTAX');
  t.is(err.line, 2);
});

// ---------------------------------------------------------------------------------------------
// E: the AS/EAR appraisal (data.policy.trust_claims / data.policy.extensions, tiers of §4.2)

test('E1 default CPU policy: sample evidence with the integration RVs is affirming', (t) => {
  const r = appraise(asPolicy(P.earCpu), SAMPLE(), { referenceValue: rvps(RV_E1) });
  t.deepEqual(r.trustVector, vector({ executables: 3, hardware: 2, configuration: 2 }));
  t.is(r.status, 'affirming');
});

test('E2 default CPU policy: no RVs (all null) is contraindicated', (t) => {
  const r = appraise(asPolicy(P.earCpu), SAMPLE(), { referenceValue: rvps({}) });
  t.deepEqual(r.trustVector, vector({ executables: 33, hardware: 97, configuration: 2 }));
  t.is(r.status, 'contraindicated');
});

test('E3 default CPU policy: missing minimum_minor_version still gives hardware 2 (4 >= null)', (t) => {
  const rvs = Object.fromEntries(Object.entries(RV_E1).filter(([id]) => id !== 'minimum_minor_version'));
  const r = appraise(asPolicy(P.earCpu), SAMPLE(), { referenceValue: rvps(rvs) });
  t.deepEqual(r.trustVector, vector({ executables: 3, hardware: 2, configuration: 2 }));
  t.is(r.status, 'affirming');
});

test('E4 EAR_RV_ATTESTATION_POLICY with svn RV is warning', (t) => {
  const r = appraise(asPolicy(P.earRv), SAMPLE(), { referenceValue: rvps({ svn: ['1'] }) });
  t.deepEqual(r.trustVector, vector({ executables: 33, hardware: 2, configuration: 36 }));
  t.is(r.status, 'warning');
  t.deepEqual(r.extensions, [], 'no extensions rule: no extensions');
});

test('E5 EAR_CONTRAINDICATED_ATTESTATION_POLICY is contraindicated', (t) => {
  const r = appraise(asPolicy(P.earContraindicated), SAMPLE(), { referenceValue: rvps({}) });
  t.deepEqual(r.trustVector, vector({ executables: 33, hardware: 97, configuration: 36 }));
  t.is(r.status, 'contraindicated');
  t.deepEqual(r.extensions, []);
});

/** SNP verifier claims with debug and migration disabled and SMT enabled. */
function snpInput(overrides: { [key: string]: JsonValue } = {}): JsonValue {
  return {
    snp: {
      measurement: 'a'.repeat(96),
      policy_debug_allowed: false,
      policy_migrate_ma: false,
      platform_smt_enabled: true,
      platform_tsme_enabled: false,
      policy_abi_major: 0,
      policy_abi_minor: 31,
      policy_single_socket: false,
      policy_smt_allowed: true,
      reported_tcb_bootloader: 10,
      reported_tcb_microcode: 84,
      reported_tcb_snp: 25,
      reported_tcb_tee: 0,
      ...overrides,
    },
  };
}

test('E6 default CPU policy: SNP configuration falls to the else branch (3)', (t) => {
  const policy = asPolicy(P.earCpu);
  const r = appraise(policy, snpInput(), { referenceValue: rvps({ snp_smt_enabled: false }) });
  t.deepEqual(r.trustVector, vector({ executables: 33, hardware: 97, configuration: 3 }));
  t.is(r.status, 'contraindicated');

  // Control: with every SNP RV matching, the first branch gives 2 and the token is affirming.
  const all = rvps({
    snp_launch_measurement: ['a'.repeat(96)],
    snp_bootloader: [10],
    snp_microcode: [84],
    snp_snp_svn: [25],
    snp_tee_svn: [0],
    snp_smt_enabled: true,
    snp_tsme_enabled: false,
    snp_guest_abi_major: 0,
    snp_guest_abi_minor: 31,
    snp_single_socket: false,
    snp_smt_allowed: true,
  });
  const ok = appraise(policy, snpInput(), { referenceValue: all });
  t.deepEqual(ok.trustVector, vector({ executables: 3, hardware: 2, configuration: 2 }));
  t.is(ok.status, 'affirming');

  // Control: debug allowed matches neither branch: the default 36 stays.
  const dbg = appraise(policy, snpInput({ policy_debug_allowed: true }), { referenceValue: all });
  t.deepEqual(dbg.trustVector, vector({ executables: 3, hardware: 2, configuration: 36 }));
  t.is(dbg.status, 'warning');
});

test('E7 default CPU policy extensions: validated identifiers from the agent policy containers', (t) => {
  const input = { ...SAMPLE(), init_data_claims: { agent_policy_claims: { containers: [PAUSE_CONTAINER, NGINX_CONTAINER] } } };
  const r = appraise(asPolicy(P.earCpu), input, { referenceValue: rvps({}) });
  t.deepEqual(
    r.extensions,
    identifiersExtension({ container_images: ['bitnami/nginx:latest'], container_uids: [65535, 1001] }),
  );
  t.deepEqual(r.trustVector, vector({ executables: 33, hardware: 97, configuration: 2 }));
  t.is(r.status, 'contraindicated');
});

test('E8 default CPU policy extensions without init_data_claims: validated is {}', (t) => {
  const r = appraise(asPolicy(P.earCpu), SAMPLE(), { referenceValue: rvps(RV_E1) });
  t.deepEqual(r.extensions, identifiersExtension({}));
  t.deepEqual(r.trustVector, vector({ executables: 3, hardware: 2, configuration: 2 }));
  t.is(r.status, 'affirming');
});

const E9_INPUT: { [key: string]: JsonValue } = {
  'se.version': 256,
  'se.user_data': '00',
  'se.tag': '773780962a7350165054673b6c54235d',
  'se.image_phkh': '92d0aff6eb86719b6b1ea0cb98d2c99ff2ec693df3efff2158f54112f6961508',
  'se.attestation_phkh': '92d0aff6eb86719b6b1ea0cb98d2c99ff2ec693df3efff2158f54112f6961508',
};

test('E9 example-3.rego: sprintf("%v", [256]) == "256" gives executables 3', (t) => {
  const policy = asPolicy(P.example3);
  t.is(policy.evaluate('data.policy.converted_version', { input: E9_INPUT }), '256');
  t.is(policy.evaluate('data.policy.executables', { input: E9_INPUT }), 3);
  t.is(policy.evaluate('data.policy.executables', { input: { ...E9_INPUT, 'se.version': 255 } }), 33);
  // example-3 defines no trust_claims rule, so the broker (and appraise) set all eight claims to 0.
  const r = appraise(policy, E9_INPUT, { referenceValue: rvps({}) });
  t.deepEqual(r.trustVector, vector({}));
  t.is(r.status, 'none');
  t.deepEqual(r.extensions, []);
});

test('E10 tier function and status over a vector', (t) => {
  const tiers: Array<[number, EarStatus]> = [
    [0, 'none'],
    [1, 'none'],
    [-1, 'none'],
    [2, 'affirming'],
    [3, 'affirming'],
    [4, 'affirming'],
    [31, 'affirming'],
    [-2, 'affirming'],
    [-32, 'affirming'],
    [32, 'warning'],
    [33, 'warning'],
    [36, 'warning'],
    [95, 'warning'],
    [-33, 'warning'],
    [-96, 'warning'],
    [96, 'contraindicated'],
    [97, 'contraindicated'],
    [99, 'contraindicated'],
    [127, 'contraindicated'],
    [-97, 'contraindicated'],
    [-128, 'contraindicated'],
  ];
  for (const [value, tier] of tiers) t.is(tierOf(value), tier, `tierOf(${value})`);

  t.deepEqual([...TRUST_CLAIMS], ['instance-identity', 'configuration', 'executables', 'file-system', 'hardware', 'runtime-opaque', 'storage-opaque', 'sourced-data']);

  t.is(statusOf(vector({})), 'none', 'all 0');
  t.is(statusOf({}), 'none', 'unset claims count as 0');
  t.is(statusOf(vector({ executables: 3, hardware: 2, configuration: 2 })), 'affirming');
  t.is(statusOf(vector({ executables: 33, hardware: 2, configuration: 2 })), 'warning');
  t.is(statusOf(vector({ executables: 33, hardware: 2, configuration: 36 })), 'warning');
  t.is(statusOf(vector({ executables: 3, hardware: 97, configuration: 2 })), 'contraindicated');
  t.is(statusOf(vector({ 'sourced-data': -1 })), 'none');
  t.is(statusOf(vector({ hardware: 99 })), 'contraindicated');
  t.is(statusOf({ executables: 4 }), 'affirming', 'executables 4 (TDX grub branch) is affirming');
});

// Hardening beyond upstream (docs/policy.md §6.3): upstream panics on an unknown claim name and wraps
// values with `as i8`; the port rejects both.
test('EAR hardening: appraise rejects an unknown trust-claim name', (t) => {
  const policy = compile('package policy\nimport rego.v1\ntrust_claims := {"hardware": 2, "bogus": 2}', {
    hostFunctions: { query_reference_value: 1 },
  });
  t.throws(() => appraise(policy, SAMPLE(), { referenceValue: rvps({}) }), { instanceOf: PolicyError });
});

test('EAR hardening: appraise rejects trust-claim values outside -128..127 and non-integers', (t) => {
  for (const v of ['128', '-129', '2.5', '"2"']) {
    const policy = compile(`package policy\nimport rego.v1\ntrust_claims := {"hardware": ${v}}`, {
      hostFunctions: { query_reference_value: 1 },
    });
    t.throws(() => appraise(policy, SAMPLE(), { referenceValue: rvps({}) }), { instanceOf: PolicyError }, `hardware ${v}`);
  }
});

test('EAR host function: appraise passes the argument to query_reference_value and sees null for a missing id', (t) => {
  const seen: string[] = [];
  const policy = compile(
    'package policy\nimport rego.v1\ndefault hardware := 97\nhardware := 2 if { query_reference_value("x") == null }\ntrust_claims := {"hardware": hardware}',
    { hostFunctions: { query_reference_value: 1 } },
  );
  const r = appraise(policy, {}, {
    referenceValue: (id) => {
      seen.push(id);
      return null;
    },
  });
  t.true(seen.length >= 1 && seen.every((id) => id === 'x'), `ids seen: ${JSON.stringify(seen)}`);
  t.is(r.trustVector['hardware'], 2);
  t.is(r.status, 'affirming');
});
