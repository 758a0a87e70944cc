/**
 * The Azure vTPM pieces shared by az-snp-vtpm and az-tdx-vtpm, on the real component vectors:
 * HCL report parsing, the var_data → hardware report_data binding, the HCLAkPub key, the v2
 * `user-data`, and the evidence v0/v1/v2 decoding (untagged, exact `version`).
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../policy/index.js';
import { AttestationFailure } from '../attestation/types.js';
import { decodeBase64Url, decodeByteArray, decodeHex } from '../attestation/az-vtpm/codec.js';
import { decodeAzSnpEvidence, decodeAzTdxEvidence } from '../attestation/az-vtpm/evidence.js';
import {
  hclAkPub,
  parseHclReport,
  VAR_DATA_OFFSET,
  varDataSha256,
  verifyUserData,
  verifyVarDataBinding,
} from '../attestation/az-vtpm/hcl.js';
import { extendWithVtpmClaims, verifyVtpmQuote } from '../attestation/az-vtpm/vtpm.js';
import { defaultVerifiers, hardwareVerifiers } from '../attestation/registry.js';

const VECTORS = process.env['KBS_SHARED_VECTORS'] ?? join(packageRoot(), '..', 'shared', 'vectors');
const read = (...p: string[]): Buffer => readFileSync(join(VECTORS, ...p));
const readJson = (...p: string[]): Record<string, unknown> => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

const SNP_HCL = read('az-snp-vtpm', 'hcl-report.bin');
const TDX_HCL = read('az-tdx-vtpm', 'hcl-report.bin');
const TD_QUOTE = read('az-tdx-vtpm', 'td-quote.bin');
const V2_REPORT_DATA = Buffer.from(
  '982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef',
  'hex',
);
/** SNP report_data is at 0x50 of the report; a v4 TD quote's is at 48 + 520. */
const snpReportData = (hcl: Buffer): Buffer => parseHclReport(hcl).hwReport.subarray(0x50, 0x90);
const tdQuoteReportData = TD_QUOTE.subarray(48 + 520, 48 + 584);

function failsAt(t: ExecutionContext, fn: () => unknown, step: string): AttestationFailure | undefined {
  const e = t.throws(fn, { instanceOf: AttestationFailure });
  t.is(e?.step, step);
  return e;
}

test('HCL report: SNP and TDX reports parse, with their AK and var_data', (t) => {
  const snp = parseHclReport(SNP_HCL);
  t.is(snp.reportType, 'snp');
  t.is(snp.hwReport.length, 1184);
  t.is(snp.varData.length, 1110);
  t.is(hclAkPub(snp).asymmetricKeyDetails?.modulusLength, 2048);
  const tdx = parseHclReport(TDX_HCL);
  t.is(tdx.reportType, 'tdx');
  t.is(tdx.hwReport.length, 1024);
  t.is(tdx.varData.length, 1201);
  t.is(hclAkPub(tdx).asymmetricKeyDetails?.modulusLength, 2048);
});

test('HCL binding: SHA-256(var_data) is the SNP report / TD quote report_data[0..32]', (t) => {
  t.notThrows(() => verifyVarDataBinding(parseHclReport(SNP_HCL), snpReportData(SNP_HCL), 'SNP report'));
  t.notThrows(() => verifyVarDataBinding(parseHclReport(TDX_HCL), tdQuoteReportData, 'TD quote'));
  // The TD report inside the HCL report carries the same report data as the quote.
  t.deepEqual(parseHclReport(TDX_HCL).hwReport.subarray(128, 192), tdQuoteReportData);
  t.deepEqual(varDataSha256(parseHclReport(SNP_HCL)), snpReportData(SNP_HCL).subarray(0, 32));
});

test('HCL binding: tampered var_data (upstream 0x06e0 / 0x0880) fails hcl-binding', (t) => {
  const snp = Buffer.from(SNP_HCL);
  snp[0x06e0] = ((snp[0x06e0] as number) + 1) & 0xff;
  failsAt(t, () => verifyVarDataBinding(parseHclReport(snp), snpReportData(SNP_HCL), 'SNP report'), 'hcl-binding');
  const tdx = Buffer.from(TDX_HCL);
  tdx[0x0880] = ((tdx[0x0880] as number) + 1) & 0xff;
  failsAt(t, () => verifyVarDataBinding(parseHclReport(tdx), tdQuoteReportData, 'TD quote'), 'hcl-binding');
  // A shorter var_data size changes what is hashed.
  const short = Buffer.from(SNP_HCL);
  short.writeUInt32LE(1000, VAR_DATA_OFFSET - 4);
  failsAt(t, () => verifyVarDataBinding(parseHclReport(short), snpReportData(SNP_HCL), 'SNP report'), 'hcl-binding');
  // Only SHA-256 var_data hashes are defined.
  const sha384 = Buffer.from(SNP_HCL);
  sha384.writeUInt32LE(2, VAR_DATA_OFFSET - 8);
  failsAt(t, () => varDataSha256(parseHclReport(sha384)), 'hcl-binding');
});

test('HCL report: malformed reports fail evidence-format; a broken AK fails tpm-signature', (t) => {
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(SNP_HCL);
    f(b);
    return b;
  };
  failsAt(t, () => parseHclReport(SNP_HCL.subarray(0, VAR_DATA_OFFSET - 1)), 'evidence-format');
  failsAt(t, () => parseHclReport(mutate((b) => b.write('XCLA', 0))), 'evidence-format');
  failsAt(t, () => parseHclReport(mutate((b) => b.writeUInt32LE(3, VAR_DATA_OFFSET - 12))), 'evidence-format');
  failsAt(t, () => parseHclReport(mutate((b) => b.writeUInt32LE(4, VAR_DATA_OFFSET - 8))), 'evidence-format');
  failsAt(t, () => parseHclReport(mutate((b) => b.writeUInt32LE(2000, VAR_DATA_OFFSET - 4))), 'evidence-format');
  // Upstream test_verify_akpub_failure: byte 0x0540 zeroed inside the AK JWK.
  failsAt(t, () => hclAkPub(parseHclReport(mutate((b) => (b[0x0540] = 0)))), 'tpm-signature');
  const noAk = mutate((b) => b.write('HCLAkPuX', SNP_HCL.indexOf('HCLAkPub')));
  t.throws(() => hclAkPub(parseHclReport(noAk)), { instanceOf: AttestationFailure, message: /no HCLAkPub key/ });
});

test('user-data (v2): the report data is a prefix of the hex user-data; 123abc is rejected', (t) => {
  const ev = decodeAzSnpEvidence(readJson('az-snp-vtpm', 'evidence-v2.json'));
  const hcl = parseHclReport(ev.hclReport);
  t.notThrows(() => verifyUserData(hcl, V2_REPORT_DATA));
  t.notThrows(() => verifyUserData(hcl, V2_REPORT_DATA.subarray(0, 10)));
  const e = failsAt(t, () => verifyUserData(hcl, Buffer.from('123abc', 'hex')), 'user-data');
  t.regex(e?.message ?? '', /user-data/);
  failsAt(t, () => verifyUserData(hcl, Buffer.concat([V2_REPORT_DATA, Buffer.alloc(17)])), 'user-data');
  // v0/v1 guests leave user-data all zero.
  failsAt(t, () => verifyUserData(parseHclReport(SNP_HCL), Buffer.from('challenge')), 'user-data');
});

test('evidence: v0, v1 and v2 decode (SNP v0/v1: same VM, separate quotes; TDX v0/v1: same capture)', (t) => {
  const snp0 = decodeAzSnpEvidence(readJson('az-snp-vtpm', 'evidence-v0.json'));
  const snp1 = decodeAzSnpEvidence(readJson('az-snp-vtpm', 'evidence-v1.json'));
  const snp2 = decodeAzSnpEvidence(readJson('az-snp-vtpm', 'evidence-v2.json'));
  t.deepEqual([snp0.version, snp1.version, snp2.version], [0, 1, 2]);
  t.deepEqual(snp0.tpmQuote.pcrs, snp1.tpmQuote.pcrs);
  t.is(snp0.hclReport.length, 2600);
  t.is(snp1.hclReport.length, 2600);
  t.true('pem' in snp0.hw && 'der' in snp1.hw);
  const tdx0 = decodeAzTdxEvidence(readJson('az-tdx-vtpm', 'evidence-v0.json'));
  const tdx1 = decodeAzTdxEvidence(readJson('az-tdx-vtpm', 'evidence-v1.json'));
  t.deepEqual([tdx0.version, tdx1.version], [0, 1]);
  t.deepEqual(tdx0.tpmQuote, tdx1.tpmQuote);
  t.deepEqual(tdx0.hclReport, TDX_HCL);
  t.deepEqual(tdx1.hclReport, TDX_HCL);
  t.deepEqual(tdx0.hw, TD_QUOTE);
  t.deepEqual(tdx1.hw, TD_QUOTE);
});

test('evidence: version must match exactly; wrong shapes fail evidence-format', (t) => {
  const v1 = readJson('az-snp-vtpm', 'evidence-v1.json');
  t.is(decodeAzSnpEvidence({ ...v1, version: 2 }).version, 2);
  for (const bad of [
    { ...v1, version: 3 },
    { ...v1, version: '1' },
    { ...v1, version: 1.5 },
    { ...v1, hcl_report: (v1['hcl_report'] as string).replace(/.$/, '+') },
    { ...v1, vcek: 7 },
    { ...v1, tpm_quote: { ...(v1['tpm_quote'] as object), message: 'zz' } },
    { ...v1, tpm_quote: { ...(v1['tpm_quote'] as object), pcrs: ['00'] } },
    null,
    [],
    'evidence',
  ]) {
    failsAt(t, () => decodeAzSnpEvidence(bad), 'evidence-format');
  }
  // An unknown member is ignored (serde), and a `version` on a v0 shape is ignored too.
  const v0 = readJson('az-snp-vtpm', 'evidence-v0.json');
  t.is(decodeAzSnpEvidence({ ...v0, extra: true, version: 9 }).version, 0);
  failsAt(t, () => decodeAzTdxEvidence(v0), 'evidence-format');
});

test('codecs: strict hex, URL-safe base64 (padding optional, canonical) and byte arrays', (t) => {
  t.deepEqual(decodeHex('0aFF', 4), Buffer.from([10, 255]));
  t.is(decodeHex('0a0', 4), undefined);
  t.is(decodeHex('0a0b0c', 2), undefined);
  t.deepEqual(decodeBase64Url('-_8', 4), Buffer.from([0xfb, 0xff]));
  t.deepEqual(decodeBase64Url('-_8=', 4), Buffer.from([0xfb, 0xff]));
  t.is(decodeBase64Url('-_9=', 4), undefined);
  t.is(decodeBase64Url('+/8=', 4), undefined);
  t.is(decodeBase64Url('A', 4), undefined);
  t.is(decodeBase64Url('AAA==', 4), undefined);
  t.deepEqual(decodeByteArray([0, 255], 2), Buffer.from([0, 255]));
  for (const bad of [[256], [-1], [1.5], ['1'], [0, 0, 0]]) t.is(decodeByteArray(bad, 2), undefined);
});

test('vtpm: the shared quote checks on evidence-v1 and the claim extension (upstream extend_claim)', (t) => {
  const ev = decodeAzSnpEvidence(readJson('az-snp-vtpm', 'evidence-v1.json'));
  const { attest } = verifyVtpmQuote(ev, 'snp', Buffer.from('challenge'));
  failsAt(t, () => verifyVtpmQuote(ev, 'tdx', Buffer.from('challenge')), 'evidence-format');
  failsAt(t, () => verifyVtpmQuote(ev, 'snp', Buffer.from('challengE')), 'tpm-nonce');
  const claims = extendWithVtpmClaims({ some: 'thing', init_data: 'x', report_data: 'y', last: 1 }, ev, attest);
  t.deepEqual(Object.keys(claims), ['some', 'init_data', 'report_data', 'last', 'tpm']);
  t.is(claims['report_data'], Buffer.from('challenge').toString('hex'));
  t.is(claims['init_data'], ev.tpmQuote.pcrs[8]?.toString('hex'));
  t.is(Object.keys(claims['tpm'] as object).length, 24);
  t.is((claims['tpm'] as Record<string, string>)['pcr00'], 'e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
});

test('registry: hardwareVerifiers adds snp, tdx, sgx, the Azure TEEs and tpm beside the defaults', async (t) => {
  t.deepEqual(defaultVerifiers().tees(), ['sample', 'sampledevice']);
  const all = hardwareVerifiers({ collateralDir: join(VECTORS, 'no-such-collateral') }, defaultVerifiers());
  t.deepEqual(all.tees().sort(), ['az-snp-vtpm', 'az-tdx-vtpm', 'sample', 'sampledevice', 'sgx', 'snp', 'tdx', 'tpm']);
  t.deepEqual(hardwareVerifiers().tees().sort(), ['az-snp-vtpm', 'az-tdx-vtpm', 'sgx', 'snp', 'tdx', 'tpm']);
  const claims = await all.get('az-snp-vtpm')?.verify(readJson('az-snp-vtpm', 'evidence-v2.json'), V2_REPORT_DATA, undefined, new Date('2026-01-01T00:00:00Z'));
  t.is(claims?.['report_data'], V2_REPORT_DATA.toString('hex'));
  t.is(all.get('az-tdx-vtpm')?.teeClass, 'cpu');
});
