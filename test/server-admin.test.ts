/**
 * The admin API over HTTP: the three upstream modes (§14 items 41–45 of docs/kbs-protocol.md), the
 * Bearer JWT identity providers (Ed25519 / EC JWKS / RSA PEM), the regex ACL, the legacy Ed25519Key
 * mode, the embedded default's generated credentials, the resource-policy endpoint, the resource
 * list, the payload limit and hostile resource paths.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { decodeJwt, exportJWK } from 'jose';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { samplePolicyText } from '../policy/index.js';
import {
  assertEmptyOk,
  assertProblem,
  call,
  mint,
  nowSeconds,
  rawCall,
  sha384Hex,
  startDirect,
  snapshot,
  unsecuredJwt,
} from './helpers/admin-http.js';
import { policyBody, startTestKbs, type TestKbs } from './helpers/kbs-server.js';

const INIT = 'failed to initialize [admin] configuration: ';
const ACCESS_RP = 'admin access denied for endpoint resource-policy: ';
const ACCESS_LIST = 'admin access denied for endpoint resources: ';
const NO_ISSUER = 'Admin access denied: Cannot verify token with any of the issuers';
const NO_BEARER = 'Failed to parse HTTP Auth Bearer header';
const OCTET = { 'Content-Type': 'application/octet-stream' };
const JSON_CT = { 'Content-Type': 'application/json' };

async function start(t: ExecutionContext, toml?: string, workDir?: string): Promise<TestKbs> {
  const kbs = await startTestKbs({ ...(toml !== undefined ? { toml } : {}), ...(workDir !== undefined ? { workDir } : {}) });
  t.teardown(() => kbs.close());
  return kbs;
}

const pem = (k: KeyObject) => createPublicKey(k).export({ type: 'spki', format: 'pem' }) as string;

function resourceFile(kbs: { workDir: string }, path: string): string {
  return join(kbs.workDir, 'repository', ...path.split('/'));
}

// ---------------------------------------------------------------------------------------------
// P-auth and friends: AuthenticatedAuthorization with several identity providers

interface AuthKbs {
  kbs: TestKbs;
  ed: KeyObject;
  ecA: KeyObject;
  ecB: KeyObject;
  rsa: KeyObject;
}

/**
 * P-auth (§14): one Ed25519 provider {issuer:"issuer", audience:"kbs"}, ACL {admin, ^/kbs/.+$}.
 * `full` adds a JWKS provider (two EC P-256 keys, kids "a" and "b", issuer "jwks-issuer"), an RSA PEM
 * provider (no issuer/audience), the Ed25519 key again with issuer "second", and three narrow roles.
 */
async function startAuth(t: ExecutionContext, full = false): Promise<AuthKbs> {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-admin-'));
  const ed = generateKeyPairSync('ed25519').privateKey;
  const ecA = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ecB = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  writeFileSync(join(dir, 'idp-ed25519.pub'), pem(ed));
  const jwk = async (k: KeyObject, kid: string) => ({ ...(await exportJWK(k)), kid, use: 'sig', alg: 'ES256' });
  // public halves only
  const pubA = await jwk(createPublicKey(ecA), 'a');
  const pubB = await jwk(createPublicKey(ecB), 'b');
  writeFileSync(join(dir, 'idp-ec.jwks'), JSON.stringify({ keys: [pubA, pubB] }));
  writeFileSync(join(dir, 'idp-rsa.pub'), pem(rsa));
  const providers = [`{ issuer = "issuer", audience = "kbs", public_key_uri = "idp-ed25519.pub" }`];
  const acls = [`{ role = "admin", allowed_endpoints = "^/kbs/.+$" }`];
  if (full) {
    providers.push(
      `{ issuer = "jwks-issuer", jwk_set_uri = "idp-ec.jwks" }`,
      `{ public_key_uri = "idp-rsa.pub" }`,
      `{ issuer = "second", public_key_uri = "idp-ed25519.pub" }`,
    );
    acls.push(
      `{ role = "policy-admin", allowed_endpoints = "^/kbs/v0/resource-policy$" }`,
      `{ role = "team-a", allowed_endpoints = "^/kbs/v0/resource/team-a/.+$" }`,
      `{ role = "auditor", allowed_endpoints = '^/kbs/v0/resources\\?audit=1$' }`,
    );
  }
  const toml = `[admin]
authorization_mode = "AuthenticatedAuthorization"
[admin.authentication.bearer_jwt]
identity_providers = [${providers.join(', ')}]
[admin.authorization.regex_acl]
acls = [${acls.join(', ')}]
`;
  const kbs = await start(t, toml, dir);
  t.is(kbs.adminToken, undefined); // explicit [admin]: nothing generated
  return { kbs, ed, ecA, ecB, rsa };
}

const ADMIN_CLAIMS = { iss: 'issuer', aud: ['kbs'], role: 'admin' };

// ---------------------------------------------------------------------------------------------
// §14 item 41: P-open

test('41 P-open: admin POST and DELETE without Authorization; second DELETE is 404 ResourceNotFound', async (t) => {
  const kbs = await start(t, '[admin]\nauthorization_mode = "InsecureAllowAll"\n');
  const value = Buffer.from([0, 1, 2, 0xff, 0, 10, 13]);
  const post = await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: value });
  assertEmptyOk(t, post);
  t.regex(post.contentType ?? '', /^text\/xml/);
  t.deepEqual(readFileSync(resourceFile(kbs, 'r/t/x')), value);
  // overwrite allowed
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: 'v2' }));
  t.is(readFileSync(resourceFile(kbs, 'r/t/x'), 'utf8'), 'v2');
  const del = await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t/x');
  assertEmptyOk(t, del);
  t.regex(del.contentType ?? '', /^text\/xml/);
  t.false(existsSync(resourceFile(kbs, 'r/t/x')));
  // deliberate deviation: upstream 401 PluginInternalError
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t/x'), 404, 'ResourceNotFound', { detail: 'Resource r/t/x not found' });
  t.regex(kbs.logs(), /INSECURE: \[admin\] authorization_mode = \\?"InsecureAllowAll\\?"/);
});

test('P-open: the headers are ignored (even a garbage Bearer token is fine)', async (t) => {
  const kbs = await start(t, '[admin]\nauthorization_mode = "InsecureAllowAll"\n');
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/y', { headers: { ...OCTET, Authorization: 'Bearer garbage' }, body: 'x' }));
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { headers: JSON_CT, body: policyBody(samplePolicyText('allow_all')) }));
});

// ---------------------------------------------------------------------------------------------
// §14 item 42: P-deny

test('42 P-deny: every admin call refused, nothing written', async (t) => {
  const kbs = await start(t, '[admin]\nauthorization_mode = "DenyAll"\n');
  const before = readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8');
  const denyAll = 'Admin access denied: Admin access denied as DenyAll authorization_mode is enabled';
  for (const headers of [OCTET, { ...OCTET, Authorization: 'Bearer a.b.c' }]) {
    const r = await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers, body: 'v' });
    assertProblem(t, r, 401, 'AdminAuthInitialization', { detail: INIT + denyAll, includes: 'DenyAll' });
  }
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t/x'), 401, 'AdminAuthInitialization', { detail: INIT + denyAll });
  const rp = await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { headers: JSON_CT, body: policyBody(samplePolicyText('allow_all')) });
  assertProblem(t, rp, 401, 'AdminAuthAccess', { prefix: 'admin access denied for endpoint resource-policy', detail: ACCESS_RP + denyAll });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resource-policy'), 401, 'AdminAuthAccess', { detail: ACCESS_RP + denyAll });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources'), 401, 'AdminAuthAccess', { detail: ACCESS_LIST + denyAll });
  t.false(existsSync(resourceFile(kbs, 'r/t/x')));
  t.is(readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8'), before);
  t.is(before, samplePolicyText('default'));
});

// ---------------------------------------------------------------------------------------------
// §14 item 43: P-auth

test('43 P-auth: Bearer header required, EdDSA token accepted, role/exp/iss/aud checked', async (t) => {
  const { kbs, ed } = await startAuth(t);
  const path = '/kbs/v0/resource/r/t/x';
  const post = (headers: Record<string, string>) => call(kbs.url, 'POST', path, { headers: { ...OCTET, ...headers }, body: 'v' });
  const bearer = (tok: string) => ({ Authorization: `Bearer ${tok}` });

  for (const h of [{} as Record<string, string>, { Authorization: 'Basic YWRtaW46YWRtaW4=' }, { Authorization: 'Bearer' }, { Authorization: 'bearer x.y.z' }, { Authorization: 'Bearer not-a-jwt' }]) {
    assertProblem(t, await post(h), 401, 'AdminAuthInitialization', { detail: INIT + NO_BEARER });
  }
  t.false(existsSync(resourceFile(kbs, 'r/t/x')));

  const now = nowSeconds();
  assertEmptyOk(t, await post(bearer(await mint(ed, { ...ADMIN_CLAIMS, sub: 'alice' }, { alg: 'EdDSA', exp: now + 300 }))));
  t.is(readFileSync(resourceFile(kbs, 'r/t/x'), 'utf8'), 'v');
  t.regex(kbs.logs(), /resource written.*sub=alice role=admin|sub=alice role=admin.*resource written/);
  // aud as a plain string is accepted too
  assertEmptyOk(t, await post(bearer(await mint(ed, { ...ADMIN_CLAIMS, aud: 'kbs' }, { alg: 'EdDSA' }))));

  const refuse = async (claims: Record<string, unknown>, exp: number | null | undefined, detail: string) => {
    const tok = await mint(ed, claims, { alg: 'EdDSA', ...(exp !== undefined ? { exp } : {}) });
    assertProblem(t, await post(bearer(tok)), 401, 'AdminAuthInitialization', { detail: INIT + detail });
  };
  const { role: _role, ...noRole } = ADMIN_CLAIMS;
  await refuse(noRole, undefined, 'Admin access denied: Failed to parse claims from token: Missing required `role` claim in JWT');
  await refuse({ ...ADMIN_CLAIMS, role: 7 }, undefined, 'Admin access denied: Failed to parse claims from token: Missing required `role` claim in JWT');
  await refuse({ ...ADMIN_CLAIMS, role: 'guest' }, undefined, `Admin access denied: Role guest not allowed for path ${path}`);
  await refuse(ADMIN_CLAIMS, now - 120, NO_ISSUER); // expired beyond the 60 s leeway
  await refuse({ ...ADMIN_CLAIMS, iss: 'other' }, undefined, NO_ISSUER);
  await refuse({ ...ADMIN_CLAIMS, aud: ['other'] }, undefined, NO_ISSUER);
  await refuse({ role: 'admin', aud: ['kbs'] }, undefined, NO_ISSUER); // no iss at all
  await refuse({ role: 'admin', iss: 'issuer' }, undefined, NO_ISSUER); // no aud at all

  // the same on a built-in endpoint: AdminAuthAccess
  const rp = await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { headers: JSON_CT, body: policyBody(samplePolicyText('allow_all')) });
  assertProblem(t, rp, 401, 'AdminAuthAccess', { detail: ACCESS_RP + NO_BEARER });
  const guest = await mint(ed, { ...ADMIN_CLAIMS, role: 'guest' }, { alg: 'EdDSA' });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token: guest }), 401, 'AdminAuthAccess', {
    detail: `${ACCESS_RP}Admin access denied: Role guest not allowed for path /kbs/v0/resource-policy`,
  });
  const admin = await mint(ed, ADMIN_CLAIMS, { alg: 'EdDSA' });
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token: admin, headers: JSON_CT, body: policyBody(samplePolicyText('allow_all')) }));
  assertEmptyOk(t, await call(kbs.url, 'DELETE', path, { token: admin }));
  // tokens never reach the logs
  t.false(kbs.logs().includes(admin));
});

test('P-auth: exp within the 60 s leeway accepted; beyond it, or missing, refused', async (t) => {
  const { kbs, ed } = await startAuth(t);
  const post = async (exp: number | null) =>
    call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: 'v', token: await mint(ed, ADMIN_CLAIMS, { alg: 'EdDSA', exp }) });
  assertEmptyOk(t, await post(nowSeconds() - 30));
  assertProblem(t, await post(nowSeconds() - 90), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  assertProblem(t, await post(null), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
});

test('P-auth: unknown signing key, alg none, HMAC with the public key, tampered payload: refused', async (t) => {
  const { kbs, ed } = await startAuth(t);
  const post = (token: string) => call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: 'v', token });
  const other = generateKeyPairSync('ed25519').privateKey;
  assertProblem(t, await post(await mint(other, ADMIN_CLAIMS, { alg: 'EdDSA' })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  const none = unsecuredJwt({ ...ADMIN_CLAIMS, exp: nowSeconds() + 600 });
  assertProblem(t, await post(none), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  const hmac = await mint(new TextEncoder().encode(pem(ed)), ADMIN_CLAIMS, { alg: 'HS256' });
  assertProblem(t, await post(hmac), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  // a valid token whose payload is swapped for one with another role
  const good = await mint(ed, { ...ADMIN_CLAIMS, role: 'guest' }, { alg: 'EdDSA' });
  const [h, , s] = good.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...ADMIN_CLAIMS, exp: nowSeconds() + 600 })).toString('base64url')}.${s}`;
  assertProblem(t, await post(forged), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  t.false(existsSync(resourceFile(kbs, 'r/t/x')));
  // the genuine key still works (the refusals above are not a broken set-up)
  assertEmptyOk(t, await post(await mint(ed, ADMIN_CLAIMS, { alg: 'EdDSA' })));
});

test('JWKS provider: EC P-256 key chosen by kid; wrong kid or key refused', async (t) => {
  const { kbs, ecA, ecB } = await startAuth(t, true);
  const post = (token: string) => call(kbs.url, 'POST', '/kbs/v0/resource/r/t/jwks', { headers: OCTET, body: 'v', token });
  const claims = { iss: 'jwks-issuer', role: 'admin' };
  assertEmptyOk(t, await post(await mint(ecB, claims, { alg: 'ES256', kid: 'b' })));
  assertEmptyOk(t, await post(await mint(ecA, claims, { alg: 'ES256', kid: 'a' })));
  // key A presented as kid "b", unknown kid, no kid with two candidate keys signed by a stranger
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  for (const tok of [
    await mint(ecA, claims, { alg: 'ES256', kid: 'b' }),
    await mint(ecA, claims, { alg: 'ES256', kid: 'zzz' }),
    await mint(stranger, claims, { alg: 'ES256', kid: 'a' }),
    await mint(stranger, claims, { alg: 'ES256' }),
    await mint(ecB, { ...claims, iss: 'issuer' }, { alg: 'ES256', kid: 'b' }), // right key, wrong issuer
  ]) {
    assertProblem(t, await post(tok), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  }
});

test('RSA PEM provider: RS256 and PS256 accepted, without iss/aud requirements', async (t) => {
  const { kbs, rsa } = await startAuth(t, true);
  const post = (token: string) => call(kbs.url, 'POST', '/kbs/v0/resource/r/t/rsa', { headers: OCTET, body: 'v', token });
  assertEmptyOk(t, await post(await mint(rsa, { role: 'admin' }, { alg: 'RS256' })));
  assertEmptyOk(t, await post(await mint(rsa, { role: 'admin', iss: 'anyone' }, { alg: 'PS256' })));
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  assertProblem(t, await post(await mint(otherRsa, { role: 'admin' }, { alg: 'RS256' })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  assertProblem(t, await post(await mint(rsa, { role: 'admin' }, { alg: 'RS256', exp: null })), 401, 'AdminAuthInitialization', {
    detail: INIT + NO_ISSUER,
  });
});

test('ACL: a role allowed only on ^/kbs/v0/resource-policy$ cannot touch resources; the query string is part of the URI', async (t) => {
  const { kbs, ed } = await startAuth(t, true);
  const policyAdmin = await mint(ed, { ...ADMIN_CLAIMS, role: 'policy-admin' }, { alg: 'EdDSA' });
  const body = policyBody(samplePolicyText('allow_all'));
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token: policyAdmin, headers: JSON_CT, body }));
  t.is((await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token: policyAdmin })).status, 200);
  const denied = (p: string) => `Admin access denied: Role policy-admin not allowed for path ${p}`;
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource/a/b/c', { token: policyAdmin, headers: OCTET, body: 'v' }), 401, 'AdminAuthInitialization', {
    detail: INIT + denied('/kbs/v0/resource/a/b/c'),
  });
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/a/b/c', { token: policyAdmin }), 401, 'AdminAuthInitialization', {
    detail: INIT + denied('/kbs/v0/resource/a/b/c'),
  });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources', { token: policyAdmin }), 401, 'AdminAuthAccess', {
    detail: ACCESS_LIST + denied('/kbs/v0/resources'),
  });
  t.false(existsSync(resourceFile(kbs, 'a/b/c')));
  // the ACL sees the query string: `$` after resource-policy no longer matches
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy?x=1', { token: policyAdmin, headers: JSON_CT, body }), 401, 'AdminAuthAccess', {
    detail: ACCESS_RP + denied('/kbs/v0/resource-policy?x=1'),
  });
  // …and a rule written for a query string matches only with it
  const auditor = await mint(ed, { ...ADMIN_CLAIMS, role: 'auditor' }, { alg: 'EdDSA' });
  const ok = await call(kbs.url, 'GET', '/kbs/v0/resources?audit=1', { token: auditor });
  t.is(ok.status, 200, ok.text);
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources', { token: auditor }), 401, 'AdminAuthAccess', {
    detail: `${ACCESS_LIST}Admin access denied: Role auditor not allowed for path /kbs/v0/resources`,
  });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources?audit=1&x=2', { token: auditor }), 401, 'AdminAuthAccess', {
    prefix: `${ACCESS_LIST}Admin access denied: Role auditor not allowed for path`,
  });
  // the full admin is allowed everywhere, with or without a query
  const admin = await mint(ed, ADMIN_CLAIMS, { alg: 'EdDSA' });
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/a/b/c?x=1', { token: admin, headers: OCTET, body: 'v' }));
});

test('providers are tried in order: iss/aud mismatch on one falls through to the next with the same key', async (t) => {
  const { kbs, ed } = await startAuth(t, true);
  const post = (token: string) => call(kbs.url, 'POST', '/kbs/v0/resource/r/t/second', { headers: OCTET, body: 'v', token });
  // provider 1 (same key) wants iss "issuer" + aud "kbs"; provider 4 wants iss "second" only
  assertEmptyOk(t, await post(await mint(ed, { iss: 'second', role: 'admin' }, { alg: 'EdDSA' })));
  assertProblem(t, await post(await mint(ed, { iss: 'third', role: 'admin' }, { alg: 'EdDSA' })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  // a missing role stops at the first provider whose key verifies, as upstream
  assertProblem(t, await post(await mint(ed, { iss: 'second' }, { alg: 'EdDSA' })), 401, 'AdminAuthInitialization', {
    detail: `${INIT}Admin access denied: Failed to parse claims from token: Missing required \`role\` claim in JWT`,
  });
});

test('ACL on a repository prefix: the role writes only there, traversal and encoding tricks do not widen it', async (t) => {
  const { kbs, ed } = await startAuth(t, true);
  const team = await mint(ed, { ...ADMIN_CLAIMS, role: 'team-a' }, { alg: 'EdDSA' });
  const headers = { Authorization: `Bearer ${team}`, ...OCTET };
  assertEmptyOk(t, await rawCall(kbs.url, 'POST', '/kbs/v0/resource/team-a/key/one', { headers, body: 'a' }));
  t.is(readFileSync(resourceFile(kbs, 'team-a/key/one'), 'utf8'), 'a');
  const before = snapshot(kbs.workDir);
  for (const p of ['/kbs/v0/resource/team-b/key/one', '/kbs/v0/resource/team-%61/key/one', '/kbs/v0/resource/Team-a/key/one']) {
    assertProblem(t, await rawCall(kbs.url, 'POST', p, { headers, body: 'b' }), 401, 'AdminAuthInitialization', {
      detail: `${INIT}Admin access denied: Role team-a not allowed for path ${p}`,
    });
  }
  // these match the ACL text but are not valid resource paths
  for (const p of ['/kbs/v0/resource/team-a/../team-b/one', '/kbs/v0/resource/team-a/%2e%2e/team-b', '/kbs/v0/resource/team-a/..%2fteam-b/one']) {
    assertProblem(t, await rawCall(kbs.url, 'POST', p, { headers, body: 'b' }), 401, 'PluginInternalError', { detail: 'Plugin internal error' });
  }
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token: team, headers: JSON_CT, body: policyBody(samplePolicyText('allow_all')) }), 401, 'AdminAuthAccess', {
    detail: `${ACCESS_RP}Admin access denied: Role team-a not allowed for path /kbs/v0/resource-policy`,
  });
  t.deepEqual(snapshot(kbs.workDir), before);
});

// ---------------------------------------------------------------------------------------------
// Legacy Ed25519Key mode

test('Ed25519Key (legacy): a valid EdDSA token without role is accepted; another key, no exp, expired refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-admin-'));
  const key = generateKeyPairSync('ed25519').privateKey;
  writeFileSync(join(dir, 'legacy.pub'), pem(key));
  const kbs = await start(t, '[admin]\nauthorization_mode = "Ed25519Key"\nauth_public_key = "legacy.pub"\n', dir);
  const post = (token?: string) =>
    call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: 'legacy', ...(token !== undefined ? { token } : {}) });
  assertEmptyOk(t, await post(await mint(key, {}, { alg: 'EdDSA', exp: nowSeconds() + 7200 })));
  t.is(readFileSync(resourceFile(kbs, 'r/t/x'), 'utf8'), 'legacy');
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', {
    token: await mint(key, {}, { alg: 'EdDSA' }),
    headers: JSON_CT,
    body: policyBody(samplePolicyText('allow_all')),
  }));
  assertProblem(t, await post(), 401, 'AdminAuthInitialization', { detail: INIT + NO_BEARER });
  const other = generateKeyPairSync('ed25519').privateKey;
  assertProblem(t, await post(await mint(other, {}, { alg: 'EdDSA' })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  assertProblem(t, await post(await mint(key, {}, { alg: 'EdDSA', exp: null })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  assertProblem(t, await post(await mint(key, {}, { alg: 'EdDSA', exp: nowSeconds() - 120 })), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token: await mint(other, {}, { alg: 'EdDSA' }) }), 401, 'AdminAuthAccess', {
    detail: ACCESS_RP + NO_ISSUER,
  });
});

test('Ed25519Key: Trustee legacy form `auth_public_key` without authorization_mode', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-admin-'));
  const key = generateKeyPairSync('ed25519').privateKey;
  writeFileSync(join(dir, 'legacy.pub'), pem(key));
  const kbs = await start(t, '[admin]\nauth_public_key = "legacy.pub"\n', dir);
  const post = async (k: KeyObject) => call(kbs.url, 'POST', '/kbs/v0/resource/r/t/x', { headers: OCTET, body: 'v', token: await mint(k, {}, { alg: 'EdDSA' }) });
  assertEmptyOk(t, await post(key));
  assertProblem(t, await post(generateKeyPairSync('ed25519').privateKey), 401, 'AdminAuthInitialization', { detail: INIT + NO_ISSUER });
});

// ---------------------------------------------------------------------------------------------
// The embedded default's generated admin credentials

test('embedded default: the generated admin token works, other tokens do not; key files are 0600', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  t.truthy(token);
  const claims = decodeJwt(token);
  t.is(claims.role, 'admin');
  t.is(typeof claims.exp, 'number');
  t.true((claims.exp as number) > nowSeconds() + 80 * 86400);
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/one', { token, headers: OCTET, body: 'one' }));
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/one', { headers: OCTET, body: 'x' }), 401, 'AdminAuthInitialization', {
    detail: INIT + NO_BEARER,
  });
  const forged = await mint(generateKeyPairSync('ed25519').privateKey, { iss: claims.iss, sub: 'admin', role: 'admin' }, { alg: 'EdDSA' });
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/one', { token: forged, headers: OCTET, body: 'x' }), 401, 'AdminAuthInitialization', {
    detail: INIT + NO_ISSUER,
  });
  t.is(readFileSync(resourceFile(kbs, 'default/key/one'), 'utf8'), 'one');
  for (const f of ['admin-key.pem', 'admin-key.pub', 'admin-token', 'token-key.pem', join('policy', 'resource-policy.rego'), join('repository', 'default', 'key', 'one')]) {
    t.is(statSync(join(kbs.workDir, f)).mode & 0o777, 0o600, f);
  }
  t.is(readFileSync(join(kbs.workDir, 'admin-token'), 'utf8').trim(), token);
  t.false(kbs.logs().includes(token));
  t.false(kbs.logs().includes(readFileSync(join(kbs.workDir, 'admin-key.pem'), 'utf8').split('\n')[1] as string));
});

// ---------------------------------------------------------------------------------------------
// §14 items 44–45: the resource-policy endpoint

test('44 resource-policy POST: parse errors are ParsePolicyError with upstream detail prefixes', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const post = (body: string | Uint8Array) => call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token, headers: JSON_CT, body });
  const P = 'Failed to parse policy: ';

  // a valid policy whose length is not a multiple of 3 and whose standard base64 has `+` and `/`
  let rego = samplePolicyText('allow_all') + '# ~~~???>>>\n';
  while (Buffer.byteLength(rego) % 3 === 0) rego += ' ';
  const std = Buffer.from(rego).toString('base64');
  t.true(std.endsWith('='));
  t.regex(std, /[+/]/);

  assertProblem(t, await post(JSON.stringify({ policy: std })), 401, 'ParsePolicyError', { prefix: `${P}Failed to decode policy: ` });
  assertProblem(t, await post(JSON.stringify({ policy: std.replace(/=+$/, '') })), 401, 'ParsePolicyError', { prefix: `${P}Failed to decode policy: ` });
  assertProblem(t, await post(JSON.stringify({ policy: Buffer.from(rego).toString('base64url') + '=' })), 401, 'ParsePolicyError', {
    prefix: `${P}Failed to decode policy: `,
  });
  // base64url with non-zero trailing bits (Rust's decoder refuses it; Buffer.from would not)
  const canonical = Buffer.from(rego).toString('base64url');
  const last = canonical.at(-1) as string;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sloppy = canonical.slice(0, -1) + alphabet[alphabet.indexOf(last) + 1];
  t.deepEqual(Buffer.from(sloppy, 'base64url'), Buffer.from(rego));
  assertProblem(t, await post(JSON.stringify({ policy: sloppy })), 401, 'ParsePolicyError', { prefix: `${P}Failed to decode policy: ` });
  assertProblem(t, await post('{}'), 401, 'ParsePolicyError', { detail: `${P}No \`policy\` field inside SetPolicy Request Json` });
  for (const policy of [5, null, ['x'], { a: 1 }, true]) {
    assertProblem(t, await post(JSON.stringify({ policy })), 401, 'ParsePolicyError', { prefix: P, includes: 'is not a string' });
  }
  for (const body of ['not json', '', '[1]', '"x"', '{"policy":', new Uint8Array([0xff, 0xfe, 0x7b, 0x7d])]) {
    assertProblem(t, await post(body), 401, 'ParsePolicyError', { detail: `${P}Illegal SetPolicy Request Json` });
  }
  // valid base64url of bytes that are not UTF-8
  const notUtf8 = Buffer.from([0x70, 0x61, 0xc3, 0x28, 0xff, 0xfe]).toString('base64url');
  assertProblem(t, await post(JSON.stringify({ policy: notUtf8 })), 401, 'ParsePolicyError', { prefix: P });

  // nothing was changed by any of that; the base64url form of the same text is accepted
  t.is(readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8'), samplePolicyText('default'));
  assertEmptyOk(t, await post(JSON.stringify({ policy: Buffer.from(rego).toString('base64url') })));
  t.is(readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8'), rego);
});

test('44 resource-policy POST: invalid Rego is PolicyEngineError naming line and column; the old policy stays in force', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const admin = new KbsClient({ url: kbs.url, adminToken: token });
  await admin.setResource('default/key/one', Buffer.from('s3cret'));
  const allow = samplePolicyText('allow_all');
  await admin.setResourcePolicy(allow);

  const guest = new KbsClient({ url: kbs.url });
  const key = TeeKeyPair.generate();
  await guest.attest(key);
  t.is(Buffer.from(await guest.getResource('default/key/one', key)).toString(), 's3cret');

  const post = (rego: string) => call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token, headers: JSON_CT, body: policyBody(rego) });
  const bad = 'package policy\n\ndefault allow := false\n\nallow if {\n  input.x ==\n}\n';
  assertProblem(t, await post(bad), 401, 'PolicyEngineError', { prefix: 'Policy engine error: 7:1: ' });
  assertProblem(t, await post('package policy\nallow if { input.x == "a }\n'), 401, 'PolicyEngineError', { prefix: 'Policy engine error: 2:23: ' });
  assertProblem(t, await post(''), 401, 'PolicyEngineError', { prefix: 'Policy engine error: ' });

  // the allow-all policy is still in force, in memory and on disk
  const got = await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token });
  t.deepEqual(JSON.parse(got.text), { id: 'resource-policy', policy: allow, sha384: sha384Hex(allow) });
  t.is(readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8'), allow);
  t.is(Buffer.from(await guest.getResource('default/key/one', key)).toString(), 's3cret');

  // a valid change does take effect (so the checks above can fail)
  await admin.setResourcePolicy(samplePolicyText('deny_all'));
  await t.throwsAsync(() => guest.getResource('default/key/one', key), { message: /HTTP 403 .*PolicyDeny/ });
});

test('45 resource-policy GET: our JSON {id, policy, sha384}; admin-only', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const fresh = await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token });
  t.is(fresh.status, 200);
  t.regex(fresh.contentType ?? '', /^application\/json/);
  const def = samplePolicyText('default');
  t.deepEqual(JSON.parse(fresh.text), { id: 'resource-policy', policy: def, sha384: sha384Hex(def) });
  // upstream matches built-ins on the first segment only
  t.deepEqual(JSON.parse((await call(kbs.url, 'GET', '/kbs/v0/resource-policy/anything', { token })).text).id, 'resource-policy');
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resource-policy'), 401, 'AdminAuthAccess', { detail: ACCESS_RP + NO_BEARER });
  const allow = samplePolicyText('allow_all');
  const set = await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token, headers: JSON_CT, body: policyBody(allow) });
  assertEmptyOk(t, set);
  t.is(set.contentType, null);
  t.deepEqual(JSON.parse((await call(kbs.url, 'GET', '/kbs/v0/resource-policy', { token })).text), {
    id: 'resource-policy',
    policy: allow,
    sha384: sha384Hex(allow),
  });
});

// ---------------------------------------------------------------------------------------------
// GET /kbs/v0/resources

test('GET /kbs/v0/resources lists paths, sizes and times, never values; admin-only', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const list = async () => {
    const r = await call(kbs.url, 'GET', '/kbs/v0/resources', { token });
    t.is(r.status, 200, r.text);
    t.regex(r.contentType ?? '', /^application\/json/);
    return { text: r.text, items: (JSON.parse(r.text) as Array<{ path: string; size: number; updated: string }>).sort((a, b) => a.path.localeCompare(b.path)) };
  };
  t.deepEqual((await list()).items, []);
  const before = Date.now() - 1000;
  const v1 = Buffer.from('VALUE-ONE-do-not-list');
  const v2 = Buffer.concat([Buffer.from('VALUE-TWO-'), Buffer.alloc(100, 0)]);
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/one', { token, headers: OCTET, body: v1 }));
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/other/cert/two.pem', { token, headers: OCTET, body: v2 }));
  const after = Date.now() + 1000;
  const { text, items } = await list();
  t.deepEqual(items.map((i) => [i.path, i.size]), [
    ['default/key/one', v1.length],
    ['other/cert/two.pem', v2.length],
  ]);
  for (const i of items) {
    t.deepEqual(Object.keys(i).sort(), ['path', 'size', 'updated']);
    const ms = Date.parse(i.updated);
    t.true(ms >= before && ms <= after, i.updated);
    t.is(new Date(ms).toISOString(), i.updated);
  }
  for (const v of [v1, v2]) {
    for (const enc of [v.toString('utf8').replace(/\0+$/, ''), v.toString('base64'), v.toString('base64url'), v.toString('hex')]) t.false(text.includes(enc));
  }
  t.false(text.includes('VALUE'));
  assertEmptyOk(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/default/key/one', { token }));
  t.deepEqual((await list()).items.map((i) => i.path), ['other/cert/two.pem']);

  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources'), 401, 'AdminAuthAccess', { detail: ACCESS_LIST + NO_BEARER });
  const forged = await mint(generateKeyPairSync('ed25519').privateKey, { role: 'admin' }, { alg: 'EdDSA' });
  assertProblem(t, await call(kbs.url, 'GET', '/kbs/v0/resources', { token: forged }), 401, 'AdminAuthAccess', { detail: ACCESS_LIST + NO_ISSUER });
});

// ---------------------------------------------------------------------------------------------
// Payload limit, missing resources, hostile paths

test('admin POST over payload_request_size: 413 and nothing written (declared and chunked)', async (t) => {
  // started directly with a short shutdown grace: the end of the test checks that no connection
  // was left stuck half-read (close() would have to drop it after the grace)
  const kbs = await startDirect({ toml: '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\npayload_request_size = 1\n', shutdownGraceMs: 300 });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await kbs.close();
  });
  const token = kbs.adminToken;
  const MiB = 1024 * 1024;
  const detail = `Request body is larger than ${MiB} bytes`;
  const big = Buffer.alloc(MiB + 1, 0x41);
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/big', { token, headers: OCTET, body: big }), 413, 'PayloadTooLarge', { detail });
  t.false(existsSync(resourceFile(kbs, 'r/t/big')));
  // chunked: no Content-Length, the limit is enforced while reading
  const chunks = Array.from({ length: 5 }, () => Buffer.alloc(MiB / 4, 0x42));
  const chunked = await rawCall(kbs.url, 'POST', '/kbs/v0/resource/r/t/big', {
    headers: { Authorization: `Bearer ${token}`, ...OCTET, 'Transfer-Encoding': 'chunked' },
    chunks,
  });
  assertProblem(t, chunked, 413, 'PayloadTooLarge', { detail });
  t.false(existsSync(resourceFile(kbs, 'r/t/big')));
  // the resource-policy endpoint has the same limit; the old policy stays
  const hugePolicy = JSON.stringify({ policy: Buffer.alloc(MiB, 0x20).toString('base64url') });
  assertProblem(t, await call(kbs.url, 'POST', '/kbs/v0/resource-policy', { token, headers: JSON_CT, body: hugePolicy }), 413, 'PayloadTooLarge', { detail });
  t.is(readFileSync(join(kbs.workDir, 'policy', 'resource-policy.rego'), 'utf8'), samplePolicyText('default'));
  // exactly the limit is fine (the refusals were about size)
  const exact = Buffer.alloc(MiB, 0x43);
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/r/t/big', { token, headers: OCTET, body: exact }));
  t.is(statSync(resourceFile(kbs, 'r/t/big')).size, MiB);
  // the refused uploads did not leave the server unable to serve, nor connections stuck open
  t.is((await call(kbs.url, 'GET', '/healthz')).status, 200);
  await kbs.close();
  closed = true;
  t.notRegex(kbs.logs(), /dropping connections still open/);
});

test('DELETE of a missing resource: 404 ResourceNotFound (deviation from upstream 401)', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t/missing', { token }), 404, 'ResourceNotFound', {
    detail: 'Resource r/t/missing not found',
  });
  // an invalid path is not "missing": 401 PluginInternalError as upstream
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t', { token }), 401, 'PluginInternalError', { detail: 'Plugin internal error' });
  // admin check comes first
  assertProblem(t, await call(kbs.url, 'DELETE', '/kbs/v0/resource/r/t/missing'), 401, 'AdminAuthInitialization', { detail: INIT + NO_BEARER });
});

test('hostile admin paths are refused and nothing is written or deleted outside (or inside) the repository', async (t) => {
  const kbs = await start(t);
  const token = kbs.adminToken as string;
  const policyFile = join(kbs.workDir, 'policy', 'resource-policy.rego');
  assertEmptyOk(t, await call(kbs.url, 'POST', '/kbs/v0/resource/default/key/keep', { token, headers: OCTET, body: 'keep' }));
  const parent = dirname(kbs.workDir);
  const before = snapshot(kbs.workDir);
  const evil = samplePolicyText('allow_all');
  const paths = [
    '/kbs/v0/resource/../policy/resource-policy.rego',
    '/kbs/v0/resource/%2e%2e/policy/resource-policy.rego',
    '/kbs/v0/resource/%2E%2E/policy/resource-policy.rego',
    '/kbs/v0/resource/..%2fpolicy/x/resource-policy.rego',
    '/kbs/v0/resource/default/key/..%2f..%2f..%2fadmin-token',
    '/kbs/v0/resource/../../escape',
    '/kbs/v0/resource/../../../escape/x/y',
    '/kbs/v0/resource/x/../../../escape',
    '/kbs/v0/resource/./key/keep',
    '/kbs/v0/resource/default/./keep',
    '/kbs/v0/resource/.hidden/t/x',
    '/kbs/v0/resource/default/key/.kbs-tmp-000000000000000000000000',
    '/kbs/v0/resource/default/key/keep%00',
    '/kbs/v0/resource/default/key/ke%2Fep',
    '/kbs/v0/resource/default\\key/keep/x',
    '/kbs/v0/resource/default/key/keep/',
    '/kbs/v0/resource/default//keep',
    '/kbs/v0/resource/default/key',
    '/kbs/v0/resource/',
    `/kbs/v0/resource/default/key/${'a'.repeat(300)}`,
    '/kbs/v0/resource/d%C3%A9faut/key/keep',
  ];
  for (const p of paths) {
    for (const method of ['POST', 'DELETE']) {
      const r = await rawCall(kbs.url, method, p, {
        headers: { Authorization: `Bearer ${token}`, ...OCTET },
        ...(method === 'POST' ? { body: evil } : {}),
      });
      assertProblem(t, r, 401, 'PluginInternalError', { detail: 'Plugin internal error' });
    }
  }
  t.deepEqual(snapshot(kbs.workDir), before);
  t.is(readFileSync(policyFile, 'utf8'), samplePolicyText('default'));
  for (const f of ['escape', join('escape', 'x', 'y'), 'admin-token', 'resource-policy.rego']) t.false(existsSync(join(parent, f)), f);
  t.is(readFileSync(resourceFile(kbs, 'default/key/keep'), 'utf8'), 'keep');
});
