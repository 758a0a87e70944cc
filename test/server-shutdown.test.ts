/**
 * Graceful shutdown of a spawned `kbs serve` and request timeouts: on SIGTERM the server stops
 * accepting, an in-flight request (a resource write whose body is still arriving) completes and is
 * stored, the process exits 0; a request still open after `shutdown_grace_seconds` is dropped and
 * the process still exits 0; a second signal exits at once with 1. A client that sends its headers
 * or body too slowly gets a 408 problem body.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseConfigText } from '../config/index.js';
import { startTestKbs } from './helpers/kbs-server.js';
import { spawnKbs } from './helpers/spawned-kbs.js';

const TOML = (extra = '') => `[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n${extra}\n[admin]\nauthorization_mode = "InsecureAllowAll"\n`;

/** Starts a POST whose body is sent in two halves; `finish()` sends the rest and resolves with the answer. */
function slowPost(url: string, path: string, body: Buffer): { finish(): Promise<{ status: number; body: string }>; failed: Promise<Error> } {
  const u = new URL(url);
  let fail: (e: Error) => void = () => undefined;
  const failed = new Promise<Error>((r) => (fail = r));
  let answered: (a: { status: number; body: string }) => void = () => undefined;
  const answer = new Promise<{ status: number; body: string }>((r) => (answered = r));
  const req = request({ host: u.hostname, port: u.port, path, method: 'POST', agent: false, headers: { 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream' } }, (res) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('end', () => answered({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
  });
  req.on('error', fail);
  req.write(body.subarray(0, body.length >> 1));
  return {
    finish() {
      req.end(body.subarray(body.length >> 1));
      return answer;
    },
    failed,
  };
}

function connectable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGTERM: stops accepting, the in-flight write completes and is stored, exit 0', async (t) => {
  const kbs = await spawnKbs(TOML('shutdown_grace_seconds = 30'));
  t.teardown(() => kbs.kill('SIGKILL'));
  const value = Buffer.from('written while the server shuts down');
  const slow = slowPost(kbs.url, '/kbs/v0/resource/default/key/slow', value);
  await pause(300); // the request is in the server: headers parsed, body half read
  const mark = kbs.logs().length;
  kbs.kill('SIGTERM');
  await kbs.waitForLog(/"msg":"stopping"/, mark);
  // the log line is written just before the listener closes: give the child a moment (hang guard 3 s)
  let open = true;
  for (let i = 0; i < 60 && open; i++) {
    open = await connectable(kbs.url);
    if (open) await pause(50);
  }
  t.false(open, 'the listener is closed while the request is still in flight');
  const started = Date.now();
  const answer = await slow.finish();
  t.is(answer.status, 200, answer.body);
  t.is(await kbs.exited, 0);
  t.true(Date.now() - started < 10_000, 'exits once the request is done, not at the end of the grace period');
  t.is(readFileSync(join(kbs.dir, 'repository', 'default', 'key', 'slow'), 'utf8'), value.toString());
  t.regex(kbs.logs(), /"msg":"stopped".*"clean":true|"clean":true.*"msg":"stopped"/);
});

test('SIGTERM: a request still open after shutdown_grace_seconds is dropped, and the process exits 0', async (t) => {
  const kbs = await spawnKbs(TOML('shutdown_grace_seconds = 1'));
  t.teardown(() => kbs.kill('SIGKILL'));
  const slow = slowPost(kbs.url, '/kbs/v0/resource/default/key/never', Buffer.alloc(1000, 1));
  await pause(300);
  const started = Date.now();
  kbs.kill('SIGTERM');
  const error = await slow.failed; // never finished: the connection is closed under it
  t.regex(error.message, /socket hang up|ECONNRESET/);
  t.is(await kbs.exited, 0);
  const took = Date.now() - started;
  t.true(took >= 900 && took < 10_000, `exit after the grace period (${took} ms)`);
  t.regex(kbs.logs(), /dropping connections still open after the grace period/);
});

test('a second signal during the shutdown exits at once with 1', async (t) => {
  const kbs = await spawnKbs(TOML('shutdown_grace_seconds = 60'));
  t.teardown(() => kbs.kill('SIGKILL'));
  slowPost(kbs.url, '/kbs/v0/resource/default/key/held', Buffer.alloc(100, 1)).failed.catch(() => undefined);
  await pause(300);
  const mark = kbs.logs().length;
  kbs.kill('SIGTERM');
  await kbs.waitForLog(/"msg":"stopping"/, mark);
  kbs.kill('SIGINT');
  t.is(await kbs.exited, 1);
  t.regex(kbs.logs(), /second signal during shutdown/);
});

/** Raw bytes on a socket; everything the server sends until it closes, and when it closed. */
function rawExchange(url: string, bytes: string): Promise<{ text: string; ms: number }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = connect(Number(u.port), u.hostname, () => s.write(bytes));
    const parts: Buffer[] = [];
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error('no answer within 15 s'));
    }, 15_000);
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(guard);
      resolve({ text: Buffer.concat(parts).toString('utf8'), ms: Date.now() - started });
    });
  });
}

test('request timeouts: headers too slow, body too slow → 408 problem body and the connection closed', async (t) => {
  const kbs = await startTestKbs({ toml: '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\nrequest_timeout_seconds = 2\nheaders_timeout_seconds = 1\n' });
  t.teardown(() => kbs.close());
  const headers = await rawExchange(kbs.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  t.regex(headers.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.regex(headers.text, /\{"type":"https:\/\/github\.com\/confidential-containers\/kbs\/errors\/RequestTimeout","detail":"The request was not received in time"\}$/);
  t.true(headers.ms >= 900, `${headers.ms} ms`);
  const body = await rawExchange(kbs.url, 'POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"version":');
  t.regex(body.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.true(body.ms >= 1900, `${body.ms} ms`);
  t.false(/"level":50/.test(kbs.logs()), 'a timed-out client is not an internal error');
});

test('timeout keys: defaults, and headers_timeout_seconds may not exceed request_timeout_seconds', (t) => {
  const base = 'work_dir = "/tmp"\n[http_server]\ninsecure_http = true\n';
  const c = parseConfigText(base, { cwd: '/tmp', source: 't' }).httpServer;
  t.deepEqual([c.shutdownGraceMs, c.requestTimeoutMs, c.headersTimeoutMs, c.keepAliveTimeoutMs], [10_000, 60_000, 20_000, 5_000]);
  const short = parseConfigText(`${base}request_timeout_seconds = 5\n`, { cwd: '/tmp', source: 't' }).httpServer;
  t.is(short.headersTimeoutMs, 5_000, 'the headers default follows a shorter request timeout');
  const e = t.throws(() => parseConfigText(`${base}request_timeout_seconds = 5\nheaders_timeout_seconds = 6\n`, { cwd: '/tmp', source: 't' }));
  t.regex(e?.message ?? '', /http_server\.headers_timeout_seconds: must not exceed request_timeout_seconds/);
  t.regex(t.throws(() => parseConfigText(`${base}shutdown_grace_seconds = -1\n`, { cwd: '/tmp', source: 't' }))?.message ?? '', /shutdown_grace_seconds/);
  t.regex(t.throws(() => parseConfigText(`${base}tls_profile = "old"\n`, { cwd: '/tmp', source: 't' }))?.message ?? '', /http_server\.tls_profile: .*"old" and "custom" are not supported/);
});
