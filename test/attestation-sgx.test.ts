/** The `sgx` verifier end to end on the shared vectors (evidence JSON as the guest sends it). */
import test from 'ava';
import { SgxVerifier } from '../attestation/sgx/verifier.js';
import { AttestationFailure, type Claims } from '../attestation/types.js';
import { vec, vecText } from './dcap-helpers.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const json = (rel: string): unknown => JSON.parse(vecText(rel));
const plain = (c: Claims): unknown => JSON.parse(JSON.stringify(c));
const q4 = vec('tdx/tdx_quote_4.dat');

test('sgx: evidence-occlum.json verifies with report data "test"; claims equal upstream', async (t) => {
  const claims = await new SgxVerifier().verify(json('sgx/evidence-occlum.json'), Buffer.from('test'), undefined, NOW);
  const expected = json('sgx/occlum-expected-claims.json') as Record<string, unknown>;
  const got = plain(claims) as Record<string, unknown>;
  for (const k of Object.keys(expected)) t.deepEqual(got[k], expected[k], k);
  t.deepEqual(Object.keys(got).slice(0, 5), Object.keys(expected));
  t.is(got['tcb_status'], 'Unknown');
});

test('sgx: CONFIGID init data (pad 64), wrong report data, TDX quote and bad evidence are rejected', async (t) => {
  const v = new SgxVerifier();
  const ev = json('sgx/evidence-occlum.json');
  await t.notThrowsAsync(v.verify(ev, Buffer.from('test'), Buffer.alloc(32), NOW));
  const e1 = await t.throwsAsync(v.verify(ev, Buffer.from('test'), Buffer.alloc(32, 1), NOW), { instanceOf: AttestationFailure });
  t.is(e1?.step, 'init-data');
  const e2 = await t.throwsAsync(v.verify(ev, Buffer.from('tesT'), undefined, NOW), { instanceOf: AttestationFailure });
  t.is(e2?.step, 'report-data');
  const e3 = await t.throwsAsync(v.verify({ quote: q4.toString('base64') }, Buffer.alloc(64), undefined, NOW), { instanceOf: AttestationFailure });
  t.is(e3?.step, 'quote-format');
  for (const bad of [null, {}, { quote: 7 }, { quote: '' }, { quote: '@@' }]) {
    const e = await t.throwsAsync(v.verify(bad, Buffer.alloc(64), undefined, NOW), { instanceOf: AttestationFailure });
    t.is(e?.step, 'evidence-format');
  }
});
