/**
 * Persistence across restarts of the same work_dir: resources, the resource policy, the generated
 * admin credentials and the attestation token signing key. Plus the lifecycle around them: admin
 * token renewal and key rotation at start, and a bounded shutdown.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { decodeJwt } from 'jose';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { samplePolicyText } from '../policy/index.js';
import { assertEmptyOk, assertProblem, call, mint, nowSeconds, sha384Hex, startDirect } from './helpers/admin-http.js';
import { startTestKbs } from './helpers/kbs-server.js';

const OCTET = { 'Content-Type': 'application/octet-stream' };
const INIT = 'failed to initialize [admin] configuration: ';
const NO_ISSUER = 'Admin access denied: Cannot verify token with any of the issuers';

function read(workDir: string, f: string): string {
  return readFileSync(join(workDir, f), 'utf8');
}

test('resources, the resource policy, the admin token and the token signing key survive a restart', async (t) => {
  const first = await startTestKbs();
  const workDir = first.workDir;
  let firstClosed = false;
  t.teardown(async () => {
    if (!firstClosed) await first.close();
  });
  const adminToken = first.adminToken as string;
  const admin1 = new KbsClient({ url: first.url, adminToken });
  const secret = Buffer.from([0, 0, 1, 2, 0xff, 0x0a, 0, 0x80]);
  await admin1.setResource('default/key/one', secret);
  await admin1.setResource('default/key/gone', Buffer.from('deleted before the restart'));
  await admin1.deleteResource('default/key/gone');
  const allow = samplePolicyText('allow_all');
  await admin1.setResourcePolicy(allow);
  const key = TeeKeyPair.generate();
  const guest = new KbsClient({ url: first.url });
  const attestationToken = await guest.attest(key);
  t.deepEqual(Buffer.from(await guest.getResource('default/key/one', key)), secret);
  const keyFiles = ['token-key.pem', 'admin-key.pem', 'admin-key.pub', 'admin-token'].map((f) => [f, read(workDir, f)] as const);
  await first.close();
  firstClosed = true;

  const second = await startTestKbs({ workDir });
  t.teardown(() => second.close());
  // nothing regenerated
  for (const [f, text] of keyFiles) t.is(read(workDir, f), text, f);
  t.is(second.adminToken, adminToken);
  t.notRegex(second.logs(), /generated/);

  // the pre-restart admin token is still accepted
  const admin2 = new KbsClient({ url: second.url, adminToken });
  const listed = await admin2.listResources();
  t.deepEqual(listed.map((r) => [r.path, r.size]), [['default/key/one', secret.length]]);
  const policy = await call(second.url, 'GET', '/kbs/v0/resource-policy', { token: adminToken });
  t.deepEqual(JSON.parse(policy.text), { id: 'resource-policy', policy: allow, sha384: sha384Hex(allow) });

  // the pre-restart attestation token is still accepted as Bearer (same signing key), and the
  // policy in force is the one set before the restart
  const fresh = new KbsClient({ url: second.url });
  t.deepEqual(Buffer.from(await fresh.getResource('default/key/one', key, attestationToken)), secret);
  await t.throwsAsync(() => fresh.getResource('default/key/gone', key, attestationToken), { message: /HTTP 404 .*ResourceNotFound/ });
  // and the admin API still writes
  await admin2.setResource('default/key/two', Buffer.from('after'));
  t.deepEqual((await admin2.listResources()).map((r) => r.path).sort(), ['default/key/one', 'default/key/two']);
});

test('an admin token expiring within 30 days (or unreadable) is re-minted at start with the same key', async (t) => {
  const first = await startTestKbs();
  const workDir = first.workDir;
  await first.close();
  const pem = createPrivateKey(read(workDir, 'admin-key.pem'));
  const pubBefore = read(workDir, 'admin-key.pub');
  const soon = await mint(pem, { iss: 'kbs', sub: 'admin', role: 'admin' }, { alg: 'EdDSA', exp: nowSeconds() + 10 * 86400 });
  writeFileSync(join(workDir, 'admin-token'), soon + '\n', { mode: 0o600 });

  const second = await startTestKbs({ workDir });
  t.teardown(() => second.close());
  const renewed = second.adminToken as string;
  t.not(renewed, soon);
  t.true((decodeJwt(renewed).exp as number) > nowSeconds() + 80 * 86400);
  t.is(read(workDir, 'admin-key.pub'), pubBefore);
  assertEmptyOk(t, await call(second.url, 'POST', '/kbs/v0/resource/r/t/x', { token: renewed, headers: OCTET, body: 'v' }));
  // the old one was signed by the same key and has not expired: still valid
  assertEmptyOk(t, await call(second.url, 'POST', '/kbs/v0/resource/r/t/x', { token: soon, headers: OCTET, body: 'v' }));
  await second.close();

  writeFileSync(join(workDir, 'admin-token'), 'not a token\n');
  const third = await startTestKbs({ workDir });
  t.teardown(() => third.close());
  t.not(third.adminToken, 'not a token');
  assertEmptyOk(t, await call(third.url, 'POST', '/kbs/v0/resource/r/t/x', { token: third.adminToken as string, headers: OCTET, body: 'v' }));
});

test('deleting the generated admin key pair rotates it: a new token is minted, the old one is refused', async (t) => {
  const first = await startTestKbs();
  const workDir = first.workDir;
  const oldToken = first.adminToken as string;
  await first.close();
  rmSync(join(workDir, 'admin-key.pem'));
  rmSync(join(workDir, 'admin-key.pub'));

  const second = await startTestKbs({ workDir });
  t.teardown(() => second.close());
  const newToken = second.adminToken as string;
  t.not(newToken, oldToken);
  assertEmptyOk(t, await call(second.url, 'POST', '/kbs/v0/resource/r/t/x', { token: newToken, headers: OCTET, body: 'v' }));
  assertProblem(t, await call(second.url, 'POST', '/kbs/v0/resource/r/t/x', { token: oldToken, headers: OCTET, body: 'v' }), 401, 'AdminAuthInitialization', {
    detail: INIT + NO_ISSUER,
  });
});

test('close() is bounded: a client stuck in the middle of an upload does not hold the shutdown', async (t) => {
  const kbs = await startDirect({ shutdownGraceMs: 300 });
  const url = new URL(kbs.url);
  const socket = connect(Number(url.port), url.hostname);
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(
    `POST /kbs/v0/resource/r/t/stuck HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${kbs.adminToken}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789',
  );
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((r) => setTimeout(r, 100));
  const started = Date.now();
  await kbs.close();
  const took = Date.now() - started;
  t.true(took >= 250 && took < 3000, `close took ${took} ms`);
  await closed; // the server dropped the connection
  t.regex(kbs.logs(), /shutdown: dropping connections still open after the grace period/);
  t.throws(() => readFileSync(join(kbs.workDir, 'repository', 'r', 't', 'stuck')), { code: 'ENOENT' });
});

test('close() without open requests is immediate', async (t) => {
  const kbs = await startDirect({ shutdownGraceMs: 10_000 });
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { token: kbs.adminToken, headers: OCTET, body: 'v' }));
  const started = Date.now();
  await kbs.close();
  t.true(Date.now() - started < 2000);
  t.notRegex(kbs.logs(), /dropping connections/);
});
