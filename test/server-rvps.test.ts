/**
 * Appraisal over HTTP with a real KBS: reference values (`/kbs/v0/reference-value`) and attestation
 * policies (`/kbs/v0/attestation-policy`) change what the EAR token says and so what the
 * `affirming.rego` resource policy releases; conformance items 46–47 (kbs-protocol.md §14); admin
 * auth on all three endpoints; malformed bodies; persistence across a restart; the kbs-client
 * style CLI commands.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { decodeJwt } from 'jose';
import { runtimeDataDigest } from '../attestation/runtime-data.js';
import { KbsClient, KbsClientError } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { main } from '../cli/main.js';
import { samplePolicyText } from '../policy/index.js';
import { assertEmptyOk, assertProblem, call, snapshot, type Reply } from './helpers/admin-http.js';
import { startTestKbs, type TestKbs } from './helpers/kbs-server.js';

const JSON_CT = { 'Content-Type': 'application/json' };
const SECRET = Buffer.from('appraised secret');
/** What the default CPU policy's sample section queries, matching the sample verifier's claims. */
const MATCHING = { launch_digest: ['abcde'], svn: ['1'], major_version: 1, minimum_minor_version: 0 };
const CUSTOM_CPU = `package policy
import rego.v1
default hardware := 97
hardware := 2 if input.sample.svn in query_reference_value("svn")
trust_claims := {"instance-identity": 2, "hardware": hardware, "executables": 3, "configuration": 2}
`;

function sampleMessage(values: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload: Buffer.from(JSON.stringify(values)).toString('base64'), ...extra });
}

function policyMessage(rego: string, id = 'default_cpu'): string {
  return JSON.stringify({ type: 'rego', policy_id: id, policy: Buffer.from(rego).toString('base64url') });
}

async function start(t: ExecutionContext, o: { toml?: string; workDir?: string } = {}): Promise<TestKbs> {
  const kbs = await startTestKbs(o);
  t.teardown(() => kbs.close());
  return kbs;
}

function admin(kbs: TestKbs): KbsClient {
  return new KbsClient({ url: kbs.url, ...(kbs.adminToken !== undefined ? { adminToken: kbs.adminToken } : {}) });
}

async function setRvs(kbs: TestKbs, values: Record<string, unknown>): Promise<void> {
  assertOk(await call(kbs.url, 'POST', '/kbs/v0/reference-value', { token: kbs.adminToken as string, headers: JSON_CT, body: sampleMessage(values) }));
}

function assertOk(r: Reply): void {
  if (r.status !== 200) throw new Error(`HTTP ${r.status} ${r.text}`);
}

/** RCAR as the sample attester with a chosen `svn`; returns the cookie and the token's cpu0 submod. */
async function attestSvn(url: string, key: TeeKeyPair, svn: string): Promise<{ cookie: string; token: string; cpu0: Record<string, unknown> }> {
  const auth = await fetch(`${url}/kbs/v0/auth`, { method: 'POST', headers: JSON_CT, body: JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': '' }) });
  const cookie = /kbs-session-id=[0-9a-f]{32}/.exec(auth.headers.get('set-cookie') ?? '')?.[0] as string;
  const { nonce } = (await auth.json()) as { nonce: string };
  const reportData = runtimeDataDigest(nonce, key.publicJwk(), '').toString('base64');
  const body = {
    'runtime-data': { nonce, 'tee-pubkey': key.publicJwk() },
    'tee-evidence': { primary_evidence: { svn, report_data: reportData }, additional_evidence: '' },
  };
  const res = await fetch(`${url}/kbs/v0/attest`, { method: 'POST', headers: { ...JSON_CT, Cookie: cookie }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`attest: HTTP ${res.status} ${await res.text()}`);
  const { token } = (await res.json()) as { token: string };
  const claims = decodeJwt(token) as { submods: { cpu0: Record<string, unknown> } };
  return { cookie, token, cpu0: claims.submods.cpu0 };
}

async function getResource(url: string, cookie: string): Promise<Reply> {
  return call(url, 'GET', '/kbs/v0/resource/one/two/three', { headers: { Cookie: cookie } });
}

/** A server with affirming.rego as resource policy and one stored secret. */
async function affirmingKbs(t: ExecutionContext, workDir?: string): Promise<TestKbs> {
  const kbs = await start(t, workDir !== undefined ? { workDir } : {});
  const a = admin(kbs);
  await a.setResourcePolicy(samplePolicyText('affirming'));
  await a.setResource('one/two/three', SECRET);
  return kbs;
}

// ---- conformance ------------------------------------------------------------------------------

test.serial('46: POST attestation-policy sets a policy (200 empty); policy "%%%" → 401 AttestationError', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const ok = await call(kbs.url, 'POST', '/kbs/v0/attestation-policy', { token, headers: JSON_CT, body: policyMessage(samplePolicyText('ear_default_policy_cpu')) });
  assertEmptyOk(t, ok);
  const bad = await call(kbs.url, 'POST', '/kbs/v0/attestation-policy', { token, headers: JSON_CT, body: JSON.stringify({ type: 'rego', policy_id: 'default_cpu', policy: '%%%' }) });
  assertProblem(t, bad, 401, 'AttestationError', { prefix: 'Attestation error: Set Attestation Policy failed' });
  // there is still no GET (upstream has none)
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/attestation-policy', { token }), 404, 'PluginNotFound', { detail: 'Plugin attestation-policy not found' });
});

test.serial('47: POST reference-value svn ["1"] → 200 application/json empty; GET → ["1"]; unknown → 401 RvpsError', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const post = await call(kbs.url, 'POST', '/kbs/v0/reference-value', { token, headers: JSON_CT, body: sampleMessage({ svn: ['1'] }) });
  assertEmptyOk(t, post);
  t.regex(post.contentType ?? '', /^application\/json/);
  const get = await call(kbs.url, 'GET', '/kbs/v0/reference-value/svn', { token });
  t.is(get.status, 200);
  t.regex(get.contentType ?? '', /^application\/json/);
  t.is(get.text, '["1"]');
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/reference-value/unknown', { token }), 401, 'RvpsError', {
    detail: 'RVPS configuration failed: Failed to get reference_values: No reference value found for the given id: unknown',
  });
  // ids are the rest of the path joined with "/"
  await setRvs(kbs, { 'rvps/a/b': 'x' });
  t.is((await call(kbs.url, 'GET', '/kbs/v0/reference-value/rvps/a/b', { token })).text, '"x"');
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/reference-value', { token }), 401, 'RvpsError');
});

// ---- appraisal drives the resource policy -----------------------------------------------------

test.serial('affirming.rego: matching reference values release the secret; non-matching ones are denied', async (t) => {
  const kbs = await affirmingKbs(t);
  const key = await TeeKeyPair.generate();

  // no reference values: the default CPU policy says contraindicated
  const none = await attestSvn(kbs.url, key, '1');
  t.is(none.cpu0['ear.status'], 'contraindicated');
  assertProblem(t, await getResource(kbs.url, none.cookie), 403, 'PolicyDeny');

  await setRvs(kbs, MATCHING);
  const good = await attestSvn(kbs.url, key, '1');
  t.is(good.cpu0['ear.status'], 'affirming');
  t.is(good.cpu0['ear.appraisal-policy-id'], 'default');
  t.deepEqual(good.cpu0['ear.trustworthiness-vector'], {
    'instance-identity': 0, configuration: 2, executables: 3, 'file-system': 0, hardware: 2, 'runtime-opaque': 0, 'storage-opaque': 0, 'sourced-data': 0,
  });
  const released = await getResource(kbs.url, good.cookie);
  t.is(released.status, 200);
  t.deepEqual(Buffer.from(await key.decrypt(JSON.parse(released.text))), SECRET);

  // a guest whose svn is not a reference value is not affirming
  const other = await attestSvn(kbs.url, key, '7');
  t.is(other.cpu0['ear.status'], 'contraindicated');
  t.is((other.cpu0['ear.trustworthiness-vector'] as Record<string, number>)['hardware'], 97);
  assertProblem(t, await getResource(kbs.url, other.cookie), 403, 'PolicyDeny');

  // replacing the reference value takes effect for the next attestation
  await setRvs(kbs, { svn: ['7'] });
  const now7 = await attestSvn(kbs.url, key, '7');
  t.is((await getResource(kbs.url, now7.cookie)).status, 200);
  const now1 = await attestSvn(kbs.url, key, '1');
  assertProblem(t, await getResource(kbs.url, now1.cookie), 403, 'PolicyDeny');
});

test.serial('an uploaded default_cpu applies to the next /attest; an invalid one is refused and the old one stays', async (t) => {
  const kbs = await affirmingKbs(t);
  const token = kbs.adminToken as string;
  const key = await TeeKeyPair.generate();
  await setRvs(kbs, { svn: ['1'] });

  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/attestation-policy', { token, headers: JSON_CT, body: policyMessage(CUSTOM_CPU) }));
  const custom = await attestSvn(kbs.url, key, '1');
  t.deepEqual(custom.cpu0['ear.trustworthiness-vector'], { 'instance-identity': 2, configuration: 2, executables: 3, hardware: 2 });
  t.is(custom.cpu0['ear.status'], 'affirming');
  t.is(custom.cpu0['ear.appraisal-policy-id'], 'default'); // upstream names the requested id, not default_<class>
  t.is((await getResource(kbs.url, custom.cookie)).status, 200);

  const dir = join(kbs.workDir, 'attestation_service_policy');
  const before = snapshot(dir);
  for (const [body, includes] of [
    [policyMessage('package policy\ntrust_claims := {'), 'Malformed policy: 2:'],
    [policyMessage('package policy\ntrust_claims := {"hardware": nosuchfn(1)}\n'), 'Malformed policy'],
    [policyMessage(CUSTOM_CPU, '../escape'), 'Illegal policy id'],
    [policyMessage(CUSTOM_CPU, 'a/b'), 'Illegal policy id'],
    [JSON.stringify({ policy_id: 'default_cpu' }), '`policy`'],
    [JSON.stringify({ policy: 'cGFja2FnZSBwb2xpY3k' }), '`policy_id`'],
    [JSON.stringify({ policy_id: 'default_cpu', policy: Buffer.from(CUSTOM_CPU + '#').toString('base64url') + '=' }), 'base64url'], // padded
    [JSON.stringify({ policy_id: 'default_cpu', policy: Buffer.from([0xff, 0xfe, 0xfd]).toString('base64url') }), 'UTF-8'],
    ['not json', 'parse set policy request'],
    ['[]', 'parse set policy request'],
  ] as const) {
    const r = await call(kbs.url, 'POST', '/kbs/v0/attestation-policy', { token, headers: JSON_CT, body });
    assertProblem(t, r, 401, 'AttestationError', { prefix: 'Attestation error: Set Attestation Policy failed: ', includes });
  }
  t.deepEqual(snapshot(dir), before, 'refused policies wrote nothing');
  const still = await attestSvn(kbs.url, key, '1');
  t.deepEqual(still.cpu0['ear.trustworthiness-vector'], { 'instance-identity': 2, configuration: 2, executables: 3, hardware: 2 });
});

test.serial('a restart keeps attestation policies and reference values', async (t) => {
  const first = await affirmingKbs(t);
  const token = first.adminToken as string;
  await setRvs(first, { svn: ['1'], 'x/y': { a: 1 } });
  assertEmptyOk(t, await call(first.url, 'POST', '/kbs/v0/attestation-policy', { token, headers: JSON_CT, body: policyMessage(CUSTOM_CPU) }));
  await first.close();

  const second = await start(t, { workDir: first.workDir });
  t.is((await call(second.url, 'GET', '/kbs/v0/reference-value/svn', { token })).text, '["1"]');
  t.is((await call(second.url, 'GET', '/kbs/v0/reference-value/x/y', { token })).text, '{"a":1}');
  const key = await TeeKeyPair.generate();
  const attested = await attestSvn(second.url, key, '1');
  t.deepEqual(attested.cpu0['ear.trustworthiness-vector'], { 'instance-identity': 2, configuration: 2, executables: 3, hardware: 2 });
  t.is((await getResource(second.url, attested.cookie)).status, 200);
});

test.serial('[storage_backend] local_fs dir_path holds the policies and reference values, as in Trustee', async (t) => {
  const workDir = mkdtempSync(join(tmpdir(), 'kbs-rvps-sb-'));
  const toml = '[storage_backend]\nstorage_type = "LocalFs"\n[storage_backend.backends.local_fs]\ndir_path = "kv"\n[attestation_service.rvps_config]\ntype = "BuiltIn"\nstorage_type = "LocalFs"\n';
  const kbs = await start(t, { toml, workDir });
  await setRvs(kbs, { svn: ['1'] });
  t.deepEqual(Object.keys(snapshot(join(workDir, 'kv', 'reference_value'))), ['svn']);
  t.true(Object.keys(snapshot(join(workDir, 'kv', 'attestation_service_policy'))).includes('default_cpu.rego'));
});

// ---- admin auth and malformed bodies ------------------------------------------------------------

test.serial('admin auth guards all three endpoints (AdminAuthAccess naming the endpoint)', async (t) => {
  const kbs = await start(t);
  const deny = await start(t, { toml: '[admin]\nauthorization_mode = "DenyAll"\n' });
  const cases = [
    ['POST', '/kbs/v0/attestation-policy', 'attestation-policy', policyMessage(CUSTOM_CPU)],
    ['POST', '/kbs/v0/reference-value', 'reference-value', sampleMessage({ svn: ['1'] })],
    ['GET', '/kbs/v0/reference-value/svn', 'reference-value', undefined],
  ] as const;
  for (const [method, path, endpoint, body] of cases) {
    const prefix = `admin access denied for endpoint ${endpoint}: `;
    const o = { headers: JSON_CT, ...(body !== undefined ? { body } : {}) };
    assertProblem(t, await call(kbs.url, method, path, o), 401, 'AdminAuthAccess', { prefix, includes: 'Failed to parse HTTP Auth Bearer header' });
    assertProblem(t, await call(kbs.url, method, path, { ...o, token: 'garbage' }), 401, 'AdminAuthAccess', { prefix });
    assertProblem(t, await call(deny.url, method, path, o), 401, 'AdminAuthAccess', { prefix, includes: 'DenyAll' });
  }
  // nothing was stored by the refused calls
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/reference-value/svn', { token: kbs.adminToken as string }), 401, 'RvpsError');
});

test.serial('malformed reference-value bodies → 401 RvpsError (413 when over the limit), nothing written', async (t) => {
  const kbs = await start(t, { toml: '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\npayload_request_size = 1\n' });
  const token = kbs.adminToken as string;
  await setRvs(kbs, { keep: ['1'] });
  const before = snapshot(kbs.workDir);
  const payload = (s: string) => Buffer.from(s).toString('base64');
  const REG = 'RVPS configuration failed: Failed to register reference value: ';
  for (const [body, includes] of [
    ['not json', 'not valid JSON'],
    ['', 'not valid JSON'],
    [JSON.stringify({ version: '0.2.0', type: 'sample', payload: payload('{"a":1}') }), 'Version unmatched'],
    [JSON.stringify({ version: '0.1.0', type: 'swid', payload: payload('{"a":1}') }), 'Could not find extractor'],
    [JSON.stringify({ version: '0.1.0', type: 'sample' }), '`payload`'],
    [JSON.stringify({ version: '0.1.0', type: 'sample', payload: '@@@' }), 'base64'],
    [JSON.stringify({ version: '0.1.0', type: 'sample', payload: payload('{"a":') }), 'not a JSON document'],
    [JSON.stringify({ version: '0.1.0', type: 'sample', payload: payload('["a"]') }), 'JSON object'],
    [sampleMessage({ ok: [1], '../../etc/passwd': [1] }), 'invalid reference value name'],
    [sampleMessage({ '.hidden': [1] }), 'invalid reference value name'],
    [sampleMessage({ big: ['x'.repeat(300 * 1024)] }), 'larger than'],
  ] as const) {
    const r = await call(kbs.url, 'POST', '/kbs/v0/reference-value', { token, headers: JSON_CT, body });
    assertProblem(t, r, 401, 'RvpsError', { prefix: REG, includes });
  }
  const notUtf8 = await call(kbs.url, 'POST', '/kbs/v0/reference-value', { token, headers: JSON_CT, body: Buffer.from([0x7b, 0xff, 0x7d]) });
  assertProblem(t, notUtf8, 401, 'RvpsError', { detail: 'RVPS configuration failed: Failed to parse reference value message' });
  const huge = await call(kbs.url, 'POST', '/kbs/v0/reference-value', { token, headers: JSON_CT, body: sampleMessage({ big: ['x'.repeat(1024 * 1024)] }) });
  assertProblem(t, huge, 413, 'PayloadTooLarge');
  t.deepEqual(snapshot(kbs.workDir), before, 'refused messages wrote nothing');
  t.is((await call(kbs.url, 'GET', '/kbs/v0/reference-value/keep', { token })).text, '["1"]');
});

// ---- CLI ----------------------------------------------------------------------------------------

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test.serial('CLI: set-sample-reference-value, get-reference-value and set-attestation-policy as kbs-client', async (t) => {
  const kbs = await affirmingKbs(t);
  const dir = mkdtempSync(join(tmpdir(), 'kbs-rvps-cli-'));
  const tokenFile = join(dir, 'admin-token');
  writeFileSync(tokenFile, kbs.adminToken as string);
  const common = ['--url', kbs.url, '--admin-token-file', tokenFile];

  t.like(await cli('config', 'set-sample-reference-value', 'svn', '1', ...common), { code: 0, out: 'Reference Values Updated' });
  t.like(await cli('config', 'set-sample-reference-value', 'launch_digest', 'abcde', ...common), { code: 0 });
  t.like(await cli('config', 'set-sample-reference-value', 'major_version', '1', '--as-integer', '--as-single-value', ...common), { code: 0 });
  t.like(await cli('config', 'set-sample-reference-value', 'minimum_minor_version', '+0', '--as-integer', '--as-single-value', ...common), { code: 0 });
  t.like(await cli('config', 'set-sample-reference-value', 'flag', 'true', '--as-bool', ...common), { code: 0 });
  t.like(await cli('config', 'get-reference-value', '--id', 'svn', ...common), { code: 0, out: '["1"]' });
  t.like(await cli('config', 'get-reference-value', '--id', 'major_version', ...common), { code: 0, out: '1' });
  t.like(await cli('config', 'get-reference-value', '--id', 'flag', ...common), { code: 0, out: '[true]' });
  const missing = await cli('config', 'get-reference-value', '--id', 'nope', ...common);
  t.is(missing.code, 1);
  t.true(missing.err.includes('RvpsError'));

  const key = await TeeKeyPair.generate();
  const client = new KbsClient({ url: kbs.url });
  await client.attest(key);
  t.deepEqual(Buffer.from(await client.getResource('one/two/three', key)), SECRET);

  const policyFile = join(dir, 'deny-hw.rego');
  writeFileSync(policyFile, 'package policy\ntrust_claims := {"hardware": 97}\n');
  t.like(await cli('config', 'set-attestation-policy', '--policy-file', policyFile, ...common), { code: 0, out: 'attestation policy default_cpu set' });
  await client.attest(key);
  const e = await t.throwsAsync(client.getResource('one/two/three', key), { instanceOf: KbsClientError });
  t.is(e?.status, 403);

  writeFileSync(policyFile, 'package policy\ntrust_claims := {');
  const bad = await cli('config', 'set-attestation-policy', '--id', 'default_cpu', '--type', 'rego', '--policy-file', policyFile, ...common);
  t.is(bad.code, 1);
  t.true(bad.err.includes('Set Attestation Policy failed'));

  for (const args of [
    ['set-sample-reference-value', 'svn', ...common],
    ['set-sample-reference-value', 'svn', 'x', '--as-integer', ...common],
    ['set-sample-reference-value', 'svn', '2147483648', '--as-integer', ...common],
    ['set-sample-reference-value', 'svn', 'yes', '--as-bool', ...common],
    ['set-sample-reference-value', 'svn', '1', '--as-bool', '--as-integer', ...common],
    ['get-reference-value', ...common],
    ['set-attestation-policy', ...common],
    ['get-reference-value', '--id', 'svn', 'extra', ...common],
  ]) {
    t.is((await cli('config', ...args)).code, 2, args.join(' '));
  }
});
