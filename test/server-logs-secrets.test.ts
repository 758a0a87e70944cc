/**
 * No secret reaches any log: a real `kbs serve` (PKCS#11 storage on SoftHSM, PIN from the
 * environment, trace-level logs, audit log on) runs a full flow (admin writes with the generated
 * token and with a token minted from the admin private key, RCAR, releases by cookie and by Bearer
 * token, denials, a failed attestation, deletes), then its stdout, stderr and audit file are searched
 * for every secret value of the run: the resource values (raw, base64, base64url, hex), the admin
 * private key, the admin tokens, the attestation token, the session cookie and the PIN.
 */
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { packageRoot } from '../policy/samples.js';
import { samplePolicyText } from '../policy/index.js';
import { mintAdminToken } from '../server/keys.js';
import { setupSoftHsm } from './helpers/softhsm.js';
import { adminClient, failedAttestation, getResource, rcar } from './helpers/observe.js';

const KBS = join(packageRoot(), 'dist', 'cli', 'kbs.js');

interface Served {
  url: string;
  stop(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

async function serve(cwd: string, env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [KBS, 'serve', '-c', 'kbs-config.toml'], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kbs serve did not start:\n${stderr}`)), 20_000);
    const look = () => {
      const m = /"urls":\["(http:\/\/127\.0\.0\.1:\d+)"\]/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    child.stderr.on('data', look);
    void exited.then((code) => reject(new Error(`kbs serve exited ${code}: ${stderr}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}

/** The text forms a secret could leak in. */
function forms(label: string, value: string | Buffer): Array<[string, string]> {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  const out: Array<[string, string]> = [
    [`${label} (base64)`, buf.toString('base64').replace(/=+$/, '')],
    [`${label} (base64url)`, buf.toString('base64url')],
    [`${label} (hex)`, buf.toString('hex')],
  ];
  if (!Buffer.isBuffer(value)) out.push([label, value]);
  return out;
}

/** A JWT and its signature alone (a log could carry either). */
function jwtForms(label: string, jwt: string): Array<[string, string]> {
  return [
    [label, jwt],
    [`${label} signature`, jwt.split('.')[2] as string],
  ];
}

test('a full flow over PKCS#11 leaves no secret in stdout, stderr or the audit log', async (t) => {
  const hsm = setupSoftHsm({ tokens: ['kbs-logs'], setProcessEnv: false });
  t.teardown(() => hsm.cleanup());
  const cwd = mkdtempSync(join(tmpdir(), 'kbs-logs-'));
  writeFileSync(
    join(cwd, 'kbs-config.toml'),
    `[http_server]
sockets = ["127.0.0.1:0"]
insecure_http = true

[[plugins]]
name = "resource"
type = "Pkcs11"
module = ${JSON.stringify(hsm.module)}
token_label = "kbs-logs"
pin_env = "KBS_PKCS11_PIN"

[logging]
level = "trace"

[audit]
path = "audit.log"
required = true
`,
  );
  const server = await serve(cwd, { ...hsm.env, KBS_PKCS11_PIN: hsm.pin });
  let result: Awaited<ReturnType<Served['stop']>> | undefined;
  t.teardown(async () => {
    if (!result) await server.stop();
  });
  const { url } = server;

  const adminToken = readFileSync(join(cwd, 'data', 'admin-token'), 'utf8').trim();
  const adminKeyPem = readFileSync(join(cwd, 'data', 'admin-key.pem'), 'utf8');
  const minted = await mintAdminToken(createPrivateKey(adminKeyPem), new Date(), 1);
  const valueOne = Buffer.concat([Buffer.from('secret-one-'), randomBytes(24)]);
  const valueTwo = `secret-two-${randomBytes(16).toString('hex')}`;

  const admin = adminClient(url, adminToken);
  const mintedAdmin = adminClient(url, minted);
  await admin.setResource('default/key/one', valueOne);
  await mintedAdmin.setResource('default/key/two', Buffer.from(valueTwo));
  await admin.setResource('default/key/gone', Buffer.from(valueTwo));
  const guest = await rcar(url);
  t.is((await getResource(url, guest, 'default/key/one')).status, 403);
  await mintedAdmin.setResourcePolicy(samplePolicyText('allow_all'));
  t.deepEqual((await getResource(url, guest, 'default/key/one')).value, valueOne);
  // by Bearer token (no cookie)
  const bearer = await fetch(`${url}/kbs/v0/resource/default/key/two`, { headers: { Authorization: `Bearer ${guest.token}` } });
  t.is(bearer.status, 200);
  t.is(Buffer.from(guest.key.decrypt(await bearer.json())).toString(), valueTwo);
  t.is((await getResource(url, guest, 'default/key/missing')).status, 404);
  t.is((await failedAttestation(url)).status, 401);
  // a tampered admin token and a tampered attestation token are refused; their text is not logged
  const tamperedAdmin = `${minted.slice(0, -4)}AAAA`;
  t.is((await fetch(`${url}/kbs/v0/resource/default/key/x`, { method: 'POST', headers: { Authorization: `Bearer ${tamperedAdmin}` }, body: 'x' })).status, 401);
  const tamperedToken = `${guest.token.slice(0, -4)}AAAA`;
  t.is((await fetch(`${url}/kbs/v0/resource/default/key/one`, { headers: { Authorization: `Bearer ${tamperedToken}` } })).status, 401);
  t.is((await admin.listResources()).length, 3);
  t.true((await admin.getResourcePolicy()).length > 0);
  await mintedAdmin.deleteResource('default/key/gone');
  t.is((await fetch(`${url}/metrics`)).status, 200);
  t.is((await fetch(`${url}/readyz`)).status, 200);

  result = await server.stop();
  t.is(result.code, 0, result.stderr);
  const audit = readFileSync(join(cwd, 'data', 'audit.log'), 'utf8');
  const haystacks: Array<[string, string]> = [
    ['stdout', result.stdout],
    ['stderr', result.stderr],
    ['audit log', audit],
  ];
  // the logs really are there: every request, every audit event kind
  t.regex(result.stderr, /"msg":"request"/);
  t.true(result.stderr.includes('default/key/one') && audit.includes('default/key/one'), 'positive control: non-secret names are logged');
  for (const e of ['kbs.start', 'admin.change', 'attestation', 'resource.release', 'admin.denied', 'kbs.stop']) t.true(audit.includes(`"event":"${e}"`), e);

  const pemBody = adminKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const secrets: Array<[string, string]> = [
    ...forms('resource one', valueOne),
    ...forms('resource two', valueTwo),
    ['admin private key (PEM body)', pemBody],
    ...pemBody.match(/.{32}/g)!.map((chunk, i): [string, string] => [`admin private key chunk ${i}`, chunk]),
    ...jwtForms('admin token', adminToken),
    ...jwtForms('minted admin token', minted),
    ...jwtForms('tampered admin token', tamperedAdmin),
    ...jwtForms('attestation token', guest.token),
    ...jwtForms('tampered attestation token', tamperedToken),
    ['session cookie', guest.cookie.slice('kbs-session-id='.length)],
    ['PKCS#11 PIN', hsm.pin],
    ['PKCS#11 SO PIN', hsm.soPin],
  ];
  for (const [where, text] of haystacks) {
    for (const [what, secret] of secrets) t.false(text.includes(secret), `${what} found in ${where}`);
  }
});

test('[audit] path = "-": records go to stdout, logs to stderr', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'kbs-logs-'));
  writeFileSync(join(cwd, 'kbs-config.toml'), '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n\n[audit]\npath = "-"\nrequired = true\n');
  const server = await serve(cwd, {});
  const adminToken = readFileSync(join(cwd, 'data', 'admin-token'), 'utf8').trim();
  await adminClient(server.url, adminToken).setResource('default/key/one', Buffer.from('stdout-secret'));
  const { code, stdout, stderr } = await server.stop();
  t.is(code, 0, stderr);
  const events = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { event: string; outcome?: string }).event);
  t.deepEqual(events, ['kbs.start', 'admin.change', 'admin.change', 'kbs.stop']);
  t.false(stderr.includes('"event"'));
  t.false(stdout.includes('stdout-secret') || stderr.includes('stdout-secret'));
});
