/**
 * Runtime-data binding (kbs-protocol.md §6.3): RFC 8785 canonical JSON and the report-data digest,
 * on the upstream unit vector, the worked vectors of the protocol notes and shared/vectors/sample.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { canonicalJson, CanonicalJsonError, runtimeDataDigest, runtimeDataObject } from '../attestation/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const sampleDir = join(VECTORS, 'sample');

const sha384 = (s: string): string => createHash('sha384').update(Buffer.from(s, 'utf8')).digest('hex');

const WORKED_NONCE = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64');
const WORKED_KEY = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'AAAA', y: 'BBBB' };

test('upstream unit vector: JCS and SHA-384 of {"b":1,"a":"test","c":{"d":"e"}}', (t) => {
  const text = canonicalJson({ b: 1, a: 'test', c: { d: 'e' } });
  t.is(text, '{"a":"test","b":1,"c":{"d":"e"}}');
  t.is(
    sha384(text),
    'e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c4597480a186427c813ca941da78870c3',
  );
});

test('worked vector (primary evidence, additional-evidence "")', (t) => {
  t.is(WORKED_NONCE, 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=');
  t.is(
    canonicalJson(runtimeDataObject(WORKED_NONCE, WORKED_KEY, '')),
    '{"additional-evidence":"","nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"AAAA","y":"BBBB"}}',
  );
  t.is(
    runtimeDataDigest(WORKED_NONCE, WORKED_KEY, '').toString('hex'),
    '3ffdd97cf4b3a2670cc6cd3b89cf3b708adcc3d84715ec256c9c86429973484a138962049299861aaded13c6fef90e73',
  );
});

test('worked vector, device variant (no additional-evidence member)', (t) => {
  t.is(
    runtimeDataDigest(WORKED_NONCE, WORKED_KEY, undefined).toString('hex'),
    'e9628fb05e75df7a04dd23e6a86569e96ff4b07d924612969b690d9d32429553da2f946eb3efe8eea81565bc55b25584',
  );
  t.is(
    canonicalJson(runtimeDataObject(WORKED_NONCE, WORKED_KEY, undefined)),
    '{"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"AAAA","y":"BBBB"}}',
  );
});

test('shared vector: runtime-data.json canonicalises to runtime-data.canonical.txt', (t) => {
  const rd = JSON.parse(readFileSync(join(sampleDir, 'runtime-data.json'), 'utf8')) as Record<string, unknown>;
  const canonical = readFileSync(join(sampleDir, 'runtime-data.canonical.txt'), 'utf8');
  t.is(canonicalJson(rd), canonical);
});

test('shared vector: runtimeDataDigest gives expected-report-data.hex, which evidence.json carries', (t) => {
  const rd = JSON.parse(readFileSync(join(sampleDir, 'runtime-data.json'), 'utf8')) as {
    nonce: string;
    'tee-pubkey': object;
    'additional-evidence': string;
  };
  const expected = readFileSync(join(sampleDir, 'expected-report-data.hex'), 'utf8').trim();
  const digest = runtimeDataDigest(rd.nonce, rd['tee-pubkey'], rd['additional-evidence']);
  t.is(digest.toString('hex'), expected);
  const evidence = JSON.parse(readFileSync(join(sampleDir, 'evidence.json'), 'utf8')) as { report_data: string };
  t.is(Buffer.from(evidence.report_data, 'base64').toString('hex'), expected);
  const wrong = JSON.parse(readFileSync(join(sampleDir, 'evidence-wrong-nonce.json'), 'utf8')) as { report_data: string };
  const ffNonce = Buffer.alloc(32, 0xff).toString('base64');
  t.is(
    Buffer.from(wrong.report_data, 'base64').toString('hex'),
    runtimeDataDigest(ffNonce, rd['tee-pubkey'], rd['additional-evidence']).toString('hex'),
  );
});

test('non-canonical serialisations give other digests (conformance items 19 and 20)', (t) => {
  const good = runtimeDataDigest(WORKED_NONCE, WORKED_KEY, '').toString('hex');
  const insertionOrder = JSON.stringify({ 'tee-pubkey': WORKED_KEY, nonce: WORKED_NONCE, 'additional-evidence': '' });
  t.not(sha384(insertionOrder), good);
  t.not(runtimeDataDigest(WORKED_NONCE, WORKED_KEY, undefined).toString('hex'), good);
  const pretty = JSON.stringify(JSON.parse(canonicalJson(runtimeDataObject(WORKED_NONCE, WORKED_KEY, ''))), null, 1);
  t.not(sha384(pretty), good);
});

test('SHA-512 variant (IBM SE) hashes the same canonical text', (t) => {
  const text = canonicalJson(runtimeDataObject(WORKED_NONCE, WORKED_KEY, ''));
  const d = runtimeDataDigest(WORKED_NONCE, WORKED_KEY, '', 'sha512');
  t.is(d.length, 64);
  t.is(d.toString('hex'), createHash('sha512').update(text).digest('hex'));
});

test('additional-evidence string is bound verbatim', (t) => {
  const ae = JSON.stringify({ sampledevice: { svn: '1', report_data: 'AAAA' } });
  const text = canonicalJson(runtimeDataObject(WORKED_NONCE, WORKED_KEY, ae));
  t.true(text.startsWith(`{"additional-evidence":${JSON.stringify(ae)},`));
  t.not(runtimeDataDigest(WORKED_NONCE, WORKED_KEY, ae).toString('hex'), runtimeDataDigest(WORKED_NONCE, WORKED_KEY, '').toString('hex'));
});

test('RFC 8785 §3.2.3: members sorted by UTF-16 code units', (t) => {
  const input = JSON.parse(
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
  ) as Record<string, string>;
  t.is(
    canonicalJson(input),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
});

test('RFC 8785 §3.2.4 example', (t) => {
  const input = JSON.parse(
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
  ) as unknown;
  t.is(
    canonicalJson(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test('RFC 8785 number serialisation (Appendix B samples)', (t) => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [-0, '0'],
    [5e-324, '5e-324'],
    [-5e-324, '-5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [9007199254740992, '9007199254740992'],
    [-9007199254740992, '-9007199254740992'],
    [295147905179352830000, '295147905179352830000'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [0.000001, '0.000001'],
    [123456789012345680000, '123456789012345680000'],
  ];
  for (const [n, s] of cases) t.is(canonicalJson(n), s, s);
});

test('RFC 8785 string escaping', (t) => {
  t.is(canonicalJson('\u0000\u0008\u0009\u000a\u000c\u000d\u001f'), '"\\u0000\\b\\t\\n\\f\\r\\u001f"');
  t.is(canonicalJson('"\\/'), '"\\"\\\\/"');
  t.is(canonicalJson('\u007f\u2028\u2029é😀'), '"\u007f\u2028\u2029é😀"');
});

test('canonicalJson refuses what is not JSON', (t) => {
  const bad: unknown[] = [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    undefined,
    10n,
    () => 1,
    Symbol('s'),
    new Date(0),
    { a: undefined },
    '\ud800',
    { '\udc00': 1 },
    // eslint-disable-next-line no-sparse-arrays
    [1, , 3],
    new Map(),
  ];
  for (const v of bad) t.throws(() => canonicalJson(v), { instanceOf: CanonicalJsonError });
  let deep: unknown = 1;
  for (let i = 0; i < 200; i++) deep = [deep];
  t.throws(() => canonicalJson(deep), { instanceOf: CanonicalJsonError });
  t.throws(() => runtimeDataDigest('\ud800', WORKED_KEY, ''), { instanceOf: CanonicalJsonError });
});

test('canonicalJson accepts null-prototype objects and nested arrays', (t) => {
  const o = Object.create(null) as Record<string, unknown>;
  o['b'] = [1, { y: 2, x: [true, null] }];
  o['a'] = 'z';
  t.is(canonicalJson(o), '{"a":"z","b":[1,{"x":[true,null],"y":2}]}');
});
