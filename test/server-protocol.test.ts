/**
 * Black-box tests of the KBS protocol (kbs-protocol.md §14 conformance checklist, items 1, 3–40 and
 * 45; admin-mode items 41–44 live in server-admin.test.ts; /metrics, attestation-policy POST and
 * reference-value are other work), adjusted for this KBS's deliberate deviations from upstream:
 * policy denial is 403 PolicyDeny, a missing resource after the policy allowed it is 404
 * ResourceNotFound, the cookie carries `Path=/kbs; HttpOnly`, and GET resource-policy returns
 * `{"id","policy","sha384"}`.
 *
 * Everything goes over real HTTP (global fetch, or node:http / node:net where fetch would normalise
 * the request) against servers started by the test harness. One server per group of tests:
 *   main   P-open (InsecureAllowAll), allow-all policy, 1 MiB body limit
 *   fresh  the default configuration (AuthenticatedAuthorization with the generated admin token)
 *   clock  P-open with an injected clock, session timeout 60 min, token lifetime 1 min
 *   flood  P-open with max_sessions = 4
 */
import test, { type ExecutionContext } from 'ava';
import {
  constants,
  createDecipheriv,
  createECDH,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { SignJWT } from 'jose';
import { canonicalJson } from '../attestation/runtime-data.js';
import { sampleAttestation } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { samplePolicyText } from '../policy/index.js';
import type { TeePubKey } from '../server/tee-pubkey.js';
import { policyBody, startTestKbs, type TestKbs } from './helpers/kbs-server.js';

// ---------------------------------------------------------------------------------------------
// helpers

const ERR = 'https://github.com/confidential-containers/kbs/errors/';
const P_OPEN = '[admin]\nauthorization_mode = "InsecureAllowAll"\n';
const HTTP_LOOPBACK = '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n';
const AUTH_BODY = {
  version: '0.4.0',
  tee: 'sample',
  'extra-params': { 'supported-hash-algorithms': ['sha256', 'sha384', 'sha512', 'sm3'] },
};
/** Trustee's detail, followed by the failed step's name when a verification step failed. */
const ATTEST_FAILED = /^Attestation error: RCAR handshake Attest failed(: [a-z0-9-]+)?$/;
const AUTH_FAILED = 'Attestation error: RCAR handshake Auth failed: ';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

async function call(
  base: string,
  method: string,
  path: string,
  init: { body?: string | Uint8Array; headers?: Record<string, string>; cookie?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.cookie) headers['Cookie'] = init.cookie;
  const res = await fetch(base + path, { method, headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function json(r: Reply): Record<string, unknown> {
  return JSON.parse(r.text) as Record<string, unknown>;
}

function setCookies(r: Reply): string[] {
  return r.headers.getSetCookie();
}

const COOKIE_RE = /^kbs-session-id=([0-9a-f]{32}); Expires=([^;]+); Path=\/kbs; HttpOnly$/;

/** `kbs-session-id=<id>` from the one Set-Cookie header of a reply. */
function sessionCookieOf(r: Reply): string {
  const [c] = setCookies(r);
  const m = c === undefined ? null : COOKIE_RE.exec(c);
  if (!m) throw new Error(`no well-formed session cookie in ${JSON.stringify(setCookies(r))}`);
  return `kbs-session-id=${m[1]}`;
}

/**
 * An error reply: the status, `Content-Type: application/json`, a body that is exactly
 * `{type, detail}` with the upstream type prefix, and nothing that looks like a stack trace or a
 * file system path.
 */
function assertProblem(
  t: ExecutionContext,
  r: Reply,
  status: number,
  variant: string,
  detail?: string | RegExp,
): void {
  t.is(r.status, status, `status (body ${r.text.slice(0, 200)})`);
  t.regex(r.headers.get('content-type') ?? '', /^application\/json(;|$)/, 'error content type');
  let body: unknown;
  try {
    body = JSON.parse(r.text);
  } catch {
    t.fail(`error body is not JSON: ${r.text.slice(0, 200)}`);
    return;
  }
  t.true(typeof body === 'object' && body !== null && !Array.isArray(body), 'error body is an object');
  const b = body as Record<string, unknown>;
  t.deepEqual(Object.keys(b).sort(), ['detail', 'type'], 'error body members');
  t.is(b['type'], ERR + variant);
  t.is(typeof b['detail'], 'string');
  const d = String(b['detail']);
  if (typeof detail === 'string') t.is(d, detail);
  else if (detail) t.regex(d, detail);
  t.notRegex(r.text, /\n\s*at |node_modules|\/tmp\/|\/work\/|\/home\/|\.[jt]s:\d+|Error:/, 'no stack trace or path in the body');
}

function b64u(b: Uint8Array | string): string {
  return Buffer.from(b).toString('base64url');
}

function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; parts: string[] } {
  const parts = token.split('.');
  return {
    header: JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
    parts,
  };
}

function annotatedEvidence(payload: Record<string, unknown>): Record<string, unknown> {
  const submods = payload['submods'] as Record<string, Record<string, unknown>>;
  return submods['cpu0']?.['ear.veraison.annotated-evidence'] as Record<string, unknown>;
}

async function auth(base: string, body: unknown = AUTH_BODY): Promise<{ reply: Reply; cookie: string; nonce: string }> {
  const reply = await call(base, 'POST', '/kbs/v0/auth', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (reply.status !== 200) throw new Error(`auth failed: ${reply.status} ${reply.text}`);
  return { reply, cookie: sessionCookieOf(reply), nonce: json(reply)['nonce'] as string };
}

async function attestRaw(base: string, cookie: string | undefined, body: unknown): Promise<Reply> {
  return call(base, 'POST', '/kbs/v0/attest', {
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(cookie ? { cookie } : {}),
  });
}

interface Attested {
  cookie: string;
  token: string;
  nonce: string;
  authReply: Reply;
  attestReply: Reply;
  attestBody: string;
}

/** Full RCAR handshake with the sample TEE and the given public JWK. */
async function attest(base: string, jwk: TeePubKey, initData?: string): Promise<Attested> {
  const { reply: authReply, cookie, nonce } = await auth(base);
  const attestBody = JSON.stringify(sampleAttestation(nonce, jwk, initData));
  const attestReply = await attestRaw(base, cookie, attestBody);
  if (attestReply.status !== 200) throw new Error(`attest failed: ${attestReply.status} ${attestReply.text}`);
  return { cookie, token: json(attestReply)['token'] as string, nonce, authReply, attestReply, attestBody };
}

/** /attest body with hand-made sample evidence (report_data given). */
function attestBodyWithReportData(nonce: string, jwk: TeePubKey, reportData: Buffer): Record<string, unknown> {
  return {
    'runtime-data': { nonce, 'tee-pubkey': jwk },
    'tee-evidence': { primary_evidence: { svn: '1', report_data: reportData.toString('base64') }, additional_evidence: '' },
  };
}

async function getResource(base: string, path: string, opts: { cookie?: string; bearer?: string } = {}): Promise<Reply> {
  return call(base, 'GET', `/kbs/v0/resource/${path}`, {
    ...(opts.cookie ? { cookie: opts.cookie } : {}),
    ...(opts.bearer !== undefined ? { headers: { Authorization: `Bearer ${opts.bearer}` } } : {}),
  });
}

async function putResource(base: string, path: string, value: Uint8Array, adminToken?: string): Promise<Reply> {
  return call(base, 'POST', `/kbs/v0/resource/${path}`, {
    headers: {
      'Content-Type': 'application/octet-stream',
      ...(adminToken ? { Authorization: `Bearer ${adminToken}` } : {}),
    },
    body: value,
  });
}

async function setPolicy(base: string, rego: string, adminToken?: string): Promise<Reply> {
  return call(base, 'POST', '/kbs/v0/resource-policy', {
    headers: { 'Content-Type': 'application/json', ...(adminToken ? { Authorization: `Bearer ${adminToken}` } : {}) },
    body: policyBody(rego),
  });
}

/** A request with an exact request-target (fetch would normalise `..` and percent-escapes). */
function rawRequest(
  base: string,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: { ...(opts.headers ?? {}), Connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) for (const x of v) headers.append(k, x);
            else if (v !== undefined) headers.set(k, v);
          }
          resolve({ status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Raw bytes on a socket (Node refuses such request lines client-side). Resolves with everything the
 * server sent once it closes the connection, or with `undefined` if it is still open after `waitMs`.
 */
function rawSocket(base: string, chunks: Array<string | Buffer>, waitMs = 3000): Promise<string | undefined> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const sock = connect(Number(url.port), url.hostname, () => {
      for (const c of chunks) sock.write(c);
    });
    const timer = setTimeout(() => {
      resolve(undefined);
      sock.destroy();
    }, waitMs);
    sock.on('data', (c: Buffer) => received.push(c));
    sock.on('error', () => undefined); // a reset after the reply is fine; the reply is what counts
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received).toString('latin1'));
    });
  });
}

async function rawSocketStatus(base: string, requestText: string): Promise<number> {
  const reply = await rawSocket(base, [Buffer.from(requestText, 'latin1')]);
  const m = /^HTTP\/1\.1 (\d{3})/.exec(reply ?? '');
  return m ? Number(m[1]) : 0;
}

/** Every file (relative path) under a directory. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

// --- JWE decryption done in the test, independently of the server and of TeeKeyPair ---------

interface Jwe {
  protected: string;
  encrypted_key: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

function gcmOpen(cek: Buffer, jwe: Jwe, aad: string): Buffer {
  const d = createDecipheriv('aes-256-gcm', cek, Buffer.from(jwe.iv, 'base64url'), { authTagLength: 16 });
  d.setAAD(Buffer.from(aad, 'ascii'));
  d.setAuthTag(Buffer.from(jwe.tag, 'base64url'));
  return Buffer.concat([d.update(Buffer.from(jwe.ciphertext, 'base64url')), d.final()]);
}

/** Recursively key-sorted JSON (serde_json's default Map order), with `alg`, `enc` first at the top. */
function rustReserialize(header: Record<string, unknown>): string {
  const sortDeep = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortDeep);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v as object)
          .sort()
          .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  const { alg, enc, ...rest } = header;
  return JSON.stringify({ alg, enc, ...(sortDeep(rest) as object) });
}

interface HandEcKey {
  jwk: TeePubKey;
  ecdh: ECDH;
}

function handEcKey(crv: 'P-256' | 'P-384' | 'P-521'): HandEcKey {
  const openssl = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' }[crv];
  const ecdh = createECDH(openssl);
  const pub = ecdh.generateKeys();
  const n = (pub.length - 1) / 2;
  return {
    ecdh,
    jwk: { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: b64u(pub.subarray(1, 1 + n)), y: b64u(pub.subarray(1 + n)) },
  };
}

/** Client-side ECDH-ES+A256KW: Concat KDF over Z, AES-256-KW unwrap, GCM with the given AAD. */
function ecdhDecrypt(key: HandEcKey, jwe: Jwe, aad: string): Buffer {
  const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as {
    epk: { x: string; y: string };
  };
  const z = key.ecdh.computeSecret(
    Buffer.concat([Buffer.from([4]), Buffer.from(header.epk.x, 'base64url'), Buffer.from(header.epk.y, 'base64url')]),
  );
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const alg = Buffer.from('ECDH-ES+A256KW');
  const kek = createHash('sha256')
    .update(Buffer.concat([u32(1), z, u32(alg.length), alg, u32(0), u32(0), u32(256)]))
    .digest();
  const unwrap = createDecipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  const cek = Buffer.concat([unwrap.update(Buffer.from(jwe.encrypted_key, 'base64url')), unwrap.final()]);
  return gcmOpen(cek, jwe, aad);
}

/** An RSA-2048 key with a hand-made JWK of the given `alg`. */
function handRsaKey(alg: string): { jwk: TeePubKey; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  const j = publicKey.export({ format: 'jwk' });
  return { privateKey, jwk: { kty: 'RSA', alg, n: j.n as string, e: j.e as string } };
}

/** RSAES-PKCS1-v1_5 decryption by hand: Node 20 refuses PKCS#1 v1.5 private decryption. */
function rsa15Decrypt(privateKey: KeyObject, c: Buffer): Buffer {
  const em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, c);
  if (em[0] !== 0 || em[1] !== 2) throw new Error('bad PKCS#1 v1.5 block type');
  const sep = em.indexOf(0, 2);
  if (sep < 10) throw new Error('bad PKCS#1 v1.5 padding');
  return em.subarray(sep + 1);
}

// ---------------------------------------------------------------------------------------------
// servers

interface MainCtx {
  kbs: TestKbs;
  secret: Buffer;
  key: TeeKeyPair;
  session: Attested;
}

let main: MainCtx;
let fresh: TestKbs;
let flood: TestKbs;
let clockKbs: TestKbs;
let clockMs = Date.now();
const servers: TestKbs[] = [];

test.before(async () => {
  const started = await Promise.all([
    startTestKbs({ toml: `${HTTP_LOOPBACK}payload_request_size = 1\n${P_OPEN}` }),
    startTestKbs(),
    startTestKbs({ toml: `${P_OPEN}[attestation_service]\nmax_sessions = 4\n` }),
    startTestKbs({
      toml: `${P_OPEN}[attestation_service]\ntimeout = 60\n[attestation_service.attestation_token_broker]\nduration_min = 1\n`,
      now: () => new Date(clockMs),
    }),
  ]);
  servers.push(...started);
  const [m, f, fl, c] = started as [TestKbs, TestKbs, TestKbs, TestKbs];
  fresh = f;
  flood = fl;
  clockKbs = c;

  // main: ALLOW + PUT_RES("one/two/three", S) + one attested P-256 session. All writes happen here.
  const secret = randomBytes(48);
  for (const r of [await setPolicy(m.url, samplePolicyText('allow_all')), await putResource(m.url, 'one/two/three', secret)]) {
    if (r.status !== 200) throw new Error(`main set-up failed: ${r.status} ${r.text}`);
  }
  const key = TeeKeyPair.generate();
  main = { kbs: m, secret, key, session: await attest(m.url, key.publicJwk()) };

  for (const r of [await setPolicy(fl.url, samplePolicyText('allow_all')), await putResource(fl.url, 'one/two/three', secret)]) {
    if (r.status !== 200) throw new Error(`flood set-up failed: ${r.status} ${r.text}`);
  }
  for (const r of [await setPolicy(c.url, samplePolicyText('allow_all')), await putResource(c.url, 'one/two/three', secret)]) {
    if (r.status !== 200) throw new Error(`clock set-up failed: ${r.status} ${r.text}`);
  }
});

test.after.always(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

// ---------------------------------------------------------------------------------------------
// Routing / misc

test('01 GET /healthz is 200 with an empty body', async (t) => {
  const r = await call(main.kbs.url, 'GET', '/healthz');
  t.is(r.status, 200);
  t.is(r.text, '');
});

test('03 unknown plugin is 404 PluginNotFound', async (t) => {
  const r = await call(main.kbs.url, 'GET', '/kbs/v0/nosuchplugin/a');
  assertProblem(t, r, 404, 'PluginNotFound', 'Plugin nosuchplugin not found');
});

test('04 GET on the POST-only built-ins auth and attest is 404 PluginNotFound', async (t) => {
  assertProblem(t, await call(main.kbs.url, 'GET', '/kbs/v0/auth'), 404, 'PluginNotFound', 'Plugin auth not found');
  assertProblem(t, await call(main.kbs.url, 'GET', '/kbs/v0/attest'), 404, 'PluginNotFound', 'Plugin attest not found');
});

test('05 GET /kbs/v0/attestation-policy is 404 PluginNotFound', async (t) => {
  const r = await call(main.kbs.url, 'GET', '/kbs/v0/attestation-policy');
  assertProblem(t, r, 404, 'PluginNotFound', 'Plugin attestation-policy not found');
});

test('06 PATCH on a resource is 405', async (t) => {
  const r = await call(main.kbs.url, 'PATCH', '/kbs/v0/resource/a/b/c', { body: 'x' });
  assertProblem(t, r, 405, 'MethodNotAllowed', 'Method PATCH not allowed');
});

// ---------------------------------------------------------------------------------------------
// /auth

test('07 /auth returns a JSON challenge with exactly nonce and extra-params', async (t) => {
  const { reply } = await auth(main.kbs.url);
  t.is(reply.status, 200);
  t.regex(reply.headers.get('content-type') ?? '', /^application\/json(;|$)/);
  const body = json(reply);
  t.deepEqual(Object.keys(body).sort(), ['extra-params', 'nonce']);
  const nonce = body['nonce'] as string;
  t.is(nonce.length, 44);
  t.regex(nonce, /^[A-Za-z0-9+/]{43}=$/);
  t.is(Buffer.from(nonce, 'base64').length, 32);
  t.is(Buffer.from(nonce, 'base64').toString('base64'), nonce);
  t.is(body['extra-params'], '');
});

test('08 /auth sets the session cookie (32 hex, Expires ≈ now + 5 min, Path=/kbs, HttpOnly, no Secure)', async (t) => {
  const before = Date.now();
  const { reply } = await auth(main.kbs.url);
  const cookies = setCookies(reply);
  t.is(cookies.length, 1);
  const m = COOKIE_RE.exec(cookies[0] ?? '');
  t.truthy(m, cookies[0]);
  if (!m) return;
  t.notRegex(cookies[0] ?? '', /Secure/i);
  t.regex(m[2] ?? '', /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  const expires = Date.parse(m[2] ?? '');
  t.true(Math.abs(expires - (before + 5 * 60_000)) <= 30_000, `Expires ${m[2]}`);
});

test('09 two /auth calls give different nonces and session ids', async (t) => {
  const a = await auth(main.kbs.url);
  const b = await auth(main.kbs.url);
  t.not(a.nonce, b.nonce);
  t.not(a.cookie, b.cookie);
});

test('10 /auth with version 0.3.0 is 401 AttestationError (version mismatch)', async (t) => {
  const r = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify({ ...AUTH_BODY, version: '0.3.0' }) });
  assertProblem(t, r, 401, 'AttestationError', `${AUTH_FAILED}KBS Client Protocol Version Mismatch: expect =0.4.0 while the request is 0.3.0`);
  t.deepEqual(setCookies(r), []);
});

test('11 /auth with versions 0.5.0, 1.0.0 and 0.4.0-rc1 is 401 AttestationError; 0.4.0+build is accepted', async (t) => {
  for (const version of ['0.5.0', '1.0.0', '0.4.0-rc1']) {
    const r = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify({ ...AUTH_BODY, version }) });
    assertProblem(t, r, 401, 'AttestationError', /KBS Client Protocol Version Mismatch: expect =0\.4\.0/);
  }
  const ok = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify({ ...AUTH_BODY, version: '0.4.0+build.7' }) });
  t.is(ok.status, 200);
});

test('12 /auth with version "0.4" is 401 AttestationError (failed to parse KBS version)', async (t) => {
  for (const version of ['0.4', 'v0.4.0']) {
    const r = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify({ ...AUTH_BODY, version }) });
    assertProblem(t, r, 401, 'AttestationError', `${AUTH_FAILED}failed to parse KBS version`);
  }
});

test('13 /auth with an unknown tee or a non-JSON body is 401 AttestationError (deserialize Request)', async (t) => {
  const unknownTee = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify({ ...AUTH_BODY, tee: 'nosuchtee' }) });
  assertProblem(t, unknownTee, 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
  const notJson = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: 'this is not json' });
  assertProblem(t, notJson, 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
});

// ---------------------------------------------------------------------------------------------
// /attest

test('14 /attest without a cookie is 401 AttestationError with the fixed detail', async (t) => {
  const { nonce } = await auth(main.kbs.url);
  const r = await attestRaw(main.kbs.url, undefined, sampleAttestation(nonce, main.key.publicJwk()));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
});

test('15 /attest with an unknown session id is 401 AttestationError', async (t) => {
  const { nonce } = await auth(main.kbs.url);
  const r = await attestRaw(main.kbs.url, 'kbs-session-id=00000000000000000000000000000000', sampleAttestation(nonce, main.key.publicJwk()));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
});

test('16 /attest with valid sample evidence returns a JWT and re-sets the same cookie', async (t) => {
  const s = main.session;
  const r = s.attestReply;
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^application\/json(;|$)/);
  const body = json(r);
  t.deepEqual(Object.keys(body), ['token']);
  t.regex(s.token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  // same session id and the same expiry as the /auth cookie
  t.is(setCookies(r).length, 1);
  t.is(setCookies(r)[0], setCookies(s.authReply)[0]);
  t.is(sessionCookieOf(r), s.cookie);
  const { header, payload } = decodeJwt(s.token);
  t.is(header['alg'], 'ES256');
  t.true(Number.isInteger(payload['iat']));
  t.true(Number.isInteger(payload['exp']));
  t.true(Math.abs((payload['exp'] as number) - (payload['iat'] as number) - 300) <= 1);
});

test('17 the token carries the submitted JWK and the nonce in runtime_data_claims', async (t) => {
  const { payload } = decodeJwt(main.session.token);
  const rd = annotatedEvidence(payload)['runtime_data_claims'] as Record<string, unknown>;
  t.deepEqual(rd['tee-pubkey'], main.key.publicJwk() as unknown as Record<string, unknown>);
  t.is(rd['nonce'], main.session.nonce);
});

test('18 /attest with a nonce other than the challenge is 401 AttestationError', async (t) => {
  const { cookie } = await auth(main.kbs.url);
  const other = randomBytes(32).toString('base64');
  const r = await attestRaw(main.kbs.url, cookie, sampleAttestation(other, main.key.publicJwk()));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
});

test('19 report_data over non-canonical JSON (insertion order) is 401 AttestationError', async (t) => {
  const { cookie, nonce } = await auth(main.kbs.url);
  const jwk = main.key.publicJwk();
  const text = JSON.stringify({ 'tee-pubkey': jwk, nonce, 'additional-evidence': '' });
  t.not(text, canonicalJson({ 'tee-pubkey': jwk, nonce, 'additional-evidence': '' }));
  const digest = createHash('sha384').update(text).digest();
  const r = await attestRaw(main.kbs.url, cookie, attestBodyWithReportData(nonce, jwk, digest));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
  // the same session still attests with the canonical digest (the failure was the binding)
  t.is((await attestRaw(main.kbs.url, cookie, sampleAttestation(nonce, jwk))).status, 200);
});

test('20 report_data without the additional-evidence member is 401 AttestationError', async (t) => {
  const { cookie, nonce } = await auth(main.kbs.url);
  const jwk = main.key.publicJwk();
  const digest = createHash('sha384').update(canonicalJson({ nonce, 'tee-pubkey': jwk })).digest();
  const r = await attestRaw(main.kbs.url, cookie, attestBodyWithReportData(nonce, jwk, digest));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
});

test('21 sample report_data zero-padded to 64 bytes is 401 AttestationError', async (t) => {
  const { cookie, nonce } = await auth(main.kbs.url);
  const jwk = main.key.publicJwk();
  const digest = createHash('sha384').update(canonicalJson({ 'additional-evidence': '', nonce, 'tee-pubkey': jwk })).digest();
  const padded = Buffer.concat([digest, Buffer.alloc(16)]);
  const r = await attestRaw(main.kbs.url, cookie, attestBodyWithReportData(nonce, jwk, padded));
  assertProblem(t, r, 401, 'AttestationError', ATTEST_FAILED);
  // the unpadded digest is what sampleAttestation sends, and it is accepted
  t.is((await attestRaw(main.kbs.url, cookie, attestBodyWithReportData(nonce, jwk, digest))).status, 200);
});

test('22 re-POSTing /attest on an attested session returns the byte-identical token', async (t) => {
  const s = await attest(main.kbs.url, main.key.publicJwk());
  const again = await attestRaw(main.kbs.url, s.cookie, s.attestBody);
  t.is(again.status, 200);
  t.is(again.text, s.attestReply.text);
  t.is(sessionCookieOf(again), s.cookie);
  t.is(setCookies(again)[0], setCookies(s.attestReply)[0]);
  // the body must still parse
  assertProblem(t, await attestRaw(main.kbs.url, s.cookie, '{'), 401, 'AttestationError', ATTEST_FAILED);
});

test('23 init-data with format "json" is 401 AttestationError', async (t) => {
  const { cookie, nonce } = await auth(main.kbs.url);
  const body = { ...sampleAttestation(nonce, main.key.publicJwk()), 'init-data': { format: 'json', body: '{}' } };
  assertProblem(t, await attestRaw(main.kbs.url, cookie, body), 401, 'AttestationError', ATTEST_FAILED);
});

test('24 TOML init-data: init_data_claims and the SHA-384 init_data digest are in the token', async (t) => {
  const initData = 'version = "0.1.0"\nalgorithm = "sha384"\n[data]\nk = "v"\n';
  const s = await attest(main.kbs.url, main.key.publicJwk(), initData);
  const ae = annotatedEvidence(decodeJwt(s.token).payload);
  t.deepEqual(ae['init_data_claims'], { k: 'v' });
  t.is(ae['init_data'], createHash('sha384').update(initData, 'utf8').digest('base64'));
  // without init-data there are no init-data claims
  const plain = annotatedEvidence(decodeJwt(main.session.token).payload);
  t.false('init_data_claims' in plain);
  t.false('init_data' in plain);
});

// ---------------------------------------------------------------------------------------------
// Resource retrieval

test('26 resource GET with neither cookie nor Authorization is 401 TokenNotFound', async (t) => {
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three'), 401, 'TokenNotFound', 'Attestation Token not found');
});

test('27 resource GET with the cookie of an /auth-only session is 401 TokenNotFound', async (t) => {
  const { cookie } = await auth(main.kbs.url);
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { cookie }), 401, 'TokenNotFound', 'Attestation Token not found');
});

test('28 attested cookie (P-256): 200 JSON JWE that decrypts to the secret, no Set-Cookie', async (t) => {
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: main.session.cookie });
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^application\/json(;|$)/);
  t.deepEqual(setCookies(r), []);
  t.deepEqual(Buffer.from(main.key.decrypt(JSON.parse(r.text))), main.secret);
});

test('29 Bearer token without a cookie: 200 and decrypts to the secret', async (t) => {
  const r = await getResource(main.kbs.url, 'one/two/three', { bearer: main.session.token });
  t.is(r.status, 200);
  t.deepEqual(Buffer.from(main.key.decrypt(JSON.parse(r.text))), main.secret);
});

test('30 Bearer with a flipped signature byte or garbage is 401 TokenVerifierError', async (t) => {
  const [h, p, s] = main.session.token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[10] = (sig[10] as number) ^ 0x01;
  const flipped = `${h}.${p}.${b64u(sig)}`;
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { bearer: flipped }), 401, 'TokenVerifierError', 'Token Verifier error');
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { bearer: 'garbage' }), 401, 'TokenVerifierError', 'Token Verifier error');
});

test.serial('45 GET /kbs/v0/resource-policy returns {id, policy, sha384} of the policy in force', async (t) => {
  const r = await call(fresh.url, 'GET', '/kbs/v0/resource-policy', { headers: { Authorization: `Bearer ${fresh.adminToken}` } });
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^application\/json(;|$)/);
  const text = samplePolicyText('default');
  t.deepEqual(json(r), { id: 'resource-policy', policy: text, sha384: createHash('sha384').update(text, 'utf8').digest('hex') });
  // an extra path segment is ignored, as upstream matches built-ins on the first segment
  const extra = await call(fresh.url, 'GET', '/kbs/v0/resource-policy/anything', { headers: { Authorization: `Bearer ${fresh.adminToken}` } });
  t.is(extra.status, 200);
  t.is(extra.text, r.text);
});

test.serial('31 fresh server (default policy): sample-attested cookie is 403 PolicyDeny', async (t) => {
  t.is((await putResource(fresh.url, 'one/two/three', Buffer.from('x'), fresh.adminToken)).status, 200);
  const key = TeeKeyPair.generate();
  const s = await attest(fresh.url, key.publicJwk());
  assertProblem(t, await getResource(fresh.url, 'one/two/three', { cookie: s.cookie }), 403, 'PolicyDeny', 'Access denied by policy');
});

test.serial('32 after deny_all.rego the resource is 403 PolicyDeny (allow_all first releases it)', async (t) => {
  const key = TeeKeyPair.generate();
  const s = await attest(fresh.url, key.publicJwk());
  t.is((await setPolicy(fresh.url, samplePolicyText('allow_all'), fresh.adminToken)).status, 200);
  t.is((await getResource(fresh.url, 'one/two/three', { cookie: s.cookie })).status, 200);
  t.is((await setPolicy(fresh.url, samplePolicyText('deny_all'), fresh.adminToken)).status, 200);
  assertProblem(t, await getResource(fresh.url, 'one/two/three', { cookie: s.cookie }), 403, 'PolicyDeny', 'Access denied by policy');
});

test('33 a nonexistent resource is 404 ResourceNotFound', async (t) => {
  const r = await getResource(main.kbs.url, 'one/two/missing', { cookie: main.session.cookie });
  assertProblem(t, r, 404, 'ResourceNotFound', 'Resource one/two/missing not found');
});

test('34 two-segment paths and segments starting with "." are 401 PluginInternalError', async (t) => {
  for (const path of ['one/two', '.one/two/three', 'one/.two/three', 'one/two/.three']) {
    assertProblem(t, await getResource(main.kbs.url, path, { cookie: main.session.cookie }), 401, 'PluginInternalError', 'Plugin internal error');
  }
});

test('35 P-256 JWE: exact protected header, no aad, 12-byte iv, 16-byte tag, 40-byte encrypted_key, no padding', async (t) => {
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: main.session.cookie });
  t.is(r.status, 200);
  t.regex(r.text, /^\{"protected":"[^"]+","encrypted_key":"[^"]+","iv":"[^"]+","ciphertext":"[^"]+","tag":"[^"]+"\}$/);
  const jwe = JSON.parse(r.text) as Jwe & Record<string, unknown>;
  t.false('aad' in jwe);
  for (const f of ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'] as const) t.regex(jwe[f], /^[A-Za-z0-9_-]+$/, f);
  const header = Buffer.from(jwe.protected, 'base64url').toString('utf8');
  t.regex(header, /^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-256","kty":"EC","x":"[A-Za-z0-9_-]{43}","y":"[A-Za-z0-9_-]{43}"\}\}$/);
  t.is(Buffer.from(jwe.iv, 'base64url').length, 12);
  t.is(Buffer.from(jwe.tag, 'base64url').length, 16);
  t.is(Buffer.from(jwe.encrypted_key, 'base64url').length, 40);
  t.is(Buffer.from(jwe.ciphertext, 'base64url').length, main.secret.length);
});

test('36 the JWE decrypts with the AAD recomputed from the re-serialized (sorted) header', async (t) => {
  const key = handEcKey('P-256');
  const s = await attest(main.kbs.url, key.jwk);
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: s.cookie });
  t.is(r.status, 200);
  const jwe = JSON.parse(r.text) as Jwe;
  const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as Record<string, unknown>;
  const aad = b64u(rustReserialize(header));
  t.is(aad, jwe.protected);
  t.deepEqual(ecdhDecrypt(key, jwe, aad), main.secret);
});

test('37 RSA-2048 RSA-OAEP-256 key: {alg, enc} header, 256-byte encrypted_key, OAEP-SHA-256 decrypts', async (t) => {
  const key = TeeKeyPair.generate('RSA-OAEP-256');
  const s = await attest(main.kbs.url, key.publicJwk());
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: s.cookie });
  t.is(r.status, 200);
  const jwe = JSON.parse(r.text) as Jwe;
  t.is(Buffer.from(jwe.protected, 'base64url').toString('utf8'), '{"alg":"RSA-OAEP-256","enc":"A256GCM"}');
  t.is(jwe.protected, 'eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0');
  t.is(Buffer.from(jwe.encrypted_key, 'base64url').length, 256);
  t.deepEqual(Buffer.from(key.decrypt(jwe)), main.secret);
});

test('38 RSA key with alg RSA1_5: protected alg RSA1_5, decrypts with PKCS#1 v1.5', async (t) => {
  const { jwk, privateKey } = handRsaKey('RSA1_5');
  const s = await attest(main.kbs.url, jwk);
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: s.cookie });
  t.is(r.status, 200);
  const jwe = JSON.parse(r.text) as Jwe;
  t.is(Buffer.from(jwe.protected, 'base64url').toString('utf8'), '{"alg":"RSA1_5","enc":"A256GCM"}');
  t.is(jwe.protected, 'eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIn0');
  const wrapped = Buffer.from(jwe.encrypted_key, 'base64url');
  t.is(wrapped.length, 256);
  const cek = rsa15Decrypt(privateKey, wrapped);
  t.is(cek.length, 32);
  t.deepEqual(gcmOpen(cek, jwe, jwe.protected), main.secret);
});

test('39 P-521 key: epk on P-521 with 66-byte coordinates, decrypts', async (t) => {
  const key = TeeKeyPair.generate('ECDH-ES+A256KW-P521');
  const s = await attest(main.kbs.url, key.publicJwk());
  const r = await getResource(main.kbs.url, 'one/two/three', { cookie: s.cookie });
  t.is(r.status, 200);
  const jwe = JSON.parse(r.text) as Jwe;
  const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as { epk: Record<string, string> };
  t.is(header.epk['crv'], 'P-521');
  t.is(Buffer.from(header.epk['x'] ?? '', 'base64url').length, 66);
  t.is(Buffer.from(header.epk['y'] ?? '', 'base64url').length, 66);
  t.deepEqual(Buffer.from(key.decrypt(jwe)), main.secret);
});

test('40 P-384 key or RSA "RSA-OAEP": attestation succeeds, resource GET is 401 JweError', async (t) => {
  for (const jwk of [handEcKey('P-384').jwk, handRsaKey('RSA-OAEP').jwk]) {
    const s = await attest(main.kbs.url, jwk);
    t.is(s.attestReply.status, 200);
    assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { cookie: s.cookie }), 401, 'JweError', 'JWE failed');
  }
});

// ---------------------------------------------------------------------------------------------
// Bearer tokens that must not verify

test('Bearer token signed by another P-256 key with its own jwk header is 401 TokenVerifierError', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pj = publicKey.export({ format: 'jwk' });
  const { payload } = decodeJwt(main.session.token);
  const forged = await new SignJWT(payload)
    .setProtectedHeader({ typ: 'JWT', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: pj.x as string, y: pj.y as string, alg: 'ES256' } })
    .sign(privateKey);
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { bearer: forged }), 401, 'TokenVerifierError', 'Token Verifier error');
  // the server's own jwk in the header does not help a token signed by another key
  const { header } = decodeJwt(main.session.token);
  const forged2 = await new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(privateKey);
  assertProblem(t, await getResource(main.kbs.url, 'one/two/three', { bearer: forged2 }), 401, 'TokenVerifierError', 'Token Verifier error');
});

test('Bearer token with alg "none" is 401 TokenVerifierError', async (t) => {
  const { header, parts } = decodeJwt(main.session.token);
  for (const h of [{ alg: 'none', typ: 'JWT' }, { ...header, alg: 'none' }]) {
    for (const sig of ['', parts[2] ?? '']) {
      const token = `${b64u(JSON.stringify(h))}.${parts[1]}.${sig}`;
      const r = await getResource(main.kbs.url, 'one/two/three', { bearer: token });
      assertProblem(t, r, 401, 'TokenVerifierError', 'Token Verifier error');
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Clock-driven expiry (session timeout 60 min, token lifetime 1 min, injected clock)

test.serial('expired token: Bearer and attested cookie both 401 TokenVerifierError once exp + 60 s has passed', async (t) => {
  const key = TeeKeyPair.generate();
  const s = await attest(clockKbs.url, key.publicJwk());
  const { payload } = decodeJwt(s.token);
  t.is((payload['exp'] as number) - (payload['iat'] as number), 60);
  t.is((await getResource(clockKbs.url, 'one/two/three', { bearer: s.token })).status, 200);
  clockMs += 100_000; // exp + 40 s: still inside the 60 s leeway
  t.is((await getResource(clockKbs.url, 'one/two/three', { bearer: s.token })).status, 200);
  clockMs += 30_000; // exp + 70 s
  assertProblem(t, await getResource(clockKbs.url, 'one/two/three', { bearer: s.token }), 401, 'TokenVerifierError', 'Token Verifier error');
  // the session (60 min) is still alive, and its stored token is re-verified on each request
  assertProblem(t, await getResource(clockKbs.url, 'one/two/three', { cookie: s.cookie }), 401, 'TokenVerifierError', 'Token Verifier error');
});

test.serial('25 /attest after the session expired is 401 AttestationError', async (t) => {
  const key = TeeKeyPair.generate();
  const { cookie, nonce } = await auth(clockKbs.url);
  const body = sampleAttestation(nonce, key.publicJwk());
  clockMs += 60 * 60_000 + 1_000;
  assertProblem(t, await attestRaw(clockKbs.url, cookie, body), 401, 'AttestationError', ATTEST_FAILED);
  // control: a session that has not expired attests with the same kind of body
  const again = await auth(clockKbs.url);
  t.is((await attestRaw(clockKbs.url, again.cookie, sampleAttestation(again.nonce, key.publicJwk()))).status, 200);
});

test.serial('expired attested session: /attest 401 AttestationError, resource GET with its cookie 401 TokenNotFound', async (t) => {
  const key = TeeKeyPair.generate();
  const s = await attest(clockKbs.url, key.publicJwk());
  t.is((await getResource(clockKbs.url, 'one/two/three', { cookie: s.cookie })).status, 200);
  clockMs += 60 * 60_000 + 1_000;
  assertProblem(t, await attestRaw(clockKbs.url, s.cookie, s.attestBody), 401, 'AttestationError', ATTEST_FAILED);
  assertProblem(t, await getResource(clockKbs.url, 'one/two/three', { cookie: s.cookie }), 401, 'TokenNotFound', 'Attestation Token not found');
});

// ---------------------------------------------------------------------------------------------
// Hostile inputs

test('a body over payload_request_size is 413 with a JSON problem body (declared length and chunked)', async (t) => {
  const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
  const base = main.kbs.url;
  assertProblem(t, await call(base, 'POST', '/kbs/v0/auth', { body: big }), 413, 'PayloadTooLarge');
  assertProblem(t, await call(base, 'POST', '/kbs/v0/attest', { body: big, cookie: main.session.cookie }), 413, 'PayloadTooLarge');
  assertProblem(t, await putResource(base, 'one/two/toobig', big), 413, 'PayloadTooLarge');
  assertProblem(t, await call(base, 'POST', '/kbs/v0/resource-policy', { body: big }), 413, 'PayloadTooLarge');
  // no Content-Length: the limit applies while streaming
  const chunked = await fetch(`${base}/kbs/v0/auth`, {
    method: 'POST',
    body: new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 32; i++) c.enqueue(new Uint8Array(64 * 1024).fill(0x61));
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit & { duplex: 'half' });
  assertProblem(t, { status: chunked.status, headers: chunked.headers, text: await chunked.text() }, 413, 'PayloadTooLarge');
  // the rest of an oversized body is not read, so the connection is closed rather than kept alive
  // in a state where it cannot carry the next request
  const chunk = `${(64 * 1024).toString(16)}\r\n${'a'.repeat(64 * 1024)}\r\n`;
  const raw = await rawSocket(base, [
    'POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
    ...Array.from({ length: 32 }, () => chunk),
    '0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  ]);
  t.not(raw, undefined, 'the server neither answered the next request nor closed the connection');
  t.regex(raw ?? '', /^HTTP\/1\.1 413 [^\r]*\r\n(?:[^\r]+\r\n)*Connection: close\r\n/i);
  // the resource was not created, and a body at the limit is read (and refused for what it is)
  assertProblem(t, await getResource(base, 'one/two/toobig', { cookie: main.session.cookie }), 404, 'ResourceNotFound');
  const atLimit = Buffer.alloc(1024 * 1024, 0x20);
  assertProblem(t, await call(base, 'POST', '/kbs/v0/auth', { body: atLimit }), 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
});

test('malformed JSON on /auth, /attest and resource-policy is a 401 problem, never 500', async (t) => {
  const base = main.kbs.url;
  const { cookie } = await auth(base);
  for (const body of ['{', '{"version":"0.4.0",', '', 'null', '\u0000', '\xff\xfe', '[1,2', '{"a":1}}']) {
    assertProblem(t, await call(base, 'POST', '/kbs/v0/auth', { body }), 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
    assertProblem(t, await attestRaw(base, cookie, body), 401, 'AttestationError', ATTEST_FAILED);
    assertProblem(t, await call(base, 'POST', '/kbs/v0/resource-policy', { body }), 401, 'ParsePolicyError');
  }
  // invalid UTF-8 bytes
  const bad = Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]);
  assertProblem(t, await call(base, 'POST', '/kbs/v0/auth', { body: bad }), 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
  assertProblem(t, await attestRaw(base, cookie, bad.toString('latin1')), 401, 'AttestationError', ATTEST_FAILED);
});

test('wrong member types in /auth are 401 AttestationError (deserialize Request)', async (t) => {
  const bodies: unknown[] = [
    [],
    'string',
    42,
    {},
    { ...AUTH_BODY, version: 4 },
    { ...AUTH_BODY, version: null },
    { ...AUTH_BODY, version: ['0.4.0'] },
    { ...AUTH_BODY, tee: 5 },
    { ...AUTH_BODY, tee: { sample: true } },
    { ...AUTH_BODY, tee: 'SAMPLE' },
    { version: '0.4.0', tee: 'sample' },
    { version: '0.4.0', 'extra-params': {} },
    { tee: 'sample', 'extra-params': {} },
    { ...AUTH_BODY, version: 'x'.repeat(100_000) },
  ];
  for (const b of bodies) {
    const r = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify(b) });
    assertProblem(t, r, 401, 'AttestationError', /^Attestation error: RCAR handshake Auth failed: (deserialize Request|failed to parse KBS version)$/);
  }
  // a member named __proto__ in the JSON text itself
  const proto = await call(main.kbs.url, 'POST', '/kbs/v0/auth', { body: '{"__proto__":{"version":"0.4.0"},"tee":"sample","extra-params":""}' });
  assertProblem(t, proto, 401, 'AttestationError', `${AUTH_FAILED}deserialize Request`);
});

test('wrong member types in /attest are 401 AttestationError and leave the session usable', async (t) => {
  const base = main.kbs.url;
  const { cookie, nonce } = await auth(base);
  const jwk = main.key.publicJwk();
  const good = sampleAttestation(nonce, jwk) as Record<string, Record<string, unknown>>;
  const rd = good['runtime-data'] as Record<string, unknown>;
  const te = good['tee-evidence'] as Record<string, unknown>;
  const bodies: unknown[] = [
    [],
    'string',
    {},
    { ...good, 'runtime-data': 'x' },
    { ...good, 'runtime-data': { ...rd, nonce: 5 } },
    { ...good, 'runtime-data': { ...rd, nonce: null } },
    { ...good, 'runtime-data': { ...rd, 'tee-pubkey': 'key' } },
    { ...good, 'runtime-data': { ...rd, 'tee-pubkey': { ...jwk, x: 5 } } },
    { ...good, 'runtime-data': { ...rd, 'tee-pubkey': { ...jwk, kty: 'OKP' } } },
    { ...good, 'runtime-data': { nonce } },
    { 'runtime-data': rd },
    { ...good, 'tee-evidence': [] },
    { ...good, 'tee-evidence': { ...te, additional_evidence: 5 } },
    { ...good, 'tee-evidence': { ...te, additional_evidence: '{not json' } },
    { ...good, 'tee-evidence': { ...te, additional_evidence: '{"nosuchtee":{}}' } },
    { ...good, 'tee-evidence': { ...te, primary_evidence: 'evidence' } },
    { ...good, 'tee-evidence': { ...te, primary_evidence: { svn: 1, report_data: (te['primary_evidence'] as Record<string, string>)['report_data'] } } },
    { ...good, 'tee-evidence': { ...te, primary_evidence: { svn: '1', report_data: 7 } } },
    { ...good, 'tee-evidence': { ...te, primary_evidence: { svn: '1', report_data: '%%%' } } },
    { ...good, 'init-data': 5 },
    { ...good, 'init-data': { format: 'toml', body: 5 } },
    { ...good, 'init-data': { format: 'toml', body: 'not = [valid toml' } },
  ];
  for (const b of bodies) assertProblem(t, await attestRaw(base, cookie, b), 401, 'AttestationError', ATTEST_FAILED);
  t.is((await attestRaw(base, cookie, good)).status, 200);
});

test('hostile resource paths on GET and admin POST: never a 500, never a file outside the repository', async (t) => {
  const base = main.kbs.url;
  const workDir = main.kbs.workDir;
  const tmpParent = dirname(workDir);
  const filesBefore = listFiles(workDir);
  const marker = `pwned${randomBytes(4).toString('hex')}`;
  const hostile = [
    `../../${marker}`,
    `../../../../../../tmp/${marker}`,
    `one/two/../../../../${marker}`,
    `one/two/three/../../../${marker}`,
    `%2e%2e/%2e%2e/${marker}`,
    `%2E%2E/%2E%2E/%2E%2E/${marker}`,
    `one/two/%2e%2e%2f%2e%2e%2f${marker}`,
    `one%2Ftwo%2Fthree`,
    `one%2ftwo/three`,
    `..%2F..%2F${marker}/x/y`,
    `..%5C..%5C${marker}/x/y`,
    `..\\..\\${marker}/x/y`,
    `one/two/${'a'.repeat(256)}`,
    `one/two/${'a'.repeat(5000)}`,
    `one/two/thr%00ee`,
    `one/two/${marker}%00.txt`,
    `one/two/%zz`,
    `one/two/%`,
    `one/two/%C3%A9`,
    `one/two/%EF%BF%BF`,
    `one//three`,
    `/one/two/three`,
    `one/two/three/`,
    `one/two/.`,
    `one/two/..`,
    `./two/three`,
    `one/two/~${marker}`,
  ];
  const statuses = new Set<number>();
  for (const p of hostile) {
    const path = `/kbs/v0/resource/${p}`;
    const get = await rawRequest(base, 'GET', path, { headers: { Cookie: main.session.cookie } });
    const post = await rawRequest(base, 'POST', path, {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: `${marker}-content`,
    });
    for (const [what, r] of [['GET', get], ['POST', post]] as const) {
      t.not(r.status, 500, `${what} ${p}`);
      t.not(r.status, 200, `${what} ${p}: ${r.text.slice(0, 100)}`);
      statuses.add(r.status);
      assertProblem(t, r, r.status, r.status === 404 ? 'ResourceNotFound' : 'PluginInternalError');
    }
  }
  t.deepEqual([...statuses].sort(), [401]);
  // a request line longer than Node's header limit, and a raw NUL / space in the target, are
  // refused by the HTTP parser before the application
  const long = await rawRequest(base, 'GET', `/kbs/v0/resource/one/two/${'a'.repeat(20_000)}`, { headers: { Cookie: main.session.cookie } });
  t.is(long.status, 431);
  t.is(await rawSocketStatus(base, `GET /kbs/v0/resource/one/two/thr\u0000ee HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), 400);
  t.is(
    await rawSocketStatus(base, `POST /kbs/v0/resource/one/two/../../${marker}\u0000 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`),
    400,
  );
  // nothing was written anywhere: the work_dir is unchanged and no marker file appeared next to it
  t.deepEqual(listFiles(workDir), filesBefore);
  t.false(listFiles(workDir).some((f) => f.includes(marker)));
  t.false(readdirSync(tmpParent).some((f) => f.includes(marker)));
  t.false(existsSync(join('/tmp', marker)));
  t.false(existsSync(join(workDir, '..', marker)));
  t.true(statSync(join(workDir)).isDirectory());
  // and the legitimate resource is still served
  t.is((await getResource(base, 'one/two/three', { cookie: main.session.cookie })).status, 200);
});

test('/auth flood beyond max_sessions is 503 with Retry-After; an attested session still gets its resource', async (t) => {
  const key = TeeKeyPair.generate();
  const s = await attest(flood.url, key.publicJwk()); // 1 of 4 live sessions
  const replies: Reply[] = [];
  for (let i = 0; i < 8; i++) {
    replies.push(await call(flood.url, 'POST', '/kbs/v0/auth', { body: JSON.stringify(AUTH_BODY) }));
  }
  t.deepEqual(
    replies.map((r) => r.status),
    [200, 200, 200, 503, 503, 503, 503, 503],
  );
  for (const r of replies.slice(3)) {
    assertProblem(t, r, 503, 'SessionCapacityExceeded');
    t.regex(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    t.deepEqual(setCookies(r), []);
  }
  const got = await getResource(flood.url, 'one/two/three', { cookie: s.cookie });
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(key.decrypt(JSON.parse(got.text))), main.secret);
  // re-attesting the already attested session is not a new session either
  t.is((await attestRaw(flood.url, s.cookie, s.attestBody)).text, s.attestReply.text);
});
