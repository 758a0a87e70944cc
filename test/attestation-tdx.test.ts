/** The `tdx` verifier end to end on the shared vectors (evidence JSON as the guest sends it). */
import test from 'ava';
import { createHash } from 'node:crypto';
import { eventLogClaims, parseCcel, replayRtmr } from '../attestation/tdx/ccel.js';
import { TdxVerifier } from '../attestation/tdx/verifier.js';
import { AttestationFailure, type Claims } from '../attestation/types.js';
import { BEFORE_EXPIRY, collateralDir, tdxReportData, vec, vecText } from './dcap-helpers.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const json = (rel: string): unknown => JSON.parse(vecText(rel));
const plain = (c: Claims): unknown => JSON.parse(JSON.stringify(c));
const q4 = vec('tdx/tdx_quote_4.dat');
const q6 = vec('tdx/tdx_quote_6.dat');

test('evidence-quote4.json verifies with its REPORT_DATA; claims equal upstream (without event log)', async (t) => {
  const claims = await new TdxVerifier().verify(json('tdx/evidence-quote4.json'), tdxReportData(q4), undefined, NOW);
  const expected = json('tdx/parse_tdx_claims_expected.json') as Record<string, unknown>;
  delete expected['uefi_event_logs'];
  const got = plain(claims) as Record<string, unknown>;
  for (const k of Object.keys(expected)) t.deepEqual(got[k], expected[k], k);
  t.deepEqual(Object.keys(got).slice(0, 5), ['quote', 'td_attributes', 'report_data', 'init_data', 'platform_instance_id']);
  t.is(got['tcb_status'], 'Unknown');
});

test('evidence-quote6.json: 48-byte report data (padded to 64), MRCONFIGID init data (padded to 48), OutOfDate', async (t) => {
  const v = new TdxVerifier({ collateralDir: collateralDir() });
  const rd48 = tdxReportData(q6).subarray(0, 48);
  const mrConfigId = q6.subarray(48 + 184, 48 + 232);
  const claims = await v.verify(json('tdx/evidence-quote6.json'), rd48, mrConfigId, BEFORE_EXPIRY);
  t.is(claims['tcb_status'], 'OutOfDate');
  t.is(claims['init_data'], mrConfigId.toString('hex'));
  await t.throwsAsync(v.verify(json('tdx/evidence-quote6.json'), rd48, createHash('sha384').update('x').digest(), BEFORE_EXPIRY), {
    instanceOf: AttestationFailure,
    message: /MRCONFIGID/,
  });
});

test('wrong report data is rejected at step report-data', async (t) => {
  const e = await t.throwsAsync(new TdxVerifier().verify(json('tdx/evidence-quote4.json'), Buffer.alloc(48, 1), undefined, NOW), {
    instanceOf: AttestationFailure,
  });
  t.is(e?.step, 'report-data');
});

test('CCEL_data with tdx_quote_4 is rejected by the event-log replay', async (t) => {
  const evidence = { cc_eventlog: vec('tdx/CCEL_data').toString('base64'), quote: q4.toString('base64') };
  const e = await t.throwsAsync(new TdxVerifier().verify(evidence, tdxReportData(q4), undefined, NOW), { instanceOf: AttestationFailure });
  t.is(e?.step, 'eventlog');
});

test('CCEL_data parses to upstream uefi_event_logs (details included) and replays to upstream RTMRs', (t) => {
  const events = parseCcel(vec('tdx/CCEL_data'));
  const expected = (json('tdx/parse_tdx_claims_expected.json') as { uefi_event_logs: unknown }).uefi_event_logs;
  t.deepEqual(JSON.parse(JSON.stringify(eventLogClaims(events))), expected);
  t.is(replayRtmr(events, 1).toString('hex'), '2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4');
  t.is(replayRtmr(events, 2).toString('hex'), '0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf');
  t.is(replayRtmr(events, 3).toString('hex'), '00'.repeat(48));
});

test('CCEL_data_ovmf parses (20 events) and replays to upstream RTMRs', (t) => {
  const events = parseCcel(vec('tdx/CCEL_data_ovmf'));
  t.is(events.length, 20);
  t.is(replayRtmr(events, 1).toString('hex'), '8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193');
  t.is(replayRtmr(events, 3).toString('hex'), '94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a');
  const logs = eventLogClaims(events) as Array<{ type_name: string; details: Record<string, unknown> }>;
  t.is(logs[2]?.details['unicode_name'], 'SecureBoot');
});

test('truncated or garbage event logs are rejected at step eventlog, never a crash', (t) => {
  const ccel = vec('tdx/CCEL_data');
  for (const n of [0, 3, 20, 31, 60, 100, 200]) t.throws(() => parseCcel(ccel.subarray(0, n)), { instanceOf: AttestationFailure });
  const bad = Buffer.from(ccel.subarray(0, 4096));
  bad.writeUInt32LE(0x7777, 0x45 + 4); // an unknown event type in the first TCG_PCR_EVENT2
  t.throws(() => parseCcel(bad), { instanceOf: AttestationFailure });
});

test('malformed tdx evidence is rejected at step evidence-format', async (t) => {
  const v = new TdxVerifier();
  for (const ev of [null, [], 'x', {}, { quote: 1 }, { quote: '' }, { quote: 'not base64!' }, { quote: q4.toString('base64'), cc_eventlog: 5 }]) {
    const e = await t.throwsAsync(v.verify(ev, Buffer.alloc(64), undefined, NOW), { instanceOf: AttestationFailure });
    t.is(e?.step, 'evidence-format');
  }
});

test('an SGX quote given to the tdx verifier is rejected', async (t) => {
  const e = await t.throwsAsync(new TdxVerifier().verify({ quote: vec('sgx/occlum_quote.dat').toString('base64') }, Buffer.alloc(64), undefined, NOW), {
    instanceOf: AttestationFailure,
  });
  t.is(e?.step, 'quote-format');
});

