/** GET /metrics: Trustee's metric names, values that follow the protocol steps, bounded labels. */
import test from 'ava';
import { samplePolicyText } from '../policy/index.js';
import { Metrics, OTHER_RESOURCE_PATH } from '../server/metrics.js';
import { startTestKbs } from './helpers/kbs-server.js';
import { adminClient, failedAttestation, getResource, metricValue, parseExposition, rcar, scrape, type Sample } from './helpers/observe.js';

test('the exposition: content type, help texts, build info, process metrics', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  await (await fetch(`${kbs.url}/kbs/v0/nothing`)).arrayBuffer(); // one /kbs request: the histograms have a series
  const res = await fetch(`${kbs.url}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  t.true(text.includes('# HELP kbs_http_requests_total Total HTTP requests count'));
  t.true(text.includes('# TYPE kbs_http_request_duration_seconds histogram'));
  t.true(text.includes('# HELP kbs_attestation_failures_total Total count of attestation failures'));
  t.true(text.includes('# HELP kbs_resource_reads_total KBS resource read count'));
  const samples = parseExposition(text);
  const build = samples.find((s) => s.name === 'kbs_build_info');
  t.deepEqual(build, { name: 'kbs_build_info', labels: { version: '0.1.0', node_version: process.version }, value: 1 });
  t.true(samples.some((s) => s.name === 'process_cpu_user_seconds_total'));
  t.true(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'));
  // Trustee's duration buckets
  const buckets = samples.filter((s) => s.name === 'kbs_http_request_duration_seconds_bucket').map((s) => s.labels['le']);
  t.deepEqual(buckets, ['0.0005', '0.001', '0.005', '0.01', '0.05', '0.5', '1', '+Inf']);
  t.deepEqual(
    samples.filter((s) => s.name === 'kbs_http_request_duration_seconds_count').map((s) => s.labels),
    [{ method: 'GET', route: 'unmatched' }],
  );
  // a POST is refused like Trustee (its route only serves GET)
  t.is((await fetch(`${kbs.url}/metrics`, { method: 'POST' })).status, 405);
});

test('counters follow auth, attestation, policy, release and admin writes', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  const admin = adminClient(kbs.url, kbs.adminToken);
  const before = await scrape(kbs.url);
  const delta = (after: Sample[], name: string, labels: Record<string, string> = {}) => metricValue(after, name, labels) - metricValue(before, name, labels);

  await admin.setResource('default/key/one', Buffer.from('v1'));
  await admin.setResource('default/key/one', Buffer.from('v2'));
  await admin.setResource('default/key/gone', Buffer.from('x'));
  await admin.deleteResource('default/key/gone');

  const guest = await rcar(kbs.url); // auth + attest, success
  t.is((await getResource(kbs.url, guest, 'default/key/one')).status, 403); // default policy denies sample
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  const got = await getResource(kbs.url, guest, 'default/key/one');
  t.is(got.status, 200);
  t.is(got.value?.toString(), 'v2');
  t.is((await getResource(kbs.url, guest, 'default/key/missing')).status, 404);
  t.is((await failedAttestation(kbs.url)).status, 401);
  // /attest without a cookie: an error, not a verdict
  t.is((await fetch(`${kbs.url}/kbs/v0/attest`, { method: 'POST', body: '{}' })).status, 401);
  // /auth with a bad version
  t.is((await fetch(`${kbs.url}/kbs/v0/auth`, { method: 'POST', body: JSON.stringify({ version: '9.9.9', tee: 'sample', 'extra-params': '' }) })).status, 401);

  const after = await scrape(kbs.url);
  t.is(delta(after, 'kbs_auth_requests_total'), 3);
  t.is(delta(after, 'kbs_auth_successes_total'), 2);
  t.is(delta(after, 'kbs_auth_errors_total'), 1);
  t.is(delta(after, 'kbs_attestation_requests_total'), 3);
  t.is(delta(after, 'kbs_attestation_successes_total', { tee_type: 'sample' }), 1);
  t.is(delta(after, 'kbs_attestation_failures_total', { tee_type: 'sample' }), 1);
  t.is(delta(after, 'kbs_attestation_errors_total'), 1);
  t.is(delta(after, 'kbs_policy_evaluations_total'), 3);
  t.is(delta(after, 'kbs_policy_approvals_total'), 2);
  t.is(delta(after, 'kbs_policy_violations_total'), 1);
  t.is(delta(after, 'kbs_policy_errors_total'), 0);
  t.is(delta(after, 'kbs_resource_reads_total', { resource_path: 'default/key/one' }), 1);
  // a path that does not exist never becomes a label
  t.false(after.some((s) => s.labels['resource_path'] === 'default/key/missing'));
  t.is(delta(after, 'kbs_resource_writes_total', { resource_path: 'default/key/one' }), 2);
  t.is(delta(after, 'kbs_resource_writes_total', { resource_path: 'default/key/gone' }), 1);
  t.is(delta(after, 'kbs_resource_deletes_total', { resource_path: 'default/key/gone' }), 1);
  // HTTP: by route pattern and status, /kbs only (the scrapes are not counted)
  t.is(delta(after, 'kbs_http_requests_total', { method: 'POST', route: '/kbs/v0/auth', status: '200' }), 2);
  t.is(delta(after, 'kbs_http_requests_total', { method: 'GET', route: '/kbs/v0/resource/*path', status: '403' }), 1);
  t.is(delta(after, 'kbs_http_requests_total', { method: 'GET', route: '/kbs/v0/resource/*path', status: '404' }), 1);
  t.false(after.some((s) => s.name === 'kbs_http_requests_total' && /metrics/.test(s.labels['route'] ?? '')));
  t.is(delta(after, 'kbs_http_request_duration_seconds_count'), delta(after, 'kbs_http_requests_total'));
  t.is(metricValue(after, 'kbs_http_active_connections'), 0);
  // storage latency by backend, operation and outcome
  const backend = process.env['KBS_TEST_STORAGE'] ?? 'LocalFs';
  t.is(delta(after, 'kbs_backend_operation_duration_seconds_count', { backend, operation: 'put', outcome: 'ok' }), 3);
  t.is(delta(after, 'kbs_backend_operation_duration_seconds_count', { backend, operation: 'get', outcome: 'ok' }), 1);
  t.is(delta(after, 'kbs_backend_operation_duration_seconds_count', { backend, operation: 'get', outcome: 'not_found' }), 1);
  // live sessions: the guest's, the failed attestation's and the bad-version auth made none
  t.is(metricValue(after, 'kbs_sessions_live'), 2);
});

test('resource_path labels are capped: the first N distinct paths, then "other"', (t) => {
  const m = new Metrics({ processMetrics: false, maxResourcePaths: 3 });
  t.deepEqual(
    ['a/b/1', 'a/b/2', 'a/b/3', 'a/b/4', 'a/b/1', 'a/b/5'].map((p) => m.resourcePathLabel(p)),
    ['a/b/1', 'a/b/2', 'a/b/3', OTHER_RESOURCE_PATH, 'a/b/1', OTHER_RESOURCE_PATH],
  );
});

test('two servers in one process keep separate registries', async (t) => {
  const a = await startTestKbs();
  const b = await startTestKbs();
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await adminClient(a.url, a.adminToken).setResource('x/y/z', Buffer.from('1'));
  t.is(metricValue(await scrape(a.url), 'kbs_resource_writes_total'), 1);
  t.is(metricValue(await scrape(b.url), 'kbs_resource_writes_total'), 0);
});

test('[metrics] enabled = false removes the endpoint', async (t) => {
  const kbs = await startTestKbs({ toml: '[metrics]\nenabled = false\n' });
  t.teardown(() => kbs.close());
  const res = await fetch(`${kbs.url}/metrics`);
  t.is(res.status, 404);
  t.is((await fetch(`${kbs.url}/healthz`)).status, 200);
});
