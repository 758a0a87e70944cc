/** X-Request-Id on every response, bound into every log line of its request; the access log. */
import test from 'ava';
import { startTestKbs } from './helpers/kbs-server.js';
import { rawCall } from './helpers/admin-http.js';
import { REQUEST_ID, requestIdFor } from '../server/request-observer.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function linesFor(logs: string, reqId: string): Array<Record<string, unknown>> {
  return logs
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['reqId'] === reqId);
}

test('a well-formed incoming id is kept; anything else is replaced by a UUID', (t) => {
  for (const ok of ['abc', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'trace.1:span-2_x', 'a'.repeat(128)]) t.is(requestIdFor(ok), ok);
  for (const bad of ['', ' x', 'a b', 'x\ny', '"quoted"', 'a'.repeat(129), '-leading', 'é', '{"json":1}', undefined]) {
    const id = requestIdFor(bad);
    t.regex(id, UUID, String(bad));
    t.regex(id, REQUEST_ID);
  }
});

test('responses carry X-Request-Id (errors too) and every log line of the request has it', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());

  const ok = await fetch(`${kbs.url}/healthz`, { headers: { 'X-Request-Id': 'probe-1' } });
  t.is(ok.headers.get('x-request-id'), 'probe-1');

  const generated = await fetch(`${kbs.url}/kbs/v0/nope`);
  t.is(generated.status, 404);
  t.regex(generated.headers.get('x-request-id') ?? '', UUID);

  const hostile = await fetch(`${kbs.url}/kbs/v0/nope`, { headers: { 'X-Request-Id': 'evil"},"level":60' } });
  const hostileId = hostile.headers.get('x-request-id') ?? '';
  t.regex(hostileId, UUID);

  // an admin request denied: 401 with the id; the denial, the failure and the access line share it
  const denied = await fetch(`${kbs.url}/kbs/v0/resource/a/b/c`, {
    method: 'POST',
    headers: { 'X-Request-Id': 'req-denied-7', Authorization: 'Bearer not.a.token', Cookie: 'kbs-session-id=0123456789abcdef0123456789abcdef' },
    body: 'value',
  });
  t.is(denied.status, 401);
  t.is(denied.headers.get('x-request-id'), 'req-denied-7');
  const lines = linesFor(kbs.logs(), 'req-denied-7');
  t.deepEqual(
    lines.map((l) => l['msg']),
    ['admin request denied', 'request failed', 'request'],
  );
  const access = lines.at(-1) as Record<string, unknown>;
  t.is(access['method'], 'POST');
  t.is(access['route'], '/kbs/v0/resource/*path', 'the route pattern, not the raw path');
  t.is(access['status'], 401);
  t.is(typeof access['ms'], 'number');
  t.false('path' in access);
  const all = kbs.logs();
  t.false(all.includes('not.a.token'));
  t.false(all.includes('0123456789abcdef0123456789abcdef'));
  t.false(all.includes('evil'));

  // a request Koa's parser sees with an odd path: the access line clips the raw path of unmatched requests
  const long = await rawCall(kbs.url, 'GET', `/${'x'.repeat(500)}`, { headers: { 'X-Request-Id': 'long-path' } });
  t.is(long.status, 404);
  const [longAccess] = linesFor(kbs.logs(), 'long-path').filter((l) => l['msg'] === 'request');
  t.true(typeof longAccess?.['path'] === 'string' && (longAccess['path'] as string).length <= 201);
});

test('answers given before Koa (no Host header, unparsable request) carry an X-Request-Id too', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  const { port } = new URL(kbs.url);
  const { connect } = await import('node:net');
  const send = (raw: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.end(raw));
      let out = '';
      socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
    });
  const noHost = await send('GET /healthz HTTP/1.1\r\nX-Request-Id: nohost-1\r\n\r\n');
  t.regex(noHost, /^HTTP\/1\.1 400/);
  t.regex(noHost, /\r\nX-Request-Id: nohost-1\r\n/i);
  const garbage = await send('GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n');
  t.regex(garbage, /^HTTP\/1\.1 400/);
  t.regex(garbage, /\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);
});
