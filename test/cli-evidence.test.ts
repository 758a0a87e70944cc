/**
 * `kbs evidence verify` as the real binary (`node dist/cli/kbs.js`) on the vectors of each TEE:
 * claims on stdout and exit 0, `step: <step>: <message>` on stderr and exit 1, usage errors exit 2.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const vec = (...p: string[]): string => join(VECTORS, ...p);
const bin = new URL('../cli/kbs.js', import.meta.url).pathname;
const AT = ['--at', '2026-01-01T00:00:00Z'];
const V2_RD = '982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef';
const CHALLENGE_HEX = Buffer.from('challenge').toString('hex');

/** Runs the binary asynchronously (the tests run concurrently). */
function kbs(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'evidence', 'verify', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

test('az-snp-vtpm v2: exit 0 and exactly the expected claims', async (t) => {
  const r = await kbs('--tee', 'az-snp-vtpm', '--evidence', vec('az-snp-vtpm', 'evidence-v2.json'), '--report-data', V2_RD, ...AT);
  t.is(r.code, 0, r.err);
  t.is(r.err, '');
  t.deepEqual(JSON.parse(r.out), JSON.parse(readFileSync(vec('az-snp-vtpm', 'evidence-v2-expected-claims.json'), 'utf8')));
});

test('az-snp-vtpm: wrong report data exits 1 with the step; no report data is a usage error', async (t) => {
  const bad = await kbs('--tee', 'az-snp-vtpm', '--evidence', vec('az-snp-vtpm', 'evidence-v2.json'), '--report-data', '123abc', ...AT);
  t.is(bad.code, 1);
  t.is(bad.out, '');
  t.is(bad.err, 'step: tpm-nonce: the TPM quote nonce differs from the expected report data\n');
  const none = await kbs('--tee', 'az-snp-vtpm', '--evidence', vec('az-snp-vtpm', 'evidence-v1.json'), ...AT);
  t.is(none.code, 2);
  t.regex(none.err, /--report-data is required for az-snp-vtpm/);
  const late = await kbs('--tee', 'az-snp-vtpm', '--evidence', vec('az-snp-vtpm', 'evidence-v1.json'), '--report-data', CHALLENGE_HEX, '--at', '2040-01-01T00:00:00Z');
  t.is(late.code, 1);
  t.regex(late.err, /^step: snp-certificate-validity: /);
});

test('az-tdx-vtpm v0: exit 0, TPM nonce and offline DCAP verdict in the claims', async (t) => {
  const r = await kbs('--tee', 'az-tdx-vtpm', '--evidence', vec('az-tdx-vtpm', 'evidence-v0.json'), '--report-data', CHALLENGE_HEX, ...AT);
  t.is(r.code, 0, r.err);
  const claims = JSON.parse(r.out) as Record<string, unknown>;
  t.is(claims['report_data'], CHALLENGE_HEX);
  t.is(claims['tcb_status'], 'Unknown');
});

test('snp: verifies without report data; a report-data expectation is checked', async (t) => {
  const r = await kbs('--tee', 'snp', '--evidence', vec('snp', 'e2e-evidence.json'), ...AT);
  t.is(r.code, 0, r.err);
  t.regex((JSON.parse(r.out) as Record<string, string>)['report_data'] ?? '', /^7e732088[0-9a-f]{120}$/);
  const bad = await kbs('--tee', 'snp', '--evidence', vec('snp', 'e2e-evidence.json'), '--report-data', '00', ...AT);
  t.is(bad.code, 1);
  t.regex(bad.err, /^step: report-data: /);
  const vlek = await kbs('--tee', 'snp', '--evidence', vec('snp', 'test-vlek-evidence.json'), ...AT);
  t.is(vlek.code, 1);
  t.regex(vlek.err, /^step: /);
});

test('tdx and sgx: verify without report data; tdx with a wrong one is rejected', async (t) => {
  const tdx = await kbs('--tee', 'tdx', '--evidence', vec('tdx', 'evidence-quote4.json'), ...AT);
  t.is(tdx.code, 0, tdx.err);
  t.truthy((JSON.parse(tdx.out) as Record<string, unknown>)['quote']);
  const wrong = await kbs('--tee', 'tdx', '--evidence', vec('tdx', 'evidence-quote4.json'), '--report-data', 'ff', ...AT);
  t.is(wrong.code, 1);
  t.regex(wrong.err, /^step: report-data: /);
  const sgx = await kbs('--tee', 'sgx', '--evidence', vec('sgx', 'evidence-occlum.json'), ...AT);
  t.is(sgx.code, 0, sgx.err);
});

test('tpm: the generic verifier runs; its 64-byte nonce cannot bind', async (t) => {
  const ok = await kbs('--tee', 'tpm', '--evidence', vec('tpm', 'tpm_evidence.json'));
  t.is(ok.code, 0, ok.err);
  t.truthy((JSON.parse(ok.out) as Record<string, unknown>)['ak_public']);
  const bound = await kbs('--tee', 'tpm', '--evidence', vec('tpm', 'tpm_evidence.json'), '--report-data', 'a04182b5');
  t.is(bound.code, 1);
  t.regex(bound.err, /^step: tpm-nonce: /);
});

test('sample: verifies with its report data; malformed evidence is a verification failure', async (t) => {
  const rd = readFileSync(vec('sample', 'expected-report-data.hex'), 'utf8').trim();
  const ok = await kbs('--tee', 'sample', '--evidence', vec('sample', 'evidence.json'), '--report-data', rd);
  t.is(ok.code, 0, ok.err);
  const dir = mkdtempSync(join(tmpdir(), 'kbs-evidence-'));
  const junk = join(dir, 'junk.json');
  writeFileSync(junk, '{"version": 2}');
  const bad = await kbs('--tee', 'az-snp-vtpm', '--evidence', junk, '--report-data', '00');
  t.is(bad.code, 1);
  t.regex(bad.err, /^step: evidence-format: /);
});

test('usage errors exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbs-evidence-'));
  const notJson = join(dir, 'x.json');
  writeFileSync(notJson, 'nope');
  const cases: string[][] = [
    [],
    ['--tee', 'snp'],
    ['--evidence', notJson],
    ['--tee', 'nope', '--evidence', notJson],
    ['--tee', 'cca', '--evidence', notJson],
    ['--tee', 'snp', '--evidence', join(dir, 'missing.json')],
    ['--tee', 'snp', '--evidence', notJson],
    ['--tee', 'snp', '--evidence', vec('snp', 'e2e-evidence.json'), '--report-data', 'xyz'],
    ['--tee', 'snp', '--evidence', vec('snp', 'e2e-evidence.json'), '--at', 'yesterday'],
    ['--tee', 'snp', '--evidence', vec('snp', 'e2e-evidence.json'), '--bogus'],
  ];
  for (const args of cases) {
    const r = await kbs(...args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, /^kbs evidence: .*\nusage:/s);
  }
});
