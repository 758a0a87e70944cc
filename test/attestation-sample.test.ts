/**
 * The sample and sample-device verifiers on the shared vectors (shared/vectors/sample): accepted
 * evidence, rejected evidence, malformed and oversized input, and the claims upstream produces.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import {
  AttestationFailure,
  decodeStdBase64,
  defaultVerifiers,
  SampleDeviceVerifier,
  SampleVerifier,
  type Claims,
} from '../attestation/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const sampleDir = join(VECTORS, 'sample');
const readJson = (name: string): unknown => JSON.parse(readFileSync(join(sampleDir, name), 'utf8'));

const evidence = readJson('evidence.json') as { svn: string; report_data: string };
const wrongNonceEvidence = readJson('evidence-wrong-nonce.json');
const expectedClaims = readJson('expected-claims.json') as Claims;
const expectedReportData = Buffer.from(readFileSync(join(sampleDir, 'expected-report-data.hex'), 'utf8').trim(), 'hex');
const NOW = new Date('2026-01-01T00:00:00Z');

const sample = new SampleVerifier();
const device = new SampleDeviceVerifier();

async function failure(p: Promise<unknown>): Promise<AttestationFailure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AttestationFailure) return e;
    throw e;
  }
  throw new Error('expected an AttestationFailure');
}

test('the expected report data is the 48-byte SHA-384 digest', (t) => {
  t.is(expectedReportData.length, 48);
});

test('sample accepts evidence.json and yields exactly expected-claims.json', async (t) => {
  const claims = await sample.verify(evidence, expectedReportData, undefined, NOW);
  t.deepEqual(claims, expectedClaims);
  // Same members in the same order as upstream's json! (serde_json preserve_order).
  t.is(JSON.stringify(claims), JSON.stringify(expectedClaims));
  t.is(typeof claims['svn'], 'string');
});

test('sample adds init_data (std base64 of the digest) only when an init-data hash is given', async (t) => {
  const hash = Buffer.alloc(48, 0xab);
  const claims = await sample.verify(evidence, expectedReportData, hash, NOW);
  t.is(claims['init_data'], hash.toString('base64'));
  t.deepEqual({ ...claims, init_data: undefined }, { ...expectedClaims, init_data: undefined });
  const without = await sample.verify(evidence, expectedReportData, undefined, NOW);
  t.false(Object.hasOwn(without, 'init_data'));
});

test('sample rejects evidence-wrong-nonce.json (report data of another nonce)', async (t) => {
  const e = await failure(sample.verify(wrongNonceEvidence, expectedReportData, undefined, NOW));
  t.is(e.step, 'report-data');
});

test('sample rejects a report_data zero-padded to 64 bytes (no padding for sample)', async (t) => {
  const padded = Buffer.concat([expectedReportData, Buffer.alloc(16)]).toString('base64');
  const e = await failure(sample.verify({ svn: '1', report_data: padded }, expectedReportData, undefined, NOW));
  t.is(e.step, 'report-data');
});

test('sample rejects a truncated or extended report_data', async (t) => {
  for (const bytes of [expectedReportData.subarray(0, 32), Buffer.concat([expectedReportData, Buffer.from([1])])]) {
    const e = await failure(sample.verify({ svn: '1', report_data: bytes.toString('base64') }, expectedReportData, undefined, NOW));
    t.is(e.step, 'report-data');
  }
});

test('sample: report_data absent defaults to "" and then does not match', async (t) => {
  const e = await failure(sample.verify({ svn: '1' }, expectedReportData, undefined, NOW));
  t.is(e.step, 'report-data');
  // With an empty expectation the empty default matches, and the claim is "".
  const claims = await sample.verify({ svn: '1' }, new Uint8Array(0), undefined, NOW);
  t.is(claims['report_data'], '');
});

test('sample rejects report_data that is not canonical standard base64', async (t) => {
  const good = evidence.report_data;
  const variants = [
    good.replace(/\+/g, '-').replace(/\//g, '_'), // base64url alphabet
    Buffer.from(expectedReportData).toString('base64url'), // no padding, url alphabet
    `${good.slice(0, 10)} ${good.slice(10)}`, // whitespace
    `${good}\n`,
    Buffer.from([1, 2]).toString('base64').replace('==', ''), // missing padding
    'AQJ=', // non-zero trailing bits ("AQI=" is canonical)
    '====',
    '%%%%',
  ];
  for (const report_data of variants) {
    const e = await failure(sample.verify({ svn: '1', report_data }, expectedReportData, undefined, NOW));
    t.is(e.step, 'report-data', report_data);
  }
});

test('sample rejects malformed evidence with step evidence-format', async (t) => {
  const cases: unknown[] = [
    null,
    undefined,
    'svn',
    42,
    true,
    ['1', evidence.report_data],
    {},
    { report_data: evidence.report_data },
    { svn: 1, report_data: evidence.report_data },
    { svn: null, report_data: evidence.report_data },
    { svn: ['1'], report_data: evidence.report_data },
    { svn: '1', report_data: 1 },
    { svn: '1', report_data: null },
    { svn: '1', report_data: [evidence.report_data] },
    { svn: '1', report_data: { b64: evidence.report_data } },
  ];
  for (const ev of cases) {
    const e = await failure(sample.verify(ev, expectedReportData, undefined, NOW));
    t.is(e.step, 'evidence-format', JSON.stringify(ev) ?? 'undefined');
  }
});

test('sample ignores unknown evidence members', async (t) => {
  const claims = await sample.verify({ ...evidence, extra: { a: 1 }, quote: 'x' }, expectedReportData, undefined, NOW);
  t.deepEqual(claims, expectedClaims);
});

test('sample keeps svn as sent (any string, as upstream)', async (t) => {
  const claims = await sample.verify({ ...evidence, svn: 'v2-beta' }, expectedReportData, undefined, NOW);
  t.is(claims['svn'], 'v2-beta');
});

test('sample bounds huge values and never quotes them in the error', async (t) => {
  const huge = 'A'.repeat(2_000_000);
  const e1 = await failure(sample.verify({ svn: huge, report_data: evidence.report_data }, expectedReportData, undefined, NOW));
  t.is(e1.step, 'evidence-format');
  t.true(e1.message.length < 200);
  const e2 = await failure(sample.verify({ svn: '1', report_data: huge }, expectedReportData, undefined, NOW));
  t.is(e2.step, 'report-data');
  t.true(e2.message.length < 200);
  t.false(e2.message.includes('AAAA'));
});

test('error messages name evidence fields but never quote evidence values', async (t) => {
  const e = await failure(sample.verify(wrongNonceEvidence, expectedReportData, undefined, NOW));
  const rd = (wrongNonceEvidence as { report_data: string }).report_data;
  t.false(e.message.includes(rd));
  t.false(e.message.includes(expectedReportData.toString('hex')));
  t.false(e.message.includes(expectedReportData.toString('base64')));
  t.regex(e.message, /report_data/);
});

test('sampledevice: class gpu, claims {svn, report_data}, init-data hash ignored', async (t) => {
  t.is(device.tee, 'sampledevice');
  t.is(device.teeClass, 'gpu');
  t.is(sample.teeClass, 'cpu');
  const claims = await device.verify(evidence, expectedReportData, Buffer.alloc(32), NOW);
  t.is(JSON.stringify(claims), JSON.stringify({ svn: '1', report_data: evidence.report_data }));
  const e = await failure(device.verify(wrongNonceEvidence, expectedReportData, undefined, NOW));
  t.is(e.step, 'report-data');
  const f = await failure(device.verify({ svn: 7 }, expectedReportData, undefined, NOW));
  t.is(f.step, 'evidence-format');
});

test('defaultVerifiers registers sample and sampledevice only', (t) => {
  const registry = defaultVerifiers();
  t.true(registry.get('sample') instanceof SampleVerifier);
  t.true(registry.get('sampledevice') instanceof SampleDeviceVerifier);
  t.is(registry.get('snp'), undefined);
  t.is(registry.get('tdx'), undefined);
  t.deepEqual(registry.tees().sort(), ['sample', 'sampledevice']);
});

test('decodeStdBase64 is strict', (t) => {
  t.deepEqual(decodeStdBase64(''), Buffer.alloc(0));
  t.deepEqual(decodeStdBase64('AQI='), Buffer.from([1, 2]));
  t.deepEqual(decodeStdBase64('AQID'), Buffer.from([1, 2, 3]));
  t.deepEqual(decodeStdBase64('+/+/'), Buffer.from([0xfb, 0xff, 0xbf]));
  for (const bad of ['AQI', 'AQ==x', 'AQJ=', 'AR==', '-_-_', 'AQ=', 'A===', ' AQI=', 'AQI=\n']) {
    t.is(decodeStdBase64(bad), undefined, bad);
  }
});
