/**
 * ECDH key agreements on worker threads (server/crypto-pool.ts, server/crypto-thread.ts), the async
 * JWE path that uses them (`encryptForTeeKeyWith`), the `[http_server] crypto_threads` setting, and
 * resource releases through a server with and without workers.
 */
import test from 'ava';
import { availableParallelism, tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { ConfigError, parseConfigText } from '../config/index.js';
import { samplePolicyText } from '../policy/index.js';
import { CryptoPool } from '../server/crypto-pool.js';
import { encryptForTeeKeyWith, JweError, type EcdhAgree, type JweResponse } from '../server/jwe.js';
import { createLogger, silentLogger, type Logger } from '../server/log.js';
import type { TeePubKey } from '../server/tee-pubkey.js';
import { startTestKbs } from './helpers/kbs-server.js';

const P256 = TeeKeyPair.generate();
const P521 = TeeKeyPair.generate('ECDH-ES+A256KW-P521');
const RSA = TeeKeyPair.generate('RSA-OAEP-256');
const PLAINTEXT = Buffer.from('resource value \u00e9\u{1F600}');

/** The pool's private worker slots (to kill a worker from outside, as a crash would). */
function slotsOf(pool: CryptoPool): Array<{ worker?: Worker; pending: Map<number, unknown> }> {
  return (pool as unknown as { slots: Array<{ worker?: Worker; pending: Map<number, unknown> }> }).slots;
}

/** A debug logger writing JSON lines to memory. */
function capturingLogger(): { log: Logger; lines(): Array<Record<string, unknown>>; text(): string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const text = (): string => chunks.join('');
  const lines = (): Array<Record<string, unknown>> =>
    text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log: createLogger({ level: 'debug', destination }), lines, text };
}

function newPool(t: { teardown(fn: () => Promise<void>): void }, threads: number, log: Logger = silentLogger()): CryptoPool {
  const pool = new CryptoPool(threads, log);
  t.teardown(() => pool.close());
  return pool;
}

function decrypts(kp: TeeKeyPair, jwe: JweResponse, expected: Uint8Array): boolean {
  return Buffer.from(kp.decrypt(jwe)).equals(Buffer.from(expected));
}

/** An EC key whose coordinates are the right length and below p but not a point on the curve. */
function offCurveKey(crv: 'P-256' | 'P-521'): TeePubKey {
  const coord = Buffer.alloc(crv === 'P-256' ? 32 : 66);
  coord[coord.length - 1] = 1; // (1, 1): y² ≠ x³ − 3x + b on both curves
  const b64 = coord.toString('base64url');
  return { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: b64, y: b64 };
}

test('P-256 and P-521 JWEs made with the pool decrypt; RSA keys never call agree', async (t) => {
  const pool = newPool(t, 1);
  for (const kp of [P256, P521]) {
    const jwe = await encryptForTeeKeyWith(pool.agree, kp.publicJwk(), PLAINTEXT);
    t.true(decrypts(kp, jwe, PLAINTEXT));
    const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as { alg: string; epk: { crv: string } };
    t.is(header.alg, 'ECDH-ES+A256KW');
    t.is(header.epk.crv, (kp.publicJwk() as { crv: string }).crv);
  }
  t.is(pool.inlineFallbacks, 0, 'both agreements ran on the worker');
  t.is(pool.inFlight, 0);

  let calls = 0;
  const spy: EcdhAgree = (curve, peer) => {
    calls++;
    return pool.agree(curve, peer);
  };
  const jwe = await encryptForTeeKeyWith(spy, RSA.publicJwk(), PLAINTEXT);
  t.true(decrypts(RSA, jwe, PLAINTEXT));
  t.is(calls, 0);
  t.is(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')).alg, 'RSA-OAEP-256');
});

test('600 concurrent agreements on two workers all decrypt; bounded queues spill inline', async (t) => {
  const pool = newPool(t, 2);
  const n = 600;
  const keys = [P256, P521];
  const jobs = Array.from({ length: n }, (_, i) => {
    const kp = keys[i % 2] as TeeKeyPair;
    const plaintext = Buffer.from(`job ${i}`);
    return encryptForTeeKeyWith(pool.agree, kp.publicJwk(), plaintext).then((jwe) => decrypts(kp, jwe, plaintext));
  });
  // every agree() call happened synchronously above: each is either queued on a worker or done inline
  const queued = pool.inFlight;
  t.true(queued > 0);
  t.is(queued + pool.inlineFallbacks, n);
  t.true(slotsOf(pool).every((s) => s.pending.size > 0), 'the load is spread over both workers');
  const ok = await Promise.all(jobs);
  t.is(ok.filter((x) => x).length, n);
  t.is(pool.inFlight, 0);
});

test('a peer point off the curve is JWE_INVALID_KEY and the pool keeps working', async (t) => {
  const pool = newPool(t, 1);
  for (const crv of ['P-256', 'P-521'] as const) {
    const err = await t.throwsAsync(encryptForTeeKeyWith(pool.agree, offCurveKey(crv), PLAINTEXT), { instanceOf: JweError });
    t.is(err?.code, 'JWE_INVALID_KEY');
    t.regex(err?.message ?? '', new RegExp(`not a point on ${crv}`));
  }
  t.is(pool.inlineFallbacks, 0, 'the worker refused the points');
  t.truthy(slotsOf(pool)[0]?.worker, 'the worker is still running');
  t.is(await pool.agree('secp256k1', Buffer.alloc(65, 4)), undefined, 'unknown curves are refused by the worker');
  const jwe = await encryptForTeeKeyWith(pool.agree, P256.publicJwk(), PLAINTEXT);
  t.true(decrypts(P256, jwe, PLAINTEXT));
  t.is(pool.inFlight, 0);
});

test('a pool with 0 threads computes every agreement inline', async (t) => {
  const pool = newPool(t, 0);
  t.is(pool.threads, 0);
  for (const kp of [P256, P521, P256]) {
    t.true(decrypts(kp, await encryptForTeeKeyWith(pool.agree, kp.publicJwk(), PLAINTEXT), PLAINTEXT));
  }
  t.is(pool.inlineFallbacks, 3);
  t.is(pool.inFlight, 0);
  await t.throwsAsync(encryptForTeeKeyWith(pool.agree, offCurveKey('P-256'), PLAINTEXT), { instanceOf: JweError });
});

// serial: nothing else runs on the event loop between the crash and the in-delay call below
test.serial('a worker killed with jobs in flight: the jobs finish inline, one error is logged, the worker is replaced', async (t) => {
  const { log, lines, text } = capturingLogger();
  const pool = newPool(t, 1, log);
  const first = slotsOf(pool)[0]?.worker;
  if (first === undefined) return t.fail('no worker started');
  const jobs = Array.from({ length: 100 }, (_, i) => {
    const kp = i % 2 === 0 ? P521 : P256;
    return encryptForTeeKeyWith(pool.agree, kp.publicJwk(), PLAINTEXT).then((jwe) => decrypts(kp, jwe, PLAINTEXT));
  });
  t.is(pool.inFlight, 100);
  // terminated before it even started: all 100 are still waiting on it
  const [ok] = await Promise.all([Promise.all(jobs), first.terminate()]);
  t.true(ok.every((x) => x), 'every in-flight agreement is correct');
  t.is(pool.inFlight, 0);
  t.is(slotsOf(pool)[0]?.worker, undefined);

  // within the respawn delay: computed inline, no new worker yet
  const before = pool.inlineFallbacks;
  const inDelay = encryptForTeeKeyWith(pool.agree, P256.publicJwk(), PLAINTEXT);
  t.is(pool.inlineFallbacks, before + 1);
  t.is(slotsOf(pool)[0]?.worker, undefined);
  t.true(decrypts(P256, await inDelay, PLAINTEXT));

  const errors = lines().filter((l) => l['level'] === 50);
  t.is(errors.length, 1);
  t.regex(String(errors[0]?.['msg']), /crypto worker thread stopped/);
  t.true(Number(errors[0]?.['inFlight']) > 0, 'jobs were in flight on the dead worker');
  // names and counts only: no coordinates, points or secrets (long base64/hex runs)
  t.notRegex(text(), /[A-Za-z0-9+/=_-]{24,}/);
  for (const kp of [P256, P521]) {
    const { x } = kp.publicJwk() as { x: string };
    t.false(text().includes(x));
    t.false(text().includes(Buffer.from(x, 'base64url').toString('hex')));
  }

  // after it: the next call starts a new worker and runs on it
  await new Promise((r) => setTimeout(r, 1200));
  const job = encryptForTeeKeyWith(pool.agree, P521.publicJwk(), PLAINTEXT);
  const second = slotsOf(pool)[0]?.worker;
  t.truthy(second);
  t.not(second, first);
  t.is(pool.inFlight, 1);
  t.true(decrypts(P521, await job, PLAINTEXT));
  t.is(pool.inlineFallbacks, before + 1);
  t.is(lines().filter((l) => l['level'] === 50).length, 1, 'no further errors');
});

test('close() answers in-flight jobs, stops the workers, and agree still works inline afterwards', async (t) => {
  const { log, lines } = capturingLogger();
  const pool = new CryptoPool(2, log);
  const jobs = Array.from({ length: 40 }, () =>
    encryptForTeeKeyWith(pool.agree, P256.publicJwk(), PLAINTEXT).then((jwe) => decrypts(P256, jwe, PLAINTEXT)),
  );
  t.is(pool.inFlight, 40);
  await pool.close();
  t.is(pool.inFlight, 0);
  t.true((await Promise.all(jobs)).every((x) => x));
  t.true(slotsOf(pool).every((s) => s.worker === undefined && s.pending.size === 0));
  t.is(lines().filter((l) => l['level'] === 50).length, 0, 'a deliberate stop is not an error');

  const before = pool.inlineFallbacks;
  t.true(decrypts(P521, await encryptForTeeKeyWith(pool.agree, P521.publicJwk(), PLAINTEXT), PLAINTEXT));
  t.is(pool.inlineFallbacks, before + 1);
  t.true(slotsOf(pool).every((s) => s.worker === undefined), 'no worker is started after close()');
  await pool.close(); // idempotent
});

const parseHttp = (line: string) =>
  parseConfigText(`[http_server]\ninsecure_http = true\n${line}\n`, { cwd: tmpdir(), source: 'test.toml' });

test('config: crypto_threads accepts 0 to 16 integers and defaults by CPU count', (t) => {
  t.is(parseHttp('crypto_threads = 0').httpServer.cryptoThreads, 0);
  t.is(parseHttp('crypto_threads = 2').httpServer.cryptoThreads, 2);
  t.is(parseHttp('crypto_threads = 16').httpServer.cryptoThreads, 16);
  t.is(parseHttp('').httpServer.cryptoThreads, availableParallelism() > 1 ? 1 : 0);
  for (const bad of ['-1', '17', '1.5', '"1"']) {
    const err = t.throws(() => parseHttp(`crypto_threads = ${bad}`), { instanceOf: ConfigError }, bad);
    t.is(err?.keyPath, 'http_server.crypto_threads', bad);
    t.regex(err?.message ?? '', /http_server\.crypto_threads/, bad);
  }
});

for (const threads of [0, 2]) {
  test(`server with crypto_threads = ${threads} releases resources that decrypt`, async (t) => {
    const kbs = await startTestKbs({
      toml: `[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\ncrypto_threads = ${threads}\n`,
    });
    t.teardown(() => kbs.close());
    const pool = kbs.running.services.cryptoPool;
    if (threads === 0) t.is(pool, undefined);
    else t.is(pool?.threads, threads);
    const admin = new KbsClient({ url: kbs.url, ...(kbs.adminToken ? { adminToken: kbs.adminToken } : {}) });
    await admin.setResource('default/key/pool', Buffer.from('s3cret-pool'));
    await admin.setResourcePolicy(samplePolicyText('allow_all'));
    for (const key of [TeeKeyPair.generate(), TeeKeyPair.generate('ECDH-ES+A256KW-P521'), TeeKeyPair.generate('RSA-OAEP-256')]) {
      const guest = new KbsClient({ url: kbs.url });
      await guest.attest(key);
      t.is(Buffer.from(await guest.getResource('default/key/pool', key)).toString(), 's3cret-pool');
    }
    if (pool !== undefined) {
      t.is(pool.inlineFallbacks, 0, 'the EC agreements ran on the workers');
      t.is(pool.inFlight, 0);
    }
    t.false(kbs.logs().includes('s3cret-pool'));
  });
}
