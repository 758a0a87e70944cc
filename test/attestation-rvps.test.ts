/**
 * The built-in RVPS (RVPS messages, the `sample` extractor, the reference-value store on disk) and
 * the attestation (EAR appraisal) policy store, without HTTP: upstream's formats, expiry, caps,
 * reload, and that refused input changes nothing on disk.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  AttestationPolicyError,
  AttestationPolicyStore,
  DEFAULT_ATTESTATION_POLICIES,
  isValidPolicyId,
  policyIdForClass,
} from '../attestation/appraisal-policy-store.js';
import {
  addMonths,
  extractReferenceValues,
  formatExpiration,
  parseExpiration,
  REFERENCE_VALUE_LIMITS,
  RvpsMessageError,
} from '../attestation/reference-values/message.js';
import { ReferenceValueStore, ReferenceValueStoreError } from '../attestation/reference-values/store.js';
import { samplePolicyText } from '../policy/index.js';
import { snapshot } from './helpers/admin-http.js';

const NOW = new Date('2026-03-05T10:20:30.999Z');

function sampleMessage(values: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const payload = Buffer.from(JSON.stringify(values)).toString('base64');
  return JSON.stringify({ version: '0.1.0', type: 'sample', payload, ...extra });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kbs-rvps-'));
}

function refused(t: import('ava').ExecutionContext, f: () => unknown, includes: string): void {
  const e = t.throws(f, { instanceOf: RvpsMessageError });
  t.true(e?.message.includes(includes), `${e?.message} should contain ${includes}`);
}

// ---- messages and the sample extractor -------------------------------------------------------

test('a sample message yields one record per name, expiring 12 months later (whole seconds)', (t) => {
  const records = extractReferenceValues(sampleMessage({ svn: ['1'], major_version: 1, debug: false }), NOW);
  t.deepEqual(
    records.map((r) => [r.name, r.value]),
    [['svn', ['1']], ['major_version', 1], ['debug', false]],
  );
  for (const r of records) {
    t.is(r.version, '0.1.0');
    t.is(r.expiration, '2027-03-05T10:20:30Z');
  }
});

test('version defaults to 0.1.0 when absent; other versions and types are refused', (t) => {
  const payload = Buffer.from('{"a":[1]}').toString('base64');
  t.is(extractReferenceValues(JSON.stringify({ type: 'sample', payload, extra: 1 }), NOW).length, 1);
  refused(t, () => extractReferenceValues(JSON.stringify({ version: '0.2.0', type: 'sample', payload }), NOW), 'Version unmatched! Need 0.1.0');
  refused(t, () => extractReferenceValues(JSON.stringify({ version: '0.1.0', type: 'swid', payload }), NOW), 'Could not find extractor');
  refused(t, () => extractReferenceValues(JSON.stringify({ version: '0.1.0', payload }), NOW), '`type`');
  refused(t, () => extractReferenceValues(JSON.stringify({ version: 1, type: 'sample', payload }), NOW), '`version`');
  refused(t, () => extractReferenceValues('{"version":"0.1.0","type":"sample"', NOW), 'not valid JSON');
  refused(t, () => extractReferenceValues('[]', NOW), 'parse message');
});

test('the payload must be padded, canonical standard base64 of a JSON object', (t) => {
  const json = '{"abc":["??>"]}';
  const std = Buffer.from(json).toString('base64');
  t.is(extractReferenceValues(JSON.stringify({ type: 'sample', payload: std }), NOW).length, 1);
  const msg = (payload: string) => JSON.stringify({ version: '0.1.0', type: 'sample', payload });
  const padded = Buffer.from('{"a":[12]}').toString('base64');
  t.true(padded.endsWith('='));
  refused(t, () => extractReferenceValues(msg(padded.replace(/=+$/, '')), NOW), 'base64');
  refused(t, () => extractReferenceValues(msg(Buffer.from('{"a":"??>"}').toString('base64url')), NOW), 'base64');
  refused(t, () => extractReferenceValues(msg('e30='.replace('0', '1')), NOW), 'base64'); // non-canonical trailing bits
  refused(t, () => extractReferenceValues(msg('%%%'), NOW), 'base64');
  refused(t, () => extractReferenceValues(msg(Buffer.from('not json').toString('base64')), NOW), 'not a JSON document');
  refused(t, () => extractReferenceValues(msg(Buffer.from('[1,2]').toString('base64')), NOW), 'JSON object');
  refused(t, () => extractReferenceValues(msg(Buffer.from([0xff, 0xfe]).toString('base64')), NOW), 'not a JSON document');
  t.deepEqual(extractReferenceValues(msg(Buffer.from('{}').toString('base64')), NOW), []);
});

test('names: storage-key characters only, no leading dot, bounded length', (t) => {
  for (const good of ['svn', 'snp_launch_measurement', 'a-b.c', 'rvps/x/y', 'A9']) {
    t.is(extractReferenceValues(sampleMessage({ [good]: [1] }), NOW)[0]?.name, good);
  }
  for (const bad of ['', '.', '..', '.hidden', 'a b', 'a\\b', 'é', 'a\u0000', 'x'.repeat(REFERENCE_VALUE_LIMITS.nameLength + 1), '/'.repeat(70)]) {
    refused(t, () => extractReferenceValues(sampleMessage({ [bad]: [1] }), NOW), 'invalid reference value name');
  }
});

test('values JSON would change (inexact integers), too deep or too large are refused', (t) => {
  const payload = Buffer.from('{"big":[18446744073709551615]}').toString('base64');
  refused(t, () => extractReferenceValues(JSON.stringify({ type: 'sample', payload }), NOW), 'not exact');
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  refused(t, () => extractReferenceValues(sampleMessage({ deep }), NOW), 'nested too deeply');
  refused(t, () => extractReferenceValues(sampleMessage({ huge: ['x'.repeat(REFERENCE_VALUE_LIMITS.recordBytes)] }), NOW), 'larger than');
  const many = Object.fromEntries(Array.from({ length: REFERENCE_VALUE_LIMITS.valuesPerMessage + 1 }, (_, i) => [`n${i}`, [i]]));
  refused(t, () => extractReferenceValues(sampleMessage(many), NOW), 'at most');
});

test('expiration arithmetic follows chrono: month-end clamping, strict parsing', (t) => {
  t.is(formatExpiration(addMonths(new Date('2024-02-29T00:00:00Z'), 12)), '2025-02-28T00:00:00Z');
  t.is(formatExpiration(addMonths(new Date('2025-01-31T23:59:59Z'), 12)), '2026-01-31T23:59:59Z');
  t.is(formatExpiration(addMonths(new Date('2025-03-31T12:00:00Z'), 11)), '2026-02-28T12:00:00Z');
  t.is(parseExpiration('2027-03-05T10:20:30Z')?.toISOString(), '2027-03-05T10:20:30.000Z');
  for (const bad of ['2027-03-05T10:20:30.5Z', '2027-02-30T00:00:00Z', '2027-03-05 10:20:30Z', '2027-03-05T24:00:00Z', '2027-03-05T10:20:30+00:00']) {
    t.is(parseExpiration(bad), undefined, bad);
  }
});

// ---- the reference-value store ----------------------------------------------------------------

test('register → query; stored as upstream LocalFs records; reloaded on open', async (t) => {
  const dir = tempDir();
  const store = await ReferenceValueStore.open(dir, { now: () => NOW });
  t.deepEqual(await store.register(sampleMessage({ svn: ['1'], 'a/b': { k: 'v' } })), ['svn', 'a/b']);
  t.deepEqual(store.query('svn'), ['1']);
  t.deepEqual(store.query('a/b'), { k: 'v' });
  t.is(store.query('missing'), null);
  t.deepEqual(readdirSync(dir).sort(), ['a\\x2Fb', 'svn']);
  t.is(readFileSync(join(dir, 'svn'), 'utf8'), '{"version":"0.1.0","name":"svn","expiration":"2027-03-05T10:20:30Z","value":["1"]}');

  await store.register(sampleMessage({ svn: ['2', '3'] }));
  t.deepEqual(store.query('svn'), ['2', '3']);
  const again = await ReferenceValueStore.open(dir, { now: () => NOW });
  t.deepEqual(again.ids(), ['a/b', 'svn']);
  t.deepEqual(again.query('svn'), ['2', '3']);
  t.deepEqual(again.get('a/b'), { k: 'v' });
});

test('a stored null value is found (null to the policy, "null" to GET)', async (t) => {
  const store = await ReferenceValueStore.open(tempDir(), { now: () => NOW });
  await store.register(sampleMessage({ nothing: null }));
  t.is(store.get('nothing'), null);
  t.is(store.get('other'), undefined);
});

test('an expired reference value is treated as absent (reported once) until registered again', async (t) => {
  let now = NOW;
  const expired: string[] = [];
  const store = await ReferenceValueStore.open(tempDir(), { now: () => now, onExpired: (id, exp) => expired.push(`${id} ${exp}`) });
  await store.register(sampleMessage({ svn: ['1'] }));
  now = new Date('2027-03-05T10:20:30.000Z');
  t.deepEqual(store.query('svn'), ['1']); // the expiration instant itself is still valid
  now = new Date('2027-03-05T10:20:31.000Z');
  t.is(store.query('svn'), null);
  t.is(store.get('svn'), undefined);
  t.is(store.query('svn'), null);
  t.deepEqual(expired, ['svn 2027-03-05T10:20:30Z']);
  await store.register(sampleMessage({ svn: ['1'] }));
  t.deepEqual(store.query('svn'), ['1']);
});

test('a Trustee-written RVPS directory loads as is (names with \\x2F, version defaulted)', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'rvps\\x2Fsnp'), '{"name":"rvps/snp","expiration":"2099-01-01T00:00:00Z","value":["abc"]}');
  writeFileSync(join(dir, '.0123456789abcdef.tmp.other'), 'ignored dot file');
  writeFileSync(join(dir, '.rv-0123456789abcdef.tmp'), 'stale temp file');
  const store = await ReferenceValueStore.open(dir);
  t.deepEqual(store.query('rvps/snp'), ['abc']);
  t.false(readdirSync(dir).includes('.rv-0123456789abcdef.tmp'));
});

test('a corrupt stored record stops the open with the file named', async (t) => {
  for (const [file, text] of [
    ['svn', 'not json'],
    ['svn', '{"name":"svn","expiration":"tomorrow","value":1}'],
    ['svn', '{"name":"svn","expiration":"2099-01-01T00:00:00Z"}'],
    ['a b', '{"name":"a b","expiration":"2099-01-01T00:00:00Z","value":1}'],
  ] as const) {
    const dir = tempDir();
    writeFileSync(join(dir, file), text);
    const e = await t.throwsAsync(ReferenceValueStore.open(dir), { instanceOf: ReferenceValueStoreError });
    t.true(e?.message.includes(join(dir, file)));
  }
});

test('caps: a message that would exceed the entry or byte cap changes nothing', async (t) => {
  const dir = tempDir();
  const store = await ReferenceValueStore.open(dir, { now: () => NOW, maxEntries: 3, maxTotalBytes: 1000 });
  await store.register(sampleMessage({ a: [1], b: [2] }));
  const before = snapshot(dir);
  await t.throwsAsync(store.register(sampleMessage({ c: [3], d: [4] })), { instanceOf: RvpsMessageError, message: /more than 3 reference values/ });
  await t.throwsAsync(store.register(sampleMessage({ a: ['x'.repeat(900)] })), { instanceOf: RvpsMessageError, message: /more than 1000 bytes/ });
  t.deepEqual(snapshot(dir), before);
  t.deepEqual(store.ids(), ['a', 'b']);
  await store.register(sampleMessage({ a: [10], b: [20], c: [30] })); // overwrites count once
  t.deepEqual(store.query('c'), [30]);
});

test('refused messages write nothing; concurrent registrations are serialised', async (t) => {
  const dir = tempDir();
  const store = await ReferenceValueStore.open(dir, { now: () => NOW });
  await store.register(sampleMessage({ keep: ['1'] }));
  const before = snapshot(dir);
  await t.throwsAsync(store.register(sampleMessage({ ok: [1], '../escape': [2] })), { instanceOf: RvpsMessageError });
  await t.throwsAsync(store.register('{"version":"9"}'), { instanceOf: RvpsMessageError });
  t.deepEqual(snapshot(dir), before);
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.register(sampleMessage({ n: [i] }))));
  t.deepEqual(store.query('n'), [19]);
  t.deepEqual(readdirSync(dir).sort(), ['keep', 'n']);
});

// ---- the attestation policy store -------------------------------------------------------------

test('the policy store writes upstream\'s four defaults, never overwriting them', async (t) => {
  const dir = tempDir();
  const store = await AttestationPolicyStore.open(dir);
  t.deepEqual(store.ids(), ['default_cpu', 'default_gpu', 'default_ppcie', 'default_switch']);
  t.deepEqual(readdirSync(dir).sort(), Object.keys(DEFAULT_ATTESTATION_POLICIES).map((id) => `${id}.rego`).sort());
  t.is(readFileSync(join(dir, 'default_cpu.rego'), 'utf8'), samplePolicyText('ear_default_policy_cpu'));
  t.is(store.forClass('cpu')?.source, samplePolicyText('ear_default_policy_cpu'));
  t.is(policyIdForClass('gpu'), 'default_gpu');

  const custom = 'package policy\ntrust_claims := {"hardware": 2}\n';
  await store.set('default_cpu', custom);
  t.is(store.forClass('cpu')?.source, custom);
  const again = await AttestationPolicyStore.open(dir);
  t.is(again.forClass('cpu')?.source, custom);
  t.is(readFileSync(join(dir, 'default_cpu.rego'), 'utf8'), custom);
});

test('an invalid policy or id is refused and the policy in force stays', async (t) => {
  const dir = tempDir();
  const store = await AttestationPolicyStore.open(dir);
  const before = snapshot(dir);
  const e = await t.throwsAsync(store.set('default_cpu', 'package policy\ntrust_claims := {'), { instanceOf: AttestationPolicyError });
  t.regex(e?.message ?? '', /^Malformed policy: 2:\d+: /);
  await t.throwsAsync(store.set('default_cpu', 'package policy\nx := query_reference_value("a", "b")\n'), { instanceOf: AttestationPolicyError });
  for (const id of ['', '../x', 'a/b', 'a.b', 'x'.repeat(129), 'é', '.hidden']) {
    t.false(isValidPolicyId(id), id);
    await t.throwsAsync(store.set(id, 'package policy\n'), { instanceOf: AttestationPolicyError, message: /Illegal policy id/ });
  }
  t.deepEqual(snapshot(dir), before);
  t.is(store.forClass('cpu')?.source, samplePolicyText('ear_default_policy_cpu'));
  await store.set('my-policy_2', 'package policy\n');
  t.true(store.ids().includes('my-policy_2'));
});

test('a stored policy that does not compile stops the open; other files are ignored', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.txt'), 'not a policy');
  await AttestationPolicyStore.open(dir);
  writeFileSync(join(dir, 'broken.rego'), 'package policy\nallow if {');
  const e = await t.throwsAsync(AttestationPolicyStore.open(dir));
  t.true(e?.message.includes('broken.rego'));
});
