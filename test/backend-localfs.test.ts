/**
 * LocalFs: the shared backend contract on a temp directory, then what is specific to files on disk:
 * layout and modes, symlinks (escaping ones refused, the Azure Key Vault CSI `..data` layout served),
 * read-only storage, disk full, crash leftovers and junk in the repository.
 *
 * Read-only and disk-full cases need real EACCES/EROFS/ENOSPC. Tests usually run as root, where
 * chmod does not stop writes, so they run the backend in a child process: as `nobody` (EACCES on a
 * 0555 directory), or inside a private mount namespace (`unshare -m`) with a read-only bind mount
 * (EROFS) or a tiny tmpfs (ENOSPC). The mounts exist only in the child's namespace. Run as a normal
 * user, the EACCES case runs as that user and the mount cases are skipped. The child process and
 * the mounts come from helpers/fs-backend-child.ts and helpers/namespaces.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BackendError,
  LocalFsBackend,
  openBackend,
  parseResourcePath,
  resourcePathFromString,
  type BackendConfig,
  type ResourcePath,
} from '../backends/index.js';
import { backendContract, expectBackendError } from './backend-contract.js';
import { runChild } from './helpers/fs-backend-child.js';
import { canDropPrivileges, canUnshareMount, isRoot, NOBODY, readOnlyBindMount, tmpfsMount } from './helpers/namespaces.js';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');
const rp = (s: string): ResourcePath => resourcePathFromString(s);

async function makeBase(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'kbs-localfs-'));
}

async function removeTree(dir: string): Promise<void> {
  // Restore permissions first: a non-root user cannot delete inside 0555 directories.
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      await fs.chmod(d, 0o755);
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => walk(path.join(d, e.name))));
  };
  await walk(dir);
  await fs.rm(dir, { recursive: true, force: true });
}

/** Every path under `dir` (relative, with a type marker), for before/after comparisons. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      out.push(`${r}${e.isDirectory() ? '/' : e.isSymbolicLink() ? '@' : ''}`);
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

async function withRepo(
  t: ExecutionContext,
  fn: (ctx: { base: string; root: string; backend: LocalFsBackend }) => Promise<void>,
  options: { maxValueBytes?: number } = {},
): Promise<void> {
  const base = await makeBase();
  const root = path.join(base, 'repository');
  const backend = await LocalFsBackend.open({ dirPath: root, ...options });
  try {
    await fn({ base, root, backend });
  } finally {
    await backend.close();
    await removeTree(base);
  }
  t.pass();
}

/** Writes a file, creating parents. */
async function place(file: string, content: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
}

// ---------------------------------------------------------------------------------------------------
// What this machine can do (probed once, synchronously, at load; more in helpers/namespaces.ts).

const hasMkfifo = spawnSync('mkfifo', ['--version'], { stdio: 'ignore' }).status === 0;

const b64 = (s: string | Uint8Array): string => Buffer.from(s).toString('base64');

// ---------------------------------------------------------------------------------------------------
// The shared contract.

backendContract('LocalFs', async () => {
  const base = await makeBase();
  const backend = await LocalFsBackend.open({ dirPath: path.join(base, 'repository') });
  return { backend, cleanup: () => removeTree(base) };
});

// ---------------------------------------------------------------------------------------------------
// Layout, modes, persistence.

test('LocalFs: open creates a missing nested root with mode 0700', async (t) => {
  const base = await makeBase();
  try {
    const root = path.join(base, 'a', 'b', 'repository');
    const backend = await LocalFsBackend.open({ dirPath: root });
    t.is(backend.kind, 'LocalFs');
    t.false(backend.readOnly);
    t.is((await fs.stat(root)).mode & 0o777, 0o700);
    t.deepEqual(await fs.readdir(root), [], 'the writability probe leaves nothing behind');
    await backend.close();
  } finally {
    await removeTree(base);
  }
});

test('LocalFs: resources are files <root>/<repo>/<type>/<tag>, 0600 in 0700 directories, no temp files left', (t) =>
  withRepo(t, async ({ root, backend }) => {
    await backend.put(rp('default/key/k1'), enc('value-1'));
    await backend.put(rp('default/key/k1'), enc('value-1b'));
    await backend.put(rp('default/cert/a..b'), enc('pem'));
    t.is(await fs.readFile(path.join(root, 'default', 'key', 'k1'), 'utf8'), 'value-1b');
    t.is(await fs.readFile(path.join(root, 'default', 'cert', 'a..b'), 'utf8'), 'pem');
    t.is((await fs.stat(path.join(root, 'default', 'key', 'k1'))).mode & 0o777, 0o600);
    t.is((await fs.stat(path.join(root, 'default'))).mode & 0o777, 0o700);
    t.is((await fs.stat(path.join(root, 'default', 'key'))).mode & 0o777, 0o700);
    t.deepEqual(await snapshot(root), ['default/', 'default/cert/', 'default/cert/a..b', 'default/key/', 'default/key/k1']);
    await backend.delete(rp('default/key/k1'));
    t.deepEqual(await fs.readdir(path.join(root, 'default', 'key')), []);
  }));

test('LocalFs: files placed by hand are served, and values persist across reopen', (t) =>
  withRepo(t, async ({ root, backend }) => {
    await place(path.join(root, 'default', 'key', 'manual'), 'tee-d in by kubectl');
    t.deepEqual(await backend.get(rp('default/key/manual')), enc('tee-d in by kubectl'));
    await backend.put(rp('default/key/stored'), enc('kept'));
    const again = await LocalFsBackend.open({ dirPath: root });
    try {
      t.deepEqual(await again.get(rp('default/key/stored')), enc('kept'));
      t.deepEqual(
        (await again.list()).map((i) => i.path),
        ['default/key/manual', 'default/key/stored'],
      );
    } finally {
      await again.close();
    }
  }));

test('LocalFs: openBackend picks LocalFs from configuration and refuses unknown types', async (t) => {
  const base = await makeBase();
  try {
    const backend = await openBackend({ type: 'LocalFs', dirPath: path.join(base, 'repo'), maxValueBytes: 10 });
    t.is(backend.kind, 'LocalFs');
    t.true(backend instanceof LocalFsBackend);
    await expectBackendError(t, backend.put(rp('a/b/c'), new Uint8Array(11)), 'TOO_LARGE');
    await backend.close();
    const err = await t.throwsAsync(openBackend({ type: 'Nope', dirPath: base } as unknown as BackendConfig), {
      instanceOf: BackendError,
    });
    t.regex(err?.message ?? '', /unsupported storage backend type "Nope"/);
  } finally {
    await removeTree(base);
  }
});

test('LocalFs: open fails with UNAVAILABLE when the root is a file or cannot be created', async (t) => {
  const base = await makeBase();
  try {
    await place(path.join(base, 'file'), 'x');
    await expectBackendError(t, LocalFsBackend.open({ dirPath: path.join(base, 'file') }), 'UNAVAILABLE');
    await expectBackendError(t, LocalFsBackend.open({ dirPath: path.join(base, 'file', 'sub') }), 'UNAVAILABLE');
    await t.throwsAsync(LocalFsBackend.open({ dirPath: path.join(base, 'r'), maxValueBytes: -1 }), { instanceOf: RangeError });
  } finally {
    await removeTree(base);
  }
});

test('LocalFs: size limit: put above maxValueBytes and hand-placed oversize files are TOO_LARGE; list still reports them', (t) =>
  withRepo(
    t,
    async ({ root, backend }) => {
      await backend.put(rp('r/t/max'), new Uint8Array(1024).fill(1));
      await expectBackendError(t, backend.put(rp('r/t/over'), new Uint8Array(1025)), 'TOO_LARGE');
      await expectBackendError(t, backend.get(rp('r/t/over')), 'NOT_FOUND');
      await place(path.join(root, 'r', 't', 'placed'), Buffer.alloc(4096, 2));
      const err = await expectBackendError(t, backend.get(rp('r/t/placed')), 'TOO_LARGE');
      t.regex(err.message, /4096 bytes/);
      t.deepEqual(
        (await backend.list()).map((i) => [i.path, i.size]),
        [
          ['r/t/max', 1024],
          ['r/t/placed', 4096],
        ],
      );
    },
    { maxValueBytes: 1024 },
  ));

test('LocalFs: invalid paths touch nothing on disk, inside or outside the root', (t) =>
  withRepo(t, async ({ base, backend }) => {
    await backend.put(rp('repo/type/tag'), enc('x'));
    const before = await snapshot(base);
    const attempts: ResourcePath[] = [
      { repo: '..', type: 'escaped', tag: 'x' },
      { repo: '..', type: '..', tag: 'x' },
      { repo: 'repo', type: 'type', tag: '../../../escaped' },
      { repo: 'a/b', type: 'c', tag: 'd' },
      { repo: '.', type: 'type', tag: 'tag' },
      { repo: 'repo', type: 'type', tag: '.kbs-tmp-000000000000000000000000' },
      { repo: 'repo', type: 'type', tag: 'nul\u0000byte' },
    ];
    for (const p of attempts) {
      await expectBackendError(t, backend.put(p, enc('x')), 'INVALID_PATH');
      await expectBackendError(t, backend.delete(p), 'INVALID_PATH');
      await expectBackendError(t, backend.get(p), 'INVALID_PATH');
    }
    t.deepEqual(await snapshot(base), before);
  }));

test('LocalFs: unexpected layout gives IO errors, not crashes', (t) =>
  withRepo(t, async ({ root, backend }) => {
    await fs.mkdir(path.join(root, 'r', 't', 'adir'), { recursive: true });
    await place(path.join(root, 'filerepo'), 'not a directory');
    await expectBackendError(t, backend.put(rp('r/t/adir'), enc('x')), 'IO');
    await expectBackendError(t, backend.put(rp('filerepo/t/x'), enc('x')), 'IO');
    await expectBackendError(t, backend.get(rp('r/t/adir')), 'NOT_FOUND');
    await expectBackendError(t, backend.delete(rp('r/t/adir')), 'NOT_FOUND');
    await expectBackendError(t, backend.get(rp('filerepo/t/x')), 'NOT_FOUND');
    t.true((await fs.stat(path.join(root, 'r', 't', 'adir'))).isDirectory());
    t.deepEqual(await fs.readdir(path.join(root, 'r', 't')), ['adir'], 'failed puts removed their temp files');
  }));

// ---------------------------------------------------------------------------------------------------
// Symlinks.

test('LocalFs: symlinks leading outside the root are never followed', (t) =>
  withRepo(t, async ({ base, root, backend }) => {
    const outsideSecret = 'OUTSIDE-SECRET-do-not-serve';
    // A sibling whose name shares the root's prefix: a naive startsWith(root) check would accept it.
    const outside = path.join(base, 'repository-evil');
    await place(path.join(outside, 'secret'), outsideSecret);
    await place(path.join(outside, 't', 'secret'), outsideSecret);
    await place(path.join(root, 'r', 't', 'real'), 'inside');
    const links: Array<[string, string]> = [
      ['r/t/abs', path.join(outside, 'secret')],
      ['r/t/rel', '../../../repository-evil/secret'],
      ['r/t/etc', '/etc/hostname'],
      ['r/esc', outside], // type directory pointing out
      ['evil', outside], // repository directory pointing out
      ['r/t/loop', 'loop'],
      ['r/t/dangling', 'does-not-exist'],
      ['r/t/todir', '..'],
    ];
    for (const [link, target] of links) await fs.symlink(target, path.join(root, link));

    for (const p of ['r/t/abs', 'r/t/rel', 'r/t/etc', 'r/esc/secret', 'evil/t/secret', 'r/t/loop', 'r/t/dangling', 'r/t/todir']) {
      const err = await t.throwsAsync(backend.get(rp(p)), { instanceOf: BackendError }, p);
      t.true(err?.code === 'NOT_FOUND' || err?.code === 'INVALID_PATH', `${p}: ${err?.code}`);
      t.false(String(err?.message).includes(outsideSecret));
      const derr = await t.throwsAsync(backend.delete(rp(p)), { instanceOf: BackendError }, p);
      t.true(derr?.code === 'NOT_FOUND' || derr?.code === 'INVALID_PATH', `${p}: ${derr?.code}`);
    }
    t.deepEqual(
      (await backend.list()).map((i) => i.path),
      ['r/t/real'],
    );

    // Writing through a directory symlink that leads out is refused; nothing lands outside.
    await expectBackendError(t, backend.put(rp('evil/t/new'), enc('x')), 'INVALID_PATH');
    await expectBackendError(t, backend.put(rp('r/esc/new'), enc('x')), 'INVALID_PATH');
    await expectBackendError(t, backend.put(rp('evil/newtype/new'), enc('x')), 'INVALID_PATH');
    // A dangling directory symlink is not followed by mkdir either.
    await fs.symlink(path.join(outside, 'not-yet'), path.join(root, 'dangling-repo'));
    await expectBackendError(t, backend.put(rp('dangling-repo/t/new'), enc('x')), 'IO');
    t.deepEqual((await fs.readdir(outside)).sort(), ['secret', 't']);
    t.deepEqual(await fs.readdir(path.join(outside, 't')), ['secret']);

    // Writing a resource whose name is an escaping symlink replaces the link; the target is untouched.
    await backend.put(rp('r/t/abs'), enc('replaced'));
    t.is(await fs.readFile(path.join(outside, 'secret'), 'utf8'), outsideSecret);
    t.true((await fs.lstat(path.join(root, 'r', 't', 'abs'))).isFile());
    t.deepEqual(await backend.get(rp('r/t/abs')), enc('replaced'));
  }));

test('LocalFs: a root reached through a symlink works, and links via that symlink stay inside', async (t) => {
  const base = await makeBase();
  try {
    const real = path.join(base, 'real-repo');
    await place(path.join(real, 'r', 't', 'v'), 'value');
    await fs.symlink(real, path.join(base, 'link-repo'));
    await fs.symlink(path.join(base, 'link-repo', 'r', 't', 'v'), path.join(real, 'r', 't', 'via-link'));
    const backend = await LocalFsBackend.open({ dirPath: path.join(base, 'link-repo') });
    try {
      t.deepEqual(await backend.get(rp('r/t/v')), enc('value'));
      t.deepEqual(await backend.get(rp('r/t/via-link')), enc('value'));
      await backend.put(rp('r/t/w'), enc('w'));
      t.is(await fs.readFile(path.join(real, 'r', 't', 'w'), 'utf8'), 'w');
    } finally {
      await backend.close();
    }
  } finally {
    await removeTree(base);
  }
});

/** The Secrets Store CSI driver's atomic-writer layout, as found in a mounted volume. */
async function makeCsiLayout(dir: string, secrets: Record<string, string>, stamp = '..2024_01_01_00_00_00.000000001'): Promise<void> {
  await fs.mkdir(path.join(dir, stamp), { recursive: true });
  for (const [name, value] of Object.entries(secrets)) await fs.writeFile(path.join(dir, stamp, name), value);
  await fs.symlink(stamp, path.join(dir, '..data'));
  for (const name of Object.keys(secrets)) await fs.symlink(path.join('..data', name), path.join(dir, name));
}

test('LocalFs: Azure Key Vault CSI layout (..data symlinks inside the root) is served as-is', (t) =>
  withRepo(t, async ({ root, backend }) => {
    const akv = path.join(root, 'default', 'akv');
    await makeCsiLayout(akv, { coco_one: 'a secret', coco_two: 'another secret!' });
    await fs.symlink('default', path.join(root, 'alias')); // a repository symlinked inside the root

    t.deepEqual(await backend.get(rp('default/akv/coco_one')), enc('a secret'));
    t.deepEqual(await backend.get(rp('alias/akv/coco_two')), enc('another secret!'));
    await expectBackendError(t, backend.get({ repo: 'default', type: 'akv', tag: '..data' }), 'INVALID_PATH');
    t.deepEqual(
      (await backend.list()).map((i) => [i.path, i.size]),
      [
        ['alias/akv/coco_one', 8],
        ['alias/akv/coco_two', 15],
        ['default/akv/coco_one', 8],
        ['default/akv/coco_two', 15],
      ],
    );

    // The driver rotates secrets by writing a new timestamped directory and swapping ..data.
    const stamp2 = '..2024_01_02_00_00_00.000000002';
    await fs.mkdir(path.join(akv, stamp2));
    await fs.writeFile(path.join(akv, stamp2, 'coco_one'), 'rotated');
    await fs.writeFile(path.join(akv, stamp2, 'coco_two'), 'rotated 2');
    await fs.symlink(stamp2, path.join(akv, '..data_tmp'));
    await fs.rename(path.join(akv, '..data_tmp'), path.join(akv, '..data'));
    t.deepEqual(await backend.get(rp('default/akv/coco_one')), enc('rotated'));

    // Deleting a symlinked resource removes the link, never the file it points to.
    await backend.delete(rp('default/akv/coco_two'));
    await t.throwsAsync(fs.lstat(path.join(akv, 'coco_two')));
    t.is(await fs.readFile(path.join(akv, stamp2, 'coco_two'), 'utf8'), 'rotated 2');
  }));

// ---------------------------------------------------------------------------------------------------
// Read-only storage, disk full (child processes; see the header).

const eaccesTest = isRoot && !canDropPrivileges() ? test.skip : test;
eaccesTest('LocalFs: unwritable directories (EACCES) give READ_ONLY on put/delete, reads still work', async (t) => {
  const base = await makeBase();
  try {
    const childUid = isRoot ? NOBODY : undefined;
    await fs.chmod(base, 0o755);
    // Scenario 1: the whole root is unwritable -> opened read-only.
    const roRoot = path.join(base, 'ro-root');
    await place(path.join(roRoot, 'default', 'key', 'k'), 'served');
    // Scenario 2: the root is writable, one type directory is not.
    const rwRoot = path.join(base, 'rw-root');
    await place(path.join(rwRoot, 'default', 'locked', 'k'), 'locked value');
    await fs.mkdir(path.join(rwRoot, 'default', 'open'), { recursive: true });
    if (childUid !== undefined) {
      for (const p of await snapshot(base)) await fs.lchown(path.join(base, p.replace(/[/@]$/, '')), childUid, childUid);
      await fs.chown(base, childUid, childUid);
    }
    for (const d of [roRoot, path.join(roRoot, 'default'), path.join(roRoot, 'default', 'key'), path.join(rwRoot, 'default', 'locked')]) {
      await fs.chmod(d, 0o555);
    }
    const how = childUid === undefined ? {} : { uid: childUid };

    const r1 = await runChild(
      [
        { op: 'open', dir: roRoot },
        { op: 'get', path: 'default/key/k' },
        { op: 'list' },
        { op: 'put', path: 'default/key/k', value: b64('new') },
        { op: 'put', path: 'other/type/x', value: b64('new') },
        { op: 'delete', path: 'default/key/k' },
        { op: 'get', path: 'default/key/k' },
      ],
      how,
    );
    t.like(r1[0], { ok: true, readOnly: true });
    t.like(r1[1], { ok: true, value: b64('served') });
    t.deepEqual(r1[2]?.list, [['default/key/k', 6]]);
    t.like(r1[3], { ok: false, name: 'BackendError', code: 'READ_ONLY' });
    t.like(r1[4], { ok: false, name: 'BackendError', code: 'READ_ONLY' });
    t.like(r1[5], { ok: false, name: 'BackendError', code: 'READ_ONLY' });
    t.like(r1[6], { ok: true, value: b64('served') });

    const r2 = await runChild(
      [
        { op: 'open', dir: rwRoot },
        { op: 'put', path: 'default/locked/k', value: b64('new') },
        { op: 'put', path: 'default/locked/new', value: b64('new') },
        { op: 'delete', path: 'default/locked/k' },
        { op: 'get', path: 'default/locked/k' },
        { op: 'put', path: 'default/open/k', value: b64('fine') },
        { op: 'get', path: 'default/open/k' },
      ],
      how,
    );
    t.like(r2[0], { ok: true, readOnly: false });
    t.like(r2[1], { ok: false, code: 'READ_ONLY' });
    t.regex(r2[1]?.message ?? '', /EACCES/);
    t.like(r2[2], { ok: false, code: 'READ_ONLY' });
    t.like(r2[3], { ok: false, code: 'READ_ONLY' });
    t.like(r2[4], { ok: true, value: b64('locked value') });
    t.like(r2[5], { ok: true });
    t.like(r2[6], { ok: true, value: b64('fine') });
    t.deepEqual(await fs.readdir(path.join(rwRoot, 'default', 'locked')), ['k'], 'no temp file left behind');
  } finally {
    await removeTree(base);
  }
});

const mountTest = canUnshareMount() ? test : test.skip;

mountTest('LocalFs: read-only mounts (EROFS): a CSI volume under default/akv and a read-only root', async (t) => {
  const base = await makeBase();
  try {
    const root = path.join(base, 'repository');
    await place(path.join(root, 'default', 'key', 'k'), 'writable area');
    await fs.mkdir(path.join(root, 'default', 'akv'), { recursive: true });
    const csi = path.join(base, 'csi-volume');
    await makeCsiLayout(csi, { coco_one: 'a secret' });
    const roRoot = path.join(base, 'ro-root');
    await fs.mkdir(roRoot);
    const akv = path.join(root, 'default', 'akv');
    const setup = [readOnlyBindMount(csi, akv), readOnlyBindMount(root, roRoot)].join('; ');

    const r = await runChild(
      [
        { op: 'open', dir: root },
        { op: 'get', path: 'default/akv/coco_one' },
        { op: 'list' },
        { op: 'put', path: 'default/akv/coco_one', value: b64('overwrite') },
        { op: 'put', path: 'default/akv/new', value: b64('new') },
        { op: 'delete', path: 'default/akv/coco_one' },
        { op: 'get', path: 'default/akv/coco_one' },
        { op: 'put', path: 'default/key/k2', value: b64('still writable') },
        { op: 'get', path: 'default/key/k2' },
      ],
      { mountSetup: setup },
    );
    t.like(r[0], { ok: true, readOnly: false });
    t.like(r[1], { ok: true, value: b64('a secret') });
    t.deepEqual(r[2]?.list, [
      ['default/akv/coco_one', 8],
      ['default/key/k', 13],
    ]);
    t.like(r[3], { ok: false, name: 'BackendError', code: 'READ_ONLY' });
    t.regex(r[3]?.message ?? '', /EROFS/);
    t.like(r[4], { ok: false, code: 'READ_ONLY' });
    t.like(r[5], { ok: false, code: 'READ_ONLY' });
    t.like(r[6], { ok: true, value: b64('a secret') });
    t.like(r[7], { ok: true });
    t.like(r[8], { ok: true, value: b64('still writable') });

    const ro = await runChild(
      [
        { op: 'open', dir: roRoot },
        { op: 'get', path: 'default/key/k' },
        { op: 'put', path: 'default/key/k', value: b64('x') },
        { op: 'put', path: 'brand/new/x', value: b64('x') },
        { op: 'delete', path: 'default/key/k' },
        { op: 'list' },
      ],
      { mountSetup: setup },
    );
    t.like(ro[0], { ok: true, readOnly: true });
    t.like(ro[1], { ok: true, value: b64('writable area') });
    t.like(ro[2], { ok: false, code: 'READ_ONLY' });
    t.like(ro[3], { ok: false, code: 'READ_ONLY' });
    t.like(ro[4], { ok: false, code: 'READ_ONLY' });
    t.like(ro[5], { ok: true });

    // The mounts lived only in the child's namespace; the CSI source is untouched.
    t.deepEqual(await fs.readdir(akv), []);
    t.is(await fs.readFile(path.join(csi, 'coco_one'), 'utf8'), 'a secret');
  } finally {
    await removeTree(base);
  }
});

mountTest('LocalFs: disk full (ENOSPC) gives IO, keeps the old value and leaves no temp file', async (t) => {
  const base = await makeBase();
  try {
    const root = path.join(base, 'repository');
    await fs.mkdir(root);
    const big = Buffer.alloc(1024 * 1024, 0x42);
    const r = await runChild(
      [
        { op: 'open', dir: root },
        { op: 'put', path: 'default/key/k', value: b64('old value') },
        { op: 'put', path: 'default/key/k', value: b64(big) },
        { op: 'get', path: 'default/key/k' },
        { op: 'readdir', dir: path.join(root, 'default', 'key') },
        { op: 'put', path: 'default/key/other', value: b64(big) },
        { op: 'list' },
        { op: 'put', path: 'default/key/small', value: b64('fits') },
        { op: 'get', path: 'default/key/small' },
      ],
      { mountSetup: tmpfsMount(root, '256k') },
    );
    t.like(r[0], { ok: true, readOnly: false });
    t.like(r[1], { ok: true });
    t.like(r[2], { ok: false, name: 'BackendError', code: 'IO' });
    t.regex(r[2]?.message ?? '', /no space left on device \(ENOSPC\).*previous value.*unchanged/);
    t.like(r[3], { ok: true, value: b64('old value') });
    t.deepEqual(r[4]?.entries, ['k']);
    t.like(r[5], { ok: false, code: 'IO' });
    t.deepEqual(r[6]?.list, [['default/key/k', 9]]);
    t.like(r[7], { ok: true });
    t.like(r[8], { ok: true, value: b64('fits') });
  } finally {
    await removeTree(base);
  }
});

// ---------------------------------------------------------------------------------------------------
// Crash leftovers and junk.

test('LocalFs: leftover temp files are ignored by list/get and removed at open once stale', async (t) => {
  const base = await makeBase();
  try {
    const root = path.join(base, 'repository');
    const dir = path.join(root, 'r', 't');
    await place(path.join(dir, 'real'), 'value');
    const stale = path.join(dir, '.kbs-tmp-0123456789abcdef01234567');
    const staleAtRoot = path.join(root, '.kbs-tmp-89abcdef0123456789abcdef');
    const fresh = path.join(dir, '.kbs-tmp-fedcba9876543210fedcba98');
    const notOurs = path.join(dir, '.kbs-tmp-operator-notes');
    for (const f of [stale, staleAtRoot, fresh, notOurs]) await place(f, 'partial write');
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const f of [stale, staleAtRoot]) await fs.utimes(f, hourAgo, hourAgo);

    const backend = await LocalFsBackend.open({ dirPath: root });
    try {
      t.deepEqual((await fs.readdir(dir)).sort(), ['.kbs-tmp-fedcba9876543210fedcba98', '.kbs-tmp-operator-notes', 'real']);
      t.deepEqual(await fs.readdir(root), ['r']);
      t.deepEqual(
        (await backend.list()).map((i) => i.path),
        ['r/t/real'],
      );
      await expectBackendError(t, backend.get({ repo: 'r', type: 't', tag: path.basename(fresh) }), 'INVALID_PATH');
    } finally {
      await backend.close();
    }

    // With no grace period (single-instance deployments), every leftover of ours goes at open.
    const eager = await LocalFsBackend.open({ dirPath: root, tempFileGraceMs: 0 });
    await eager.close();
    t.deepEqual((await fs.readdir(dir)).sort(), ['.kbs-tmp-operator-notes', 'real']);
  } finally {
    await removeTree(base);
  }
});

test('LocalFs: list walks exactly three levels and skips junk', (t) =>
  withRepo(t, async ({ base, root, backend }) => {
    await place(path.join(root, 'r', 't', 'good'), 'good');
    await place(path.join(root, 'file-at-root'), 'x');
    await place(path.join(root, 'r', 'file-at-level-2'), 'x');
    await place(path.join(root, 'r', 't', 'subdir', 'too-deep'), 'x');
    await place(path.join(root, 'r', 't', '.hidden'), 'x');
    await place(path.join(root, 'r', 't', 'with space'), 'x');
    await place(path.join(root, 'r', 't', 'ünï'), 'x');
    await place(path.join(root, 'r', 't', 'tilde~'), 'x');
    await place(path.join(root, '.hidden-repo', 't', 'x'), 'x');
    await place(path.join(root, 'r', '.hidden-type', 'x'), 'x');
    await place(path.join(root, 'bad repo', 't', 'x'), 'x');
    await place(path.join(base, 'outside'), 'x');
    await fs.symlink('subdir', path.join(root, 'r', 't', 'link-to-dir'));
    await fs.symlink('nowhere', path.join(root, 'r', 't', 'dangling'));
    await fs.symlink(path.join(base, 'outside'), path.join(root, 'r', 't', 'escaping'));
    await fs.symlink('good', path.join(root, 'r', 't', 'link-to-good'));
    if (hasMkfifo) t.is(spawnSync('mkfifo', [path.join(root, 'r', 't', 'fifo')]).status, 0);

    t.deepEqual(
      (await backend.list()).map((i) => [i.path, i.size]),
      [
        ['r/t/good', 4],
        ['r/t/link-to-good', 4],
      ],
    );
    for (const p of ['r/t/subdir', 'r/t/link-to-dir', 'r/t/dangling', 'r/t/escaping', 'r/file-at-level-2/x']) {
      await expectBackendError(t, backend.get(rp(p)), 'NOT_FOUND');
    }
    if (hasMkfifo) {
      // Opening a FIFO for reading would block forever without O_NONBLOCK.
      await expectBackendError(t, backend.get(rp('r/t/fifo')), 'NOT_FOUND');
      await expectBackendError(t, backend.delete(rp('r/t/fifo')), 'NOT_FOUND');
    }
  }));

// ---------------------------------------------------------------------------------------------------
// Readiness.

test('LocalFs: check() reports UNAVAILABLE when the repository disappears', (t) =>
  withRepo(t, async ({ root, backend }) => {
    await t.notThrowsAsync(backend.check());
    await fs.rm(root, { recursive: true });
    await expectBackendError(t, backend.check(), 'UNAVAILABLE');
    await expectBackendError(t, backend.list(), 'UNAVAILABLE');
    await expectBackendError(t, backend.get(parseResourcePath(['a', 'b', 'c'])), 'NOT_FOUND');
    await place(path.join(root, 'x'), 'now a file where nothing was');
    await t.notThrowsAsync(backend.check());
  }));
