/** Edge cases at the HTTP boundary and token-key extraction. */
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import { SignJWT, exportJWK } from 'jose';
import { TeeKeyPair } from '../cli/client/tee-keypair.js';
import { startTestKbs } from './helpers/kbs-server.js';

function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(text));
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
  });
}

test('requests the HTTP parser refuses still get a JSON problem body', async (t) => {
  const kbs = await startTestKbs({ toml: '[admin]\nauthorization_mode = "InsecureAllowAll"' });
  t.teardown(() => kbs.close());
  const nul = await rawRequest(kbs.url, 'GET /kbs/v0/resource/a\0b/c HTTP/1.1\r\nHost: x\r\n\r\n');
  t.regex(nul, /^HTTP\/1\.1 400 /);
  t.regex(nul, /Content-Type: application\/json/);
  t.regex(nul, /"type":"https:\/\/github\.com\/confidential-containers\/kbs\/errors\/BadRequest"/);
  const big = await rawRequest(kbs.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
  t.regex(big, /^HTTP\/1\.1 431 /);
  t.regex(big, /errors\/RequestHeaderTooLarge/);
  const ok = await fetch(`${kbs.url}/healthz`);
  t.is(ok.status, 200);
});

test('extra_teekey_paths: the TEE key is taken from a configured claim path first', async (t) => {
  const kbs = await startTestKbs({
    toml: `[admin]
authorization_mode = "InsecureAllowAll"
[attestation_token]
insecure_header_jwk = true
extra_teekey_paths = ["/custom/tee~1key"]`,
  });
  t.teardown(() => kbs.close());
  await fetch(`${kbs.url}/kbs/v0/resource/r/t/x`, { method: 'POST', body: 'value' });
  const allow = Buffer.from('package policy\nallow := true\n').toString('base64url');
  t.is((await fetch(`${kbs.url}/kbs/v0/resource-policy`, { method: 'POST', body: JSON.stringify({ policy: allow }) })).status, 200);
  const tee = TeeKeyPair.generate();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), alg: 'ES256' };
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ custom: { 'tee/key': tee.publicJwk() } })
    .setProtectedHeader({ alg: 'ES256', jwk })
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(privateKey);
  const res = await fetch(`${kbs.url}/kbs/v0/resource/r/t/x`, { headers: { Authorization: `Bearer ${token}` } });
  t.is(res.status, 200);
  t.is(Buffer.from(tee.decrypt(await res.json())).toString(), 'value');
  t.regex(kbs.logs(), /insecure_header_jwk/);
});
