/**
 * AMD SEV-SNP verifier on the real vectors of shared/vectors/snp: every file's stated outcome, the
 * upstream claims, the JSON⇄binary codec, the VLEK path with dates, cert_chain substitution and a
 * byte-flipping property over the positive vectors.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import {
  anchorsFromPem,
  builtinAnchors,
  parseSnpEvidence,
  parseSnpReport,
  snpReportToEvidenceJson,
  SnpVerifier,
  verifySnpReportWithCert,
  verifyVekChain,
  type SnpGeneration,
} from '../attestation/snp/index.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const snpFile = (name: string): Buffer => readFileSync(join(VECTORS, 'snp', name));
const snpJson = (name: string): Record<string, unknown> => JSON.parse(snpFile(name).toString('utf8')) as Record<string, unknown>;

/** A date at which every real certificate in the vectors is valid (the VLEK expires 2025-12-10). */
const NOW = new Date('2025-06-01T00:00:00Z');
const AFTER_VLEK_EXPIRY = new Date('2025-12-11T00:00:00Z');

const failsAt = async (t: import('ava').ExecutionContext, p: Promise<unknown> | (() => unknown), step: string, message?: RegExp): Promise<void> => {
  const e = typeof p === 'function' ? t.throws(p as () => unknown) : await t.throwsAsync(p);
  t.true(e instanceof AttestationFailure, `expected AttestationFailure, got ${String(e)}`);
  t.is((e as AttestationFailure).step, step, (e as Error).message);
  if (message !== undefined) t.regex((e as Error).message, message);
};

test('anchors: the three shipped files verify (ARK self-signed and pinned, ASK and ASVK signed by it)', (t) => {
  for (const g of ['Milan', 'Genoa', 'Turin'] as SnpGeneration[]) {
    const a = builtinAnchors(g);
    t.regex(a.ark.x509.subject, new RegExp(`CN=ARK-${g}`));
    t.regex(a.ask.x509.subject, new RegExp(`CN=SEV-${g}`));
    t.regex(a.asvk.x509.subject, new RegExp(`CN=SEV-VLEK-${g}`));
  }
  // Swapping files across generations fails the pin.
  const milan = snpFile('milan_ask_ark_asvk.pem').toString('utf8');
  t.throws(() => anchorsFromPem('Genoa', milan), { message: /pinned key/ });
});

test('e2e-evidence.json verifies with no expectation and gives exactly the upstream claims', async (t) => {
  const v = new SnpVerifier();
  const result = await v.evaluate(snpJson('e2e-evidence.json'), { now: NOW });
  t.deepEqual(result.claims, snpJson('e2e-expected-claims.json'));
  t.is(JSON.stringify(result.claims), JSON.stringify(snpJson('e2e-expected-claims.json')), 'member order as upstream');
  t.deepEqual(result.metadata, { generation: 'Genoa', vekType: 'VCEK', vekSource: 'cert_chain', crl: 'absent', ignoredCertificates: [] });
});

test('e2e: report data binding (raw 64-byte value passes; a runtime-data digest and a wrong init-data fail)', async (t) => {
  const v = new SnpVerifier();
  const ev = snpJson('e2e-evidence.json');
  const rd = Buffer.from((snpJson('e2e-expected-claims.json')['report_data'] as string), 'hex');
  const claims = await v.verify(ev, rd, Buffer.alloc(32), NOW);
  t.is(claims['report_data'], rd.toString('hex'));
  // The first 48 bytes only (the KBS digest shape) are padded with zeros and so do not match.
  await failsAt(t, v.verify(ev, rd.subarray(0, 48), undefined, NOW), 'report-data');
  await failsAt(t, v.verify(ev, Buffer.alloc(48, 1), undefined, NOW), 'report-data');
  // An empty expectation is a value (64 zero bytes), as upstream's ReportData::Value(&[]).
  await failsAt(t, v.verify(ev, new Uint8Array(0), undefined, NOW), 'report-data');
  await failsAt(t, v.evaluate(ev, { initDataHash: Buffer.alloc(32, 7), now: NOW }), 'init-data');
  // HOST_DATA is zero: a zero digest shorter than 32 bytes is padded and matches.
  await t.notThrowsAsync(v.evaluate(ev, { initDataHash: Buffer.alloc(16), now: NOW }));
});

test('e2e: JSON -> binary -> JSON -> binary is byte-identical and the binary signature verifies', (t) => {
  const ev = snpJson('e2e-evidence.json');
  const { report, certChain } = parseSnpEvidence(ev);
  const json = snpReportToEvidenceJson(report);
  const again = parseSnpEvidence({ attestation_report: json, cert_chain: null }).report;
  t.true(again.raw.equals(report.raw));
  // The JSON round trip gives back the captured fields (the capture lacks the mit-vector keys).
  const original = ev['attestation_report'] as Record<string, unknown>;
  for (const [k, value] of Object.entries(original)) t.deepEqual(json[k], value, k);
  const vcek = (certChain ?? [])[0]?.data as Buffer;
  t.is(verifySnpReportWithCert(report.raw, vcek, { now: NOW }).version, 3);
});

test('test-report.bin (v2): component checks verify; full evaluation rejects as too old', async (t) => {
  const bin = snpFile('test-report.bin');
  const report = parseSnpReport(bin);
  t.is(report.version, 2);
  t.is(report.cpuidFamId, null);
  // binary -> JSON -> binary is byte-identical.
  const json = snpReportToEvidenceJson(report);
  t.true(parseSnpEvidence({ attestation_report: json }).report.raw.equals(bin));
  const r = verifySnpReportWithCert(bin, snpFile('test-vcek.der'), { now: NOW, checkVersion: false, generation: 'Milan' });
  t.is(r.vmpl, 0);
  await failsAt(t, () => verifySnpReportWithCert(bin, snpFile('test-vcek.der'), { now: NOW }), 'report-version', /too old/);
  await failsAt(
    t,
    () => verifySnpReportWithCert(bin, snpFile('test-vcek.der'), { now: NOW, checkVersion: false }),
    'report-version',
    /too old/,
  );
  await failsAt(t, new SnpVerifier().evaluate(snpJson('test-report-evidence.json'), { now: NOW }), 'report-version', /too old/);
  // The derived JSON's bytes are the .bin file.
  t.true(parseSnpEvidence(snpJson('test-report-evidence.json')).report.raw.equals(bin));
});

test('VLEK: VLEK -> ASVK -> ARK chain, signature and TCB verify; VMPL 1 is rejected', async (t) => {
  const bin = snpFile('test-vlek-report.bin');
  const r = verifySnpReportWithCert(bin, snpFile('test-vlek.der'), { now: NOW });
  t.is(r.vmpl, 1);
  await failsAt(t, new SnpVerifier().evaluate(snpJson('test-vlek-evidence.json'), { now: NOW }), 'vmpl');
  // The same VLEK presented as a VCEK does not chain to the ASK.
  await failsAt(t, () => verifyVekChain(snpFile('test-vlek.der'), 'Milan', 'VCEK'), 'certificate-chain');
});

test('VLEK expired on 2025-12-10: rejected on dates after it, before the VMPL check', async (t) => {
  await failsAt(t, () => verifySnpReportWithCert(snpFile('test-vlek-report.bin'), snpFile('test-vlek.der'), { now: AFTER_VLEK_EXPIRY }), 'certificate-validity', /VLEK expired/);
  await failsAt(t, new SnpVerifier().evaluate(snpJson('test-vlek-evidence.json'), { now: AFTER_VLEK_EXPIRY }), 'certificate-validity');
  // Before the VCEK's notBefore.
  await failsAt(t, new SnpVerifier().evaluate(snpJson('e2e-evidence.json'), { now: new Date('2025-05-01T00:00:00Z') }), 'certificate-validity');
});

test('synthetic VCEKs with hwID 00..3f do not chain to the Milan ASK', async (t) => {
  for (const f of ['test-vcek-invalid-legacy.der', 'test-vcek-invalid-new.der']) {
    await failsAt(t, () => verifyVekChain(snpFile(f), 'Milan', 'VCEK'), 'certificate-chain');
  }
});

test('TCB and chip id: a VCEK of another platform or TCB is refused', async (t) => {
  // test-vcek.der (Milan) against the Genoa e2e report: wrong chain.
  const e2e = parseSnpEvidence(snpJson('e2e-evidence.json')).report;
  await failsAt(t, () => verifySnpReportWithCert(e2e, snpFile('test-vcek.der'), { now: NOW }), 'certificate-chain');
  // Same VCEK, changed reported TCB: the TCB check runs after the signature, so re-encode and expect signature failure.
  const json = snpReportToEvidenceJson(e2e);
  (json['reported_tcb'] as Record<string, number>)['microcode'] = 26;
  const ev = { attestation_report: json, cert_chain: snpJson('e2e-evidence.json')['cert_chain'] };
  await failsAt(t, new SnpVerifier().evaluate(ev, { now: NOW }), 'signature');
});

test('evidence format: malformed JSON shapes are refused with evidence-format', async (t) => {
  const v = new SnpVerifier();
  const good = snpJson('e2e-evidence.json');
  const report = good['attestation_report'] as Record<string, unknown>;
  const cases: unknown[] = [
    null,
    [],
    'x',
    {},
    { attestation_report: { ...report, measurement: [1, 2, 3] } },
    { attestation_report: { ...report, vmpl: -1 } },
    { attestation_report: { ...report, vmpl: 1.5 } },
    { attestation_report: { ...report, policy: 2 ** 60 } },
    { attestation_report: { ...report, chip_id: [...(report['chip_id'] as number[]).slice(0, 63), 256] } },
    { attestation_report: report, cert_chain: 'VCEK' },
    { attestation_report: report, cert_chain: [{ cert_type: 'NOPE', data: [] }] },
    { attestation_report: report, cert_chain: [{ cert_type: 'VCEK', data: 'AAAA' }] },
  ];
  for (const c of cases) await failsAt(t, v.evaluate(c, { now: NOW }), 'evidence-format');
  await failsAt(t, v.evaluate({ attestation_report: report, cert_chain: [] }, { now: NOW }), 'certificate-chain', /must include a VCEK/);
  await failsAt(t, v.evaluate({ attestation_report: { ...report, version: 6 }, cert_chain: null }, { now: NOW }), 'report-version');
  await failsAt(t, v.evaluate({ attestation_report: { ...report, cpuid_mod_id: 0xaf }, cert_chain: null }, { now: NOW }), 'generation');
  await failsAt(t, v.evaluate({ attestation_report: { ...report, cpuid_fam_id: 0x17 }, cert_chain: null }, { now: NOW }), 'generation');
});
