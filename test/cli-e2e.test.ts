/**
 * End to end through the real executable: `node dist/cli/kbs.js serve` in a temporary directory,
 * then the same binary as admin client and as guest (sample attester), then SIGTERM.
 *
 * The server gets a config file with `sockets = ["127.0.0.1:0"]` (8080 may be taken on a CI host)
 * and no `work_dir` or `[admin]`, so that everything else is the embedded default: work_dir ./data
 * beside the config, generated admin token ./data/admin-token, found by the client by default.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { decodeJwt } from 'jose';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { samplePolicyText } from '../policy/index.js';

const KBS = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'kbs.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['KBS_CONFIG_FILE'];
  return env;
}

function collect(child: ChildProcess): Promise<Run> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** Runs `kbs <args>` to completion in `cwd`. */
function kbs(cwd: string, args: string[]): Promise<Run> {
  return collect(spawn(process.execPath, [KBS, ...args], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

interface Served {
  cwd: string;
  url: string;
  child: ChildProcess;
  done: Promise<Run>;
}

const shared: { served?: Served } = {};

async function serve(): Promise<Served> {
  const cwd = mkdtempSync(join(tmpdir(), 'kbs-cli-'));
  writeFileSync(join(cwd, 'kbs-config.toml'), '[http_server]\nsockets = ["127.0.0.1:0"]\ninsecure_http = true\n');
  const child = spawn(process.execPath, [KBS, 'serve', '-c', 'kbs-config.toml'], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const done = collect(child);
  // the listening URL is logged (port 0 → the kernel's choice); then /healthz must answer
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kbs serve did not start:\n${log}`)), 15_000);
    child.stderr?.on('data', (c: Buffer) => {
      log += c.toString('utf8');
      const m = /"urls":\["(http:\/\/127\.0\.0\.1:\d+)"\]/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    void done.then((r) => reject(new Error(`kbs serve exited ${r.code}: ${r.stderr}`)));
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) break;
    } catch {
      /* not yet */
    }
    if (i > 100) throw new Error('no /healthz');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { cwd, url, child, done };
}

test.before(async () => {
  shared.served = await serve();
});

test.after.always(() => {
  const s = shared.served;
  if (s && s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
});

function served(): Served {
  if (!shared.served) throw new Error('server not started');
  return shared.served;
}

const secret = Buffer.concat([Buffer.from([0, 0, 0xff, 0x0a, 0x0d, 0]), Buffer.from('s3cret\n'), Buffer.alloc(64, 0), Buffer.from([0x80, 0xc3, 0x28])]);

test.serial('admin, attest and get-resource with the binary against the embedded default set-up', async (t) => {
  const { cwd, url } = served();
  t.is(statSync(join(cwd, 'data', 'admin-token')).mode & 0o777, 0o600);
  const file = join(cwd, 'secret.bin');
  writeFileSync(file, secret);

  // the admin token is found at ./data/admin-token (same cwd as the server)
  let r = await kbs(cwd, ['config', 'set-resource', '--url', url, '--path', 'default/key/one', '--resource-file', file]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), `stored default/key/one (${secret.length} bytes)\n`);

  // the fresh server's default policy refuses the sample TEE
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one']);
  t.is(r.code, 1);
  t.is(r.stdout.length, 0);
  t.regex(r.stderr, /^kbs: get-resource default\/key\/one failed: HTTP 403 .*PolicyDeny/);

  r = await kbs(cwd, ['config', 'set-resource-policy', '--url', url, '--allow-all']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'resource policy set\n');

  // RCAR + release, binary-safe on stdout
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout, secret);

  // --output: the file, mode 0600, nothing on stdout
  const out = join(cwd, 'out.bin');
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one', '--output', out]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.length, 0);
  t.deepEqual(readFileSync(out), secret);
  t.is(statSync(out).mode & 0o777, 0o600);

  // attest with a given TEE key, then a Bearer fetch with that token and key
  const tee = TeeKeyPair.generate();
  const pemFile = join(cwd, 'tee.pem');
  writeFileSync(pemFile, tee.toPem());
  r = await kbs(cwd, ['attest', '--url', url, '--tee-key-file', pemFile]);
  t.is(r.code, 0, r.stderr);
  const printed = r.stdout.toString();
  t.regex(printed, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
  const token = printed.trim();
  const claims = decodeJwt(token);
  t.true(JSON.stringify(claims).includes((tee.publicJwk() as { x: string }).x), 'the token carries the TEE public key');
  const tokenFile = join(cwd, 'token.jwt');
  writeFileSync(tokenFile, printed);
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one', '--attestation-token', tokenFile, '--tee-key-file', pemFile]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout, secret);

  // the token is bound to its key: another key cannot decrypt the response
  const otherPem = join(cwd, 'other.pem');
  writeFileSync(otherPem, TeeKeyPair.generate().toPem());
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one', '--attestation-token', tokenFile, '--tee-key-file', otherPem]);
  t.is(r.code, 1, r.stderr);
  t.is(r.stdout.length, 0);
  t.regex(r.stderr, /^kbs: /);
  t.notRegex(r.stderr, /\n\s+at /); // a message, not a stack trace

  // list and policy
  r = await kbs(cwd, ['config', 'list-resources', '--url', url]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  t.is(lines.length, 1);
  const [path, size, updated] = (lines[0] as string).split('\t');
  t.is(path, 'default/key/one');
  t.is(size, String(secret.length));
  t.true(Math.abs(Date.parse(updated as string) - Date.now()) < 120_000, updated);
  t.false(r.stdout.includes(Buffer.from('s3cret')));

  r = await kbs(cwd, ['config', 'get-resource-policy', '--url', url]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), samplePolicyText('allow_all'));

  // an explicit --admin-token-file from another directory; a wrong one fails with the server's answer
  const elsewhere = mkdtempSync(join(tmpdir(), 'kbs-cli-other-'));
  r = await kbs(elsewhere, ['config', 'list-resources', '--url', url]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^kbs: list-resources failed: HTTP 401 .*AdminAuthAccess.*Failed to parse HTTP Auth Bearer header/);
  r = await kbs(elsewhere, ['config', 'list-resources', '--url', url, '--admin-token-file', join(cwd, 'data', 'admin-token')]);
  t.is(r.code, 0, r.stderr);
  const wrong = join(elsewhere, 'wrong-token');
  writeFileSync(wrong, token); // an attestation token is not an admin token
  r = await kbs(elsewhere, ['config', 'delete-resource', '--url', url, '--path', 'default/key/one', '--admin-token-file', wrong]);
  t.is(r.code, 1);
  t.regex(r.stderr, /HTTP 401 .*AdminAuthInitialization/);

  // delete, then the guest gets 404
  r = await kbs(cwd, ['config', 'delete-resource', '--url', url, '--path', 'default/key/one']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.toString(), 'deleted default/key/one\n');
  r = await kbs(cwd, ['get-resource', '--url', url, '--path', 'default/key/one', '--attestation-token', tokenFile, '--tee-key-file', pemFile]);
  t.is(r.code, 1);
  t.regex(r.stderr, /HTTP 404 .*ResourceNotFound/);
});

test('exit codes: no server → 1 with a message; usage errors → 2', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'kbs-cli-usage-'));
  const closed = `http://127.0.0.1:${await freePort()}`;
  const unreachable = [
    ['get-resource', '--url', closed, '--path', 'a/b/c'],
    ['attest', '--url', closed],
    ['config', 'list-resources', '--url', closed],
  ];
  const down = await Promise.all(unreachable.map((args) => kbs(cwd, args)));
  for (const [i, args] of unreachable.entries()) {
    const r = down[i] as Run;
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, /^kbs: cannot reach the KBS: /, args.join(' '));
    t.is(r.stdout.length, 0);
  }
  const secretFile = join(cwd, 's.bin');
  writeFileSync(secretFile, 'x');
  const usage: Array<[string[], RegExp]> = [
    [['get-resource', '--url', closed], /^kbs: --path is required\n$/],
    [['config', 'set-resource', '--url', closed, '--resource-file', secretFile], /^kbs: --path is required\n$/],
    [['config', 'delete-resource', '--url', closed], /^kbs: --path is required\n$/],
    [['config', 'set-resource', '--url', closed, '--path', 'a/b/c'], /^kbs: --resource-file is required\n$/],
    [['config', 'set-resource', '--url', closed, '--path', 'a/b/c', '--resource-file', join(cwd, 'missing')], /^kbs: cannot read the resource file /],
    [['config', 'set-resource-policy', '--url', closed], /^kbs: give exactly one of /],
    [['config', 'set-resource-policy', '--url', closed, '--allow-all', '--deny-all'], /^kbs: give exactly one of /],
    [['config', 'nonsense', '--url', closed], /^kbs: unknown config command "nonsense"/],
    [['get-resource', '--url', closed, '--path', 'a/b/c', '--attestation-token', secretFile], /^kbs: --attestation-token needs --tee-key-file/],
    [['get-resource', '--url', closed, '--path', 'a/b/c', '--bogus'], /^kbs: .*bogus/],
    [['get-resource', '--url', closed, '--path', 'a/b/c', '--tee-key-file', secretFile], /^kbs: cannot load the TEE key /],
    [['nonsense'], /^kbs: unknown command "nonsense"/],
  ];
  const runs = await Promise.all(usage.map(([args]) => kbs(cwd, args)));
  usage.forEach(([args, message], i) => {
    const r = runs[i] as Run;
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    t.is(r.stdout.length, 0);
  });
  // a bad configuration file: serve exits 1 with the error, without listening
  writeFileSync(join(cwd, 'bad.toml'), '[http_server]\nsocket = ["127.0.0.1:0"]\n');
  const bad = await kbs(cwd, ['serve', '-c', 'bad.toml']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^kbs serve: configuration error: .*http_server\.socket: unknown key/);
});

test.serial('SIGTERM stops the server with exit code 0', async (t) => {
  const { child, done, url } = served();
  t.true(child.kill('SIGTERM'));
  const r = await done;
  t.is(r.signal, null);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /"signal":"SIGTERM".*"msg":"stopping"|"msg":"stopping".*"signal":"SIGTERM"/);
  await t.throwsAsync(() => fetch(`${url}/healthz`));
});
