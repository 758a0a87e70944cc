/**
 * Trustee's Azure Key Vault integration, unchanged: the Secrets Store CSI driver mounts a read-only
 * volume (`..data` symlinks) at `<dir_path>/default/akv`. A real `kbs serve` runs inside a private
 * mount namespace with that volume bind-mounted read-only; an attested sample client fetches the
 * secret over HTTP, and an admin write there is refused with a clear 409, while the rest of the
 * repository stays writable. Needs root and `unshare -m` (CI runs as root).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { KbsClient, KbsClientError } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { packageRoot, samplePolicyText } from '../policy/samples.js';
import { canUnshareMount, readOnlyBindMount, shq } from './helpers/namespaces.js';

const mountTest = canUnshareMount() ? test : test.skip;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

mountTest('CSI layout at default/akv (read-only bind mount): served over HTTP, writes refused with 409', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'kbs-csi-http-'));
  const repo = path.join(base, 'repository');
  const akv = path.join(repo, 'default', 'akv');
  const csi = path.join(base, 'csi-volume');
  const stamp = '..2024_01_01_00_00_00.000000001';
  await mkdir(akv, { recursive: true });
  await mkdir(path.join(csi, stamp), { recursive: true });
  await writeFile(path.join(csi, stamp, 'coco_one'), 'secret from the vault');
  await symlink(stamp, path.join(csi, '..data'));
  await symlink(path.join('..data', 'coco_one'), path.join(csi, 'coco_one'));
  const port = await freePort();
  const config = path.join(base, 'kbs.toml');
  await writeFile(
    config,
    `work_dir = ${JSON.stringify(path.join(base, 'work'))}\n[http_server]\nsockets = ["127.0.0.1:${port}"]\ninsecure_http = true\n` +
      `[admin]\nauthorization_mode = "InsecureAllowAll"\n[[plugins]]\nname = "resource"\ntype = "LocalFs"\ndir_path = ${JSON.stringify(repo)}\n`,
  );
  const bin = path.join(packageRoot(), 'dist', 'cli', 'kbs.js');
  const script = `${readOnlyBindMount(csi, akv)}; exec ${shq(process.execPath)} ${shq(bin)} serve -c ${shq(config)}`;
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      const up = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (up) break;
      if (i > 100 || child.exitCode !== null) throw new Error(`kbs did not start:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const admin = new KbsClient({ url });
    await admin.setResourcePolicy(samplePolicyText('allow_all'));
    const key = TeeKeyPair.generate();
    const client = new KbsClient({ url });
    await client.attest(key);
    t.is(Buffer.from(await client.getResource('default/akv/coco_one', key)).toString(), 'secret from the vault');

    const err = await t.throwsAsync(admin.setResource('default/akv/coco_one', Buffer.from('overwrite')), { instanceOf: KbsClientError });
    t.is(err?.status, 409);
    t.regex(err?.body ?? '', /ResourceReadOnly/);
    t.regex(err?.body ?? '', /Resource default\/akv\/coco_one is read-only/);
    t.is((await t.throwsAsync(admin.deleteResource('default/akv/coco_one'), { instanceOf: KbsClientError }))?.status, 409);
    t.is(Buffer.from(await client.getResource('default/akv/coco_one', key)).toString(), 'secret from the vault', 'unchanged');
    await admin.setResource('default/key/k', Buffer.from('writable elsewhere'));
    t.is(Buffer.from(await client.getResource('default/key/k', key)).toString(), 'writable elsewhere');
    t.regex(logs, /EROFS|read-only/);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await rm(base, { recursive: true, force: true });
  }
});
