/**
 * Pkcs11: the shared backend contract on a real SoftHSM2, then what is specific to an HSM: storage
 * format on the token, token selection, wrong PIN, the label → handle cache, duplicate labels left
 * by an interrupted overwrite, session loss and re-login, per-call deadlines, the event loop during
 * HSM writes, a full token, and the PIN never leaking.
 *
 * SoftHSM2 must be installed (`apt-get install -y softhsm2`); without it this file fails with that
 * instruction. SoftHSM only sees tokens that exist when Cryptoki is initialised, so every token used
 * in this process is created at load, before the first backend opens; each contract test gets its
 * own empty token. Child processes get their own SoftHSM directory (first-slot and token-full cases).
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { inspect } from 'node:util';
import {
  BackendError,
  Pkcs11Backend,
  openBackend,
  resourcePathFromString,
  type Pkcs11Options,
  type ResourcePath,
  type StorageBackend,
} from '../backends/index.js';
import { decodeObjectId, encodeObjectId } from '../backends/pkcs11/object-id.js';
import { backendContract, expectBackendError } from './backend-contract.js';
import { canUnshareMount, tmpfsMount } from './helpers/namespaces.js';
import { rawPkcs11, runBackendChild, setupSoftHsm, type RawObject, type SoftHsm } from './helpers/softhsm.js';

const CONTRACT_TOKENS = 16;
const NAMED_TOKENS = ['perf', 'cache', 'format', 'wrongpin', 'limit', 'dups', 'relogin', 'timeout', 'config'] as const;

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const rp = (s: string): ResourcePath => resourcePathFromString(s);
const b64 = (s: string | Uint8Array): string => Buffer.from(s).toString('base64');
const text = (v: Uint8Array): string => Buffer.from(v).toString('utf8');

let hsm: SoftHsm | null = null;
let setupFailure = '';
try {
  hsm = setupSoftHsm({ tokens: [...NAMED_TOKENS, ...Array.from({ length: CONTRACT_TOKENS }, (_, i) => `contract-${i}`)] });
} catch (e) {
  setupFailure = e instanceof Error ? e.message : String(e);
}

if (hsm === null) {
  test('Pkcs11: SoftHSM2 is installed (required by the PKCS#11 tests)', (t) => {
    t.fail(setupFailure);
  });
} else {
  register(hsm);
}

function register(hsm: SoftHsm): void {
  /** Every error message/stack, log line, stats dump and inspection produced here: checked for the PIN at the end. */
  const observed: string[] = [];
  const logger = {
    info: (m: string): void => {
      observed.push(m);
    },
    warn: (m: string): void => {
      observed.push(m);
    },
  };
  const logsOf = (): string[] => [...observed];
  /** Strings that must never show up in `observed`. */
  const secrets: string[] = [hsm.pin, hsm.soPin];

  const open = (tokenLabel: string, extra: Partial<Pkcs11Options> = {}): Promise<Pkcs11Backend> =>
    Pkcs11Backend.open({ module: hsm.module, tokenLabel, pin: hsm.pin, logger, ...extra });

  /** Records the message and stack of every rejection of a backend call. */
  function recording<T extends StorageBackend>(backend: T): T {
    return new Proxy(backend, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]): unknown => {
          const r: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (r instanceof Promise) {
            return r.catch((e: unknown) => {
              observed.push(e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e));
              throw e;
            });
          }
          return r;
        };
      },
    });
  }

  async function capture(t: ExecutionContext, p: Promise<unknown>, code: BackendError['code']): Promise<BackendError> {
    const err = await expectBackendError(t, p, code);
    observed.push(`${err.message}\n${err.stack ?? ''}`);
    return err;
  }

  test.after.always(async () => {
    await hsm.cleanup();
  });

  // -------------------------------------------------------------------------------------------------
  // The shared contract, one fresh token per test.

  let nextContractToken = 0;
  backendContract('Pkcs11', async () => {
    const i = nextContractToken++;
    if (i >= CONTRACT_TOKENS) throw new Error(`raise CONTRACT_TOKENS: the contract opened more than ${CONTRACT_TOKENS} backends`);
    const backend = await open(`contract-${i}`);
    return { backend: recording(backend), cleanup: async () => {} };
  });

  // -------------------------------------------------------------------------------------------------
  // Figures (serial: they run before the concurrent tests, alone in the process).

  test.serial('Pkcs11: event-loop delay during 50 concurrent HSM writes; cached reads/s and writes/s', async (t) => {
    const backend = await open('perf');
    try {
      const values = Array.from({ length: 50 }, () => new Uint8Array(randomBytes(1024)));
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const t0 = performance.now();
      await Promise.all(values.map((v, i) => backend.put(rp(`perf/write/k${i}`), v)));
      const writeMs = performance.now() - t0;
      h.disable();
      const maxDelayMs = h.max / 1e6;
      const writesPerSec = (values.length * 1000) / writeMs;

      const before = await backend.stats();
      const reads = 10_000;
      let issued = 0;
      const r0 = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (issued < reads) {
            const i = issued++ % values.length;
            const got = await backend.get(rp(`perf/write/k${i}`));
            if (got.byteLength !== 1024) throw new Error('short read');
          }
        }),
      );
      const readsPerSec = (reads * 1000) / (performance.now() - r0);
      const after = await backend.stats();

      const figures =
        `PKCS#11 figures (SoftHSM2): 50 concurrent 1 KiB writes in ${writeMs.toFixed(0)} ms = ${writesPerSec.toFixed(0)} writes/s, ` +
        `event-loop delay max ${maxDelayMs.toFixed(1)} ms (p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms); ` +
        `cached reads ${readsPerSec.toFixed(0)}/s (1 KiB, 16 in flight)`;
      t.log(figures);
      console.log(figures);
      // Targets: delay < 20 ms, reads >= 5,000/s. Asserted with margin against CI noise.
      // Figures and their targets live in `npm run bench:backends`; here only gross failures count
      // (HSM calls on the event loop block it for seconds; a loaded CI machine must not flake this).
      t.true(maxDelayMs < 1000, `event loop blocked for ${maxDelayMs} ms during HSM writes (calls not on the worker?)`);
      t.true(readsPerSec >= 200, `only ${readsPerSec.toFixed(0)} cached reads/s`);
      t.is(after.findCalls, before.findCalls, 'cached reads must not call C_FindObjects');
      t.is(after.valueReads - before.valueReads, reads);
    } finally {
      await backend.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // What lands on the token.

  test('Pkcs11: resources are persistent generic-secret token objects labelled repo/type/tag, readable back', async (t) => {
    const backend = recording(await open('format'));
    let objects: RawObject[];
    try {
      await backend.put(rp('default/key/one'), enc('first'));
      await backend.put(rp('default/key/one'), enc('second'));
      await backend.put(rp('default/key/empty'), new Uint8Array(0));
      const raw = await rawPkcs11(hsm, 'format', [{ op: 'list' }]);
      objects = (raw[0] as { objects: RawObject[] }).objects;
    } finally {
      await backend.close();
    }
    t.deepEqual(
      objects.map((o) => [o.label, o.valueB64]),
      [
        ['default/key/empty', ''],
        ['default/key/one', b64('second')],
      ],
      'the overwrite left exactly one object',
    );
    for (const o of objects) {
      t.like(o, { class: 4 /* CKO_SECRET_KEY */, keyType: 0x10 /* CKK_GENERIC_SECRET */, token: true, private: true, sensitive: false, extractable: true });
      t.true(o.idHex.startsWith(Buffer.from('kbs1').toString('hex')));
    }
    const one = decodeObjectId(Buffer.from(objects[1]!.idHex, 'hex'));
    t.is(one?.generation, 2n);
    t.true(Math.abs((one?.updatedAtMs ?? 0) - Date.now()) < 60_000);

    // Token objects survive close: a new backend finds them with one scan.
    const again = await open('format');
    try {
      t.is(text(await again.get(rp('default/key/one'))), 'second');
      t.is((await again.get(rp('default/key/empty'))).byteLength, 0);
      const list = await again.list();
      t.deepEqual(
        list.map((i) => [i.path, i.size]),
        [
          ['default/key/empty', 0],
          ['default/key/one', 6],
        ],
      );
      t.is(list[1]!.updatedAt.getTime(), one?.updatedAtMs ?? -1, 'updatedAt comes from CKA_ID');
      t.like(await again.stats(), { scans: 1, findCalls: 1, objects: 2 });
    } finally {
      await again.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // Cache.

  test('Pkcs11: the label→handle cache: get, list, put, delete and misses never call C_FindObjects', async (t) => {
    const backend = recording(await open('cache'));
    try {
      const opened = await backend.stats();
      t.like(opened, { scans: 1, findCalls: 1, objects: 0 });
      for (let i = 0; i < 20; i++) await backend.put(rp(`r/t/k${i}`), enc(`v${i}`));
      const s0 = await backend.stats();
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 20; i++) t.is(text(await backend.get(rp(`r/t/k${i}`))), `v${i}`);
      }
      await capture(t, backend.get(rp('r/t/missing')), 'NOT_FOUND');
      t.is((await backend.list()).length, 20);
      await backend.put(rp('r/t/k0'), enc('new'));
      await backend.delete(rp('r/t/k1'));
      await capture(t, backend.get(rp('r/t/k1')), 'NOT_FOUND');
      t.is(text(await backend.get(rp('r/t/k0'))), 'new');
      const s1 = await backend.stats();
      t.is(s1.findCalls, s0.findCalls, 'no C_FindObjectsInit after the scan at open');
      t.is(s1.findCalls, 1);
      t.is(s1.valueReads - s0.valueReads, 101);
      t.like(s1, { objects: 19, creates: 21, destroys: 2, reconnects: 0 });
    } finally {
      await backend.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // Token selection and login.

  test('Pkcs11: wrong PIN is UNAVAILABLE "wrong PIN for token …" and never shows the PIN', async (t) => {
    const wrongPin = `wrong-${randomBytes(10).toString('hex')}`;
    const err = await capture(t, Pkcs11Backend.open({ module: hsm.module, tokenLabel: 'wrongpin', pin: wrongPin, logger }), 'UNAVAILABLE');
    t.regex(err.message, /^wrong PIN for token "wrongpin" \(CKR_PIN_INCORRECT\)$/);
    for (const s of [err.message, String(err.stack), inspect(err, { depth: 5, showHidden: true })]) {
      t.false(s.includes(wrongPin));
      t.false(s.includes(hsm.pin));
    }
    secrets.push(wrongPin);
    const leaks = logsOf().filter((l) => l.includes(wrongPin));
    t.deepEqual(leaks, []);
    // The right PIN still works: a wrong one does not lock SoftHSM's token.
    const ok = await open('wrongpin');
    await ok.close();
  });

  test('Pkcs11: unknown token label, bad slot_index, missing module: clear UNAVAILABLE errors; bad options are refused', async (t) => {
    const noToken = await capture(t, open('no-such-token'), 'UNAVAILABLE');
    t.regex(noToken.message, /no initialised token labelled "no-such-token" in PKCS#11 module ".*libsofthsm2\.so"; initialised tokens: .*"wrongpin"/);
    const slot = await capture(t, Pkcs11Backend.open({ module: hsm.module, slotIndex: 999, pin: hsm.pin }), 'UNAVAILABLE');
    t.regex(slot.message, /slot_index 999 is out of range: .* has \d+ slot\(s\) with a token present/);
    const missing = await capture(t, Pkcs11Backend.open({ module: '/nonexistent/libpkcs11.so', pin: hsm.pin }), 'UNAVAILABLE');
    t.regex(missing.message, /cannot load PKCS#11 module "\/nonexistent\/libpkcs11\.so"/);
    await t.throwsAsync(Pkcs11Backend.open({ module: hsm.module, slotIndex: 0, tokenLabel: 'perf', pin: hsm.pin }), { instanceOf: RangeError, message: /not both/ });
    await t.throwsAsync(Pkcs11Backend.open({ module: hsm.module, slotIndex: -1, pin: hsm.pin }), { instanceOf: RangeError });
    await t.throwsAsync(Pkcs11Backend.open({ module: hsm.module, tokenLabel: 'perf', pin: '' }), { instanceOf: TypeError });
    await t.throwsAsync(Pkcs11Backend.open({ module: hsm.module, tokenLabel: 'perf', pin: hsm.pin, callTimeoutMs: 0 }), { instanceOf: RangeError });
  });

  test('Pkcs11: the first slot with an initialised token is used when neither slot_index nor token_label is given', async (t) => {
    // Its own SoftHSM and process: two tokens plus SoftHSM's free (uninitialised) slot.
    const own = setupSoftHsm({ tokens: ['first-a', 'first-b'], setProcessEnv: false });
    try {
      const slotsResult = (await rawPkcs11(own, 'first-a', [{ op: 'slots' }]))[0] as { slots: Array<{ label: string; initialized: boolean }> };
      const slots = slotsResult.slots;
      t.is(slots.length, 3);
      const firstInit = slots.findIndex((s) => s.initialized);
      const otherInit = slots.findIndex((s, i) => s.initialized && i !== firstInit);
      const uninit = slots.findIndex((s) => !s.initialized);
      t.true(firstInit >= 0 && otherInit >= 0 && uninit >= 0);
      const r = await runBackendChild(own, [
        { op: 'open' },
        { op: 'put', path: 'first/slot/marker', valueB64: b64('here') },
        { op: 'close' },
        { op: 'open', slotIndex: firstInit },
        { op: 'get', path: 'first/slot/marker' },
        { op: 'close' },
        { op: 'open', slotIndex: otherInit },
        { op: 'get', path: 'first/slot/marker' },
        { op: 'close' },
        { op: 'open', slotIndex: uninit },
        { op: 'open', tokenLabel: slots[firstInit]!.label },
        { op: 'get', path: 'first/slot/marker' },
      ]);
      t.like(r[0], { ok: true, tokenLabel: slots[firstInit]!.label });
      t.like(r[3], { ok: true, tokenLabel: slots[firstInit]!.label });
      t.like(r[4], { ok: true, valueB64: b64('here') });
      t.like(r[6], { ok: true, tokenLabel: slots[otherInit]!.label });
      t.like(r[7], { ok: false, code: 'NOT_FOUND' });
      t.like(r[9], { ok: false, code: 'UNAVAILABLE' });
      t.regex(r[9]?.message ?? '', new RegExp(`the token at slot_index ${uninit} is not initialised`));
      t.like(r[11], { ok: true, valueB64: b64('here') });
      observed.push(...r.map((x) => `${x.message ?? ''} ${(x.logs ?? []).join('\n')}`));
    } finally {
      await own.cleanup();
    }
  });

  test('Pkcs11: openBackend({ type: "Pkcs11" }) opens the backend; default limit is 1 MiB', async (t) => {
    const backend = await openBackend({ type: 'Pkcs11', module: hsm.module, tokenLabel: 'config', pin: hsm.pin, logger });
    try {
      t.true(backend instanceof Pkcs11Backend);
      t.is(backend.kind, 'Pkcs11');
      t.false(backend.readOnly);
      await backend.put(rp('cfg/key/a'), new Uint8Array(1024 * 1024));
      t.is((await backend.get(rp('cfg/key/a'))).byteLength, 1024 * 1024);
      await capture(t, backend.put(rp('cfg/key/a'), new Uint8Array(1024 * 1024 + 1)), 'TOO_LARGE');
      const shown = inspect(backend, { depth: 10, showHidden: true });
      t.false(shown.includes(hsm.pin));
      observed.push(shown, JSON.stringify(await (backend as Pkcs11Backend).stats()));
    } finally {
      await backend.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // Overwrite safety.

  test('Pkcs11: a refused overwrite (over the size limit) keeps the old value and creates nothing', async (t) => {
    const backend = recording(await open('limit', { maxValueBytes: 1024 }));
    try {
      await backend.put(rp('default/key/k'), enc('old value'));
      const err = await capture(t, backend.put(rp('default/key/k'), new Uint8Array(2048)), 'TOO_LARGE');
      t.regex(err.message, /2048 bytes, above the limit of 1024 bytes; the previous value is unchanged/);
      t.is(text(await backend.get(rp('default/key/k'))), 'old value');
      const raw = (await rawPkcs11(hsm, 'limit', [{ op: 'list' }]))[0] as { objects: RawObject[] };
      t.deepEqual(
        raw.objects.map((o) => [o.label, o.valueB64]),
        [['default/key/k', b64('old value')]],
      );
    } finally {
      await backend.close();
    }
  });

  const mountTest = canUnshareMount() ? test : test.skip;

  // SoftHSM finding: after a create fails on a full disk it leaves the partial object file behind,
  // and later small creates report success but are written as empty files (lost at restart). So
  // this test asserts only what the backend controls: the failed overwrite keeps the old value,
  // now and after a restart.
  mountTest('Pkcs11: a full token (SoftHSM token dir on a 256 KiB tmpfs): the overwrite fails with IO and the old value stays', async (t) => {
    const own = setupSoftHsm({ tokens: ['full'], setProcessEnv: false, skipInit: true });
    try {
      const big = randomBytes(300 * 1024);
      const r = await runBackendChild(
        own,
        [
          { op: 'init-token', label: 'full' },
          { op: 'open', tokenLabel: 'full' },
          { op: 'put', path: 'default/key/k', valueB64: b64('old value') },
          { op: 'put', path: 'default/key/k', valueB64: b64(big) },
          { op: 'get', path: 'default/key/k' },
          { op: 'list' },
          { op: 'close' },
          { op: 'open', tokenLabel: 'full' },
          { op: 'get', path: 'default/key/k' },
          { op: 'list' },
          { op: 'stats' },
        ],
        { unshareMount: tmpfsMount(own.tokenDir, '256k', 'kbs-softhsm') },
      );
      t.like(r[1], { ok: true, tokenLabel: 'full' });
      t.like(r[2], { ok: true });
      t.like(r[3], { ok: false, code: 'IO' });
      t.regex(r[3]?.message ?? '', /token "full" failed during put of default\/key\/k \(CKR_GENERAL_ERROR\).*full or not writable; the previous value is unchanged/);
      t.like(r[4], { ok: true, valueB64: b64('old value') });
      t.deepEqual(r[5]?.list, [['default/key/k', 9]]);
      t.like(r[8], { ok: true, valueB64: b64('old value') });
      t.deepEqual(r[9]?.list, [['default/key/k', 9]]);
      t.like(r[10]?.stats, { duplicatesDestroyed: 0, objects: 1 });
      observed.push(...r.map((x) => `${x.message ?? ''} ${(x.logs ?? []).join('\n')}`));
    } finally {
      await own.cleanup();
    }
  });

  test('Pkcs11: duplicate labels at open: the newest generation wins and older copies are destroyed; foreign objects are kept', async (t) => {
    const now = Date.now();
    const id = (gen: bigint, ms: number): string => encodeObjectId(gen, ms, randomBytes(4)).toString('hex');
    const setup = await rawPkcs11(hsm, 'dups', [
      // An overwrite interrupted between "create new" and "destroy old" (created newest first on purpose).
      { op: 'create', label: 'default/key/a', valueB64: b64('new'), idHex: id(2n, now) },
      { op: 'create', label: 'default/key/a', valueB64: b64('old'), idHex: id(1n, now + 5_000) },
      // One of ours over a key provisioned by another tool.
      { op: 'create', label: 'default/key/b', valueB64: b64('foreign') },
      { op: 'create', label: 'default/key/b', valueB64: b64('mine'), idHex: id(1n, now) },
      // Two keys provisioned by another tool with the same label.
      { op: 'create', label: 'default/key/c', valueB64: b64('f1') },
      { op: 'create', label: 'default/key/c', valueB64: b64('f2') },
      // Not resources: a non-path label, a data object, a non-extractable key.
      { op: 'create', label: 'not a resource path', valueB64: b64('x') },
      { op: 'create', label: 'data/obj/d', valueB64: b64('x'), cls: 'data' },
      { op: 'create', label: 'default/key/locked', valueB64: b64('secret'), sensitive: true, extractable: false },
    ]);
    t.true(setup.every((r) => r.ok), JSON.stringify(setup));

    const backend = recording(await open('dups'));
    try {
      t.is(text(await backend.get(rp('default/key/a'))), 'new');
      t.is(text(await backend.get(rp('default/key/b'))), 'mine');
      t.true(['f1', 'f2'].includes(text(await backend.get(rp('default/key/c')))));
      const locked = await capture(t, backend.get(rp('default/key/locked')), 'IO');
      t.regex(locked.message, /sensitive or non-extractable key; its value cannot be read \(CKR_ATTRIBUTE_SENSITIVE\)/);
      t.deepEqual(
        (await backend.list()).map((i) => [i.path, i.size]),
        [
          ['default/key/a', 3],
          ['default/key/b', 4],
          ['default/key/c', 2],
          ['default/key/locked', 6],
        ],
      );
      t.like(await backend.stats(), { duplicatesDestroyed: 2, ignoredObjects: 1, scans: 1 });
      t.true(logsOf().some((l) => /resolved 2 objects labelled default\/key\/a .*kept generation 2, destroyed 1/.test(l)));
      t.true(logsOf().some((l) => /2 objects on token "dups" are labelled default\/key\/c; serving the first found/.test(l)));

      const rawList = async (): Promise<Array<[string, string | null]>> =>
        ((await rawPkcs11(hsm, 'dups', [{ op: 'list' }]))[0] as { objects: RawObject[] }).objects.map((o) => [o.label, o.valueB64]);
      const afterOpen = await rawList();
      t.deepEqual(
        afterOpen.filter(([l]) => l !== 'default/key/c'),
        [
          ['data/obj/d', b64('x')],
          ['default/key/a', b64('new')],
          ['default/key/b', b64('mine')],
          ['default/key/locked', null],
          ['not a resource path', b64('x')],
        ],
      );
      t.deepEqual(afterOpen.filter(([l]) => l === 'default/key/c').map(([, v]) => v).sort(), [b64('f1'), b64('f2')]);

      // Writing a label replaces every object carrying it; deleting removes them all.
      await backend.put(rp('default/key/c'), enc('replaced'));
      await backend.delete(rp('default/key/b'));
      const afterWrite = await rawList();
      t.deepEqual(afterWrite.filter(([l]) => l.startsWith('default/key/b') || l.startsWith('default/key/c')), [['default/key/c', b64('replaced')]]);
    } finally {
      await backend.close();
    }
    const again = await open('dups');
    try {
      t.like(await again.stats(), { duplicatesDestroyed: 0, objects: 3 });
      t.is(text(await again.get(rp('default/key/c'))), 'replaced');
    } finally {
      await again.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // Session loss, deadlines.

  test('Pkcs11: after a logout or closed sessions the backend logs in again, rescans and retries once', async (t) => {
    const backend = recording(await open('relogin'));
    try {
      await backend.put(rp('default/key/k'), enc('v1'));
      await backend.simulateSessionLoss('logout');
      t.is(text(await backend.get(rp('default/key/k'))), 'v1');
      t.like(await backend.stats(), { reconnects: 1, scans: 2 });
      await backend.simulateSessionLoss('close-all-sessions');
      await backend.put(rp('default/key/k'), enc('v2'));
      t.is(text(await backend.get(rp('default/key/k'))), 'v2');
      t.like(await backend.stats(), { reconnects: 2, scans: 3 });
      await backend.simulateSessionLoss('logout');
      await t.notThrowsAsync(backend.check());
      t.like(await backend.stats(), { reconnects: 3 });
      await backend.simulateSessionLoss('close-all-sessions');
      // list() is served from the cache without touching the token; the delete finds the session gone.
      t.deepEqual(
        (await backend.list()).map((i) => [i.path, i.size]),
        [['default/key/k', 2]],
      );
      await backend.put(rp('default/key/gone'), enc('x'));
      await backend.delete(rp('default/key/gone'));
      t.like(await backend.stats(), { reconnects: 4, objects: 1 });
      const raw = (await rawPkcs11(hsm, 'relogin', [{ op: 'list' }]))[0] as { objects: RawObject[] };
      t.deepEqual(
        raw.objects.map((o) => [o.label, o.valueB64]),
        [['default/key/k', b64('v2')]],
      );
      t.true(logsOf().some((l) => /re-opened the session with token "relogin" and logged in again after CKR_USER_NOT_LOGGED_IN/.test(l)));
      t.true(logsOf().some((l) => /re-opened the session with token "relogin" and logged in again after CKR_SESSION_HANDLE_INVALID/.test(l)));
    } finally {
      await backend.close();
    }
  });

  test.serial('Pkcs11: a stuck HSM call gives UNAVAILABLE at the deadline instead of hanging; later calls work again', async (t) => {
    const backend = recording(await open('timeout', { callTimeoutMs: 300 }));
    try {
      await backend.put(rp('default/key/k'), enc('v'));
      const stall = backend.simulateStall(4_000).then(
        () => null,
        (e: unknown) => e,
      );
      const t0 = performance.now();
      const err = await capture(t, backend.get(rp('default/key/k')), 'UNAVAILABLE');
      const waited = performance.now() - t0;
      t.regex(err.message, /PKCS#11 get of default\/key\/k on token "timeout" did not complete within 300 ms/);
      t.true(waited < 3_000, `waited ${waited} ms (a 300 ms deadline must not wait for the 4 s stuck call)`);
      t.true((await stall) instanceof BackendError);
      await delay(4_000);
      t.is(text(await backend.get(rp('default/key/k'))), 'v');
    } finally {
      await backend.close();
    }
  });

  // -------------------------------------------------------------------------------------------------
  // The PIN.

  test.after('Pkcs11: the PIN never appears in any error, log line, stats or inspection of this run', (t) => {
    t.true(observed.length > 20, `only ${observed.length} observations`);
    const leaks = observed.filter((o) => secrets.some((s) => o.includes(s)));
    t.deepEqual(leaks, []);
  });
}
