/**
 * `kbs config gen-cert`: the certificate is a valid self-signed X.509 v3 server certificate (parsed
 * by Node's X.509 code and accepted by a real TLS handshake against a real HTTPS KBS with the
 * certificate as the client's only trust anchor), the key file is 0600, nothing is overwritten
 * without --force, and bad input writes nothing.
 */
import test from 'ava';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificate } from '../cli/cert/self-signed.js';
import { main } from '../cli/main.js';
import { startTestKbs } from './helpers/kbs-server.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'kbs-gen-cert-'));
}

/** GET /healthz over HTTPS trusting only `ca`; resolves with the status or rejects with the TLS error. */
function httpsGet(url: string, ca: string, servername: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: '/healthz', ca, servername, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('writes a self-signed P-256 certificate with every host in subjectAltName and a 0600 key', async (t) => {
  const d = dir();
  const cert = join(d, 'kbs.crt');
  const key = join(d, 'kbs.key');
  const r = await run(['config', 'gen-cert', '--host', 'kbs.example.com', '--host', '10.1.2.3', '--host', 'fd00::17', '--host', '*.svc.local', '--out-cert', cert, '--out-key', key, '--days', '30']);
  t.is(r.code, 0, r.err);
  t.is(statSync(key).mode & 0o777, 0o600);
  const x = new X509Certificate(readFileSync(cert));
  const priv = createPrivateKey(readFileSync(key));
  t.is(priv.asymmetricKeyType, 'ec');
  t.is(priv.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(x.checkPrivateKey(priv));
  t.true(x.verify(x.publicKey), 'self-signed: the signature verifies with its own key');
  t.is(x.issuer, x.subject);
  t.is(x.subject, 'CN=kbs.example.com');
  t.false(x.ca);
  t.is(x.checkHost('kbs.example.com'), 'kbs.example.com');
  t.is(x.checkHost('a.svc.local'), '*.svc.local'); // the wildcard entry matched
  t.is(x.checkHost('other.example.com'), undefined);
  t.is(x.checkIP('10.1.2.3'), '10.1.2.3');
  t.is(x.checkIP('fd00:0:0:0:0:0:0:17'), 'fd00:0:0:0:0:0:0:17');
  t.is(x.checkIP('10.1.2.4'), undefined);
  t.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node reports extendedKeyUsage here: serverAuth
  const days = (new Date(x.validTo).getTime() - new Date(x.validFrom).getTime()) / 86_400_000;
  t.true(days > 30 && days < 30.01, `validity ${days} days`);
  t.true(new Date(x.validFrom).getTime() <= Date.now());
  t.regex(r.out, /subjectAltName: kbs\.example\.com, 10\.1\.2\.3, fd00::17/);
});

test('a real HTTPS KBS serves the generated pair; a client trusting only that certificate connects by name and by IP', async (t) => {
  const d = dir();
  const r = await run(['config', 'gen-cert', '--host', 'localhost', '--host', '127.0.0.1', '--out-cert', join(d, 'c.pem'), '--out-key', join(d, 'k.pem')]);
  t.is(r.code, 0, r.err);
  const kbs = await startTestKbs({
    toml: `[http_server]\nsockets = ["127.0.0.1:0"]\nprivate_key = ${JSON.stringify(join(d, 'k.pem'))}\ncertificate = ${JSON.stringify(join(d, 'c.pem'))}\n`,
  });
  t.teardown(() => kbs.close());
  t.true(kbs.url.startsWith('https://'));
  const ca = readFileSync(join(d, 'c.pem'), 'utf8');
  t.is(await httpsGet(kbs.url, ca, 'localhost'), 200);
  t.is(await httpsGet(kbs.url.replace('127.0.0.1', 'localhost'), ca, 'localhost'), 200);
  // another name is refused by the hostname check; another self-signed certificate is not trusted
  await t.throwsAsync(httpsGet(kbs.url, ca, 'kbs.example.com'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  const other = selfSignedCertificate({ hosts: ['localhost'], days: 1 }).certPem;
  await t.throwsAsync(httpsGet(kbs.url, other, 'localhost'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
});

test('refuses to overwrite either file without --force; --force replaces both atomically with a 0600 key', async (t) => {
  const d = dir();
  const cert = join(d, 'c.pem');
  const key = join(d, 'k.pem');
  writeFileSync(key, 'keep me');
  const refused = await run(['config', 'gen-cert', '--host', 'kbs', '--out-cert', cert, '--out-key', key]);
  t.is(refused.code, 1);
  t.regex(refused.err, /already exists; use --force/);
  t.is(readFileSync(key, 'utf8'), 'keep me');
  t.false(existsSync(cert), 'nothing written when one of the two exists');

  chmodSync(key, 0o644);
  const forced = await run(['config', 'gen-cert', '--host', 'kbs', '--out-cert', cert, '--out-key', key, '--force']);
  t.is(forced.code, 0, forced.err);
  t.is(statSync(key).mode & 0o777, 0o600, 'a replaced key file is 0600 even if the old one was not');
  const x = new X509Certificate(readFileSync(cert));
  t.true(x.checkPrivateKey(createPrivateKey(readFileSync(key))));
  const first = x.fingerprint256;
  t.is((await run(['config', 'gen-cert', '--host', 'kbs', '--out-cert', cert, '--out-key', key])).code, 1);
  t.is(new X509Certificate(readFileSync(cert)).fingerprint256, first);
});

test('bad arguments: exit 2, a message naming the problem, no file written', async (t) => {
  const d = dir();
  const cert = join(d, 'c.pem');
  const key = join(d, 'k.pem');
  const cases: Array<[string[], RegExp]> = [
    [['--out-cert', cert, '--out-key', key], /at least one --host/],
    [['--host', 'bad host!', '--out-cert', cert, '--out-key', key], /not a DNS name or IP address/],
    [['--host', '1.2.3', '--out-cert', cert, '--out-key', key], /not a DNS name or IP address/],
    [['--host', 'kbs', '--out-key', key], /--out-cert is required/],
    [['--host', 'kbs', '--out-cert', cert, '--out-key', key, '--days', '0'], /--days must be/],
    [['--host', 'kbs', '--out-cert', cert, '--out-key', key, '--days', '3651'], /--days must be/],
    [['--host', 'kbs', '--out-cert', cert, '--out-key', cert], /must be different files/],
    [['--host', 'kbs', '--out-cert', cert, '--out-key', key, '--bogus'], /Unknown option/],
  ];
  for (const [args, message] of cases) {
    const r = await run(['config', 'gen-cert', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, message);
  }
  t.false(existsSync(cert));
  t.false(existsSync(key));
  const missingDir = await run(['config', 'gen-cert', '--host', 'kbs', '--out-cert', join(d, 'no/c.pem'), '--out-key', join(d, 'no/k.pem')]);
  t.is(missingDir.code, 1);
  t.regex(missingDir.err, /cannot write the files \(ENOENT\)/);
});

test('DER edge cases: long SAN lists (multi-byte lengths), validity past 2049 (GeneralizedTime), IPv6 forms', (t) => {
  const hosts = Array.from({ length: 60 }, (_, i) => `host-${i}.a-rather-long-cluster-domain-name.example.internal`);
  const ipv6 = ['::1', '2001:db8::8a2e:370:7334', '::ffff:192.0.2.1', '2001:db8:0:0:1:0:0:1'];
  const { certPem, keyPem } = selfSignedCertificate({ hosts: [...hosts, ...ipv6], days: 3650, now: new Date('2045-06-01T00:00:00Z') });
  const x = new X509Certificate(certPem);
  t.true(x.verify(createPublicKey(keyPem)));
  t.is(x.checkHost('host-59.a-rather-long-cluster-domain-name.example.internal'), 'host-59.a-rather-long-cluster-domain-name.example.internal');
  t.truthy(x.checkIP('2001:db8::8a2e:370:7334'));
  t.truthy(x.checkIP('2001:db8::1:0:0:1'));
  t.truthy(x.checkIP('::ffff:192.0.2.1'));
  t.is(new Date(x.validTo).getUTCFullYear(), 2055);
  t.is(new Date(x.validFrom).getUTCFullYear(), 2045);
  t.is(x.subject, `CN=${hosts[0]}`);
});
