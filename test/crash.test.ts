/**
 * Crash safety: a `kbs serve` child process takes admin writes and is killed with SIGKILL while
 * writes are in flight. After a restart, every write acknowledged with 200 reads back intact (the
 * acknowledged version or a later in-flight one, never a torn or older value). LocalFs and SQLite.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KbsClient } from '../cli/client/kbs-client.js';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';

const BIN = new URL('../cli/kbs.js', import.meta.url).pathname;
const KEYS = 8;
const VALUE_BYTES = 48 * 1024;

/** A value that proves its own integrity: counter, key, then bytes derived from both. */
function valueFor(key: number, counter: number): Buffer {
  const out = Buffer.alloc(VALUE_BYTES);
  out.writeUInt32BE(counter, 0);
  out.writeUInt32BE(key, 4);
  let block = createHash('sha256').update(`${key}:${counter}`).digest();
  for (let off = 8; off < VALUE_BYTES; off += 32) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function startServer(configPath: string, cwd: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '-c', configPath], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 15_000);
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /"urls":\["(http:\/\/[^"]+)"\]/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string });
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${log}`)));
  });
}

for (const [name, storage] of [
  ['LocalFs', 'type = "LocalFs"\ndir_path = "repository"'],
  ['Sqlite', 'type = "Sqlite"\ndb_path = "resources.db"'],
] as const) {
  test(`${name}: every acknowledged write survives SIGKILL`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `kbs-crash-${name}-`));
    const configPath = join(dir, 'kbs.toml');
    writeFileSync(
      configPath,
      `work_dir = ${JSON.stringify(join(dir, 'data'))}
[http_server]
sockets = ["127.0.0.1:0"]
insecure_http = true
[admin]
authorization_mode = "InsecureAllowAll"
[logging]
level = "info"
[[plugins]]
name = "resource"
${storage}
`,
    );
    let server = await startServer(configPath, dir);
    const admin = new KbsClient({ url: server.url });
    await admin.setResourcePolicy('package policy\nallow if data.plugin == "resource"\n');

    const acked = new Array<number>(KEYS).fill(-1);
    let counter = 0;
    let stop = false;
    const writer = async () => {
      while (!stop) {
        const c = counter++;
        const key = c % KEYS;
        try {
          await admin.setResource(`crash/test/k${key}`, valueFor(key, c));
          if (!stop) acked[key] = Math.max(acked[key] as number, c);
        } catch {
          return; // the server died under us: this write was not acknowledged
        }
      }
    };
    const writers = Promise.all([writer(), writer(), writer(), writer()]);
    await new Promise((r) => setTimeout(r, 400));
    const exited = new Promise((r) => server.child.once('exit', r));
    server.child.kill('SIGKILL');
    stop = true;
    await exited;
    await writers;
    const ackedCount = acked.filter((c) => c >= 0).length;
    t.true(ackedCount > 0, 'some writes were acknowledged before the crash');
    t.log(`${counter} writes started, acknowledged versions per key: ${acked.join(',')}`);

    server = await startServer(configPath, dir);
    t.teardown(() => void server.child.kill('SIGTERM'));
    const guest = new KbsClient({ url: server.url });
    const key = TeeKeyPair.generate();
    await guest.attest(key);
    for (let k = 0; k < KEYS; k++) {
      const last = acked[k] as number;
      if (last < 0) continue;
      const value = Buffer.from(await guest.getResource(`crash/test/k${k}`, key));
      const c = value.readUInt32BE(0);
      t.true(c >= last, `key ${k}: version ${c} is older than the acknowledged ${last}`);
      t.is(c % KEYS, k);
      t.true(value.equals(valueFor(k, c)), `key ${k}: value of version ${c} is torn`);
    }
  });
}
