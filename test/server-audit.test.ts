/**
 * The audit log: one JSON line per attestation verdict, release decision, admin change or denial,
 * start and stop; fingerprints instead of session ids and tokens; and `required = true` failing
 * closed (no release, no admin change) when a record cannot be written.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { fingerprint, AuditLog } from '../server/audit.js';
import { silentLogger } from '../server/log.js';
import { Metrics } from '../server/metrics.js';
import { samplePolicyText } from '../policy/index.js';
import { startTestKbs } from './helpers/kbs-server.js';
import { assertProblem, call } from './helpers/admin-http.js';
import { adminClient, failedAttestation, getResource, metricValue, rcar, scrape } from './helpers/observe.js';

type Rec = Record<string, unknown> & { event: string };

function records(path: string): Rec[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

const AUDIT = (extra = '') => `[audit]\npath = "audit.log"\n${extra}`;

test('every event kind is recorded, with fingerprints and never a secret', async (t) => {
  const kbs = await startTestKbs({ toml: AUDIT('required = true\n') });
  const file = join(kbs.workDir, 'audit.log');
  const secret = `audit-secret-${Date.now()}`;
  const admin = adminClient(kbs.url, kbs.adminToken);
  await admin.setResource('default/key/one', Buffer.from(secret));
  const guest = await rcar(kbs.url);
  const denied = await getResource(kbs.url, guest, 'default/key/one');
  t.is(denied.status, 403);
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  const released = await getResource(kbs.url, guest, 'default/key/one');
  t.is(released.value?.toString(), secret);
  t.is((await getResource(kbs.url, guest, 'default/key/missing')).status, 404);
  const failed = await failedAttestation(kbs.url);
  t.is(failed.status, 401);
  await admin.deleteResource('default/key/one');
  t.is((await call(kbs.url, 'DELETE', '/kbs/v0/resource/default/key/one', { token: 'not-a-jwt' })).status, 401);
  await kbs.close();

  t.is(statSync(file).mode & 0o777, 0o600);
  const recs = records(file);
  for (const r of recs) t.regex(String(r['time']), /^\d{4}-\d\d-\d\dT/);
  t.deepEqual(
    recs.map((r) => `${r.event}${r['action'] ? `:${String(r['action'])}` : ''}${r['outcome'] ? `:${String(r['outcome'])}` : ''}${r['decision'] ? `:${String(r['decision'])}` : ''}${r['verdict'] ? `:${String(r['verdict'])}` : ''}`),
    [
      'kbs.start',
      'admin.change:resource.write:requested',
      'admin.change:resource.write:ok',
      'attestation:success',
      'resource.release:deny',
      'admin.change:resource-policy.set:requested',
      'admin.change:resource-policy.set:ok',
      'resource.release:allow',
      'resource.release:allow',
      'attestation:failure',
      'admin.change:resource.delete:requested',
      'admin.change:resource.delete:ok',
      'admin.denied',
      'kbs.stop',
    ],
  );
  const byEvent = (e: string) => recs.filter((r) => r.event === e);
  const session = fingerprint(guest.cookie.slice('kbs-session-id='.length));
  const [attested, failure] = byEvent('attestation');
  t.like(attested, { tee: 'sample', verdict: 'success', session });
  t.like(failure, { tee: 'sample', verdict: 'failure', step: 'nonce', session: fingerprint(failed.cookie.slice('kbs-session-id='.length)) });
  const [deny, allow, missing] = byEvent('resource.release');
  t.like(deny, { resource: 'default/key/one', decision: 'deny', released: false, token: fingerprint(guest.token), session });
  t.regex(String(deny?.['reason']), /data\.policy\.allow is false/);
  t.like(allow, { resource: 'default/key/one', decision: 'allow', released: true, token: fingerprint(guest.token), request_id: released.requestId });
  t.like(missing, { resource: 'default/key/missing', decision: 'allow', released: false, error: 'ResourceNotFound' });
  const write = byEvent('admin.change').find((r) => r['action'] === 'resource.write' && r['outcome'] === 'ok');
  t.like(write, { resource: 'default/key/one', size: secret.length, by: { subject: 'admin', role: 'admin' } });
  const policy = byEvent('admin.change').find((r) => r['action'] === 'resource-policy.set' && r['outcome'] === 'ok');
  t.regex(String(policy?.['sha384']), /^[0-9a-f]{96}$/);
  t.like(byEvent('admin.denied')[0], { method: 'DELETE', path: '/kbs/v0/resource/default/key/one' });

  const text = readFileSync(file, 'utf8');
  for (const s of [secret, Buffer.from(secret).toString('base64'), guest.token, guest.cookie.slice(15), kbs.adminToken ?? 'x', 'not-a-jwt']) {
    t.false(text.includes(s), `audit log contains a secret (${s.slice(0, 12)}…)`);
  }
});

test('required: a destination that cannot be opened (a directory) stops the start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-audit-'));
  mkdirSync(join(dir, 'audit.log'));
  const e = await t.throwsAsync(() => startTestKbs({ workDir: dir, toml: AUDIT('required = true\n') }));
  t.regex(e?.message ?? '', /\[audit\] cannot open .*audit\.log \(EISDIR\) and required = true/);
});

test('required: a start record that cannot be written (/dev/full) stops the start', async (t) => {
  const e = await t.throwsAsync(() => startTestKbs({ toml: '[audit]\npath = "/dev/full"\nrequired = true\n' }));
  t.regex(e?.message ?? '', /start record cannot be written/);
});

test('not required: a failing destination (/dev/full) loses records, counts them, and serves', async (t) => {
  const kbs = await startTestKbs({ toml: '[audit]\npath = "/dev/full"\n' });
  t.teardown(() => kbs.close());
  const admin = adminClient(kbs.url, kbs.adminToken);
  await admin.setResource('default/key/one', Buffer.from('v'));
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  const guest = await rcar(kbs.url);
  t.is((await getResource(kbs.url, guest, 'default/key/one')).status, 200);
  const m = await scrape(kbs.url);
  t.true(metricValue(m, 'kbs_audit_records_total', { outcome: 'error' }) >= 5);
  t.is(metricValue(m, 'kbs_audit_records_total', { outcome: 'ok' }), 0);
  t.regex(kbs.logs(), /"code":"ENOSPC".*audit write failed/);
  t.is((await call(kbs.url, 'GET', '/readyz')).status, 200, 'an optional audit log does not make the server unready');
});

test('required: once records cannot be written, releases and admin changes are refused (503); reopen recovers', async (t) => {
  const kbs = await startTestKbs({ toml: AUDIT('required = true\n') });
  t.teardown(() => kbs.close());
  const file = join(kbs.workDir, 'audit.log');
  const admin = adminClient(kbs.url, kbs.adminToken);
  await admin.setResource('default/key/one', Buffer.from('v1'));
  await admin.setResourcePolicy(samplePolicyText('allow_all'));
  const guest = await rcar(kbs.url);
  t.is((await getResource(kbs.url, guest, 'default/key/one')).status, 200);

  // the audit file is replaced by a directory and the log reopened (as after a rotation): it fails
  rmSync(file);
  mkdirSync(file);
  t.false(await kbs.running.services.audit.reopen());

  const release = await fetch(`${kbs.url}/kbs/v0/resource/default/key/one`, { headers: { Cookie: guest.cookie } });
  const body = await release.text();
  assertProblem(t, { status: release.status, contentType: release.headers.get('content-type'), body: Buffer.from(body), text: body }, 503, 'ServiceUnavailable', {
    detail: 'Audit log unavailable',
  });
  t.false(body.includes('ciphertext'));
  const write = await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/two', { token: kbs.adminToken ?? '', body: 'v2' });
  assertProblem(t, write, 503, 'ServiceUnavailable', { detail: 'Audit log unavailable' });
  const remove = await call(kbs.url, 'DELETE', '/kbs/v0/resource/default/key/one', { token: kbs.adminToken ?? '' });
  assertProblem(t, remove, 503, 'ServiceUnavailable');
  const setPolicy = await call(kbs.url, 'POST', '/kbs/v0/resource-policy', {
    token: kbs.adminToken ?? '',
    body: JSON.stringify({ policy: Buffer.from(samplePolicyText('deny_all')).toString('base64url') }),
  });
  assertProblem(t, setPolicy, 503, 'ServiceUnavailable');
  // nothing changed
  const list = (await admin.listResources()).map((r) => r.path);
  t.deepEqual(list, ['default/key/one']);
  t.true((await admin.getResourcePolicy()).includes('allow'));
  assertProblem(t, await call(kbs.url, 'GET', '/readyz'), 503, 'ServiceUnavailable', { detail: 'Not ready: audit' });

  // the directory goes away, the log is reopened: releases work again and are recorded
  rmSync(file, { recursive: true });
  t.true(await kbs.running.services.audit.reopen());
  await new Promise((r) => setTimeout(r, 600)); // readiness cache
  t.is((await getResource(kbs.url, guest, 'default/key/one')).status, 200);
  t.is((await call(kbs.url, 'GET', '/readyz')).status, 200);
  t.deepEqual(records(file).map((r) => r.event), ['resource.release']);
});

test('group commit: concurrent records are all written, one line each, in order of submission', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-audit-'));
  const path = join(dir, 'a.log');
  const metrics = new Metrics({ processMetrics: false });
  const audit = await AuditLog.open({ enabled: true, destination: { kind: 'file', path }, required: true }, silentLogger(), metrics);
  const oks = await Promise.all(Array.from({ length: 200 }, (_, i) => audit.write({ event: 'test', n: i, reason: 'x'.repeat(5000) })));
  await audit.close();
  t.true(oks.every(Boolean));
  const recs = records(path);
  t.deepEqual(
    recs.map((r) => r['n']),
    Array.from({ length: 200 }, (_, i) => i),
  );
  t.is(String(recs[0]?.['reason']).length, 1001, 'long texts are clipped');
  t.is((await metrics.registry.getSingleMetricAsString('kbs_audit_records_total')).includes('kbs_audit_records_total{outcome="ok"} 200'), true);
});

test('[audit] configuration: absent is off, required needs it enabled, "-" is stdout', async (t) => {
  const { parseConfigText } = await import('../config/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'kbs-audit-'));
  const base = `work_dir = ${JSON.stringify(dir)}\n[http_server]\ninsecure_http = true\n`;
  t.like(parseConfigText(base, { cwd: dir, source: 'test.toml' }).audit, { enabled: false, required: false });
  t.deepEqual(parseConfigText(`${base}[audit]\n`, { cwd: dir, source: 'test.toml' }).audit, { enabled: true, required: false, destination: { kind: 'file', path: join(dir, 'audit.log') } });
  t.deepEqual(parseConfigText(`${base}[audit]\npath = "-"\n`, { cwd: dir, source: 'test.toml' }).audit.destination, { kind: 'stdout' });
  t.deepEqual(parseConfigText(`${base}[audit]\npath = "stdout"\n`, { cwd: dir, source: 'test.toml' }).audit.destination, { kind: 'stdout' });
  t.throws(() => parseConfigText(`${base}[audit]\nenabled = false\nrequired = true\n`, { cwd: dir, source: 'test.toml' }), { message: /audit\.required.*needs the audit log enabled/ });
  t.throws(() => parseConfigText(`${base}[audit]\nfsync = true\n`, { cwd: dir, source: 'test.toml' }), { message: /audit\.fsync/ });
  t.is(parseConfigText(base, { cwd: dir, source: 'test.toml' }).metrics.enabled, true);
  t.is(parseConfigText(`${base}[metrics]\nenabled = false\n`, { cwd: dir, source: 'test.toml' }).metrics.enabled, false);
});
