/**
 * JWE resource responses (server/jwe.ts), the `tee-pubkey` projection (server/tee-pubkey.ts) and
 * the guest-side key pair (cli/client/tee-keypair.ts); protocol doc §8 and checklist items 35–40.
 *
 * Besides the client class, every algorithm is also decrypted by a small independent
 * implementation in this file (which uses the received `protected` string as AAD, i.e. plain
 * RFC 7516), so the server is not only checked against code written alongside it.
 */
import test from 'ava';
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { concatKdfSha256, encryptForTeeKey, JweError, type JweResponse } from '../server/jwe.js';
import { parseTeePubKey, TeeKeyError, type TeePubKey } from '../server/tee-pubkey.js';
import { clientAadFor, TeeKeyPair, TeeKeyPairError, type TeeKeyPairErrorCode } from '../cli/client/tee-keypair.js';

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

const P256 = TeeKeyPair.generate();
const P521 = TeeKeyPair.generate('ECDH-ES+A256KW-P521');
const RSA = TeeKeyPair.generate('RSA-OAEP-256');
const PLAINTEXT = new TextEncoder().encode('this is a test data: \u00e9\u{1F600}');

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
const unb64u = (s: string): Buffer => Buffer.from(s, 'base64url');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};

function rsa1_5Jwk(kp: TeeKeyPair): TeePubKey {
  const jwk = kp.publicJwk();
  if (jwk.kty !== 'RSA') throw new Error('not RSA');
  return { ...jwk, alg: 'RSA1_5' };
}

function protectedJson(r: JweResponse): string {
  return unb64u(r.protected).toString('utf8');
}

function withoutPadding(em: Buffer): Buffer {
  // RFC 8017 §7.2.2: 0x00 ‖ 0x02 ‖ PS (>= 8 non-zero) ‖ 0x00 ‖ M
  if (em[0] !== 0 || em[1] !== 2) throw new Error('bad PKCS#1 v1.5 block');
  const sep = em.indexOf(0, 2);
  if (sep < 10) throw new Error('bad PKCS#1 v1.5 padding');
  return em.subarray(sep + 1);
}

/** Test-side Concat KDF, written out from RFC 7518 §4.6.2 for the one case KBS uses. */
function kdfEcdhEsA256kw(z: Uint8Array): Buffer {
  const alg = Buffer.from('ECDH-ES+A256KW');
  return createHash('sha256')
    .update(Buffer.concat([u32(1), z, u32(alg.length), alg, u32(0), u32(0), u32(256)]))
    .digest();
}

/** Plain RFC 7516 decryption of the server's flattened JWE with the key pair's private key. */
function independentDecrypt(kp: TeeKeyPair, r: JweResponse): Buffer {
  const priv: KeyObject = createPrivateKey(kp.toPem());
  const header = JSON.parse(protectedJson(r)) as {
    alg: string;
    enc: string;
    epk?: { kty: string; crv: string; x: string; y: string };
  };
  const wrapped = unb64u(r.encrypted_key);
  let cek: Buffer;
  if (header.alg === 'ECDH-ES+A256KW') {
    if (header.epk === undefined) throw new Error('no epk');
    const epk = createPublicKey({ key: { ...header.epk }, format: 'jwk' });
    const z = diffieHellman({ privateKey: priv, publicKey: epk });
    const d = createDecipheriv('id-aes256-wrap', kdfEcdhEsA256kw(z), Buffer.alloc(8, 0xa6));
    cek = Buffer.concat([d.update(wrapped), d.final()]);
  } else if (header.alg === 'RSA-OAEP-256') {
    cek = privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped);
  } else if (header.alg === 'RSA1_5') {
    cek = withoutPadding(privateDecrypt({ key: priv, padding: constants.RSA_NO_PADDING }, wrapped));
  } else {
    throw new Error(`unexpected alg ${header.alg}`);
  }
  const g = createDecipheriv('aes-256-gcm', cek, unb64u(r.iv), { authTagLength: 16 });
  g.setAAD(Buffer.from(r.protected, 'ascii'));
  g.setAuthTag(unb64u(r.tag));
  return Buffer.concat([g.update(unb64u(r.ciphertext)), g.final()]);
}

/**
 * A test-side ECDH-ES+A256KW sender that lets the test choose the protected header text and the
 * AAD independently (to simulate senders that do not emit the canonical form).
 */
function senderEcdh(
  recipient: TeeKeyPair,
  headerText: (epk: { crv: string; x: string; y: string }) => string,
  aadFrom: 'sent' | 'canonical',
  plaintext: Uint8Array,
): Record<string, string> {
  const jwk = recipient.publicJwk();
  if (jwk.kty !== 'EC') throw new Error('not EC');
  const curve = jwk.crv === 'P-256' ? 'prime256v1' : 'secp521r1';
  const n = jwk.crv === 'P-256' ? 32 : 66;
  const eph = createECDH(curve);
  const epkRaw = eph.generateKeys();
  const z = eph.computeSecret(Buffer.concat([Buffer.from([4]), unb64u(jwk.x), unb64u(jwk.y)]));
  const cek = randomBytes(32);
  const w = createCipheriv('id-aes256-wrap', kdfEcdhEsA256kw(z), Buffer.alloc(8, 0xa6));
  const encryptedKey = Buffer.concat([w.update(cek), w.final()]);
  const sent = b64u(
    Buffer.from(headerText({ crv: jwk.crv, x: b64u(epkRaw.subarray(1, 1 + n)), y: b64u(epkRaw.subarray(1 + n)) })),
  );
  const aad = aadFrom === 'sent' ? sent : clientAadFor(sent);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
  c.setAAD(Buffer.from(aad, 'ascii'));
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return {
    protected: sent,
    encrypted_key: b64u(encryptedKey),
    iv: b64u(iv),
    ciphertext: b64u(ciphertext),
    tag: b64u(c.getAuthTag()),
  };
}

function jweError(f: () => unknown): JweError {
  try {
    f();
  } catch (e) {
    if (e instanceof JweError) return e;
    throw e;
  }
  throw new Error('expected a JweError');
}

function clientError(f: () => unknown): TeeKeyPairError {
  try {
    f();
  } catch (e) {
    if (e instanceof TeeKeyPairError) return e;
    throw e;
  }
  throw new Error('expected a TeeKeyPairError');
}

function ecJwk(kp: TeeKeyPair): Extract<TeePubKey, { kty: 'EC' }> {
  const jwk = kp.publicJwk();
  if (jwk.kty !== 'EC') throw new Error('not EC');
  return jwk;
}

function rsaJwk(kp: TeeKeyPair): Extract<TeePubKey, { kty: 'RSA' }> {
  const jwk = kp.publicJwk();
  if (jwk.kty !== 'RSA') throw new Error('not RSA');
  return jwk;
}

const B64U_RE = /^[A-Za-z0-9_-]+$/;

// ---------------------------------------------------------------------------------------------
// Round trips and exact wire format (checklist 35–39)

const CASES: ReadonlyArray<{ name: string; kp: TeeKeyPair; key: () => TeePubKey; ekLen: number }> = [
  { name: 'P-256', kp: P256, key: () => P256.publicJwk(), ekLen: 40 },
  { name: 'P-521', kp: P521, key: () => P521.publicJwk(), ekLen: 40 },
  { name: 'RSA-OAEP-256', kp: RSA, key: () => RSA.publicJwk(), ekLen: 256 },
  { name: 'RSA1_5', kp: RSA, key: () => rsa1_5Jwk(RSA), ekLen: 256 },
];

for (const c of CASES) {
  test(`${c.name}: round trip through the client and an independent decrypter`, (t) => {
    const r = encryptForTeeKey(c.key(), PLAINTEXT);
    t.deepEqual(Buffer.from(c.kp.decrypt(r)), Buffer.from(PLAINTEXT));
    t.deepEqual(independentDecrypt(c.kp, r), Buffer.from(PLAINTEXT));
    // The raw HTTP body form decrypts too.
    t.deepEqual(Buffer.from(c.kp.decrypt(JSON.stringify(r))), Buffer.from(PLAINTEXT));
  });

  test(`${c.name}: body layout, field sizes, no padding, no aad`, (t) => {
    const r = encryptForTeeKey(c.key(), PLAINTEXT);
    const body = JSON.stringify(r);
    t.deepEqual(Object.keys(JSON.parse(body) as object), ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag']);
    t.false(body.includes('='));
    t.false('aad' in r);
    for (const v of Object.values(r)) t.regex(v as string, B64U_RE);
    t.is(unb64u(r.iv).length, 12);
    t.is(unb64u(r.tag).length, 16);
    t.is(unb64u(r.encrypted_key).length, c.ekLen);
    t.is(unb64u(r.ciphertext).length, PLAINTEXT.length);
  });

  test(`${c.name}: protected equals the Rust client's re-serialization byte for byte`, (t) => {
    const r = encryptForTeeKey(c.key(), PLAINTEXT);
    t.is(clientAadFor(r.protected), r.protected);
  });

  test(`${c.name}: tampering with any field fails decryption`, (t) => {
    const r = encryptForTeeKey(c.key(), PLAINTEXT);
    const flip = (s: string, at: number): string => {
      const b = unb64u(s);
      b[at % b.length] = (b[at % b.length] ?? 0) ^ 0x01;
      return b64u(b);
    };
    for (const field of ['ciphertext', 'tag', 'iv', 'encrypted_key'] as const) {
      const e = clientError(() => c.kp.decrypt({ ...r, [field]: flip(r[field], 3) }));
      t.is(e.code, 'DECRYPT_FAILED', field);
    }
    // Protected header changed but still a valid header: a new member (AAD changes).
    const h = JSON.parse(protectedJson(r)) as Record<string, unknown>;
    const altered = b64u(Buffer.from(JSON.stringify({ ...h, kid: 'x' })));
    t.is(clientError(() => c.kp.decrypt({ ...r, protected: altered })).code, 'DECRYPT_FAILED');
    // Truncated tag.
    t.is(clientError(() => c.kp.decrypt({ ...r, tag: b64u(unb64u(r.tag).subarray(0, 12)) })).code, 'DECRYPT_FAILED');
  });
}

test('P-256: exact protected header (checklist 35)', (t) => {
  const r = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  const json = protectedJson(r);
  t.regex(
    json,
    /^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-256","kty":"EC","x":"[A-Za-z0-9_-]{43}","y":"[A-Za-z0-9_-]{43}"\}\}$/,
  );
  const { epk } = JSON.parse(json) as { epk: { x: string; y: string } };
  t.is(unb64u(epk.x).length, 32);
  t.is(unb64u(epk.y).length, 32);
  // The ephemeral key is a valid P-256 point.
  t.notThrows(() => createPublicKey({ key: { kty: 'EC', crv: 'P-256', ...epk }, format: 'jwk' }));
});

test('P-521: exact protected header with 66-byte coordinates (checklist 39)', (t) => {
  const r = encryptForTeeKey(P521.publicJwk(), PLAINTEXT);
  const json = protectedJson(r);
  t.regex(
    json,
    /^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-521","kty":"EC","x":"[A-Za-z0-9_-]{88}","y":"[A-Za-z0-9_-]{88}"\}\}$/,
  );
  const { epk } = JSON.parse(json) as { epk: { x: string; y: string } };
  t.is(unb64u(epk.x).length, 66);
  t.is(unb64u(epk.y).length, 66);
});

test('RSA-OAEP-256 and RSA1_5: exact protected headers (checklist 37, 38)', (t) => {
  const oaep = encryptForTeeKey(RSA.publicJwk(), PLAINTEXT);
  t.is(protectedJson(oaep), '{"alg":"RSA-OAEP-256","enc":"A256GCM"}');
  t.is(oaep.protected, 'eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0');
  const v15 = encryptForTeeKey(rsa1_5Jwk(RSA), PLAINTEXT);
  t.is(protectedJson(v15), '{"alg":"RSA1_5","enc":"A256GCM"}');
  t.is(v15.protected, 'eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIn0');
});

test('RSA1_5 is reported as deprecated; other algorithms are not', (t) => {
  const messages: string[] = [];
  const onDeprecated = (m: string): void => {
    messages.push(m);
  };
  encryptForTeeKey(RSA.publicJwk(), PLAINTEXT, { onDeprecated });
  encryptForTeeKey(P256.publicJwk(), PLAINTEXT, { onDeprecated });
  t.deepEqual(messages, []);
  encryptForTeeKey(rsa1_5Jwk(RSA), PLAINTEXT, { onDeprecated });
  t.is(messages.length, 1);
  t.regex(messages[0] ?? '', /RSA1_5/);
  t.regex(messages[0] ?? '', /deprecated/);
});

test('fresh CEK, IV and ephemeral key for every response', (t) => {
  const a = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  const b = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  t.not(a.protected, b.protected);
  t.not(a.iv, b.iv);
  t.not(a.encrypted_key, b.encrypted_key);
  t.not(a.ciphertext, b.ciphertext);
});

test('empty and large payloads round trip', (t) => {
  const empty = encryptForTeeKey(P256.publicJwk(), new Uint8Array(0));
  t.is(empty.ciphertext, '');
  t.is(P256.decrypt(empty).length, 0);
  const big = randomBytes(1 << 20);
  t.deepEqual(Buffer.from(P521.decrypt(encryptForTeeKey(P521.publicJwk(), big))), big);
});

test('an RSA-4096 key (largest accepted) works', (t) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const kp = TeeKeyPair.fromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const r = encryptForTeeKey(kp.publicJwk(), PLAINTEXT);
  t.is(unb64u(r.encrypted_key).length, 512);
  t.deepEqual(Buffer.from(kp.decrypt(r)), Buffer.from(PLAINTEXT));
});

// ---------------------------------------------------------------------------------------------
// Concat KDF and AES key wrap known answers

test('Concat KDF: RFC 7518 Appendix C known answer', (t) => {
  // ECDH-ES direct key agreement example: Z, AlgorithmID "A128GCM", PartyU "Alice", PartyV "Bob".
  const z = Buffer.from([
    158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72, 246,
    218, 167, 121, 140, 254, 144, 196,
  ]);
  const out = concatKdfSha256(z, 'A128GCM', 128, Buffer.from('Alice'), Buffer.from('Bob'));
  t.is(b64u(out), 'VqqN6vgjbSBcIijNcacQGg');
});

test('Concat KDF: the KBS parameters match an independent computation', (t) => {
  for (const len of [32, 66]) {
    const z = Buffer.alloc(len);
    for (let i = 0; i < len; i++) z[i] = i;
    const expected = createHash('sha256')
      .update(
        Buffer.concat([
          Buffer.from('00000001', 'hex'),
          z,
          Buffer.from('0000000e', 'hex'),
          Buffer.from('ECDH-ES+A256KW', 'ascii'),
          Buffer.from('00000000', 'hex'),
          Buffer.from('00000000', 'hex'),
          Buffer.from('00000100', 'hex'),
        ]),
      )
      .digest();
    t.deepEqual(concatKdfSha256(z, 'ECDH-ES+A256KW', 256), expected);
  }
  // Multi-block output: counter increments, output truncated.
  const z = Buffer.alloc(32, 7);
  const long = concatKdfSha256(z, 'X', 384);
  t.is(long.length, 48);
  const otherInfo = Buffer.concat([u32(1), Buffer.from('X'), u32(0), u32(0), u32(384)]);
  const block2 = createHash('sha256').update(Buffer.concat([u32(2), z, otherInfo])).digest();
  t.deepEqual(long.subarray(32), block2.subarray(0, 16));
});

test('AES-256 key wrap primitive: RFC 3394 §4.6 known answer', (t) => {
  const kek = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
  const data = Buffer.from('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F', 'hex');
  const c = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
  t.is(
    Buffer.concat([c.update(data), c.final()]).toString('hex').toUpperCase(),
    '28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21',
  );
});

// ---------------------------------------------------------------------------------------------
// Unsupported algorithms and invalid keys (checklist 40)

test('unsupported curves and algorithms are JWE_UNSUPPORTED', (t) => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ format: 'jwk' });
  const cases: TeePubKey[] = [
    { kty: 'EC', crv: 'P-384', alg: 'ECDH-ES+A256KW', x: p384.x ?? '', y: p384.y ?? '' },
    { ...ecJwk(P256), alg: 'ECDH-ES' },
    { ...ecJwk(P256), alg: 'ECDH-ES+A128KW' },
    { ...ecJwk(P256), crv: 'secp256k1' },
    { ...rsaJwk(RSA), alg: 'RSA-OAEP' },
    { ...rsaJwk(RSA), alg: 'RSA-OAEP-512' },
    { ...rsaJwk(RSA), alg: 'ML-KEM-768+A192KW' },
  ];
  for (const key of cases) {
    const e = jweError(() => encryptForTeeKey(key, PLAINTEXT));
    t.is(e.code, 'JWE_UNSUPPORTED', `${key.kty} ${key.alg}`);
    t.true(e.message.includes(key.alg) || (key.kty === 'EC' && e.message.includes(key.crv)), e.message);
  }
  const p384Err = jweError(() => encryptForTeeKey(cases[0] as TeePubKey, PLAINTEXT));
  t.regex(p384Err.message, /P-384/);
  t.false(p384Err.message.includes(p384.x ?? '?'));
  // A key type the protocol type does not allow (e.g. AKP) if one slips through.
  const akp = { kty: 'AKP', alg: 'ML-KEM-768+A192KW', pub: 'AAAA' } as unknown as TeePubKey;
  t.is(jweError(() => encryptForTeeKey(akp, PLAINTEXT)).code, 'JWE_UNSUPPORTED');
});

test('RSA keys below 2048 or above 4096 bits are refused', (t) => {
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const e = jweError(() =>
    encryptForTeeKey({ kty: 'RSA', alg: 'RSA-OAEP-256', n: small.n ?? '', e: small.e ?? '' }, PLAINTEXT),
  );
  t.is(e.code, 'JWE_UNSUPPORTED');
  t.regex(e.message, /2048/);
  t.false(e.message.includes(small.n ?? '?'));
  const n4097 = Buffer.alloc(513, 0xff);
  n4097[0] = 0x01;
  t.is(jweError(() => encryptForTeeKey({ kty: 'RSA', alg: 'RSA-OAEP-256', n: b64u(n4097), e: 'AQAB' }, PLAINTEXT)).code, 'JWE_UNSUPPORTED');
  // Leading zero octets do not make a small key look big.
  const padded = Buffer.concat([Buffer.alloc(200), unb64u(small.n ?? '')]);
  t.is(jweError(() => encryptForTeeKey({ kty: 'RSA', alg: 'RSA1_5', n: b64u(padded), e: 'AQAB' }, PLAINTEXT)).code, 'JWE_UNSUPPORTED');
});

test('invalid RSA key material is JWE_INVALID_KEY', (t) => {
  const good = rsaJwk(RSA);
  const even = unb64u(good.n);
  even[even.length - 1] = (even[even.length - 1] ?? 0) & 0xfe;
  const bad: Array<Extract<TeePubKey, { kty: 'RSA' }>> = [
    { ...good, e: 'AQ' }, // e = 1: would send the CEK in clear
    { ...good, e: 'Ag' }, // even
    { ...good, e: b64u(Buffer.from('0400000000', 'hex')) }, // > 2^33 - 1
    { ...good, n: b64u(even) },
    { ...good, n: `${good.n}=` },
    { ...good, n: good.n.replace(/.$/, '+') },
  ];
  for (const key of bad) t.is(jweError(() => encryptForTeeKey(key, PLAINTEXT)).code, 'JWE_INVALID_KEY');
});

test('invalid EC points and coordinates are JWE_INVALID_KEY, never a crash', (t) => {
  const good = ecJwk(P256);
  const x = unb64u(good.x);
  const y = unb64u(good.y);
  const yPlus1 = Buffer.from(y);
  for (let i = yPlus1.length - 1; i >= 0; i--) {
    yPlus1[i] = ((yPlus1[i] ?? 0) + 1) & 0xff;
    if (yPlus1[i] !== 0) break;
  }
  const p = Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex');
  const cases: Array<[string, Extract<TeePubKey, { kty: 'EC' }>]> = [
    ['not on curve', { ...good, y: b64u(yPlus1) }],
    ['all zero', { ...good, x: b64u(Buffer.alloc(32)), y: b64u(Buffer.alloc(32)) }],
    ['x = p', { ...good, x: b64u(p) }],
    ['31-byte x', { ...good, x: b64u(x.subarray(1)) }],
    ['33-byte y', { ...good, y: b64u(Buffer.concat([Buffer.alloc(1), y])) }],
    ['P-256 coordinates on P-521', { ...good, crv: 'P-521' }],
    ['65-byte P-521 coordinate', { ...ecJwk(P521), x: b64u(unb64u(ecJwk(P521).x).subarray(1)) }],
    ['padded base64', { ...good, x: `${good.x}=` }],
    ['standard base64 alphabet', { ...good, x: `${good.x.slice(0, -1)}+` }],
    ['garbage', { ...good, x: '!!!!', y: 'not base64 at all' }],
    ['empty', { ...good, x: '', y: '' }],
  ];
  for (const [name, key] of cases) {
    const e = jweError(() => encryptForTeeKey(key, PLAINTEXT));
    t.is(e.code, 'JWE_INVALID_KEY', name);
    t.false(e.message.includes(key.x) && key.x.length > 0, name);
  }
});

// ---------------------------------------------------------------------------------------------
// The AAD pitfall (§8.4, checklist 36)

test('client computes the AAD over the re-serialized header, not the received text', (t) => {
  // A sender (like `jose`) that emits members in another order and uses its own text as AAD
  // produces a JWE the Rust client cannot decrypt …
  const reordered = (epk: { crv: string; x: string; y: string }): string =>
    `{"enc":"A256GCM","alg":"ECDH-ES+A256KW","epk":{"x":"${epk.x}","crv":"${epk.crv}","kty":"EC","y":"${epk.y}"}}`;
  const naive = senderEcdh(P256, reordered, 'sent', PLAINTEXT);
  t.is(clientError(() => P256.decrypt(naive)).code, 'DECRYPT_FAILED');
  // … while the same header text with the AAD computed over the canonical form decrypts.
  const canonical = senderEcdh(P256, reordered, 'canonical', PLAINTEXT);
  t.deepEqual(Buffer.from(P256.decrypt(canonical)), Buffer.from(PLAINTEXT));
  const sent = JSON.parse(unb64u(canonical.protected ?? '').toString()) as { epk: { x: string; y: string } };
  t.is(
    unb64u(clientAadFor(canonical.protected ?? '')).toString(),
    `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":"${sent.epk.x}","y":"${sent.epk.y}"}}`,
  );
  // Whitespace in the received header is likewise not part of the AAD.
  const spaced = senderEcdh(
    P521,
    (epk) => `{ "alg" : "ECDH-ES+A256KW",\n "enc": "A256GCM", "epk": {"kty":"EC","crv":"${epk.crv}","x":"${epk.x}","y":"${epk.y}"} }`,
    'canonical',
    PLAINTEXT,
  );
  t.deepEqual(Buffer.from(P521.decrypt(spaced)), Buffer.from(PLAINTEXT));
  // Our server's output is already canonical, so both notions of AAD agree.
  const ours = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  t.is(clientAadFor(ours.protected), ours.protected);
});

test("client re-serialization follows serde_json (numbers, escapes, key order, duplicates)", (t) => {
  const aadText = (json: string): string => unb64u(clientAadFor(b64u(Buffer.from(json)))).toString('utf8');
  t.is(aadText('{"enc":"e","alg":"a"}'), '{"alg":"a","enc":"e"}');
  t.is(
    aadText('{"alg":"a","enc":"e","z":[1,1.0,0.1,1e21,1e-7,-0,12345678901234567890,1E2,1.5e300,100000000000000000000]}'),
    '{"alg":"a","enc":"e","z":[1,1.0,0.1,1e21,1e-7,-0.0,12345678901234567890,100.0,1.5e300,1e20]}',
  );
  t.is(aadText('{"alg":"a","enc":"e","n":-9223372036854775808,"m":0.000001,"k":1e16,"j":1e15}'),
    '{"alg":"a","enc":"e","j":1000000000000000.0,"k":1e16,"m":1e-6,"n":-9223372036854775808}');
  t.is(aadText('{"alg":"a","enc":"e","s":"\\u00e9\\/\\u0001\\u001f\\t\\"\\\\\\ud83d\\ude00\\u2028"}'),
    '{"alg":"a","enc":"e","s":"\u00e9/\\u0001\\u001f\\t\\"\\\\\u{1F600}\u2028"}');
  // Keys sort by UTF-8 bytes (U+FFFF before U+1F600, unlike UTF-16 order), recursively; later
  // duplicates of other members win.
  t.is(aadText('{"alg":"a","enc":"e","\u{1F600}":1,"\uffff":2,"b":{"d":1,"c":[{"f":1,"e":2}]},"b2":1,"b2":2}'),
    '{"alg":"a","enc":"e","b":{"c":[{"e":2,"f":1}],"d":1},"b2":2,"\uffff":2,"\u{1F600}":1}');
  const malformed = [
    '{"alg":"a","alg":"a","enc":"e"}', // duplicate typed field
    '{"alg":"a"}', // missing enc
    '{"alg":1,"enc":"e"}',
    '["alg"]',
    '{"alg":"a","enc":"e","s":"\\ud800"}', // lone surrogate
    '{"alg":"a","enc":"e","n":1e400}', // out of f64 range
    '{"alg":"a","enc":"e",}',
    '\ufeff{"alg":"a","enc":"e"}',
    `{"alg":"a","enc":"e","d":${'['.repeat(127)}${']'.repeat(127)}}`, // 128 levels
  ];
  for (const json of malformed) t.is(clientError(() => clientAadFor(b64u(Buffer.from(json)))).code, 'RESPONSE_MALFORMED', json);
  t.notThrows(() => clientAadFor(b64u(Buffer.from(`{"alg":"a","enc":"e","d":${'['.repeat(126)}${']'.repeat(126)}}`))));
});

// ---------------------------------------------------------------------------------------------
// Client: response decoding and key handling

test('client rejects malformed responses with typed errors', (t) => {
  const r = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  const cases: Array<[unknown, TeeKeyPairErrorCode]> = [
    [null, 'RESPONSE_MALFORMED'],
    [[], 'RESPONSE_MALFORMED'],
    ['not json', 'RESPONSE_MALFORMED'],
    [{ ...r, iv: undefined }, 'RESPONSE_MALFORMED'],
    [{ ...r, tag: 5 }, 'RESPONSE_MALFORMED'],
    [{ ...r, iv: `${r.iv}==` }, 'RESPONSE_MALFORMED'],
    [{ ...r, ciphertext: `${r.ciphertext}=` }, 'RESPONSE_MALFORMED'],
    [{ ...r, protected: Buffer.from(protectedJson(r)).toString('base64') + '=' }, 'RESPONSE_MALFORMED'],
    [{ ...r, aad: null }, 'RESPONSE_MALFORMED'],
    [`{"protected":"${r.protected}","protected":"${r.protected}","encrypted_key":"${r.encrypted_key}","iv":"${r.iv}","ciphertext":"${r.ciphertext}","tag":"${r.tag}"}`, 'RESPONSE_MALFORMED'],
    [{ ...r, iv: b64u(randomBytes(16)) }, 'DECRYPT_FAILED'],
    [{ ...r, encrypted_key: b64u(randomBytes(4)) }, 'DECRYPT_FAILED'],
  ];
  for (const [resp, code] of cases) t.is(clientError(() => P256.decrypt(resp)).code, code, JSON.stringify(resp)?.slice(0, 80));
  // An `aad` string member is tolerated and ignored; unknown members are ignored.
  t.deepEqual(Buffer.from(P256.decrypt({ ...r, aad: 'whatever', extra: 1 })), Buffer.from(PLAINTEXT));
});

test('client refuses responses for another key type, curve or algorithm', (t) => {
  const forRsa = encryptForTeeKey(RSA.publicJwk(), PLAINTEXT);
  const forP256 = encryptForTeeKey(P256.publicJwk(), PLAINTEXT);
  t.is(clientError(() => P256.decrypt(forRsa)).code, 'KEY_MISMATCH');
  t.is(clientError(() => RSA.decrypt(forP256)).code, 'KEY_MISMATCH');
  t.is(clientError(() => P521.decrypt(forP256)).code, 'KEY_MISMATCH');
  const other = TeeKeyPair.generate();
  t.is(clientError(() => other.decrypt(forP256)).code, 'DECRYPT_FAILED');
  const dir = b64u(Buffer.from('{"alg":"dir","enc":"A256GCM"}'));
  t.is(clientError(() => P256.decrypt({ ...forP256, protected: dir })).code, 'UNSUPPORTED_ALGORITHM');
  const oaep1 = b64u(Buffer.from('{"alg":"RSA-OAEP","enc":"A256GCM"}'));
  t.is(clientError(() => RSA.decrypt({ ...forRsa, protected: oaep1 })).code, 'UNSUPPORTED_ALGORITHM');
  const noEpk = b64u(Buffer.from('{"alg":"ECDH-ES+A256KW","enc":"A256GCM"}'));
  t.is(clientError(() => P256.decrypt({ ...forP256, protected: noEpk })).code, 'RESPONSE_MALFORMED');
  // An ephemeral key that is not on the curve.
  const h = JSON.parse(protectedJson(forP256)) as { epk: { x: string; y: string } };
  const badEpk = b64u(
    Buffer.from(JSON.stringify({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', epk: { crv: 'P-256', kty: 'EC', x: h.epk.y, y: h.epk.x } })),
  );
  t.is(clientError(() => P256.decrypt({ ...forP256, protected: badEpk })).code, 'DECRYPT_FAILED');
});

test('TeeKeyPair: generated public JWKs match export_pubkey', (t) => {
  const p256 = P256.publicJwk();
  t.deepEqual(Object.keys(p256), ['kty', 'crv', 'alg', 'x', 'y']);
  t.like(p256, { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' });
  t.is(unb64u(ecJwk(P256).x).length, 32);
  t.is(unb64u(ecJwk(P256).y).length, 32);
  const p521 = ecJwk(P521);
  t.like(p521, { crv: 'P-521', alg: 'ECDH-ES+A256KW' });
  t.is(unb64u(p521.x).length, 66);
  t.is(unb64u(p521.y).length, 66);
  const rsa = RSA.publicJwk();
  t.deepEqual(Object.keys(rsa), ['kty', 'alg', 'n', 'e']);
  t.like(rsa, { kty: 'RSA', alg: 'RSA-OAEP-256', e: 'AQAB' });
  t.is(unb64u(rsaJwk(RSA).n).length, 256);
  // Fixed-length coordinates even when the leading byte is zero (probabilistic: try a few keys).
  for (let i = 0; i < 50; i++) {
    const k = ecJwk(TeeKeyPair.generate());
    t.is(k.x.length, 43);
    t.is(k.y.length, 43);
  }
  // Every generated JWK is a valid tee-pubkey and projects onto itself.
  for (const kp of [P256, P521, RSA]) t.deepEqual(parseTeePubKey(kp.publicJwk()), kp.publicJwk());
  t.throws(() => TeeKeyPair.generate('ECDH-ES+A256KW-P384' as never), { instanceOf: TeeKeyPairError });
});

test('TeeKeyPair: PEM round trips and accepted formats', (t) => {
  for (const kp of [P256, P521, RSA]) {
    const again = TeeKeyPair.fromPem(kp.toPem());
    t.deepEqual(again.publicJwk(), kp.publicJwk());
    t.deepEqual(Buffer.from(again.decrypt(encryptForTeeKey(kp.publicJwk(), PLAINTEXT))), Buffer.from(PLAINTEXT));
  }
  t.regex(RSA.toPem(), /^-----BEGIN RSA PRIVATE KEY-----\n/);
  t.regex(P256.toPem(), /^-----BEGIN PRIVATE KEY-----\n/);
  // RSA as PKCS#8 is accepted as well.
  const rsaPkcs8 = createPrivateKey(RSA.toPem()).export({ type: 'pkcs8', format: 'pem' }).toString();
  t.deepEqual(TeeKeyPair.fromPem(rsaPkcs8).publicJwk(), RSA.publicJwk());
});

test('TeeKeyPair: unsupported or malformed PEMs are refused', (t) => {
  const sec1 = createPrivateKey(P256.toPem()).export({ type: 'sec1', format: 'pem' }).toString();
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pub = createPublicKey(P256.toPem()).export({ type: 'spki', format: 'pem' }).toString();
  for (const pem of [sec1, p384, ed, pub, '', 'garbage', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n']) {
    t.is(clientError(() => TeeKeyPair.fromPem(pem)).code, 'KEY_INVALID', pem.slice(0, 40));
  }
});

// ---------------------------------------------------------------------------------------------
// tee-pubkey projection (§6.3)

test('parseTeePubKey projects onto the kbs-types members in their order', (t) => {
  const ec = ecJwk(P256);
  const parsedEc = parseTeePubKey({ y: ec.y, x: ec.x, alg: ec.alg, use: 'enc', kid: 'k1', crv: ec.crv, kty: 'EC', d: 'AAAA' });
  t.deepEqual(parsedEc, ec);
  t.deepEqual(Object.keys(parsedEc), ['kty', 'crv', 'alg', 'x', 'y']);
  t.is(JSON.stringify(parsedEc), JSON.stringify(ec));
  const rsa = rsaJwk(RSA);
  const parsedRsa = parseTeePubKey({ e: rsa.e, n: rsa.n, kty: 'RSA', alg: rsa.alg, ext: true, key_ops: ['wrapKey'] });
  t.deepEqual(Object.keys(parsedRsa), ['kty', 'alg', 'n', 'e']);
  t.deepEqual(parsedRsa, rsa);
  // Unsupported algorithms and curves still parse (they fail at JWE time, checklist 40).
  t.notThrows(() => parseTeePubKey({ ...ec, crv: 'P-384', alg: 'ECDH-ES' }));
  t.notThrows(() => parseTeePubKey({ ...rsa, alg: 'RSA-OAEP' }));
});

test('parseTeePubKey rejects everything else with TEE_KEY_INVALID', (t) => {
  const ec = ecJwk(P256);
  const rsa = rsaJwk(RSA);
  const bigN = b64u(Buffer.alloc(16384 / 8 + 1, 0xff));
  const cases: unknown[] = [
    null,
    undefined,
    'string',
    42,
    [ec],
    {},
    { ...ec, kty: undefined },
    { ...ec, kty: 'ec' },
    { ...ec, kty: 'OKP' },
    { kty: 'AKP', alg: 'ML-KEM-768+A192KW', pub: 'AAAA' },
    { kty: 'oct', k: 'AAAA' },
    { ...ec, x: undefined },
    { ...ec, y: 5 },
    { ...ec, crv: null },
    { ...ec, alg: '' },
    { ...ec, alg: 'A'.repeat(200) },
    { ...ec, x: `${ec.x}=` },
    { ...ec, x: ec.x.replace(/^./, '/') },
    { ...ec, x: ` ${ec.x}` },
    { ...ec, x: '' },
    { ...ec, x: 'A' }, // impossible length
    { ...ec, x: 'AB' }, // non-zero trailing bits
    { ...rsa, n: bigN },
    { ...rsa, e: '' },
    { ...rsa, e: b64u(Buffer.alloc(64, 1)) },
    { ...rsa, n: ['x'] },
    { kty: 'RSA', alg: 'RSA-OAEP-256', n: rsa.n },
  ];
  for (const v of cases) {
    const e = t.throws(() => parseTeePubKey(v), { instanceOf: TeeKeyError }, JSON.stringify(v)?.slice(0, 60));
    t.is(e?.code, 'TEE_KEY_INVALID');
  }
  // An inherited (prototype) member does not count.
  const proto = Object.create({ kty: 'EC' }) as Record<string, unknown>;
  Object.assign(proto, { crv: ec.crv, alg: ec.alg, x: ec.x, y: ec.y });
  t.throws(() => parseTeePubKey(proto), { instanceOf: TeeKeyError });
  // 16384-bit moduli are within the parse bound.
  t.notThrows(() => parseTeePubKey({ ...rsa, n: b64u(Buffer.alloc(16384 / 8, 0xff)) }));
});
