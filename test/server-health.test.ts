/** /healthz (liveness) and /readyz (readiness: backend probe, keys, policy, audit, shutdown). */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { READY_CACHE_MS } from '../server/health.js';
import { startTestKbs } from './helpers/kbs-server.js';
import { assertProblem, call } from './helpers/admin-http.js';

const settle = () => new Promise((r) => setTimeout(r, READY_CACHE_MS + 50));

const ALL_OK = { shutdown: 'ok', backend: 'ok', token_key: 'ok', admin_keys: 'ok', policy: 'ok', audit: 'ok' };

test('/healthz is 200 with an empty body; /readyz is 200 with every check ok', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  const h = await call(kbs.url, 'GET', '/healthz');
  t.is(h.status, 200);
  t.is(h.body.length, 0);
  const r = await call(kbs.url, 'GET', '/readyz');
  t.is(r.status, 200);
  t.deepEqual(JSON.parse(r.text), { status: 'ready', checks: ALL_OK });
});

test('LocalFs: /readyz is 503 naming the backend while the repository is gone, 200 once it is back', async (t) => {
  const kbs = await startTestKbs({ toml: '[[plugins]]\nname = "resource"\ntype = "LocalFs"\n' });
  t.teardown(() => kbs.close());
  const repo = join(kbs.workDir, 'repository');
  t.is((await call(kbs.url, 'GET', '/readyz')).status, 200);
  await settle();
  renameSync(repo, `${repo}.moved`);
  const r = await call(kbs.url, 'GET', '/readyz');
  assertProblem(t, r, 503, 'ServiceUnavailable', { detail: 'Not ready: backend' });
  t.false(r.text.includes(kbs.workDir), 'no paths in the body');
  t.regex(kbs.logs(), /"check":"backend".*readiness check failed/);
  t.is((await call(kbs.url, 'GET', '/healthz')).status, 200, 'liveness does not depend on the backend');
  await settle();
  renameSync(`${repo}.moved`, repo);
  t.is((await call(kbs.url, 'GET', '/readyz')).status, 200);
});

test('Sqlite: /readyz is 503 once the database file is replaced by a directory', async (t) => {
  const kbs = await startTestKbs({ toml: '[[plugins]]\nname = "resource"\ntype = "Sqlite"\ndb_path = "resources.db"\n' });
  t.teardown(() => kbs.close());
  t.is((await call(kbs.url, 'GET', '/readyz')).status, 200);
  await settle();
  const db = join(kbs.workDir, 'resources.db');
  rmSync(db);
  mkdirSync(db);
  assertProblem(t, await call(kbs.url, 'GET', '/readyz'), 503, 'ServiceUnavailable', { detail: 'Not ready: backend' });
});

test('a draining server is not ready', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  kbs.running.services.lifecycle.draining = true;
  assertProblem(t, await call(kbs.url, 'GET', '/readyz'), 503, 'ServiceUnavailable', { detail: 'Not ready: shutdown' });
});

test('concurrent probes share one backend check', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  const backend = kbs.running.services.backend;
  const original = backend.check.bind(backend);
  let calls = 0;
  // the services' backend is a Proxy; count on the object the routes see
  Object.defineProperty(kbs.running.services, 'backend', {
    value: new Proxy(backend, {
      get: (target, prop) => (prop === 'check' ? () => ((calls += 1), original()) : Reflect.get(target, prop)),
    }),
  });
  const replies = await Promise.all(Array.from({ length: 20 }, () => call(kbs.url, 'GET', '/readyz')));
  t.true(replies.every((r) => r.status === 200));
  t.is(calls, 1);
});
