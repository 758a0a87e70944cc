/**
 * Per-client rate limits on /kbs/v0/auth and /kbs/v0/attest: the token bucket (burst, refill,
 * Retry-After) on an injected clock, bounded memory, which address counts as the client (socket
 * peer; X-Forwarded-For only from trusted proxies; IPv6 by /64), and a real server answering 429
 * with Retry-After and a problem body while other clients and other endpoints are unaffected.
 */
import test from 'ava';
import { request } from 'node:http';
import { parseConfigText, type RateLimitConfig } from '../config/index.js';
import { RateLimiter } from '../server/rate-limit.js';
import { ERR } from './helpers/admin-http.js';
import { startTestKbs, type TestKbs } from './helpers/kbs-server.js';

const AUTH_BODY = JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': '' });

function config(over: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return { enabled: true, auth: { perSecond: 2, burst: 3 }, attest: { perSecond: 1, burst: 1 }, maxClients: 1000, trustedProxies: [], ...over };
}

test('token bucket: burst, refill at the configured rate, Retry-After rounds up to whole seconds', (t) => {
  let now = 100;
  const rl = new RateLimiter(config(), { now: () => now });
  for (let i = 0; i < 3; i++) t.deepEqual(rl.take('auth', '10.0.0.1'), { ok: true });
  t.deepEqual(rl.take('auth', '10.0.0.1'), { ok: false, retryAfterSeconds: 1 });
  now += 0.5; // one token back at 2/s
  t.deepEqual(rl.take('auth', '10.0.0.1'), { ok: true });
  t.false(rl.take('auth', '10.0.0.1').ok);
  now += 100; // refills to the burst, not beyond
  for (let i = 0; i < 3; i++) t.true(rl.take('auth', '10.0.0.1').ok);
  t.false(rl.take('auth', '10.0.0.1').ok);
  // endpoints have separate buckets; attest at 1/s burst 1 → retry after 1 s
  t.true(rl.take('attest', '10.0.0.1').ok);
  t.deepEqual(rl.take('attest', '10.0.0.1'), { ok: false, retryAfterSeconds: 1 });
  const slow = new RateLimiter(config({ auth: { perSecond: 1, burst: 1 } }), { now: () => 0 });
  t.true(slow.take('auth', 'c').ok);
  t.deepEqual(slow.take('auth', 'c'), { ok: false, retryAfterSeconds: 1 });
  const verySlow = new RateLimiter(config({ auth: { perSecond: 1, burst: 1 }, attest: { perSecond: 1, burst: 1 } }), { now: () => 0 });
  t.true(verySlow.take('attest', 'c').ok);
  t.is((verySlow.take('attest', 'c') as { retryAfterSeconds: number }).retryAfterSeconds, 1);
  // a client denied does not lose tokens: waiting the advertised time is enough
  now = 0;
  const rl2 = new RateLimiter(config({ auth: { perSecond: 0.25 as number, burst: 1 } }), { now: () => now });
  t.true(rl2.take('auth', 'x').ok);
  const denied = rl2.take('auth', 'x');
  t.deepEqual(denied, { ok: false, retryAfterSeconds: 4 });
  for (let i = 0; i < 10; i++) rl2.take('auth', 'x');
  now += 4;
  t.true(rl2.take('auth', 'x').ok);
});

test('memory is bounded: at most max_clients buckets, the least recently seen evicted first', (t) => {
  const now = 0;
  const rl = new RateLimiter(config({ maxClients: 100, auth: { perSecond: 1, burst: 1 } }), { now: () => now });
  t.true(rl.take('auth', 'keep').ok);
  for (let i = 0; i < 10_000; i++) {
    rl.take('auth', `10.0.${i >> 8}.${i & 255}`);
    if (i % 50 === 0) t.false(rl.take('auth', 'keep').ok); // touched: stays recent, stays empty
  }
  t.is(rl.size('auth'), 100);
  t.is(rl.size('attest'), 0);
  t.false(rl.take('auth', 'keep').ok, 'a client seen recently keeps its (empty) bucket');
  t.true(rl.take('auth', '10.0.0.0').ok, 'a client evicted long ago starts with a full bucket');
});

test('the client: the socket peer; X-Forwarded-For only from trusted proxies; IPv6 by /64; v4-mapped unmapped', (t) => {
  const plain = new RateLimiter(config());
  t.is(plain.clientOf('10.0.0.9', '1.2.3.4'), '10.0.0.9', 'no trusted proxies: the header is ignored');
  t.is(plain.clientOf('::ffff:10.0.0.9', undefined), '10.0.0.9');
  t.is(plain.clientOf('2001:db8:1:2:aaaa:bbbb:cccc:dddd', undefined), '2001:db8:1:2::/64');
  t.is(plain.clientOf('2001:db8:1:2::1', undefined), '2001:db8:1:2::/64');
  t.is(plain.clientOf('2001:0db8:0001:0002::99', undefined), '2001:db8:1:2::/64');
  t.is(plain.clientOf('::1', undefined), '0:0:0:0::/64');
  t.is(plain.clientOf(undefined, undefined), 'unknown');

  const proxied = new RateLimiter(config({ trustedProxies: ['10.0.0.0/8', '192.168.1.1', 'fd00::/8'] }));
  t.is(proxied.clientOf('10.1.1.1', '203.0.113.7'), '203.0.113.7');
  t.is(proxied.clientOf('10.1.1.1', '198.51.100.1, 203.0.113.7'), '203.0.113.7', 'the right-most untrusted hop, not the spoofable left one');
  t.is(proxied.clientOf('10.1.1.1', '198.51.100.1, 203.0.113.7, 192.168.1.1, 10.9.9.9'), '203.0.113.7', 'trusted hops skipped');
  t.is(proxied.clientOf('192.168.1.2', '203.0.113.7'), '192.168.1.2', 'an untrusted peer cannot choose its client address');
  t.is(proxied.clientOf('10.1.1.1', 'garbage, 203.0.113.7'), '203.0.113.7');
  t.is(proxied.clientOf('10.1.1.1', '203.0.113.7, not-an-ip'), '10.1.1.1', 'a malformed hop ends the walk at the last known address');
  t.is(proxied.clientOf('fd00::5', '2001:db8:7:7::1'), '2001:db8:7:7::/64');
  t.is(proxied.clientOf('::ffff:10.1.1.1', '::ffff:203.0.113.8'), '203.0.113.8');
});

test('[rate_limit] configuration: defaults on, validation of every key', (t) => {
  const base = 'work_dir = "/tmp"\n[http_server]\ninsecure_http = true\n';
  const on = parseConfigText(base, { cwd: '/tmp', source: 't' }).rateLimit;
  t.true(on.enabled);
  const off = parseConfigText(`${base}[rate_limit]\nenabled = false\n`, { cwd: '/tmp', source: 't' });
  t.false(off.rateLimit.enabled);
  t.true(off.warnings.some((w) => /rate_limit: enabled = false/.test(w)));
  const custom = parseConfigText(`${base}[rate_limit]\nauth_per_second = 5\nauth_burst = 7\nattest_per_second = 3\nattest_burst = 4\nmax_clients = 9\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n`, { cwd: '/tmp', source: 't' }).rateLimit;
  t.deepEqual(custom, { enabled: true, auth: { perSecond: 5, burst: 7 }, attest: { perSecond: 3, burst: 4 }, maxClients: 9, trustedProxies: ['10.0.0.0/8', '::1'] });
  const bad: Array<[string, RegExp]> = [
    ['auth_per_second = 0', /rate_limit\.auth_per_second: must be a positive integer/],
    ['auth_burst = 1.5', /rate_limit\.auth_burst: expected integer/],
    ['trusted_proxies = ["10.0.0.0/33"]', /rate_limit\.trusted_proxies\[0\]: expected an IP address or CIDR block/],
    ['trusted_proxies = ["proxy.local"]', /rate_limit\.trusted_proxies\[0\]: expected an IP address or CIDR block/],
    ['per_second = 1', /rate_limit\.per_second: unknown key/],
  ];
  for (const [line, message] of bad) {
    const e = t.throws(() => parseConfigText(`${base}[rate_limit]\n${line}\n`, { cwd: '/tmp', source: 't' }));
    t.regex(e?.message ?? '', message, line);
  }
});

interface Answer {
  status: number;
  retryAfter: string | undefined;
  contentType: string | undefined;
  body: string;
}

function post(kbs: TestKbs, path: string, headers: Record<string, string> = {}, body = AUTH_BODY): Promise<Answer> {
  const u = new URL(kbs.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], contentType: res.headers['content-type'], body: Buffer.concat(parts).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a real server: over the burst /auth answers 429 with Retry-After and a problem body; /attest and other clients are unaffected', async (t) => {
  const kbs = await startTestKbs({ toml: '[rate_limit]\nauth_per_second = 1\nauth_burst = 3\nattest_per_second = 1\nattest_burst = 2\ntrusted_proxies = ["127.0.0.1"]\n' });
  t.teardown(() => kbs.close());
  for (let i = 0; i < 3; i++) t.is((await post(kbs, '/kbs/v0/auth')).status, 200);
  const limited = await post(kbs, '/kbs/v0/auth');
  t.is(limited.status, 429);
  t.regex(limited.contentType ?? '', /^application\/json/);
  t.is(limited.retryAfter, '1');
  t.deepEqual(JSON.parse(limited.body), { type: `${ERR}TooManyRequests`, detail: 'Too many requests from this client; retry later' });
  // the attest bucket is separate: a bad body still gets its 401, not a 429 (twice, then limited)
  t.is((await post(kbs, '/kbs/v0/attest', {}, '{}')).status, 401);
  t.is((await post(kbs, '/kbs/v0/attest', {}, '{}')).status, 401);
  t.is((await post(kbs, '/kbs/v0/attest', {}, '{}')).status, 429);
  // behind the (trusted) loopback proxy, another client has its own bucket
  t.is((await post(kbs, '/kbs/v0/auth', { 'X-Forwarded-For': '203.0.113.5' })).status, 200);
  t.is((await post(kbs, '/kbs/v0/auth', { 'X-Forwarded-For': '198.51.100.1, 203.0.113.6' })).status, 200);
  // the admin and resource endpoints are not rate limited
  const res = await fetch(`${kbs.url}/kbs/v0/resources`);
  t.is(res.status, 401);
  await res.arrayBuffer();
  // after Retry-After the client gets in again
  await new Promise((r) => setTimeout(r, 1100));
  t.is((await post(kbs, '/kbs/v0/auth')).status, 200);
  t.regex(kbs.logs(), /"error":"TooManyRequests".*"cause":"rate limit on \/auth for 127\.0\.0\.1"/);
});

test('a real server: X-Forwarded-For from an untrusted peer does not escape the limit; enabled = false means no limit', async (t) => {
  const kbs = await startTestKbs({ toml: '[rate_limit]\nauth_per_second = 1\nauth_burst = 2\n' });
  t.teardown(() => kbs.close());
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await post(kbs, '/kbs/v0/auth', { 'X-Forwarded-For': `203.0.113.${i}` })).status);
  t.deepEqual(statuses, [200, 200, 429, 429]);

  const open = await startTestKbs({ toml: '[rate_limit]\nenabled = false\nauth_per_second = 1\nauth_burst = 1\n' });
  t.teardown(() => open.close());
  const many = await Promise.all(Array.from({ length: 30 }, () => post(open, '/kbs/v0/auth')));
  t.deepEqual([...new Set(many.map((a) => a.status))], [200]);
});
