/**
 * The behaviour every StorageBackend must have. A backend's test file calls
 * `backendContract('<Name>', open)`; `open` returns a fresh, empty, writable backend and a cleanup
 * function. Each test opens its own backend, so tests run concurrently.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import {
  BackendError,
  formatResourcePath,
  parseResourcePath,
  resourcePathFromString,
  type BackendErrorCode,
  type ResourcePath,
  type StorageBackend,
} from '../backends/index.js';

export interface OpenedBackend {
  backend: StorageBackend;
  cleanup: () => Promise<void>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function rp(repo: string, type: string, tag: string): ResourcePath {
  return parseResourcePath([repo, type, tag]);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** Awaits `promise`, asserting it rejects with a BackendError of `code`; returns the error. */
export async function expectBackendError(
  t: ExecutionContext,
  promise: Promise<unknown>,
  code: BackendErrorCode,
): Promise<BackendError> {
  const err = await t.throwsAsync(promise, { instanceOf: BackendError });
  if (err === undefined) throw new Error('unreachable: throwsAsync failed');
  t.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
  t.is(err.name, 'BackendError');
  t.true(err.message.length > 0);
  return err;
}

/** Resource paths that must be refused with INVALID_PATH, as raw segments. */
export const INVALID_SEGMENT_TRIPLES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['dot-dot repo', ['..', 'type', 'tag']],
  ['dot-dot type', ['repo', '..', 'tag']],
  ['dot-dot tag', ['repo', 'type', '..']],
  ['dot', ['repo', '.', 'tag']],
  ['empty repo', ['', 'type', 'tag']],
  ['empty tag', ['repo', 'type', '']],
  ['slash inside a segment', ['a/b', 'type', 'tag']],
  ['traversal inside a segment', ['repo', 'type', '../../etc/passwd']],
  ['backslash', ['repo', 'type', 'a\\b']],
  ['NUL byte', ['repo', 'type', 'a\u0000b']],
  ['leading dot', ['repo', 'type', '.hidden']],
  ['CSI ..data name', ['default', 'akv', '..data']],
  ['space', ['repo', 'type', 'a b']],
  ['trailing newline', ['repo', 'type', 'tag\n']],
  ['256-byte segment', ['repo', 'type', 'a'.repeat(256)]],
  ['very long segment', ['repo', 'x'.repeat(10_000), 'tag']],
  ['unicode letter', ['repo', 'type', 'clé']],
  ['unicode script', ['ключ', 'type', 'tag']],
  ['emoji', ['repo', 'type', 'key🔑']],
  ['fullwidth dot-dot', ['repo', 'type', '\uff0e\uff0e']],
  ['colon', ['repo', 'type', 'a:b']],
];

/** Valid corner cases of the segment grammar. */
export const VALID_SEGMENT_TRIPLES: ReadonlyArray<readonly [string, string, string]> = [
  ['a', 'b', 'c'],
  ['default', 'key', 'a..b'],
  ['-', '_', 'x.'],
  ['repo_1', 'type-2', 'tag.3.json'],
  ['R', 'T', 'a'.repeat(255)],
];

const INVALID_STRINGS: readonly string[] = ['', 'a', 'a/b', 'a/b/c/d', '/a/b/c', 'a/b/c/', 'a//c', 'a/../c', './b/c', 'a/b/c\u0000'];

/** What a backend cannot hold: sizes above `maxValueBytes` are scaled down to it (e.g. Key Vault's 25 KB). */
export interface ContractLimits {
  maxValueBytes?: number;
}

export function backendContract(name: string, open: () => Promise<OpenedBackend>, limits: ContractLimits = {}): void {
  const cap = (n: number): number => Math.min(n, limits.maxValueBytes ?? n);
  const withBackend = (title: string, fn: (t: ExecutionContext, backend: StorageBackend) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => {
      const { backend, cleanup } = await open();
      try {
        await fn(t, backend);
      } finally {
        await backend.close();
        await cleanup();
      }
    });
  };

  withBackend('identity: kind is named, fresh backend is writable and ready', async (t, backend) => {
    t.is(typeof backend.kind, 'string');
    t.true(backend.kind.length > 0);
    t.false(backend.readOnly);
    await t.notThrowsAsync(backend.check());
    t.deepEqual(await backend.list(), []);
  });

  withBackend('put/get round trip: empty, 1 byte, binary with NULs, 1 MiB', async (t, backend) => {
    const binary = new Uint8Array(512);
    for (let i = 0; i < 256; i++) binary[i] = i; // every byte value, then zeros
    binary[300] = 0xff;
    const values: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['one', Uint8Array.of(0x41)],
      ['nul', Uint8Array.of(0)],
      ['binary', binary],
      ['mib', new Uint8Array(randomBytes(cap(1024 * 1024)))],
    ];
    for (const [tag, value] of values) await backend.put(rp('default', 'roundtrip', tag), value);
    for (const [tag, value] of values) {
      const got = await backend.get(rp('default', 'roundtrip', tag));
      t.true(got instanceof Uint8Array, tag);
      t.is(got.byteLength, value.byteLength, tag);
      t.true(sameBytes(got, value), `${tag} differs after round trip`);
    }
  });

  withBackend('values are copies: mutating the caller buffers does not change what is stored', async (t, backend) => {
    const p = rp('default', 'copy', 'k');
    const value = enc('original');
    await backend.put(p, value);
    value.fill(0x58);
    const got = await backend.get(p);
    t.true(sameBytes(got, enc('original')));
    got.fill(0x59);
    t.true(sameBytes(await backend.get(p), enc('original')));
  });

  withBackend('valid corner cases of the path grammar round trip', async (t, backend) => {
    for (const [repo, type, tag] of VALID_SEGMENT_TRIPLES) {
      const p = rp(repo, type, tag);
      await backend.put(p, enc(`v:${formatResourcePath(p)}`));
    }
    for (const [repo, type, tag] of VALID_SEGMENT_TRIPLES) {
      const p = rp(repo, type, tag);
      t.true(sameBytes(await backend.get(p), enc(`v:${formatResourcePath(p)}`)), formatResourcePath(p));
    }
    const listed = (await backend.list()).map((i) => i.path).sort();
    t.deepEqual(listed, VALID_SEGMENT_TRIPLES.map((s) => s.join('/')).sort());
  });

  withBackend('overwrite replaces the value (longer, then shorter)', async (t, backend) => {
    const p = rp('default', 'key', 'over');
    await backend.put(p, enc('first value'));
    await backend.put(p, enc('a much longer second value'));
    t.true(sameBytes(await backend.get(p), enc('a much longer second value')));
    await backend.put(p, enc('3rd'));
    t.true(sameBytes(await backend.get(p), enc('3rd')));
    await backend.put(p, new Uint8Array(0));
    t.is((await backend.get(p)).byteLength, 0);
    const list = await backend.list();
    t.deepEqual(
      list.map((i) => [i.path, i.size]),
      [['default/key/over', 0]],
    );
  });

  withBackend('delete removes only the named resource; it can be written again', async (t, backend) => {
    const a = rp('default', 'key', 'a');
    const b = rp('default', 'key', 'b');
    await backend.put(a, enc('A'));
    await backend.put(b, enc('B'));
    await backend.delete(a);
    await expectBackendError(t, backend.get(a), 'NOT_FOUND');
    t.true(sameBytes(await backend.get(b), enc('B')));
    t.deepEqual(
      (await backend.list()).map((i) => i.path),
      ['default/key/b'],
    );
    await backend.put(a, enc('A2'));
    t.true(sameBytes(await backend.get(a), enc('A2')));
  });

  withBackend('delete of a missing resource is NOT_FOUND', async (t, backend) => {
    await expectBackendError(t, backend.delete(rp('nope', 'nope', 'nope')), 'NOT_FOUND');
    await backend.put(rp('default', 'key', 'present'), enc('x'));
    await expectBackendError(t, backend.delete(rp('default', 'key', 'absent')), 'NOT_FOUND');
    await expectBackendError(t, backend.delete(rp('default', 'other', 'present')), 'NOT_FOUND');
    await backend.delete(rp('default', 'key', 'present'));
    await expectBackendError(t, backend.delete(rp('default', 'key', 'present')), 'NOT_FOUND');
  });

  withBackend('get of a missing resource is NOT_FOUND', async (t, backend) => {
    await expectBackendError(t, backend.get(rp('nope', 'nope', 'nope')), 'NOT_FOUND');
    await backend.put(rp('default', 'key', 'present'), enc('x'));
    await expectBackendError(t, backend.get(rp('default', 'key', 'absent')), 'NOT_FOUND');
    // A prefix of an existing path is not a resource.
    await expectBackendError(t, backend.get(rp('default', 'key', 'presen')), 'NOT_FOUND');
    await expectBackendError(t, backend.get(rp('default', 'ke', 'present')), 'NOT_FOUND');
  });

  withBackend('list reports paths and sizes, never values', async (t, backend) => {
    const marker = `SECRET-${randomBytes(8).toString('hex')}`;
    const entries: Array<[string, Uint8Array]> = [
      ['default/key/one', enc(marker)],
      ['default/key/two', enc(marker + marker)],
      ['default/cert/ca.pem', enc(`${marker}-pem`)],
      ['other/type/empty', new Uint8Array(0)],
      ['other/type/big', new Uint8Array(cap(200_000)).fill(7)],
    ];
    const before = Date.now();
    for (const [p, v] of entries) await backend.put(resourcePathFromString(p), v);
    const list = await backend.list();
    t.deepEqual(
      [...list].map((i) => [i.path, i.size]).sort(),
      entries.map(([p, v]) => [p, v.byteLength]).sort(),
    );
    for (const info of list) {
      t.deepEqual(Object.keys(info).sort(), ['path', 'size', 'updatedAt']);
      t.true(info.updatedAt instanceof Date && !Number.isNaN(info.updatedAt.getTime()));
      // Generous bounds: file systems may round timestamps.
      t.true(info.updatedAt.getTime() >= before - 5_000 && info.updatedAt.getTime() <= Date.now() + 5_000);
      t.is(formatResourcePath(resourcePathFromString(info.path)), info.path);
    }
    t.false(JSON.stringify(list).includes(marker));
  });

  withBackend('concurrent writers to one key never produce a mixed value', async (t, backend) => {
    const p = rp('default', 'race', 'key');
    const size = cap(256 * 1024);
    const patterns = Array.from({ length: 20 }, (_, i) => {
      const v = new Uint8Array(size);
      // A distinct byte per writer plus its index at both ends: a torn value cannot look whole.
      v.fill(i + 1);
      v[0] = i;
      v[size - 1] = i;
      return v;
    });
    const matches = (got: Uint8Array): boolean => patterns.some((v) => sameBytes(got, v));

    await backend.put(p, patterns[0]!);
    let reads = 0;
    let torn = 0;
    let writing = true;
    const reader = async (): Promise<void> => {
      while (writing) {
        const got = await backend.get(p);
        reads++;
        if (!matches(got)) torn++;
      }
    };
    const readers = Array.from({ length: 4 }, () => reader());
    // Several rounds of 20 parallel writers, so readers overlap many replacements.
    for (let round = 0; round < 5; round++) {
      await Promise.all(patterns.map((v) => backend.put(p, v)));
      t.true(matches(await backend.get(p)), `round ${round}: value is not exactly one of the written values`);
    }
    writing = false;
    await Promise.all(readers);

    t.is(torn, 0, `${torn} of ${reads} concurrent reads saw a mixed value`);
    t.true(matches(await backend.get(p)), 'final value is not exactly one of the written values');
    t.deepEqual(
      (await backend.list()).map((i) => [i.path, i.size]),
      [['default/race/key', size]],
    );
  });

  withBackend('concurrent writers to distinct keys all land', async (t, backend) => {
    const paths = Array.from({ length: 30 }, (_, i) => rp(`repo${i % 3}`, `type${i % 5}`, `tag${i}`));
    await Promise.all(paths.map((p, i) => backend.put(p, enc(`value-${i}`))));
    const got = await Promise.all(paths.map((p) => backend.get(p)));
    got.forEach((v, i) => t.true(sameBytes(v, enc(`value-${i}`))));
    t.is((await backend.list()).length, paths.length);
  });

  test(`${name}: path parsing refuses malformed paths with INVALID_PATH`, (t) => {
    for (const [label, segs] of INVALID_SEGMENT_TRIPLES) {
      const err = t.throws(() => parseResourcePath(segs), { instanceOf: BackendError }, label);
      t.is(err?.code, 'INVALID_PATH', label);
    }
    for (const s of INVALID_STRINGS) {
      const err = t.throws(() => resourcePathFromString(s), { instanceOf: BackendError }, JSON.stringify(s));
      t.is(err?.code, 'INVALID_PATH', JSON.stringify(s));
    }
    for (const segs of [[], ['a', 'b'], ['a', 'b', 'c', 'd']]) {
      t.is(t.throws(() => parseResourcePath(segs), { instanceOf: BackendError })?.code, 'INVALID_PATH');
    }
    for (const triple of VALID_SEGMENT_TRIPLES) {
      const p = parseResourcePath(triple);
      t.deepEqual([p.repo, p.type, p.tag], [...triple]);
      t.deepEqual(resourcePathFromString(formatResourcePath(p)), p);
    }
  });

  withBackend('invalid paths are refused by get/put/delete before touching storage', async (t, backend) => {
    await backend.put(rp('repo', 'type', 'tag'), enc('keep'));
    const before = await backend.list();
    const bad: ResourcePath[] = INVALID_SEGMENT_TRIPLES.map(([, [repo, type, tag]]) => ({ repo: repo!, type: type!, tag: tag! }));
    // Hand-built objects that bypass the parser, including wrong types.
    bad.push({ repo: 'repo', type: 'type' } as unknown as ResourcePath);
    bad.push({ repo: 1, type: 'type', tag: 'tag' } as unknown as ResourcePath);
    bad.push(null as unknown as ResourcePath);
    for (const p of bad) {
      await expectBackendError(t, backend.put(p, enc('x')), 'INVALID_PATH');
      await expectBackendError(t, backend.get(p), 'INVALID_PATH');
      await expectBackendError(t, backend.delete(p), 'INVALID_PATH');
    }
    t.deepEqual(await backend.list(), before);
    t.true(sameBytes(await backend.get(rp('repo', 'type', 'tag')), enc('keep')));
  });

  withBackend('errors are typed and never carry values', async (t, backend) => {
    const marker = `VALUE-${randomBytes(8).toString('hex')}`;
    const p = rp('default', 'key', 'typed');
    await backend.put(p, enc(marker));
    const errors: BackendError[] = [];
    errors.push(await expectBackendError(t, backend.get(rp('default', 'key', 'missing')), 'NOT_FOUND'));
    errors.push(await expectBackendError(t, backend.delete(rp('default', 'key', 'missing')), 'NOT_FOUND'));
    errors.push(await expectBackendError(t, backend.get({ repo: '..', type: 'key', tag: 'typed' }), 'INVALID_PATH'));
    errors.push(await expectBackendError(t, backend.put({ repo: 'default', type: 'key', tag: '.' }, enc(marker)), 'INVALID_PATH'));
    await backend.delete(p);
    errors.push(await expectBackendError(t, backend.get(p), 'NOT_FOUND'));
    for (const e of errors) {
      t.true(e instanceof Error);
      t.false(e.message.includes(marker));
      t.false(String(e.stack).includes(marker));
    }
  });

  test(`${name}: check() is ready; close() is idempotent and later calls fail with UNAVAILABLE`, async (t) => {
    const { backend, cleanup } = await open();
    try {
      await backend.put(rp('default', 'key', 'k'), enc('v'));
      await t.notThrowsAsync(backend.check());
    } finally {
      await backend.close();
    }
    try {
      await t.notThrowsAsync(backend.close());
      await expectBackendError(t, backend.get(rp('default', 'key', 'k')), 'UNAVAILABLE');
      await expectBackendError(t, backend.put(rp('default', 'key', 'k'), enc('v')), 'UNAVAILABLE');
      await expectBackendError(t, backend.delete(rp('default', 'key', 'k')), 'UNAVAILABLE');
      await expectBackendError(t, backend.list(), 'UNAVAILABLE');
      await expectBackendError(t, backend.check(), 'UNAVAILABLE');
    } finally {
      await cleanup();
    }
  });
}
