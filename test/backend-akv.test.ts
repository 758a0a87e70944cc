/**
 * AzureKeyVault backend against the local Azure stand-in (real SDK, real HTTPS): the shared
 * contract in read-write mode, then what is specific to Key Vault: the name mapping, value
 * encoding and the size limit, imports (read-only), the read cache and single-flight, deadlines,
 * throttling, authorization failures, soft delete (recover / purge / purge protection).
 */
import test from 'ava';
import fc from 'fast-check';
import { createServer } from 'node:net';
import {
  AzureKeyVaultBackend,
  BackendError,
  openBackend,
  resourcePathFromString,
  type AkvImport,
  type AzureKeyVaultOptions,
  type ResourcePath,
} from '../backends/index.js';
import { AKV_MAX_BINARY_BYTES, AKV_MAX_VALUE_BYTES, BINARY_CONTENT_TYPE } from '../backends/azure-key-vault/codec.js';
import { fromAkvName, pathTags, toAkvName } from '../backends/azure-key-vault/names.js';
import { backendContract, expectBackendError } from './backend-contract.js';
import { SECRETS_USER, startAzureStandIn, type AzureStandIn } from './helpers/azure/index.js';

const TENANT = '4a4a4a4a-1111-4222-8333-444455556666';
const APP = 'a1a1a1a1-0000-4000-8000-000000000001';
const SECRET = 'kbs-test-app-secret~value';
const READER = 'b2b2b2b2-0000-4000-8000-000000000002';
const READER_SECRET = 'reader-secret-value';
const CONTRACT_VAULTS = 16;

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');
const rp = (s: string): ResourcePath => resourcePathFromString(s);

let az: AzureStandIn;
let nextVault = 0;
const warnings: string[] = [];

test.before(async () => {
  az = await startAzureStandIn({
    clients: [
      { tenantId: TENANT, clientId: APP, secrets: [SECRET] },
      { tenantId: TENANT, clientId: READER, secrets: [READER_SECRET] },
    ],
    vaults: [
      ...Array.from({ length: CONTRACT_VAULTS }, (_, i) => ({ name: `contract-${i}`, transitionMs: 20 })),
      'main-vault',
      'import-vault',
      'cache-vault',
      'slow-vault',
      { name: 'soft-vault', transitionMs: 30 },
      { name: 'purge-vault', transitionMs: 30 },
      { name: 'protected-vault', purgeProtection: true, transitionMs: 30 },
      { name: 'locked-vault', access: { [READER]: SECRETS_USER } },
    ],
  });
});

test.after.always(async () => {
  await az?.close();
});

function options(vault: string | undefined, extra: Partial<AzureKeyVaultOptions> = {}): AzureKeyVaultOptions {
  return {
    ...(vault !== undefined ? { vaultUrl: az.vaultUrl(vault) } : {}),
    credential: { kind: 'client_secret', tenantId: TENANT, clientId: APP, clientSecret: SECRET },
    authorityHost: az.authorityHost,
    caPem: az.caPem,
    disableChallengeResourceVerification: true,
    maxRetries: 0,
    pollIntervalMs: 10,
    probeOnOpen: false,
    logger: { info: () => undefined, warn: (m) => warnings.push(m) },
    ...extra,
  };
}

const open = (vault: string | undefined, extra: Partial<AzureKeyVaultOptions> = {}): Promise<AzureKeyVaultBackend> =>
  AzureKeyVaultBackend.open(options(vault, extra));

backendContract(
  'AzureKeyVault',
  async () => {
    const vault = `contract-${nextVault++}`;
    if (nextVault > CONTRACT_VAULTS) throw new Error('more contract tests than stand-in vaults');
    const backend = await open(vault);
    return { backend, cleanup: async () => undefined };
  },
  { maxValueBytes: AKV_MAX_BINARY_BYTES },
);

test('name mapping: reversible, case-insensitive safe, within the Key Vault name rule (property)', (t) => {
  const seg = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,40}$/);
  fc.assert(
    fc.property(seg, seg, seg, (repo, type, tag) => {
      const p = { repo, type, tag };
      const name = toAkvName(p);
      if (!/^[0-9a-zA-Z-]{1,127}$/.test(name)) return false;
      const back = fromAkvName(name.toUpperCase(), pathTags(p));
      return back !== null && back.join('/') === `${repo}/${type}/${tag}`;
    }),
    { numRuns: 3000 },
  );
  t.is(toAkvName(rp('default/akv/coco_one')), 'kbs-0default-0akv-0coco-2one');
  t.is(toAkvName(rp('Repo/repo/REPO')), 'kbs-0-repo-0repo-0-r-e-p-o');
  t.not(toAkvName(rp('a/b/C')), toAkvName(rp('a/b/c')));
  // Long paths are hashed; the path travels in tags and must hash back.
  const long = rp(`R/T/${'a'.repeat(255)}`);
  const hashed = toAkvName(long);
  t.regex(hashed, /^kbs-9[0-9a-f]{64}$/);
  t.deepEqual(fromAkvName(hashed, pathTags(long)), ['R', 'T', 'a'.repeat(255)]);
  t.is(fromAkvName(hashed, pathTags(rp('R/T/other'))), null);
  t.is(fromAkvName(hashed), null);
  // Not KBS entries: other tools' names, bad escapes, non-canonical spellings.
  for (const n of ['coco-one', 'kbs-0a', 'kbs-0a-0b-0c-', 'kbs-0a-0b-0c-9', 'kbs-0a-0b-0-0', 'kbs-0a-0b-0-3x']) t.is(fromAkvName(n), null, n);
});

test('values: text stays text in the vault, binary is base64 marked in contentType; foreign secrets are served as UTF-8', async (t) => {
  const backend = await open('main-vault');
  try {
    await backend.put(rp('default/key/pem'), enc('-----BEGIN X-----\nabc\n-----END X-----\n'));
    const pem = az.vault('main-vault').peek(toAkvName(rp('default/key/pem')));
    t.is(pem?.value, '-----BEGIN X-----\nabc\n-----END X-----\n');
    t.regex(pem?.contentType ?? '', /^text\/plain/);
    t.is(pem?.tags?.['kbs-path'], 'default/key/pem');

    const bin = Uint8Array.of(0, 1, 2, 0xff, 0xfe, 10);
    await backend.put(rp('default/key/bin'), bin);
    const stored = az.vault('main-vault').peek(toAkvName(rp('default/key/bin')));
    t.is(stored?.contentType, BINARY_CONTENT_TYPE);
    t.is(stored?.value, Buffer.from(bin).toString('base64'));
    t.deepEqual(await backend.get(rp('default/key/bin')), bin);

    // Written by other tools (az CLI, portal): no contentType, or a text one: served as UTF-8.
    az.vault('main-vault').seed(toAkvName(rp('default/key/foreign')), 'plain ✓ text');
    t.is(text(await backend.get(rp('default/key/foreign'))), 'plain ✓ text');
    az.vault('main-vault').seed(toAkvName(rp('default/key/cert')), '-----BEGIN CERTIFICATE-----\nMII\n', { contentType: 'application/x-pem-file' });
    t.is(text(await backend.get(rp('default/key/cert'))), '-----BEGIN CERTIFICATE-----\nMII\n');
    az.vault('main-vault').seed(toAkvName(rp('default/key/b64')), 'AAEC', { contentType: 'Application/Octet-Stream;Base64' });
    t.deepEqual(await backend.get(rp('default/key/b64')), Uint8Array.of(0, 1, 2));
    az.vault('main-vault').seed(toAkvName(rp('default/key/badb64')), '%%%', { contentType: BINARY_CONTENT_TYPE });
    await expectBackendError(t, backend.get(rp('default/key/badb64')), 'IO');
    // Foreign entries have no size tag: list reads the value for the size.
    const listed = new Map((await backend.list()).map((i) => [i.path, i.size]));
    t.is(listed.get('default/key/foreign'), Buffer.byteLength('plain ✓ text'));
    t.is(listed.get('default/key/bin'), 6);
  } finally {
    await backend.close();
  }
});

test('size limit: values over 25 KB (or binary over its base64 limit) are refused before any request', async (t) => {
  const backend = await open('main-vault');
  try {
    const before = az.requests('vault').length;
    const e1 = await expectBackendError(t, backend.put(rp('default/big/text'), enc('x'.repeat(AKV_MAX_VALUE_BYTES + 1))), 'TOO_LARGE');
    t.regex(e1.message, /25600 bytes/);
    const e2 = await expectBackendError(t, backend.put(rp('default/big/bin'), new Uint8Array(AKV_MAX_BINARY_BYTES + 1)), 'TOO_LARGE');
    t.regex(e2.message, /base64/);
    t.is(az.requests('vault').length, before);
    // The limits themselves fit.
    await backend.put(rp('default/big/text'), enc('x'.repeat(AKV_MAX_VALUE_BYTES)));
    await backend.put(rp('default/big/bin'), new Uint8Array(AKV_MAX_BINARY_BYTES));
    t.is((await backend.get(rp('default/big/bin'))).byteLength, AKV_MAX_BINARY_BYTES);
  } finally {
    await backend.close();
  }
});

test('imports (import_akv): served from named secrets and versions in any vault, read-only, listed', async (t) => {
  const iv = az.vault('import-vault');
  const { version: v1 } = iv.seed('db-key', 'first');
  iv.seed('db-key', 'second');
  iv.seed('coco-one', 'csi style');
  const imports: AkvImport[] = [
    { path: 'default/db/key', vault: az.vaultUrl('import-vault'), secretName: 'db-key' },
    { path: 'default/db/key-v1', vault: az.vaultUrl('import-vault'), secretName: 'db-key', version: v1 },
    { path: 'default/akv/coco-one', vault: az.vaultUrl('import-vault') },
    { path: 'default/akv/missing', vault: az.vaultUrl('import-vault') },
  ];
  const backend = await open('main-vault', { imports });
  try {
    t.false(backend.readOnly);
    t.is(text(await backend.get(rp('default/db/key'))), 'second');
    t.is(text(await backend.get(rp('default/db/key-v1'))), 'first');
    t.is(text(await backend.get(rp('default/akv/coco-one'))), 'csi style');
    await expectBackendError(t, backend.get(rp('default/akv/missing')), 'NOT_FOUND');
    const ro = await expectBackendError(t, backend.put(rp('default/db/key'), enc('x')), 'READ_ONLY');
    t.regex(ro.message, /imported from Azure Key Vault .* \(secret db-key\) and read-only/);
    await expectBackendError(t, backend.delete(rp('default/db/key')), 'READ_ONLY');
    t.is(text(await backend.get(rp('default/db/key'))), 'second');
    const paths = (await backend.list()).map((i) => i.path);
    for (const p of ['default/db/key', 'default/db/key-v1', 'default/akv/coco-one']) t.true(paths.includes(p), p);
    t.false(paths.includes('default/akv/missing'));
  } finally {
    await backend.close();
  }
  // Import-only backend: read-only as a whole.
  const only = await open(undefined, { imports: imports.slice(0, 1) });
  try {
    t.true(only.readOnly);
    t.is(text(await only.get(rp('default/db/key'))), 'second');
    await expectBackendError(t, only.get(rp('default/db/other')), 'NOT_FOUND');
    await expectBackendError(t, only.put(rp('default/db/other'), enc('x')), 'READ_ONLY');
    await t.notThrowsAsync(only.check());
  } finally {
    await only.close();
  }
  // Bad import tables are refused at open.
  await expectBackendError(t, open('main-vault', { imports: [imports[0] as AkvImport, imports[0] as AkvImport] }), 'UNAVAILABLE');
  await expectBackendError(t, open('main-vault', { imports: [{ path: 'default/akv/coco_one', vault: 'import-vault' }] }), 'UNAVAILABLE');
  await expectBackendError(t, open(undefined, {}), 'UNAVAILABLE');
});

test('read cache: TTL, single-flight of concurrent reads, local writes invalidate', async (t) => {
  const cv = az.vault('cache-vault');
  const name = toAkvName(rp('default/cache/k'));
  cv.seed(name, 'v1');
  const gets = (): number => az.requests('vault').filter((r) => r.method === 'GET' && r.path.startsWith(`/secrets/${name}`) && r.authorized).length;
  const backend = await open('cache-vault', { cacheTtlMs: 300 });
  try {
    const before = gets();
    const all = await Promise.all(Array.from({ length: 50 }, () => backend.get(rp('default/cache/k'))));
    t.true(all.every((v) => text(v) === 'v1'));
    t.is(gets() - before, 1, 'fifty concurrent reads, one request');
    await backend.get(rp('default/cache/k'));
    t.is(gets() - before, 1, 'served from the cache');
    cv.seed(name, 'v2'); // another writer: visible after the TTL
    t.is(text(await backend.get(rp('default/cache/k'))), 'v1');
    await new Promise((r) => setTimeout(r, 350));
    t.is(text(await backend.get(rp('default/cache/k'))), 'v2');
    await backend.put(rp('default/cache/k'), enc('v3')); // our own write: visible at once
    t.is(text(await backend.get(rp('default/cache/k'))), 'v3');
  } finally {
    await backend.close();
  }
  const uncached = await open('cache-vault', { cacheTtlMs: 0 });
  try {
    const before = gets();
    await Promise.all(Array.from({ length: 20 }, () => uncached.get(rp('default/cache/k'))));
    t.is(gets() - before, 1, 'single-flight without caching');
    await uncached.get(rp('default/cache/k'));
    await uncached.get(rp('default/cache/k'));
    t.is(gets() - before, 3);
  } finally {
    await uncached.close();
  }
});

test('deadlines: a slow vault, a blackholed port and a slow Entra give UNAVAILABLE within the timeout', async (t) => {
  az.vault('slow-vault').seed(toAkvName(rp('default/slow/k')), 'v');
  const backend = await open('slow-vault', { timeoutMs: 400, cacheTtlMs: 0 });
  try {
    const fault = az.faults.delay(3_000, { service: 'vault', vault: 'slow-vault', times: Infinity });
    let started = Date.now();
    const e = await expectBackendError(t, backend.get(rp('default/slow/k')), 'UNAVAILABLE');
    t.true(Date.now() - started < 1_500, `took ${Date.now() - started} ms`);
    t.regex(e.message, /timed out/);
    fault.remove();
    // A port that accepts connections and never answers.
    const sockets: import('node:net').Socket[] = [];
    const hole = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const port = (hole.address() as import('node:net').AddressInfo).port;
    const blackholed = await open(undefined, { vaultUrl: `https://127.0.0.1:${port}`, timeoutMs: 300 });
    started = Date.now();
    await expectBackendError(t, blackholed.get(rp('default/slow/k')), 'UNAVAILABLE');
    t.true(Date.now() - started < 1_500);
    await blackholed.close();
    for (const s of sockets) s.destroy();
    hole.close();
    // Nothing listening at all.
    const refused = await open(undefined, { vaultUrl: `https://127.0.0.1:${port}`, timeoutMs: 300 });
    const e3 = await expectBackendError(t, refused.get(rp('default/slow/k')), 'UNAVAILABLE');
    t.regex(e3.message, /unreachable|ECONNREFUSED|timed out/);
    await refused.close();
  } finally {
    await backend.close();
  }
});

test('throttling (429 with Retry-After) is retried; persistent throttling is UNAVAILABLE', async (t) => {
  az.vault('slow-vault').seed(toAkvName(rp('default/throttle/k')), 'ok');
  const backend = await open('slow-vault', { maxRetries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 20, cacheTtlMs: 0 });
  try {
    await backend.get(rp('default/throttle/k')); // token and challenge done
    az.faults.throttle(1, { service: 'vault', vault: 'slow-vault', retryAfterSeconds: 0 });
    t.is(text(await backend.get(rp('default/throttle/k'))), 'ok');
    const h = az.faults.throttle(Infinity, { service: 'vault', vault: 'slow-vault', retryAfterSeconds: 0 });
    const e = await expectBackendError(t, backend.get(rp('default/throttle/k')), 'UNAVAILABLE');
    t.regex(e.message, /throttled/);
    h.remove();
  } finally {
    await backend.close();
  }
});

test('authorization: 403 from the vault and refused credentials are UNAVAILABLE with a clear message, no secret', async (t) => {
  az.vault('locked-vault').seed(toAkvName(rp('default/locked/k')), 'locked');
  const reader = await open('locked-vault', { credential: { kind: 'client_secret', tenantId: TENANT, clientId: READER, clientSecret: READER_SECRET } });
  try {
    t.is(text(await reader.get(rp('default/locked/k'))), 'locked');
    const e = await expectBackendError(t, reader.put(rp('default/locked/k'), enc('x')), 'UNAVAILABLE');
    t.regex(e.message, /authorization failed \(HTTP 403/);
    t.regex(e.message, /Key Vault Secrets Officer/);
  } finally {
    await reader.close();
  }
  const outsider = await open('locked-vault'); // APP is not on the vault's access list
  try {
    const e = await expectBackendError(t, outsider.get(rp('default/locked/k')), 'UNAVAILABLE');
    t.regex(e.message, /HTTP 403/);
  } finally {
    await outsider.close();
  }
  const wrong = 'definitely-the-wrong-secret';
  const bad = await open('locked-vault', { credential: { kind: 'client_secret', tenantId: TENANT, clientId: READER, clientSecret: wrong } });
  try {
    const e = await expectBackendError(t, bad.get(rp('default/locked/k')), 'UNAVAILABLE');
    t.regex(e.message, /could not obtain an Entra ID token/);
    t.regex(e.message, /invalid_client|AADSTS/);
    t.false(e.message.includes(wrong));
    t.false(String(e.stack).includes(wrong));
  } finally {
    await bad.close();
  }
});

test('soft delete: re-creating a deleted name recovers it; purge_on_delete purges; purge protection falls back to recovery', async (t) => {
  const p = rp('default/soft/k');
  const name = toAkvName(p);
  const soft = await open('soft-vault');
  try {
    await soft.put(p, enc('one'));
    await soft.delete(p);
    t.deepEqual(az.vault('soft-vault').deletedNames(), [name]);
    await expectBackendError(t, soft.get(p), 'NOT_FOUND');
    await soft.put(p, enc('two'));
    t.is(text(await soft.get(p)), 'two');
    t.deepEqual(az.vault('soft-vault').deletedNames(), []);
    await expectBackendError(t, soft.delete(rp('default/soft/absent')), 'NOT_FOUND');
  } finally {
    await soft.close();
  }
  const purging = await open('purge-vault', { purgeOnDelete: true });
  try {
    await purging.put(p, enc('one'));
    await purging.delete(p);
    t.deepEqual(az.vault('purge-vault').deletedNames(), []);
    await purging.put(p, enc('two'));
    t.is(text(await purging.get(p)), 'two');
    t.is(az.vault('purge-vault').peek(name)?.versions, 1, 'purged: a fresh secret');
  } finally {
    await purging.close();
  }
  warnings.length = 0;
  const prot = await open('protected-vault', { purgeOnDelete: true });
  try {
    await prot.put(p, enc('one'));
    await prot.delete(p);
    t.true(warnings.some((w) => /could not purge/.test(w)));
    await prot.put(p, enc('two'));
    t.is(text(await prot.get(p)), 'two');
  } finally {
    await prot.close();
  }
});

test('openBackend builds it from a config object; check() reports an unusable vault', async (t) => {
  const backend = await openBackend({ type: 'AzureKeyVault', ...options('main-vault') });
  t.is(backend.kind, 'AzureKeyVault');
  await t.notThrowsAsync(backend.check());
  await backend.close();
  const denied = await openBackend({
    type: 'AzureKeyVault',
    ...options('locked-vault', { credential: { kind: 'client_secret', tenantId: TENANT, clientId: APP, clientSecret: SECRET } }),
  });
  const e = await t.throwsAsync(denied.check(), { instanceOf: BackendError });
  t.is(e?.code, 'UNAVAILABLE');
  await denied.close();
});

test('production-shaped vault URL (*.vault.azure.net) with challenge resource verification on', async (t) => {
  const backend = await open(undefined, { vaultUrl: az.vaultHostUrl('main-vault'), agent: az.httpsAgent(), disableChallengeResourceVerification: false });
  try {
    await backend.put(rp('default/prod/k'), enc('verified'));
    t.is(text(await backend.get(rp('default/prod/k'))), 'verified');
  } finally {
    await backend.close();
  }
});
