/** /healthz (liveness) and /readyz (readiness: backend probe, keys, policy, audit, shutdown). */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { READY_CACHE_MS, readyzRoute } from '../server/health.js';
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

test('concurrent probes share one backend check; a result is reused for a moment', async (t) => {
  const kbs = await startTestKbs();
  t.teardown(() => kbs.close());
  const s = kbs.running.services;
  const backend = s.backend;
  let calls = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  // the services' backend is a Proxy; wrap it once more to count and hold check()
  Object.defineProperty(s, 'backend', {
    value: new Proxy(backend, {
      get: (target, prop) => (prop === 'check' ? async () => ((calls += 1), await gate, target.check()) : Reflect.get(target, prop)),
    }),
  });
  const route = readyzRoute(s);
  const probe = async () => {
    const ctx = { status: 404, body: undefined as unknown, set: () => undefined };
    await route(ctx as never, async () => undefined);
    return ctx.status;
  };
  const pending = Array.from({ length: 20 }, probe);
  await new Promise((r) => setTimeout(r, 50));
  release();
  t.deepEqual(await Promise.all(pending), Array(20).fill(200));
  t.is(calls, 1, 'one evaluation for 20 concurrent probes');
  t.is(await probe(), 200);
  t.is(calls, 1, 'cached');
  await settle();
  t.is(await probe(), 200);
  t.is(calls, 2, 'evaluated again once the cache expired');
});
