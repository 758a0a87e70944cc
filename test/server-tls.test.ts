/**
 * HTTPS: what each tls_profile negotiates and refuses (real handshakes against a real KBS), start-up
 * checks of the key/certificate pair, and SIGHUP reloading of the certificate in a spawned
 * `kbs serve`: new connections get the new certificate, an open keep-alive connection keeps
 * working, and a bad new pair is logged and leaves the current one in place.
 */
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { selfSignedCertificate, type SelfSigned } from '../cli/cert/self-signed.js';
import { startTestKbs, type TestKbs } from './helpers/kbs-server.js';
import { spawnKbs, tempDir } from './helpers/spawned-kbs.js';

function writePair(dir: string, pair: SelfSigned): { key: string; cert: string } {
  mkdirSync(join(dir, 'tls'), { recursive: true });
  const key = join(dir, 'tls', 'key.pem');
  const cert = join(dir, 'tls', 'cert.pem');
  // replaced by rename, as a certificate manager (or a Kubernetes Secret volume) does
  writeFileSync(`${key}.new`, pair.keyPem, { mode: 0o600 });
  writeFileSync(`${cert}.new`, pair.certPem);
  renameSync(`${key}.new`, key);
  renameSync(`${cert}.new`, cert);
  return { key, cert };
}

function httpsToml(files: { key: string; cert: string }, extra = ''): string {
  return `[http_server]\nsockets = ["127.0.0.1:0"]\nprivate_key = ${JSON.stringify(files.key)}\ncertificate = ${JSON.stringify(files.cert)}\n${extra}`;
}

interface Handshake {
  protocol: string | null;
  cipher: string;
}

/** A bare TLS handshake; resolves with what was negotiated, rejects when the server refuses. */
function handshake(url: string, ca: string, options: ConnectionOptions = {}): Promise<Handshake> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost', ...options }, () => {
      const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().standardName };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

async function startHttps(extra = ''): Promise<{ kbs: TestKbs; ca: string }> {
  const pair = selfSignedCertificate({ hosts: ['localhost', '127.0.0.1'], days: 2 });
  const dir = tempDir('kbs-tls-');
  const kbs = await startTestKbs({ workDir: dir, toml: httpsToml(writePair(dir, pair), extra) });
  return { kbs, ca: pair.certPem };
}

test('intermediate (default): TLS 1.3 preferred, TLS 1.2 only with ECDHE + AEAD suites', async (t) => {
  const { kbs, ca } = await startHttps();
  t.teardown(() => kbs.close());
  t.is((await handshake(kbs.url, ca)).protocol, 'TLSv1.3');
  const tls12 = await handshake(kbs.url, ca, { maxVersion: 'TLSv1.2' });
  t.is(tls12.protocol, 'TLSv1.2');
  t.regex(tls12.cipher, /^TLS_ECDHE_ECDSA_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
  // CBC suites and static-key exchange are refused even when the client offers nothing else
  for (const ciphers of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'AES128-GCM-SHA256']) {
    await t.throwsAsync(handshake(kbs.url, ca, { maxVersion: 'TLSv1.2', ciphers }), undefined, ciphers);
  }
  await t.throwsAsync(handshake(kbs.url, ca, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
  t.regex(kbs.logs(), /"msg":"TLS certificate loaded"/);
});

test('modern: TLS 1.3 only', async (t) => {
  const { kbs, ca } = await startHttps('tls_profile = "modern"\n');
  t.teardown(() => kbs.close());
  t.is((await handshake(kbs.url, ca)).protocol, 'TLSv1.3');
  await t.throwsAsync(handshake(kbs.url, ca, { maxVersion: 'TLSv1.2' }));
});

test('start-up refuses a key that does not match the certificate, or files that are not PEM', async (t) => {
  const dir = tempDir('kbs-tls-');
  const a = writePair(dir, selfSignedCertificate({ hosts: ['localhost'], days: 1 }));
  writeFileSync(a.key, selfSignedCertificate({ hosts: ['localhost'], days: 1 }).keyPem);
  await t.throwsAsync(startTestKbs({ workDir: dir, toml: httpsToml(a) }), { message: /the private key does not match the certificate/ });
  writeFileSync(a.key, 'not a key');
  await t.throwsAsync(startTestKbs({ workDir: dir, toml: httpsToml(a) }), { message: /http_server\.private_key .*: not a PEM private key/ });
  const b = writePair(dir, selfSignedCertificate({ hosts: ['localhost'], days: 1 }));
  writeFileSync(b.cert, 'not a certificate');
  await t.throwsAsync(startTestKbs({ workDir: dir, toml: httpsToml(b) }), { message: /http_server\.certificate .*: not a PEM certificate/ });
});

test('an expired certificate starts (the operator may be mid-rotation) with a loud warning', async (t) => {
  const dir = tempDir('kbs-tls-');
  const old = selfSignedCertificate({ hosts: ['localhost'], days: 1, now: new Date('2020-01-01T00:00:00Z') });
  const kbs = await startTestKbs({ workDir: dir, toml: httpsToml(writePair(dir, old)) });
  t.teardown(() => kbs.close());
  t.regex(kbs.logs(), /"level":40.*TLS certificate loaded: the certificate has EXPIRED/);
});

interface Fetched {
  status: number;
  fingerprint: string;
  reused: boolean;
}

function get(url: string, agent: Agent | false, ca?: string): Promise<Fetched> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: '/healthz', agent, servername: 'localhost', ...(ca ? { ca } : {}) }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SIGHUP reloads the certificate: new connections get the new one, an open keep-alive connection keeps working, a bad pair is refused', async (t) => {
  const dir = tempDir('kbs-tls-');
  const first = selfSignedCertificate({ hosts: ['localhost'], days: 1 });
  const second = selfSignedCertificate({ hosts: ['localhost'], days: 1 });
  const files = writePair(dir, first);
  const kbs = await spawnKbs(httpsToml(files, 'keep_alive_timeout_seconds = 60\n'), dir);
  t.teardown(() => kbs.kill('SIGKILL'));
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
  const both = first.certPem + second.certPem;
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca: both });
  t.teardown(() => keepAlive.destroy());

  const before = await get(kbs.url, keepAlive);
  t.deepEqual(before, { status: 200, fingerprint: fp(first.certPem), reused: false });

  writePair(dir, second);
  let mark = kbs.logs().length;
  kbs.kill('SIGHUP');
  t.regex(await kbs.waitForLog(/"msg":"TLS certificate reloaded"/, mark), new RegExp(fp(second.certPem)));
  t.deepEqual(await get(kbs.url, false, both), { status: 200, fingerprint: fp(second.certPem), reused: false }, 'a new connection: the new certificate');
  t.deepEqual(await get(kbs.url, keepAlive), { status: 200, fingerprint: fp(first.certPem), reused: true }, 'the open connection: still served');
  await t.throwsAsync(get(kbs.url, false, first.certPem), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'the old certificate is no longer offered');

  // a key that does not match, then a garbage key: logged, and the current pair stays
  writeFileSync(files.key, first.keyPem);
  mark = kbs.logs().length;
  kbs.kill('SIGHUP');
  t.regex(await kbs.waitForLog(/TLS reload failed/, mark), /"level":50.*the private key does not match the certificate/);
  writeFileSync(files.key, 'garbage');
  mark = kbs.logs().length;
  kbs.kill('SIGHUP');
  t.regex(await kbs.waitForLog(/TLS reload failed/, mark), /not a PEM private key/);
  t.deepEqual(await get(kbs.url, false, both), { status: 200, fingerprint: fp(second.certPem), reused: false });
  t.false(kbs.logs().includes('PRIVATE KEY'), 'key material is never logged');

  keepAlive.destroy();
  kbs.kill('SIGTERM');
  t.is(await kbs.exited, 0);
});
