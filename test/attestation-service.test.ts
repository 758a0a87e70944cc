/**
 * The attestation service end to end with the sample attester's logic (what the guest does:
 * canonical runtime data → SHA-384 → sample evidence), the default CPU appraisal policy and the EAR
 * claims layout of upstream tokens; then every failure with its step.
 */
import test from 'ava';
import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  APPRAISAL_HOST_FUNCTIONS,
  compile,
  samplePolicyText,
  type Appraisal,
  type JsonValue,
  type Policy,
} from '../policy/index.js';
import {
  AttestationFailure,
  AttestationService,
  buildEarClaims,
  defaultVerifiers,
  transformClaims,
  VerifierRegistry,
  type AttestationServiceOptions,
  type Claims,
  type Tee,
} from '../attestation/index.js';

const CPU_POLICY = compile(samplePolicyText('ear_default_policy_cpu'), { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
const GPU_POLICY = compile(
  `package policy
import rego.v1
default hardware := 97
hardware := 2 if input.sampledevice.svn in query_reference_value("device_svn")
trust_claims := {"hardware": hardware, "executables": 33, "configuration": 36}
`,
  { hostFunctions: APPRAISAL_HOST_FUNCTIONS },
);

const NOW = new Date('2026-01-01T00:00:00.750Z');
const IAT = Math.floor(NOW.getTime() / 1000);
const NONCE = Buffer.alloc(32, 7).toString('base64');

const E1_RVS: Record<string, JsonValue> = {
  svn: ['1'],
  launch_digest: ['abcde'],
  major_version: 1,
  minimum_minor_version: 1,
};

function teeKey(): Record<string, string> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x as string, y: jwk.y as string };
}
const KEY = teeKey();

// ---- The guest side, written independently of attestation/runtime-data.ts ----

/** Recursively sorted keys + JSON.stringify: exact JCS for strings and nested objects (§6.3). */
function sortedJson(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`)
    .join(',')}}`;
}

function guestDigest(nonce: string, key: object, additionalEvidence?: string): Buffer {
  const rd: Record<string, unknown> = { nonce, 'tee-pubkey': key };
  if (additionalEvidence !== undefined) rd['additional-evidence'] = additionalEvidence;
  return createHash('sha384').update(sortedJson(rd)).digest();
}

interface GuestOptions {
  nonce?: string;
  key?: object | null;
  svn?: string;
  devices?: Record<string, unknown>;
  reportData?: Buffer;
  initData?: unknown;
}

/** The /attest body the sample attester sends (kbs_protocol `rcar_handshake`). */
function guestAttestation(o: GuestOptions = {}): Record<string, unknown> {
  const nonce = o.nonce ?? NONCE;
  const key = Object.hasOwn(o, 'key') ? o.key : KEY;
  const additional = o.devices === undefined ? '' : JSON.stringify(o.devices);
  const reportData = o.reportData ?? guestDigest(nonce, key as object, additional);
  const body: Record<string, unknown> = {
    'runtime-data': { nonce, 'tee-pubkey': key },
    'tee-evidence': {
      primary_evidence: { svn: o.svn ?? '1', report_data: reportData.toString('base64') },
      additional_evidence: additional,
    },
  };
  if (o.initData !== undefined) body['init-data'] = o.initData;
  return body;
}

function sampleDeviceEvidence(nonce = NONCE, key: object = KEY, svn = '1'): Record<string, string> {
  return { svn, report_data: guestDigest(nonce, key).toString('base64') };
}

// ---- helpers ----

function service(rvs: Record<string, JsonValue> = {}, extra: Partial<AttestationServiceOptions> = {}): AttestationService {
  return new AttestationService({
    verifiers: defaultVerifiers(),
    appraisalPolicy: CPU_POLICY,
    referenceValue: (id) => (Object.hasOwn(rvs, id) ? (rvs[id] as JsonValue) : null),
    tokenLifetimeSeconds: 300,
    now: () => NOW,
    ...extra,
  });
}

function pointer(doc: JsonValue, path: string): JsonValue | undefined {
  let cur: JsonValue | undefined = doc;
  for (const raw of path.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, seg)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

async function attestFailure(svc: AttestationService, attestation: unknown, tee: Tee = 'sample', nonce = NONCE): Promise<AttestationFailure> {
  try {
    await svc.attest({ tee, nonce, attestation });
  } catch (e) {
    if (e instanceof AttestationFailure) return e;
    throw e;
  }
  throw new Error('expected an AttestationFailure');
}

const ANNOTATED = '/submods/cpu0/ear.veraison.annotated-evidence';

// ---- layout ----

test('sample attestation with no reference values: upstream EAR layout, contraindicated (E2)', async (t) => {
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  t.deepEqual(Object.keys(claims), ['eat_profile', 'iat', 'ear.verifier-id', 'submods', 'exp', 'iss']);
  t.is(claims['eat_profile'], 'tag:github.com,2024:confidential-containers/Trustee');
  t.is(claims['iat'], IAT);
  t.true(Number.isInteger(claims['iat']) && Number.isInteger(claims['exp']));
  t.is((claims['exp'] as number) - (claims['iat'] as number), 300);
  t.is(claims['iss'], 'CoCo-Attestation-Service');
  t.is(
    JSON.stringify(claims['ear.verifier-id']),
    '{"developer":"https://confidentialcontainers.org","build":"attestation-service 0.1.0"}',
  );
  t.deepEqual(Object.keys(claims['submods'] as Claims), ['cpu0']);

  const cpu0 = pointer(claims, '/submods/cpu0') as Claims;
  t.deepEqual(Object.keys(cpu0), [
    'ear.status',
    'ear.trustworthiness-vector',
    'ear.appraisal-policy-id',
    'ear.veraison.annotated-evidence',
    'ear.trustee.identifiers',
  ]);
  t.is(cpu0['ear.status'], 'contraindicated');
  t.is(cpu0['ear.appraisal-policy-id'], 'default');
  t.is(
    JSON.stringify(cpu0['ear.trustworthiness-vector']),
    JSON.stringify({
      'instance-identity': 0,
      configuration: 2,
      executables: 33,
      'file-system': 0,
      hardware: 97,
      'runtime-opaque': 0,
      'storage-opaque': 0,
      'sourced-data': 0,
    }),
  );
  t.deepEqual(cpu0['ear.trustee.identifiers'], { validated: {} }); // E8

  const annotated = pointer(claims, ANNOTATED) as Claims;
  t.deepEqual(Object.keys(annotated), ['report_data', 'runtime_data_claims', 'sample']);
  t.is(annotated['report_data'], guestDigest(NONCE, KEY, '').toString('base64'));
  // Verifier claims minus report_data; swap_remove moved "debug" into report_data's place.
  t.is(
    JSON.stringify(annotated['sample']),
    '{"svn":"1","debug":false,"launch_digest":"abcde","platform_version":{"major":1,"minor":4}}',
  );
  t.deepEqual(pointer(claims, `${ANNOTATED}/runtime_data_claims`), {
    'tee-pubkey': KEY,
    nonce: NONCE,
    'additional-evidence': '',
  });
  t.deepEqual(Object.keys(pointer(claims, `${ANNOTATED}/runtime_data_claims`) as Claims), ['tee-pubkey', 'nonce', 'additional-evidence']);
});

test('item 17: the submitted JWK and the nonce are at the EAR runtime_data_claims paths', async (t) => {
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  t.deepEqual(pointer(claims, `${ANNOTATED}/runtime_data_claims/tee-pubkey`), KEY);
  t.is(pointer(claims, `${ANNOTATED}/runtime_data_claims/nonce`), NONCE);
  // The whole claims set is plain JSON.
  t.deepEqual(JSON.parse(JSON.stringify(claims)), claims);
});

test('the key is projected onto the typed JWK members (unknown members dropped, as upstream)', async (t) => {
  const withExtras = { ...KEY, kid: 'k1', use: 'enc', d: 'should-never-be-sent' };
  // The guest hashes what it serialises from its typed key: only the known members.
  const attestation = guestAttestation({ key: withExtras, reportData: guestDigest(NONCE, KEY, '') });
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation });
  t.deepEqual(pointer(claims, `${ANNOTATED}/runtime_data_claims/tee-pubkey`), KEY);
  t.deepEqual(Object.keys(pointer(claims, `${ANNOTATED}/runtime_data_claims/tee-pubkey`) as Claims), ['kty', 'crv', 'alg', 'x', 'y']);
});

test('RSA key: alg/e/kty/n canonical order in the binding', async (t) => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const key = { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n as string, e: jwk.e as string };
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation({ key }) });
  t.deepEqual(pointer(claims, `${ANNOTATED}/runtime_data_claims/tee-pubkey`), key);
});

test('E1 reference values: affirming (executables 3, hardware 2, configuration 2)', async (t) => {
  const claims = await service(E1_RVS).attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  t.is(pointer(claims, '/submods/cpu0/ear.status'), 'affirming');
  t.deepEqual(pointer(claims, '/submods/cpu0/ear.trustworthiness-vector'), {
    'instance-identity': 0,
    configuration: 2,
    executables: 3,
    'file-system': 0,
    hardware: 2,
    'runtime-opaque': 0,
    'storage-opaque': 0,
    'sourced-data': 0,
  });
});

test('svn outside the reference values: hardware 97, contraindicated', async (t) => {
  const claims = await service(E1_RVS).attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation({ svn: '2' }) });
  t.is(pointer(claims, '/submods/cpu0/ear.status'), 'contraindicated');
  t.is(pointer(claims, '/submods/cpu0/ear.trustworthiness-vector/hardware'), 97);
  t.is(pointer(claims, `${ANNOTATED}/sample/svn`), '2');
});

test('item 24: init-data gives init_data (std base64 of SHA-384(body)) and init_data_claims', async (t) => {
  const body = 'version = "0.1.0"\nalgorithm = "sha384"\n[data]\nk = "v"\n';
  const claims = await service().attest({
    tee: 'sample',
    nonce: NONCE,
    attestation: guestAttestation({ initData: { format: 'toml', body } }),
  });
  const annotated = pointer(claims, ANNOTATED) as Claims;
  t.deepEqual(Object.keys(annotated), ['init_data', 'init_data_claims', 'report_data', 'runtime_data_claims', 'sample']);
  t.is(annotated['init_data'], createHash('sha384').update(body).digest('base64'));
  t.deepEqual(annotated['init_data_claims'], { k: 'v' });
  t.false(Object.hasOwn(annotated['sample'] as Claims, 'init_data'));
});

test('init-data null is the same as absent', async (t) => {
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation({ initData: null }) });
  t.deepEqual(Object.keys(pointer(claims, ANNOTATED) as Claims), ['report_data', 'runtime_data_claims', 'sample']);
});

test('E7 through init-data: agent policy containers become ear.trustee.identifiers', async (t) => {
  const policyData = {
    containers: [
      { OCI: { Annotations: {}, Process: { User: { UID: 65535 } } } },
      { OCI: { Annotations: { 'io.kubernetes.cri.image-name': 'bitnami/nginx:latest' }, Process: { User: { UID: 1001 } } } },
    ],
  };
  const rego = `package agent_policy\n\npolicy_data := ${JSON.stringify(policyData, null, 2)}\n`;
  const body = `version = "0.1.0"\nalgorithm = "sha256"\n[data]\n"policy.rego" = ${JSON.stringify(rego)}\n`;
  const claims = await service(E1_RVS).attest({
    tee: 'sample',
    nonce: NONCE,
    attestation: guestAttestation({ initData: { format: 'toml', body } }),
  });
  t.deepEqual(pointer(claims, `${ANNOTATED}/init_data_claims`), { agent_policy_claims: policyData });
  t.is(pointer(claims, `${ANNOTATED}/init_data`), createHash('sha256').update(body).digest('base64'));
  t.deepEqual(pointer(claims, '/submods/cpu0/ear.trustee.identifiers'), {
    validated: { container_images: ['bitnami/nginx:latest'], container_uids: [65535, 1001] },
  });
  t.is(pointer(claims, '/submods/cpu0/ear.status'), 'affirming');
});

test('verbose false drops additional-evidence from runtime_data_claims', async (t) => {
  const claims = await service({}, { verbose: false }).attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  t.deepEqual(pointer(claims, `${ANNOTATED}/runtime_data_claims`), { 'tee-pubkey': KEY, nonce: NONCE });
});

test('additional_evidence defaults to "" when absent', async (t) => {
  const attestation = guestAttestation();
  delete (attestation['tee-evidence'] as Record<string, unknown>)['additional_evidence'];
  const claims = await service().attest({ tee: 'sample', nonce: NONCE, attestation });
  t.is(pointer(claims, `${ANNOTATED}/runtime_data_claims/additional-evidence`), '');
});

test('lifetime, build and clock come from the options', async (t) => {
  const now = new Date('2030-06-01T12:00:00Z');
  const claims = await service({}, { tokenLifetimeSeconds: 3600, verifierBuild: 'kbs 9.9', now: () => now }).attest({
    tee: 'sample',
    nonce: NONCE,
    attestation: guestAttestation(),
  });
  t.is(claims['iat'], now.getTime() / 1000);
  t.is(claims['exp'], now.getTime() / 1000 + 3600);
  t.is(pointer(claims, '/ear.verifier-id/build'), 'kbs 9.9');
  t.throws(() => service({}, { tokenLifetimeSeconds: 0 }), { instanceOf: RangeError });
  t.throws(() => service({}, { tokenLifetimeSeconds: 1.5 }), { instanceOf: RangeError });
});

// ---- devices ----

test('sample device as additional evidence: gpu0 submod bound to {nonce, tee-pubkey}', async (t) => {
  const svc = service({ device_svn: ['1'] }, { classPolicies: { gpu: GPU_POLICY } });
  const devices = { sampledevice: sampleDeviceEvidence() };
  const attestation = guestAttestation({ devices });
  const claims = await svc.attest({ tee: 'sample', nonce: NONCE, attestation });
  t.deepEqual(Object.keys(claims['submods'] as Claims), ['cpu0', 'gpu0']);
  t.is(pointer(claims, `${ANNOTATED}/runtime_data_claims/additional-evidence`), JSON.stringify(devices));
  const gpu = '/submods/gpu0/ear.veraison.annotated-evidence';
  t.deepEqual(Object.keys(pointer(claims, gpu) as Claims), ['report_data', 'runtime_data_claims', 'sampledevice']);
  t.deepEqual(pointer(claims, `${gpu}/runtime_data_claims`), { 'tee-pubkey': KEY, nonce: NONCE });
  t.deepEqual(pointer(claims, `${gpu}/sampledevice`), { svn: '1' });
  t.is(pointer(claims, '/submods/gpu0/ear.status'), 'warning');
  t.deepEqual(pointer(claims, '/submods/gpu0/ear.trustworthiness-vector'), { configuration: 36, executables: 33, hardware: 2 });
  t.is(pointer(claims, '/submods/gpu0/ear.appraisal-policy-id'), 'default');
});

test('two devices of one class are gpu0 and gpu1; a cpu-class device is cpu1', async (t) => {
  const registry = defaultVerifiers();
  const svc = service({}, { verifiers: registry, classPolicies: { gpu: GPU_POLICY } });
  // Additional evidence is a map keyed by TEE, so one entry per TEE: use sample (cpu) + sampledevice (gpu).
  const devices = { sampledevice: sampleDeviceEvidence(), sample: sampleDeviceEvidence() };
  const claims = await svc.attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation({ devices }) });
  t.deepEqual(Object.keys(claims['submods'] as Claims), ['cpu0', 'cpu1', 'gpu0']);
  t.deepEqual(pointer(claims, '/submods/cpu1/ear.veraison.annotated-evidence/runtime_data_claims'), { 'tee-pubkey': KEY, nonce: NONCE });
  const gpus = buildEarClaims({
    tee: 'sample',
    teeClaims: { svn: '1', report_data: 'x' },
    runtimeDataClaims: {},
    devices: [
      { tee: 'sampledevice', teeClass: 'gpu', claims: { svn: '1', report_data: 'a' }, runtimeDataClaims: {} },
      { tee: 'sampledevice', teeClass: 'gpu', claims: { svn: '2', report_data: 'b' }, runtimeDataClaims: {} },
    ],
    appraise: () => ({ trustVector: { hardware: 2 }, status: 'affirming', extensions: [] }),
    iat: 1,
    lifetimeSeconds: 1,
    verifierBuild: 'b',
  });
  t.deepEqual(Object.keys(gpus['submods'] as Claims), ['cpu0', 'gpu0', 'gpu1']);
  t.is(pointer(gpus, '/submods/gpu1/ear.veraison.annotated-evidence/sampledevice/svn'), '2');
});

test('device evidence bound with the primary runtime data (with additional-evidence) is rejected', async (t) => {
  const svc = service({}, { classPolicies: { gpu: GPU_POLICY } });
  const wrong = { svn: '1', report_data: guestDigest(NONCE, KEY, '').toString('base64') };
  const e = await attestFailure(svc, guestAttestation({ devices: { sampledevice: wrong } }));
  t.is(e.step, 'report-data');
});

test('a device class without an appraisal policy fails the appraisal (as upstream without default_<class>)', async (t) => {
  const e = await attestFailure(service(), guestAttestation({ devices: { sampledevice: sampleDeviceEvidence() } }));
  t.is(e.step, 'appraisal');
});

test('additional_evidence that is not a JSON object keyed by TEE fails', async (t) => {
  const svc = service({}, { classPolicies: { gpu: GPU_POLICY } });
  for (const additional of ['not json', '[]', 'null', '"x"', ' ', JSON.stringify({ nosuchtee: {} }), JSON.stringify({ __proto__x: {} })]) {
    const attestation = guestAttestation();
    const te = attestation['tee-evidence'] as Record<string, unknown>;
    te['additional_evidence'] = additional;
    const rd = guestDigest(NONCE, KEY, additional);
    (te['primary_evidence'] as Record<string, string>)['report_data'] = rd.toString('base64');
    const e = await attestFailure(svc, attestation);
    t.is(e.step, 'additional-evidence', additional);
  }
  // "{}" is an empty device map.
  const attestation = guestAttestation({ devices: {} });
  const claims = await svc.attest({ tee: 'sample', nonce: NONCE, attestation });
  t.deepEqual(Object.keys(claims['submods'] as Claims), ['cpu0']);
});

test('a device TEE without a verifier is unsupported', async (t) => {
  const e = await attestFailure(service(), guestAttestation({ devices: { nvidia: { evidence: 'x' } } }));
  t.is(e.step, 'unsupported-tee');
});

// ---- failures ----

test('item 18: a nonce different from the session nonce fails at step nonce', async (t) => {
  const other = Buffer.alloc(32, 8).toString('base64');
  const e = await attestFailure(service(), guestAttestation({ nonce: other }));
  t.is(e.step, 'nonce');
  t.false(e.message.includes(other));
  t.false(e.message.includes(NONCE));
});

test('item 19: report data over insertion-order JSON fails at step report-data', async (t) => {
  const text = JSON.stringify({ 'tee-pubkey': KEY, nonce: NONCE, 'additional-evidence': '' });
  const reportData = createHash('sha384').update(text).digest();
  const e = await attestFailure(service(), guestAttestation({ reportData }));
  t.is(e.step, 'report-data');
});

test('item 20: report data without additional-evidence fails', async (t) => {
  const e = await attestFailure(service(), guestAttestation({ reportData: guestDigest(NONCE, KEY) }));
  t.is(e.step, 'report-data');
});

test('item 21: report data zero-padded to 64 bytes fails', async (t) => {
  const reportData = Buffer.concat([guestDigest(NONCE, KEY, ''), Buffer.alloc(16)]);
  const e = await attestFailure(service(), guestAttestation({ reportData }));
  t.is(e.step, 'report-data');
});

test('report data bound to another key fails', async (t) => {
  const e = await attestFailure(service(), guestAttestation({ reportData: guestDigest(NONCE, teeKey(), '') }));
  t.is(e.step, 'report-data');
});

test('item 23: init-data format json fails at step init-data', async (t) => {
  const e = await attestFailure(service(), guestAttestation({ initData: { format: 'json', body: '{}' } }));
  t.is(e.step, 'init-data');
  const f = await attestFailure(service(), guestAttestation({ initData: { format: 'toml', body: 'version = ' } }));
  t.is(f.step, 'init-data');
});

test('malformed bodies fail at step request', async (t) => {
  const good = guestAttestation();
  const mutate = (f: (b: Record<string, Record<string, unknown>>) => void): unknown => {
    const b = JSON.parse(JSON.stringify(good)) as Record<string, Record<string, unknown>>;
    f(b);
    return b;
  };
  const cases: unknown[] = [
    null,
    'body',
    [],
    {},
    mutate((b) => delete b['runtime-data']),
    mutate((b) => delete b['tee-evidence']),
    mutate((b) => delete (b['runtime-data'] as Record<string, unknown>)['nonce']),
    mutate((b) => ((b['runtime-data'] as Record<string, unknown>)['nonce'] = 5)),
    mutate((b) => delete (b['runtime-data'] as Record<string, unknown>)['tee-pubkey']),
    mutate((b) => delete (b['tee-evidence'] as Record<string, unknown>)['primary_evidence']),
    mutate((b) => ((b['tee-evidence'] as Record<string, unknown>)['additional_evidence'] = {})),
    mutate((b) => ((b['tee-evidence'] as Record<string, unknown>)['additional_evidence'] = null)),
    mutate((b) => (b['runtime-data'] = 'x' as unknown as Record<string, unknown>)),
  ];
  for (const body of cases) {
    const e = await attestFailure(service(), body);
    t.is(e.step, 'request', JSON.stringify(body) ?? 'undefined');
  }
});

test('an invalid tee-pubkey fails at step tee-pubkey without quoting it', async (t) => {
  for (const key of [{ kty: 'oct', k: 'c2VjcmV0' }, { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'not base64!', y: 'AA' }, 'key', null]) {
    const e = await attestFailure(service(), guestAttestation({ key: key as object | null, reportData: Buffer.alloc(48) }));
    t.is(e.step, 'tee-pubkey');
    t.false(e.message.includes('c2VjcmV0'));
  }
});

test('malformed primary evidence fails at step evidence-format', async (t) => {
  const attestation = guestAttestation();
  (attestation['tee-evidence'] as Record<string, unknown>)['primary_evidence'] = { svn: 1 };
  t.is((await attestFailure(service(), attestation)).step, 'evidence-format');
  (attestation['tee-evidence'] as Record<string, unknown>)['primary_evidence'] = null;
  t.is((await attestFailure(service(), attestation)).step, 'evidence-format');
});

test('a TEE without a verifier is unsupported', async (t) => {
  for (const tee of ['snp', 'tdx', 'az-snp-vtpm'] as const) {
    const e = await attestFailure(service(), guestAttestation(), tee);
    t.is(e.step, 'unsupported-tee');
  }
  const empty = service({}, { verifiers: new VerifierRegistry() });
  t.is((await attestFailure(empty, guestAttestation())).step, 'unsupported-tee');
});

test('a non-Error verifier failure is wrapped with step verifier', async (t) => {
  const registry = new VerifierRegistry();
  registry.register({
    tee: 'sample',
    verify: () => Promise.reject(new TypeError('boom')),
  });
  const e = await attestFailure(service({}, { verifiers: registry }), guestAttestation());
  t.is(e.step, 'verifier');
  t.true(e.cause instanceof TypeError);
});

test('a verifier whose claims are not a JSON object fails at step verifier', async (t) => {
  const registry = new VerifierRegistry();
  registry.register({ tee: 'sample', verify: () => Promise.resolve(['x'] as unknown as Claims) });
  const e = await attestFailure(service({}, { verifiers: registry }), guestAttestation());
  t.is(e.step, 'verifier');
});

test('a failing appraisal policy fails at step appraisal', async (t) => {
  const bad = (src: string): Policy => compile(`package policy\nimport rego.v1\n${src}`, { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
  const policies = [
    bad('trust_claims := {"no-such-claim": 2}'),
    bad('trust_claims := {"hardware": 300}'),
    bad('trust_claims := {"hardware": "2"}'),
    bad('trust_claims := {"hardware": 2}\nextensions := "x"'),
    bad('trust_claims := {"hardware": 2}\nextensions := [{"name": "a", "key": 1, "value": 1}, {"name": "b", "key": 1, "value": 2}]'),
    bad('trust_claims := {"hardware": 2}\nextensions := [{"name": "ear.status", "key": 9, "value": "x"}]'),
    bad('trust_claims := {"hardware": 2} if input.nothing'),
  ];
  for (const p of policies) {
    const e = await attestFailure(service({}, { appraisalPolicy: p }), guestAttestation());
    t.is(e.step, 'appraisal');
  }
});

test('a policy without trust_claims sets all eight claims to 0 (status none)', async (t) => {
  const p = compile('package policy\nimport rego.v1\nother := 1', { hostFunctions: APPRAISAL_HOST_FUNCTIONS });
  const claims = await service({}, { appraisalPolicy: p }).attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  t.is(pointer(claims, '/submods/cpu0/ear.status'), 'none');
  t.is(Object.keys(pointer(claims, '/submods/cpu0/ear.trustworthiness-vector') as Claims).length, 8);
  t.false(Object.keys(pointer(claims, '/submods/cpu0') as Claims).includes('ear.trustee.identifiers'));
});

test('policy extensions: sorted by name, null values skipped, partial vectors kept', async (t) => {
  const p = compile(
    `package policy
import rego.v1
trust_claims := {"hardware": 2, "executables": 3}
extensions := [
  {"name": "z.ext", "key": 5, "value": {"b": 1, "a": 2}},
  {"name": "a.ext", "key": 6, "value": [1, "x"]},
  {"name": "n.ext", "key": 7, "value": null},
]`,
    { hostFunctions: APPRAISAL_HOST_FUNCTIONS },
  );
  const claims = await service({}, { appraisalPolicy: p }).attest({ tee: 'sample', nonce: NONCE, attestation: guestAttestation() });
  const cpu0 = pointer(claims, '/submods/cpu0') as Claims;
  t.deepEqual(Object.keys(cpu0), [
    'ear.status',
    'ear.trustworthiness-vector',
    'ear.appraisal-policy-id',
    'ear.veraison.annotated-evidence',
    'a.ext',
    'z.ext',
  ]);
  t.is(JSON.stringify(cpu0['ear.trustworthiness-vector']), '{"executables":3,"hardware":2}');
  t.is(cpu0['ear.status'], 'affirming');
  t.deepEqual(cpu0['z.ext'], { b: 1, a: 2 });
});

test('the policy input is the transform_claims result', async (t) => {
  const seen: Claims[] = [];
  const claims = buildEarClaims({
    tee: 'sample',
    teeClaims: { svn: '1', report_data: 'rd', launch_digest: 'abcde', init_data: 'id' },
    runtimeDataClaims: { 'tee-pubkey': KEY, nonce: NONCE, 'additional-evidence': '' },
    initData: { claims: { k: 'v' } },
    appraise: (input): Appraisal => {
      seen.push(input);
      return { trustVector: { hardware: 2 }, status: 'affirming', extensions: [] };
    },
    iat: 10,
    lifetimeSeconds: 5,
    verifierBuild: 'b',
    verbose: false,
  });
  t.is(seen.length, 1);
  t.deepEqual(seen[0], pointer(claims, ANNOTATED));
  t.deepEqual(seen[0], {
    init_data: 'id',
    init_data_claims: { k: 'v' },
    report_data: 'rd',
    runtime_data_claims: { 'tee-pubkey': KEY, nonce: NONCE },
    sample: { svn: '1', launch_digest: 'abcde' },
  });
  t.is(claims['exp'], 15);
});

test('transformClaims matches upstream test_transform_claims', (t) => {
  const input = {
    ccel: { kernel: 'k' },
    quote: { header: { version: '0400' }, body: { report_data: '7c71' } },
    report_data: '7c71',
    init_data: '0000',
  };
  const out = transformClaims(input, '', '', 'tdx', true);
  t.deepEqual(out, {
    tdx: { ccel: { kernel: 'k' }, quote: { header: { version: '0400' }, body: { report_data: '7c71' } } },
    report_data: '7c71',
    init_data: '0000',
    runtime_data_claims: '',
    init_data_claims: '',
  });
  t.deepEqual(Object.keys(out), ['init_data', 'init_data_claims', 'report_data', 'runtime_data_claims', 'tdx']);
  // Without report_data/init_data claims, only the TEE member; init-data claims default to null.
  t.deepEqual(transformClaims({ a: 1 }, null, { nonce: 'n' }, 'tpm', true), { tpm: { a: 1 } });
  t.deepEqual(transformClaims({ init_data: 'x' }, null, null, 'snp', true), { init_data: 'x', init_data_claims: null, snp: {} });
  t.throws(() => transformClaims({ report_data: 5 }, null, null, 'snp', true), { instanceOf: AttestationFailure });
});

test('attest never leaks the nonce, key or evidence into error messages', async (t) => {
  const messages: string[] = [];
  const variants = [
    guestAttestation({ reportData: Buffer.alloc(48, 1) }),
    guestAttestation({ nonce: 'X'.repeat(44) }),
    guestAttestation({ initData: { format: 'toml', body: `${KEY['x']} = garbage` } }),
  ];
  for (const v of variants) messages.push((await attestFailure(service(), v)).message);
  for (const m of messages) {
    t.false(m.includes(NONCE));
    t.false(m.includes(KEY['x'] as string));
    t.false(m.includes(Buffer.alloc(48, 1).toString('base64')));
  }
});
