/**
 * Packaging: the configurations shipped for containers (image default, docker compose SoftHSM
 * profile, Kubernetes ConfigMap) load and serve when their absolute paths are rebased into a
 * temporary root; the image's HEALTHCHECK program and the Kubernetes probe paths answer a real
 * KBS started from them; and the Dockerfile, .dockerignore, compose file and kustomization refer
 * only to files that exist (so `docker build` / `kubectl apply -k` cannot fail on a renamed file).
 * `kubectl kustomize` itself runs in .ci/run when kubectl is installed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { selfSignedCertificate } from '../cli/cert/self-signed.js';
import { parseConfigText, type KbsConfig } from '../config/index.js';
import { silentLogger } from '../server/log.js';
import { startKbs } from '../server/start.js';
import { tempDir } from './helpers/spawned-kbs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HEALTHCHECK = join(ROOT, 'dist', 'cli', 'healthcheck.js');
const run = promisify(execFile);
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** The shipped config with /var/lib/kbs, /etc/kbs/tls and /run/secrets under a temp root, on a free loopback port. */
function rebased(file: string): { config: KbsConfig; root: string } {
  const root = tempDir('kbs-pkg-');
  const tls = join(root, 'etc-kbs-tls');
  mkdirSync(tls);
  mkdirSync(join(root, 'secrets'));
  const pair = selfSignedCertificate({ hosts: ['localhost', '127.0.0.1'], days: 1 });
  for (const [name, pem] of [['kbs.key', pair.keyPem], ['kbs.crt', pair.certPem], ['tls.key', pair.keyPem], ['tls.crt', pair.certPem]] as const) writeFileSync(join(tls, name), pem);
  writeFileSync(join(root, 'secrets', 'hsm_pin'), '1234\n');
  const text = read(file)
    .replaceAll('/var/lib/kbs', join(root, 'var-lib-kbs'))
    .replaceAll('/etc/kbs/tls', tls)
    .replaceAll('/run/secrets', join(root, 'secrets'))
    .replace(/sockets = \["0\.0\.0\.0:8080"\]/, 'sockets = ["127.0.0.1:0"]');
  return { config: parseConfigText(text, { cwd: root, source: file }), root };
}

async function healthcheck(url: string): Promise<number> {
  try {
    await run(process.execPath, [HEALTHCHECK, url], { timeout: 10_000 });
    return 0;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

for (const file of ['config/kbs-config-container.toml', 'deploy/kubernetes/base/kbs-config.toml']) {
  test(`${file}: loads without warnings, serves HTTPS on 8080 in work_dir /var/lib/kbs; HEALTHCHECK and probe paths answer`, async (t) => {
    t.regex(read(file), /sockets = \["0\.0\.0\.0:8080"\]/);
    t.regex(read(file), /work_dir = "\/var\/lib\/kbs"/);
    const { config, root } = rebased(file);
    t.deepEqual(config.warnings, []);
    t.false(config.httpServer.insecureHttp);
    t.true(config.workDir.startsWith(root));
    const kbs = await startKbs(config, { log: silentLogger() });
    let closed = false;
    t.teardown(() => (closed ? undefined : kbs.close()));
    const url = kbs.urls[0] as string;
    t.true(url.startsWith('https://'));
    t.is(await healthcheck(`${url}/healthz`), 0);
    const probes = [...read('deploy/kubernetes/base/deployment.yaml').matchAll(/path: (\/[a-z]+)/g)].map((m) => m[1] as string);
    t.deepEqual([...new Set(probes)].sort(), ['/healthz', '/readyz']);
    for (const p of probes) t.is(await healthcheck(url + p), 0, p);
    t.is(await healthcheck(`${url}/kbs/v0/resources`), 1, 'a non-200 answer is unhealthy');
    await kbs.close();
    closed = true;
    t.is(await healthcheck(`${url}/healthz`), 1, 'a stopped server is unhealthy');
  });
}

test('deploy/docker/kbs-config-softhsm.toml: PKCS#11 storage on the SoftHSM2 token, PIN from the compose secret', (t) => {
  const { config, root } = rebased('deploy/docker/kbs-config-softhsm.toml');
  t.deepEqual(config.plugins[0]?.storage, {
    type: 'Pkcs11',
    module: '/usr/lib/softhsm/libsofthsm2.so',
    slotIndex: null,
    tokenLabel: 'kbs',
    pin: { kind: 'file', path: join(root, 'secrets', 'hsm_pin') },
  });
  t.deepEqual(config.warnings, []);
});

test('the healthcheck program: default URL, bad URLs and unreachable servers are unhealthy (exit 1), never a crash', async (t) => {
  for (const url of ['not a url', 'ftp://127.0.0.1/healthz', 'http://127.0.0.1:1/healthz']) t.is(await healthcheck(url), 1, url);
});

/** .dockerignore as written here: `**` excludes everything, `!x` / `!dir/**` re-include. */
function dockerIncluded(path: string): boolean {
  let included = true;
  for (const raw of read('.dockerignore').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = negate ? line.slice(1) : line;
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\/?/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*')}$`);
    if (re.test(path) || re.test(`${path}/`)) included = negate;
  }
  return included;
}

test('Dockerfile: build-context files exist and pass .dockerignore; entry points are build outputs; non-root; volume and port match the config', (t) => {
  const dockerfile = read('Dockerfile');
  const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] as string).split(/\s+/));
  t.true(copies.length >= 8);
  for (const src of copies) {
    t.true(existsSync(join(ROOT, src)), `COPY ${src}: missing`);
    t.true(dockerIncluded(existsSync(join(ROOT, src, '.')) && !src.includes('.') ? `${src}/x.ts` : src), `COPY ${src}: excluded by .dockerignore`);
  }
  t.false(dockerIncluded('data/admin-token'), 'local state stays out of the build context');
  t.false(dockerIncluded('node_modules/x/index.js'));
  t.false(dockerIncluded('dist/cli/kbs.js'));
  for (const m of dockerfile.matchAll(/"(dist\/[^"]+\.js)"/g)) t.true(existsSync(join(ROOT, m[1] as string)), `${m[1]} is not produced by the build`);
  t.regex(dockerfile, /^ENTRYPOINT \["node", "dist\/cli\/kbs\.js"\]$/m);
  t.regex(dockerfile, /^CMD \["serve", "--config-file", "\/etc\/kbs\/kbs-config\.toml"\]$/m);
  t.regex(dockerfile, /^HEALTHCHECK .*CMD \["node", "dist\/cli\/healthcheck\.js"\]$/m);
  const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
  t.truthy(user, 'USER is numeric (Kubernetes runAsNonRoot can verify it)');
  t.not(user?.[1], '0');
  t.regex(dockerfile, /^VOLUME \["\/var\/lib\/kbs"\]$/m);
  t.regex(dockerfile, /^EXPOSE 8080$/m);
  t.regex(dockerfile, /^COPY config\/kbs-config-container\.toml \/etc\/kbs\/kbs-config\.toml$/m);
  t.regex(dockerfile, /^COPY --from=build \/src\/policy\/samples \.\/policy\/samples$/m, 'the sample policies are read at run time');
  t.true(existsSync(join(ROOT, 'policy', 'samples', 'default.rego')));
});

test('docker-compose.yml and the kustomizations name only files that exist', (t) => {
  const compose = read('docker-compose.yml');
  const binds = [...compose.matchAll(/^\s+- \.\/([^:\s]+):/gm), ...compose.matchAll(/file: \.\/(\S+)/g)].map((m) => m[1] as string);
  t.true(binds.length >= 3);
  for (const b of binds) t.true(existsSync(join(ROOT, b)), b);
  for (const dir of ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/azure-key-vault-csi']) {
    const k = read(`${dir}/kustomization.yaml`);
    const refs = [...k.matchAll(/^\s+- (?:path: )?([\w./-]+\.(?:yaml|toml))$/gm), ...k.matchAll(/^\s+- (\.\.\/[\w./-]+)$/gm)].map((m) => m[1] as string);
    t.true(refs.length >= 2, dir);
    for (const r of refs) t.true(existsSync(join(ROOT, dir, r)), `${dir}: ${r}`);
  }
  const patch = read('deploy/kubernetes/overlays/azure-key-vault-csi/patch.yaml');
  t.regex(patch, /mountPath: \/var\/lib\/kbs\/repository\/default\/akv/, 'the Key Vault mount is <work_dir>/<dir_path>/default/akv');
  t.regex(read('deploy/kubernetes/base/kbs-config.toml'), /dir_path = "repository"/);
});
