/**
 * TokenSigner produces what jose's SignJWT produces (header and payload byte for byte, a signature
 * jose verifies), and TokenVerifier hands out one frozen claims object per remembered token.
 */
import test from 'ava';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { TokenSigner, TokenVerifier } from '../server/tokens.js';

const claims = {
  eat_profile: 'tag:github.com,2024:confidential-containers/Trustee',
  iat: 1_700_000_000,
  exp: 4_000_000_000,
  'ear.verifier-id': { build: 'attestation-service 0.1.0', developer: 'https://confidentialcontainers.org' },
  submods: { cpu0: { 'ear.status': 'affirming', 'ear.trustworthiness-vector': { executables: 2, hardware: 2 }, list: [1, 'a', null, true] } },
  unicode: 'ünïcødé ✓ \u2028',
};

test('TokenSigner: header and payload identical to jose SignJWT; jose verifies the signature', async (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = await TokenSigner.create(privateKey);
  const ours = await signer.sign(claims);
  const theirs = await new SignJWT(claims).setProtectedHeader({ typ: 'JWT', alg: 'ES256', jwk: signer.publicJwk }).sign(privateKey);
  t.is(ours.split('.').slice(0, 2).join('.'), theirs.split('.').slice(0, 2).join('.'));
  const { payload } = await jwtVerify(ours, signer.publicKey, { algorithms: ['ES256'] });
  t.deepEqual(payload, claims);
  await t.throwsAsync(signer.sign({ ...claims, exp: Number.POSITIVE_INFINITY }), { instanceOf: TypeError });
});

test('TokenVerifier: a remembered token gives one deep-frozen claims object, equal to what was signed', async (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = await TokenSigner.create(privateKey);
  const verifier = new TokenVerifier({ ownKey: signer.publicKey, now: () => new Date(1_700_000_100_000) });
  const token = await signer.sign(claims);
  verifier.rememberIssued(token, signer);
  const a = await verifier.verify(token);
  const b = await verifier.verify(token);
  t.is(a, b);
  t.deepEqual(a, claims);
  t.true(Object.isFrozen(a) && Object.isFrozen((a['submods'] as Record<string, object>)['cpu0']));
  t.throws(() => {
    (a as Record<string, unknown>)['exp'] = 0;
  });
  // a token verified by signature (not remembered at issue) is frozen the same way
  const other = await signer.sign({ ...claims, iat: 1_700_000_001 });
  const c = await verifier.verify(other);
  t.true(Object.isFrozen(c));
  t.is(await verifier.verify(other), c);
  t.is((claims.submods.cpu0 as { list: unknown[] }).list.length, 4, 'the caller-side claims are not frozen');
  t.false(Object.isFrozen(claims));
});
