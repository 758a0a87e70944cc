/**
 * Property-based fuzzing (fast-check) of an HTTPS KBS with rate limits on and a trusted proxy
 * (127.0.0.1), the configuration the main fuzz suite (server-fuzz.test.ts, plain HTTP, no limits)
 * does not cover: random methods, paths around every endpoint, X-Forwarded-For chains, cookies,
 * Bearer tokens and bodies. Every answer: no 5xx but a documented 503; every error a
 * `{type, detail}` problem body under the KBS namespace; every 429 with an integral Retry-After of
 * at least 1 s; 2xx only where no admin is needed; the server stays up (/healthz) and the store is
 * unchanged (listing and policy) since the real admin token is never sent.
 */
import test from 'ava';
import fc from 'fast-check';
import { request } from 'node:https';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { selfSignedCertificate } from '../cli/cert/self-signed.js';
import { ERR } from './helpers/admin-http.js';
import { startTestKbs } from './helpers/kbs-server.js';
import { tempDir } from './helpers/spawned-kbs.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(url: string, ca: string, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method, path, ca, servername: 'localhost', agent: false, timeout: 20_000, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')));
    req.on('error', reject);
    req.end(body);
  });
}

const PATHS = ['/kbs/v0/auth', '/kbs/v0/attest', '/kbs/v0/resource/default/key/one', '/kbs/v0/resource/a/b', '/kbs/v0/resources', '/kbs/v0/resource-policy', '/kbs/v0/attestation-policy', '/kbs/v0/auth/x', '/healthz', '/readyz', '/kbs/v0/resource/../../etc'];
const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('127.0.0.1', 'unknown', '', 'not-an-ip', '::ffff:10.0.0.1'));
// mostly one client (so its buckets run dry), sometimes spoofed chains
const xff = fc.oneof({ arbitrary: fc.constant('203.0.113.9'), weight: 4 }, { arbitrary: fc.array(ip, { minLength: 1, maxLength: 4 }).map((a) => a.join(', ')), weight: 1 });
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.constantFrom('{"version":"0.4.0","tee":"sample","extra-params":""}', '{"tee-pubkey":{},"tee-evidence":"x"}', '{"policy":"cGFja2FnZSBwb2xpY3kKYWxsb3cgOj0gdHJ1ZQo"}').map((s) => Buffer.from(s)),
);
const headerArb = fc.record(
  {
    'X-Forwarded-For': xff,
    Cookie: fc.oneof(fc.constant('kbs-session-id=00000000000000000000000000000000'), fc.string({ maxLength: 60 }).map((s) => `kbs-session-id=${encodeURIComponent(s)}`)),
    Authorization: fc.oneof(fc.constant('Bearer '), fc.string({ maxLength: 80 }).map((s) => `Bearer ${encodeURIComponent(s)}`)),
    'Content-Type': fc.constantFrom('application/json', 'application/octet-stream', 'text/plain'),
  },
  { requiredKeys: [] },
);

/** Any method on any path, and often the two rate-limited endpoints. */
const target = fc.oneof(
  fc.tuple(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'), fc.constantFrom(...PATHS)),
  fc.tuple(fc.constant('POST'), fc.constantFrom('/kbs/v0/auth', '/kbs/v0/attest')),
);

function mayAnswer2xx(method: string, path: string): boolean {
  if (method === 'GET' && /^\/(healthz|readyz)$/.test(path)) return true;
  if (method === 'POST' && /^\/kbs\/v0\/(auth|attest)(\/|$)/.test(path)) return true;
  return method === 'GET' && path.startsWith('/kbs/v0/resource/');
}

test('HTTPS with rate limits and a trusted proxy: random requests never break a rule and never change the store', async (t) => {
  const dir = tempDir('kbs-fuzz-limits-');
  const pair = selfSignedCertificate({ hosts: ['localhost', '127.0.0.1'], days: 1 });
  writeFileSync(join(dir, 'key.pem'), pair.keyPem);
  writeFileSync(join(dir, 'cert.pem'), pair.certPem);
  const kbs = await startTestKbs({
    workDir: dir,
    toml: `[http_server]\nsockets = ["127.0.0.1:0"]\nprivate_key = "key.pem"\ncertificate = "cert.pem"\n[rate_limit]\nauth_per_second = 1\nauth_burst = 3\nattest_per_second = 1\nattest_burst = 3\nmax_clients = 50\ntrusted_proxies = ["127.0.0.1"]\n`,
  });
  t.teardown(() => kbs.close());
  const admin = { Authorization: `Bearer ${kbs.adminToken as string}` };
  t.is((await send(kbs.url, pair.certPem, 'POST', '/kbs/v0/resource/default/key/one', admin, Buffer.from('first'))).status, 200);
  const snapshot = async () => {
    const list = await send(kbs.url, pair.certPem, 'GET', '/kbs/v0/resources', admin, undefined);
    const policy = await send(kbs.url, pair.certPem, 'GET', '/kbs/v0/resource-policy', admin, undefined);
    return [list.status, JSON.parse(list.body).map((r: { path: string; size: number }) => `${r.path}:${r.size}`), policy.body];
  };
  const before = await snapshot();
  const statuses = new Map<number, number>();

  await fc.assert(
    fc.asyncProperty(target, headerArb, bodyArb, async ([method, path], headers, body) => {
      if (Object.values(headers).some((v) => v.includes(kbs.adminToken as string))) throw new Error('test bug: real admin token');
      const a = await send(kbs.url, pair.certPem, method, path, headers, method === 'GET' ? undefined : body);
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      const why = `${method} ${path} ${JSON.stringify(headers)} → ${a.status} ${a.body.slice(0, 300)}`;
      if (a.status >= 500 && a.status !== 503) throw new Error(`5xx: ${why}`);
      if (a.status < 300) {
        if (!mayAnswer2xx(method, path)) throw new Error(`2xx without admin: ${why}`);
        return;
      }
      if (!/^application\/json/.test(String(a.headers['content-type']))) throw new Error(`no JSON problem: ${why}`);
      const p = JSON.parse(a.body) as Record<string, unknown>;
      if (Object.keys(p).sort().join() !== 'detail,type' || typeof p['type'] !== 'string' || !p['type'].startsWith(ERR)) throw new Error(`not a problem body: ${why}`);
      if (a.status === 429) {
        if (p['type'] !== `${ERR}TooManyRequests` || !/^[1-9][0-9]*$/.test(String(a.headers['retry-after']))) throw new Error(`bad 429: ${why}`);
      }
    }),
    { numRuns: 300 },
  );
  t.is((await send(kbs.url, pair.certPem, 'GET', '/healthz', {}, undefined)).status, 200);
  t.deepEqual(await snapshot(), before);
  t.true((statuses.get(429) ?? 0) > 0, `the limits were reached: ${JSON.stringify([...statuses])}`);
  t.true((statuses.get(200) ?? 0) > 0);
  t.false(/"level":(50|60)/.test(kbs.logs()), 'no internal error logged');
});
